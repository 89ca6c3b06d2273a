"""`riemexp sweep [grid=NAME] [OVERRIDES]`: a Hydra multirun of the training task over a grid preset,
then the sweep's tables and figures. `riemexp sweep aggregate=PATH` rebuilds those only.

Steps: load the preset (conf/grid/NAME.yaml), build the multirun overrides (preset, then the
command line), check every swept value once by composing a config with it, launch the
multirun (joblib on the local cores by default, or any Hydra launcher given as
hydra/launcher=...), then summarize the sweep folder and report this invocation's jobs.
"""

from __future__ import annotations

import importlib.util
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from riemexp import console
from riemexp.cli import conf_dir
from riemexp.commands.hydra_app import compose_config, groups, hydra_argv, to_run_config
from riemexp.errors import ConfigError, RunFolderError
from riemexp.io import atomic_write_text
from riemexp.sweep.grid import (
    Grid,
    load_grid,
    preset_names,
    search_path_override,
    sweep_overrides,
)
from riemexp.sweep.jobs import INVOCATION_ENV
from riemexp.sweep.summary import FAILED, Summary, show_grouped, summarize, write_summary

SWEEP_RECORD = "sweep.yaml"  # what this invocation ran: preset, overrides, Hydra arguments
DEFAULT_LAUNCHER = "joblib"
MAX_FAILURES_SHOWN = 20


def usage() -> str:
    presets = []
    for name in preset_names(conf_dir()):
        presets.append(f"  {name:<12} {load_grid(name, conf_dir()).description}")
    launcher = (
        DEFAULT_LAUNCHER if _joblib_installed() else "basic (install hydra-joblib-launcher for parallel jobs)"
    )
    return "\n".join(
        [
            "usage: riemexp sweep [grid=NAME|PATH.yaml] [OVERRIDES...]   run a grid of training jobs",
            "       riemexp sweep aggregate=SWEEP_DIR                    rebuild a sweep's summary only",
            "",
            "grid presets (conf/grid/; grid=none: only the overrides, like `riemexp train -m`):",
            *presets,
            "",
            "Overrides are Hydra's: network.depth=2,4,8 dataset=spirals,moons add or replace axes;",
            "hydra.sweep.dir=DIR sets the folder (re-running into it skips the finished jobs).",
            f"Launcher: {launcher}; hydra/launcher=slurm (conf/hydra/launcher/slurm.yaml) or",
            "submitit_slurm / submitit_local send the jobs through submitit.",
            "",
            "Writes DIR/summary.{csv,md,tex}, DIR/summary_grouped.{csv,md,tex} and DIR/plots/.",
            "Exit status: 0 when every job completed, 1 when any failed.",
        ]
    )


def _joblib_installed() -> bool:
    return importlib.util.find_spec("hydra_plugins.hydra_joblib_launcher") is not None


def _split(args: Sequence[str]) -> tuple[dict[str, str], list[str], list[str]]:
    """(own options grid/aggregate, task overrides, Hydra's own overrides and flags)."""
    own: dict[str, str] = {}
    task, hydra_args = [], []
    for arg in args:
        key = arg.split("=", 1)[0]
        if key in ("grid", "aggregate") and "=" in arg:
            own[key] = arg.split("=", 1)[1]
        elif arg.startswith("-") or arg.lstrip("+~").startswith("hydra"):
            hydra_args.append(arg)
        else:
            task.append(arg)
    return own, task, hydra_args


def _value(args: Sequence[str], key: str) -> str | None:
    for arg in reversed(args):
        if arg.split("=", 1)[0].lstrip("+") == key:
            return arg.split("=", 1)[1]
    return None


def probe_jobs(overrides: Sequence[str]) -> tuple[int, list[list[str]]]:
    """The number of jobs of a multirun, and a few jobs that use every swept value at least once:
    the first value of every axis, then each other value of each axis in turn."""
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception as err:
        raise ConfigError(f"bad override: {str(err).strip().splitlines()[0]}") from None
    axes: list[list[str]] = []
    for o in parsed:
        key = o.get_key_element()
        values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
        axes.append([f"{key}={v}" for v in values])
    n_jobs = 1
    for axis in axes:
        n_jobs *= len(axis)
    first = [axis[0] for axis in axes]
    probes = [first] + [first[:i] + [v] + first[i + 1 :] for i, axis in enumerate(axes) for v in axis[1:]]
    return n_jobs, probes


def check_values(probes: Sequence[list[str]], search_path: list[str]) -> None:
    """Compose and check the config of each probe job; ConfigError naming the offending values."""
    for job in probes:
        try:
            to_run_config(compose_config("train", [*job, *search_path]))
        except ConfigError as err:
            raise ConfigError(f"{err} (in the sweep job {' '.join(job)})") from None


def resolve_sweep_dir(hydra_args: Sequence[str]) -> Path:
    """hydra.sweep.dir from the command line, else train.yaml's (its ${now:...} resolved now); absolute."""
    given = _value(hydra_args, "hydra.sweep.dir")
    if given is None:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            cfg = compose("train", return_hydra_config=True)
            given = str(OmegaConf.select(cfg, "hydra.sweep.dir"))
    return Path(given).expanduser().resolve()


def report(summary: Summary, invocation: str | None, n_expected: int | None) -> int:
    """Print what happened (this invocation's jobs when given, else the whole folder); the exit status."""
    jobs = [j for j in summary.jobs if invocation is None or j.record.get("invocation") == invocation]
    skipped = sum(j.record.get("action") == "skipped" for j in jobs)
    failed = [j for j in summary.jobs if j.status in FAILED and (invocation is None or j in jobs)]
    unfinished = [j for j in summary.jobs if j.status not in FAILED and j.status != "completed"]
    completed = sum(j.status == "completed" for j in jobs)
    where = summary.sweep_dir
    if invocation is not None:
        ran = len(jobs) - skipped
        print(
            f"sweep: {n_expected} jobs: {ran} ran, {skipped} skipped "
            f"(already completed with the same config), {len(failed)} failed -> {where}"
        )
    else:
        print(
            f"sweep {where}: {len(summary.jobs)} jobs: {completed} completed, {len(failed)} failed, "
            f"{len(unfinished)} unfinished"
        )
    for job in failed[:MAX_FAILURES_SHOWN]:
        values = ", ".join(f"{k}={job.config.get(k)}" for k in summary.keys) or job.name
        console.error(f"job {job.name} ({values}) {job.status}: {job.error or 'no message recorded'}")
    if len(failed) > MAX_FAILURES_SHOWN:
        console.error(
            f"... and {len(failed) - MAX_FAILURES_SHOWN} more failed jobs (see summary.csv, column error)"
        )
    missing = 0 if n_expected is None else n_expected - len(jobs)
    if missing > 0 and invocation is not None:
        console.error(
            f"{missing} jobs left no record in {where} (killed, or the launcher failed); re-run to resume"
        )
    elif missing > 0:  # aggregate: sweep.yaml says how many jobs the last sweep launched
        print(
            f"  {missing} of the {n_expected} jobs the last sweep into this folder launched have no "
            "job folder (not started, or removed); re-run the sweep to resume"
        )
    if invocation is None and unfinished:
        states = ", ".join(sorted({j.status for j in unfinished}))
        print(
            f"  {len(unfinished)} jobs are not finished ({states}): "
            + " ".join(j.name for j in unfinished[:20])
        )
    print(f"  tables: {where / 'summary.md'}, {where / 'summary_grouped.md'}; figures: {where / 'plots'}")
    return 1 if failed or (missing > 0 and invocation is not None) else 0


def aggregate(sweep_dir: str | Path, invocation: str | None = None, n_expected: int | None = None) -> int:
    """Rebuild summary tables and figures of a sweep folder; print the report; the exit status."""
    from riemexp.sweep import ode_limit
    from riemexp.sweep.figures import draw_figures

    summary = summarize(sweep_dir)
    write_summary(summary)
    draw_figures(summary)
    if ode_limit.applies(summary):  # residual nets at one T = L h (grid=ode_limit): the depth limit
        ode_limit.write_ode_limit(summary)
    show_grouped(summary)
    return report(summary, invocation, n_expected)


def _recorded_jobs(sweep_dir: str) -> int | None:
    """The number of jobs the last `riemexp sweep` into this folder launched (sweep.yaml), if known."""
    try:
        jobs = OmegaConf.load(Path(sweep_dir).expanduser() / SWEEP_RECORD).get("jobs")
    except Exception:  # no record (a plain `train -m` folder) or an unreadable one
        return None
    return jobs if isinstance(jobs, int) else None


def _record(
    sweep_dir: Path, grid: Grid, task: list[str], hydra_args: list[str], argv: list[str], n: int
) -> None:
    record = {
        "grid": grid.name,
        "description": grid.description,
        "params": grid.params,
        "paired": [dict(s) for s in grid.paired],
        "fixed": grid.fixed,
        "command_line": [*task, *hydra_args],
        "hydra_arguments": argv,
        "jobs": n,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_text(sweep_dir / SWEEP_RECORD, OmegaConf.to_yaml(OmegaConf.create(record)))


def main(args: list[str]) -> int:
    if any(a in ("-h", "--help") for a in args):
        print(usage())
        return 0
    own, task, hydra_args = _split(args)
    if "aggregate" in own:
        if task or "grid" in own:
            raise ConfigError(
                "aggregate=PATH rebuilds a summary and runs nothing: give no grid or overrides with it"
            )
        if not own["aggregate"].strip():
            raise ConfigError("aggregate= must name a sweep folder, got an empty value")
        return aggregate(Path(own["aggregate"]).expanduser(), n_expected=_recorded_jobs(own["aggregate"]))

    # the grid: the preset's overrides, then the command line's; every swept value checked once
    grid = load_grid(own.get("grid", "default"), conf_dir())
    sweep_dir = resolve_sweep_dir(hydra_args)
    group_names = [g for g in groups() if g not in ("grid", "hydra")]
    with tempfile.TemporaryDirectory() as scratch:  # nothing lands in the sweep folder before the check
        overrides = sweep_overrides(grid, task, group_names, Path(scratch))
        n_jobs, probes = probe_jobs(overrides)
        check_values(probes, [search_path_override(Path(scratch))] if grid.paired else [])
    overrides = sweep_overrides(grid, task, group_names, sweep_dir)
    search_path = [search_path_override(sweep_dir)] if grid.paired else []

    # the multirun: Hydra's sweeper and launcher; each job records its own outcome
    invocation = uuid.uuid4().hex[:12]
    launcher = [] if _value(hydra_args, "hydra/launcher") else [f"hydra/launcher={DEFAULT_LAUNCHER}"]
    if launcher and not _joblib_installed():
        launcher = []
    argv = [
        "--multirun",
        *overrides,
        f"hydra.sweep.dir={sweep_dir}",
        *search_path,
        *launcher,
        f"+hydra.job.env_set.{INVOCATION_ENV}={invocation}",
        *[a for a in hydra_args if a.split("=", 1)[0] != "hydra.sweep.dir" and a not in ("-m", "--multirun")],
    ]
    sweep_dir.mkdir(parents=True, exist_ok=True)
    _record(sweep_dir, grid, task, hydra_args, argv, n_jobs)
    print(f"sweep: grid '{grid.name}', {n_jobs} jobs -> {sweep_dir}", flush=True)
    from riemexp.commands.train import _task

    start = time.perf_counter()
    launch_failed = None
    try:
        with hydra_argv("riemexp sweep", argv):
            _task()
    except SystemExit as exit_:  # Hydra reports a launcher failure and exits; summarize what exists anyway
        launch_failed = exit_.code
    seconds = time.perf_counter() - start
    try:
        status = aggregate(sweep_dir, invocation, n_jobs)
    except RunFolderError:
        console.error(f"no job of the sweep left a folder in {sweep_dir}")
        return 1
    print(f"  wall time {seconds:.1f} s")
    if launch_failed not in (None, 0):
        console.error(f"the launcher stopped with exit status {launch_failed}")
        return 1
    return status
