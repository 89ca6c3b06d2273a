"""Grid presets (conf/grid/NAME.yaml) and their translation into Hydra multirun overrides.

A preset has three optional sections (the format is documented at the top of
conf/grid/default.yaml):

    params:   KEY: VALUES     crossed axes; VALUES is a YAML list or a Hydra sweep string
                              ("2,4,8", "range(2,10,2)", "choice(a,b)")
    paired:   - {KEY: VALUE, ...}
                              ONE more axis whose entries are whole override sets, applied
                              together (zipped, not crossed), e.g. depth and step size at a
                              fixed total time T = L h
    fixed:    KEY: VALUE      one value for every job

A KEY is a config group (`network`, `dataset`, `optim`: VALUE picks the option) or a dotted
value key (`network.depth`). Hydra's basic sweeper only crosses axes, so the paired sets
become a generated config group `sweep_set` (one `# @package _global_` file per set, written
into SWEEP_DIR/.grid/ and put on Hydra's search path) swept as `+sweep_set=name1,name2,...`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from riemexp.errors import ConfigError
from riemexp.io import atomic_write_text

SET_GROUP = "sweep_set"  # the generated config group of the paired override sets
SET_DIR = ".grid"  # SWEEP_DIR/.grid/sweep_set/NAME.yaml
NO_PRESET = "none"  # `grid=none`: no preset, only the command-line overrides (exactly `-m`)
SECTIONS = ("description", "params", "paired", "fixed")


@dataclass(frozen=True)
class Grid:
    """A parsed preset: crossed axes, one zipped axis of override sets, fixed values."""

    name: str
    description: str = ""
    params: dict[str, str] = field(default_factory=dict)  # key -> Hydra sweep value string
    paired: tuple[dict[str, Any], ...] = ()  # override sets, each {key: value}
    fixed: dict[str, str] = field(default_factory=dict)  # key -> Hydra value string


def grid_dir(conf: Path) -> Path:
    return conf / "grid"


def preset_names(conf: Path) -> list[str]:
    """The presets: the YAML files in conf/grid/ (and `none`)."""
    return sorted(p.stem for p in grid_dir(conf).glob("*.yaml"))


def hydra_value(value: Any) -> str:
    """One YAML value as Hydra override text: numbers as written, null, true/false, strings raw."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    return str(value)


def _sweep_value(key: str, value: Any, where: str) -> str:
    if isinstance(value, (list, tuple)):
        if not value:
            raise ConfigError(f"{where}: params.{key} must list at least one value, got []")
        return ",".join(hydra_value(v) for v in value)
    if isinstance(value, Mapping):
        raise ConfigError(f"{where}: params.{key} must be a list or a Hydra sweep string, got a mapping")
    return hydra_value(value)


def parse_grid(name: str, raw: Any, where: str) -> Grid:
    """Check a preset's structure (a mapping with the sections `SECTIONS`) and parse it."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a mapping with sections {', '.join(SECTIONS)}; got {raw!r}")
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{where}: unknown section '{unknown[0]}'; expected any of: {', '.join(SECTIONS)}")
    params, fixed, paired = raw.get("params") or {}, raw.get("fixed") or {}, raw.get("paired") or []
    if not isinstance(params, Mapping) or not isinstance(fixed, Mapping):
        raise ConfigError(f"{where}: params and fixed must be mappings KEY: VALUE")
    if not isinstance(paired, Sequence) or isinstance(paired, str):
        raise ConfigError(f"{where}: paired must be a list of override sets, e.g. - {{network.depth: 4}}")
    sets = []
    for i, entry in enumerate(paired):
        if not isinstance(entry, Mapping) or not entry:
            raise ConfigError(f"{where}: paired[{i}] must be a non-empty mapping KEY: VALUE, got {entry!r}")
        for key, value in entry.items():
            if isinstance(value, (Mapping, list, tuple)):
                raise ConfigError(f"{where}: paired[{i}].{key} must be one value, got {value!r}")
        sets.append({str(k): v for k, v in entry.items()})
    crossed = set(params)
    for i, entry in enumerate(sets):
        both = crossed & set(entry)
        if both:
            raise ConfigError(
                f"{where}: '{sorted(both)[0]}' is both in params and in paired[{i}]; put it in one of them"
            )
    return Grid(
        name=name,
        description=str(raw.get("description") or ""),
        params={str(k): _sweep_value(str(k), v, where) for k, v in params.items()},
        paired=tuple(sets),
        fixed={str(k): hydra_value(v) for k, v in fixed.items()},
    )


def load_grid(name_or_path: str, conf: Path) -> Grid:
    """The preset conf/grid/NAME.yaml, a preset file given by path, or `none` (an empty grid).

    Raises ConfigError listing the presets when NAME is unknown.
    """
    if name_or_path == NO_PRESET:
        return Grid(name=NO_PRESET, description="no preset: only the command-line overrides")
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = grid_dir(conf) / f"{name_or_path}.yaml"
        if not path.is_file():
            choices = ", ".join([*preset_names(conf), NO_PRESET])
            raise ConfigError(
                f"unknown grid preset '{name_or_path}'; expected one of: {choices} "
                "(or a path to a .yaml preset)"
            )
    elif not path.is_file():
        raise ConfigError(f"grid preset file {path} does not exist")
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except (OmegaConfBaseException, OSError, ValueError, yaml.YAMLError) as err:
        detail = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())
        raise ConfigError(f"grid preset {path} is not valid YAML: {detail}") from None
    return parse_grid(path.stem, raw, f"grid preset {path}")


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def set_name(entry: Mapping[str, Any], groups: Sequence[str]) -> str:
    """A readable option name for an override set: {network: residual, network.step_size: 0.1}
    -> 'residual_step_size-0.1'. Characters outside [A-Za-z0-9_.-] become '_'."""
    parts = []
    for key, value in entry.items():
        text = hydra_value(value)
        parts.append(text if key in groups else f"{key.rsplit('.', 1)[-1]}-{text}")
    return re.sub(r"[^A-Za-z0-9_.-]", "_", "_".join(parts))


def set_yaml(entry: Mapping[str, Any], groups: Sequence[str]) -> str:
    """One paired set as a global config: group choices as defaults-list overrides, values nested."""
    choices = {k: v for k, v in entry.items() if k in groups}
    values: dict[str, Any] = {}
    for key, value in entry.items():
        if key in groups:
            continue
        node = values
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    lines = ["# @package _global_", "# generated by `riemexp sweep` from the preset's `paired` section"]
    if choices:
        lines.append("defaults:")
        lines += [f"  - override /{k}: {hydra_value(v)}" for k, v in choices.items()]
    text = "\n".join(lines) + "\n"
    if values:
        text += OmegaConf.to_yaml(OmegaConf.create(values))
    return text


def sweep_overrides(grid: Grid, user: Sequence[str], groups: Sequence[str], sweep_dir: Path) -> list[str]:
    """The task overrides of the multirun: the preset's, then the user's (a user key replaces
    the preset's crossed or fixed value for that key). Writes the paired sets' config group
    into SWEEP_DIR/.grid/ and returns the overrides that use it."""
    user_keys = {_key(o) for o in user}
    overrides = [f"{k}={v}" for k, v in grid.fixed.items() if k not in user_keys]
    overrides += [f"{k}={v}" for k, v in grid.params.items() if k not in user_keys]
    if grid.paired:
        names: list[str] = []
        folder = sweep_dir / SET_DIR / SET_GROUP
        for entry in grid.paired:
            name = set_name(entry, groups)
            while name in names:  # two sets that read the same
                name += "_"
            names.append(name)
            atomic_write_text(folder / f"{name}.yaml", set_yaml(entry, groups))
        overrides.append(f"+{SET_GROUP}={','.join(names)}")
    return [*overrides, *user]


def search_path_override(sweep_dir: Path) -> str:
    return f"hydra.searchpath=[file://{(sweep_dir / SET_DIR).resolve()}]"
