"""A sweep's jobs, worked out in the main process before anything runs.

    expand(overrides)          one override list per job: Hydra's basic sweeper's cross product
    Composer                   each job's composed config (one Hydra composition per choice of
                               config groups; value overrides applied as Hydra applies them)
    plan_jobs(...)             each job's checked RunConfig and run identity (riemexp.identity)
    match(jobs, folders)       which jobs a trusted folder already holds (by identity, never by
                               position in the grid), where the others run, and which folders
                               are not in this sweep

A job runs in the folder named by its identity, SWEEP_DIR/IDENTITY/: the same configuration
always lands in the same folder, and a job of another grid can never write over it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from riemexp.errors import ConfigError
from riemexp.sweep.folders import JobFolder, flatten

MAX_JOBS = 100_000  # a grid this large is almost certainly a typo (range(0,1000000))


def _parser() -> Any:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def expand(overrides: Sequence[str]) -> list[list[str]]:
    """The jobs of a multirun: every combination of the swept values, in Hydra's order
    (the last axis varies fastest). ConfigError for an override Hydra cannot parse."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    try:
        parsed = _parser().parse_overrides(list(overrides))
    except Exception as err:
        raise ConfigError(f"bad override: {_first_line(err)}") from None
    n_jobs = 1
    for o in parsed:
        n_jobs *= len(list(o.sweep_string_iterator())) if o.is_sweep_override() else 1
    if n_jobs > MAX_JOBS:
        raise ConfigError(f"the grid has {n_jobs} jobs; expected at most {MAX_JOBS} (check the swept ranges)")
    try:
        (jobs,) = BasicSweeper.split_arguments(parsed, None)
    except Exception as err:  # e.g. an interval sweep (only discrete values can be crossed)
        raise ConfigError(f"bad sweep override: {_first_line(err)}") from None
    return [list(job) for job in jobs]


class Composer:
    """Composes job configs like Hydra, fast: config-group choices are composed once per
    combination and cached; the value overrides are then applied the way Hydra applies
    command-line overrides after composition. An override that sets one existing value to a
    number, bool, null or plain string is set directly in the resolved values (the config has no
    interpolations between task values to re-resolve); anything else (lists, +key, ~key,
    interpolations) goes through Hydra's own override application on a copy, and an override
    Hydra would refuse is composed by Hydra in full, so that the error is Hydra's."""

    def __init__(self, group_names: Sequence[str], extra: Sequence[str] = ()) -> None:
        self.group_names = set(group_names)
        self.extra = list(extra)  # e.g. the search path of a preset's paired sets
        self._base: dict[tuple[str, ...], DictConfig] = {}
        self._plain: dict[tuple[str, ...], dict[str, Any] | None] = {}
        self._parsed: dict[str, Any] = {}

    def _is_group(self, override: Any) -> bool:
        key = override.key_or_group
        return override.package is not None or "/" in key or key in self.group_names

    def _parse(self, text: str) -> Any:
        if text not in self._parsed:
            (self._parsed[text],) = _parser().parse_overrides([text])
        return self._parsed[text]

    def _base_of(self, groups: tuple[str, ...]) -> tuple[DictConfig, dict[str, Any] | None]:
        from omegaconf import OmegaConf

        from riemexp.commands.hydra_app import compose_config

        if groups not in self._base:
            base = compose_config("train", [*groups, *self.extra])
            literal = OmegaConf.to_container(base, resolve=False)
            resolved = OmegaConf.to_container(base, resolve=True)
            self._base[groups] = base
            plain: Any = resolved if literal == resolved else None  # None: it has interpolations
            self._plain[groups] = plain
        return self._base[groups], self._plain[groups]

    @staticmethod
    def _settable(override: Any, values: dict[str, Any]) -> bool:
        """A plain `key=value` on an existing leaf, value a scalar without interpolation."""
        if (
            override.is_add()
            or override.is_delete()
            or override.is_force_add()
            or override.is_sweep_override()
        ):
            return False
        value = override.value()
        if isinstance(value, str) and "${" in value:
            return False
        if value is not None and not isinstance(value, (bool, int, float, str)):
            return False
        node: Any = values
        for part in override.key_or_group.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return not isinstance(node, (dict, list))

    def values(self, job: Sequence[str]) -> dict[str, Any]:
        """The job's composed task config as plain resolved values (ConfigError when refused)."""

        from omegaconf import OmegaConf

        from riemexp.commands.hydra_app import compose_config

        try:
            parsed = [self._parse(o) for o in job]
            groups = tuple(o.input_line for o in parsed if self._is_group(o))
            rest = [o for o in parsed if not self._is_group(o)]
            base, plain = self._base_of(groups)
            if plain is not None and all(self._settable(o, plain) for o in rest):
                values = copy.deepcopy(plain)
                for o in rest:
                    *parents, leaf = o.key_or_group.split(".")
                    node = values
                    for part in parents:
                        node = node[part]
                    node[leaf] = o.value()
                return values
            from hydra._internal.config_loader_impl import ConfigLoaderImpl

            cfg = copy.deepcopy(base)
            ConfigLoaderImpl._apply_overrides_to_config(rest, cfg)
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
        except Exception:  # Hydra's own composition says what is wrong (ConfigError)
            return OmegaConf.to_container(compose_config("train", [*job, *self.extra]), resolve=True)  # type: ignore[return-value]


@dataclass
class PlannedJob:
    """One job of a sweep: its overrides, its run identity and where its run lives."""

    overrides: list[str]
    identity: str
    folder: str = ""  # the job folder's name in the sweep folder
    done: bool = False  # a trusted folder already holds a completed run of this job
    values: dict[str, Any] = field(default_factory=dict)  # its resolved config, dotted keys
    busy: str | None = None  # its folder is being written by another live run: who (not launched)
    batch: str | None = None  # what it must share with jobs trained with it (riemexp.sweep.ensemble)
    # its identity as riemexp saved runs before each dataset and optimizer had its own config class
    # (riemexp.identity.legacy_identity); after `match`, set only when its folder holds such a run
    legacy: str | None = None


def plan_jobs(jobs: Sequence[Sequence[str]], composer: Composer) -> list[PlannedJob]:
    """Compose and check every job's config, its data and memory (riemexp.preflight) and compute
    its identity; ConfigError naming the first job whose config is refused (nothing has been
    written)."""
    from riemexp.commands.hydra_app import to_run_config
    from riemexp.config import config_to_dict
    from riemexp.data.registry import fingerprint
    from riemexp.identity import identities
    from riemexp.preflight import check_run
    from riemexp.sweep.ensemble import batch_key

    fingerprints: dict[Any, str | None] = {}  # by dataset config: a CSV's contents are part of the identity
    planned = []
    for job in jobs:
        try:
            cfg = to_run_config(composer.values(job))
        except ConfigError as err:
            raise type(err)(f"{err} (in the sweep job {' '.join(job)})") from None
        check_run(cfg)
        if cfg.dataset not in fingerprints:
            fingerprints[cfg.dataset] = fingerprint(cfg.dataset)
        identity, legacy = identities(cfg, fingerprints[cfg.dataset])
        values = flatten(config_to_dict(cfg))
        planned.append(PlannedJob(list(job), identity, values=values, batch=batch_key(cfg), legacy=legacy))
    return planned


def dedupe(jobs: Sequence[PlannedJob]) -> tuple[list[PlannedJob], int]:
    """The jobs with distinct identities (first of each kept, in order) and how many repeated one."""
    seen: set[str] = set()
    kept = []
    for job in jobs:
        if job.identity not in seen:
            seen.add(job.identity)
            kept.append(job)
    return kept, len(jobs) - len(kept)


@dataclass
class Match:
    """Jobs and folders side by side: which job each folder belongs to, if any."""

    jobs: list[PlannedJob]
    folders: dict[str, JobFolder]  # by name
    outside: list[tuple[JobFolder, str]] = field(default_factory=list)  # (folder, why it is not counted)

    @property
    def to_run(self) -> list[PlannedJob]:
        return [j for j in self.jobs if not j.done and j.busy is None]

    def folder_of(self, job: PlannedJob) -> JobFolder | None:
        return self.folders.get(job.folder)


def _live_writer(path: Path | None, folder: JobFolder | None) -> str | None:
    """Who is writing into the folder right now (its lock held, or a live "running" run), or None."""
    from riemexp.lock import describe_holder, holder, run_state

    who = holder(path) if path is not None and path.is_dir() else None
    if who is not None:
        return describe_holder(who)
    if folder is not None and folder.status == "running" and run_state(folder.path, folder.metrics) == "live":
        return f"pid {folder.metrics.get('pid')} on host {folder.metrics.get('host')}"
    return None


def match(jobs: list[PlannedJob], folders: Sequence[JobFolder], sweep_dir: Path | None = None) -> Match:
    """Give every job its folder: a trusted completed run of its identity (the folder named by
    the identity first, else the first by name), else the folder named by its identity, where
    it will run. Jobs of one identity count once; every other folder is outside the sweep.
    Returns copies of the jobs with `folder`, `done` and `busy` (with sweep_dir: also a job
    folder that holds nothing yet but a live run's lock) set."""
    jobs = [replace(j) for j in jobs]  # the caller's plan stays as it was
    by_name = {f.name: f for f in folders}
    trusted: dict[str, list[JobFolder]] = {}
    for f in folders:
        if f.trusted and f.identity is not None:
            trusted.setdefault(f.identity, []).append(f)
    used: set[str] = set()
    for job in jobs:
        # a folder of this identity, else one an older riemexp wrote for the same config
        found = trusted.get(job.identity, []) or trusted.get(job.legacy or "", [])
        canonical = [f for f in found if f.name == job.identity]
        chosen = (canonical or found)[0] if found else None
        if chosen is None or chosen.identity == job.identity:
            job.legacy = None  # kept only where the job's run is an older riemexp's
        job.done = chosen is not None
        job.folder = chosen.name if chosen is not None else job.identity
        if not job.done:
            folder = by_name.get(job.folder)
            job.busy = _live_writer(sweep_dir / job.folder if sweep_dir else None, folder)
        used.add(job.folder)
    wanted = {j.identity for j in jobs} | {j.legacy for j in jobs if j.legacy}
    outside = []
    for f in folders:
        if f.name in used:
            continue
        if f.problem is not None:
            why = f"its files disagree: {f.problem}"
        elif f.identity in wanted:
            why = "another copy of a job of this sweep"
        elif f.trusted:
            why = "a run of another configuration"
        else:
            why = f"{f.status}, of another configuration or an earlier attempt"
        outside.append((f, why))
    return Match(jobs, by_name, outside)


__all__ = ["Composer", "Match", "PlannedJob", "dedupe", "expand", "match", "plan_jobs"]
