"""Hydra at the edge: compose and check configs, and run a task under `@hydra.main`.

Every subcommand goes through here, so that unknown group options and bad values get the
same one-line message before Hydra creates any output folder.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from riemexp.cli import conf_dir
from riemexp.commands.schema import ensure_registered, register
from riemexp.config import RunConfig, load_config
from riemexp.errors import ConfigError, OutputError, RiemexpError

HYDRA_FLAGS = (
    "-h",
    "--help",
    "--hydra-help",
    "--cfg",
    "-c",
    "--info",
    "-i",
    "--resolve",
    "-p",
    "--package",
    "--shell-completion",
    "-sc",
)

ensure_registered()  # riemexp's schema, before any Hydra app or composition of this process


#: the group of experiment presets (conf/experiment/, `# @package _global_`): not in the defaults
#: list, so a preset is added with `+experiment=NAME`
EXPERIMENT_GROUP = "experiment"


#: a user's config folders: one folder (as --config-dir gives it), or search path entries
#: (file://FOLDER, pkg://MODULE, or a folder), as hydra.searchpath lists them
ConfigDirs = str | Sequence[str] | None


def search_url(entry: str, flag: str = "--config-dir") -> str:
    """A search path entry: a folder as file://ABSOLUTE (ConfigError when there is none), a
    file:// or pkg:// entry as it is."""
    if "://" in entry:
        return entry
    folder = os.path.abspath(os.path.expanduser(entry))
    if not os.path.isdir(folder):
        raise ConfigError(f"{flag} must be a folder of configs, got '{entry}' (no such folder)")
    return f"file://{folder}"


def search_path(config_dir: ConfigDirs = None) -> Any:
    """Hydra's config search path for riemexp: Hydra's own configs, conf/, a user's config folders
    (`config_dir`, as `--config-dir` adds one) and the ConfigStore, where riemexp's schema is."""
    from hydra._internal.utils import create_config_search_path
    from hydra.core.config_search_path import SearchPathQuery

    register()  # (again: a dataset or network kind registered from Python since is an option too)
    path = create_config_search_path(str(conf_dir()))
    entries = [config_dir] if isinstance(config_dir, str) else list(config_dir or [])
    for entry in entries:
        anchor = SearchPathQuery(provider="schema")  # after conf/, before the schema: as Hydra does
        path.prepend(provider="command-line", path=search_url(entry), anchor=anchor)
    return path


def user_search_path(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """(args without --config-dir DIR and hydra.searchpath=[...], the search path entries they
    name): for the commands that pass a user's config folders on to every job as one
    hydra.searchpath (riemexp sweep, riemexp train -m)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    rest: list[str] = []
    entries: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, value = arg.partition("=")
        if name in ("--config-dir", "-cd"):
            if not eq:
                if i + 1 >= len(args):
                    raise ConfigError(f"{name} must name a folder of configs, got nothing")
                value = args[i + 1]
                i += 1
            entries.append(search_url(value))
        elif name.lstrip("+~") == "hydra.searchpath" and eq:
            try:
                (parsed,) = OverridesParser.create().parse_overrides([arg])
                listed = parsed.value()
            except Exception:
                listed = None
            if not isinstance(listed, list) or not all(isinstance(v, str) for v in listed):
                raise ConfigError(
                    f"hydra.searchpath must be a list of folders, e.g. [file://my_conf], got {value}"
                )
            entries += [search_url(v, "hydra.searchpath") for v in listed]
        else:
            rest.append(arg)
        i += 1
    return rest, entries


def searchpath_override(entries: Sequence[str]) -> str:
    """The hydra.searchpath override listing `entries`."""
    return f"hydra.searchpath=[{','.join(entries)}]"


def config_loader(config_dir: ConfigDirs = None) -> Any:
    """Hydra's config loader over `search_path(config_dir)`."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    return ConfigLoaderImpl(config_search_path=search_path(config_dir))


def group_options(group: str, config_dir: ConfigDirs = None) -> list[str]:
    """The options of a config group: riemexp's (ConfigStore, conf/GROUP/) and a user config
    folder's."""
    from hydra.core.object_type import ObjectType

    return sorted(config_loader(config_dir).get_group_options(group, results_filter=ObjectType.CONFIG))


#: config groups that are not option groups of the training config
NOT_TRAIN_GROUPS = ("grid", "hydra")


def groups(config_dir: ConfigDirs = None) -> list[str]:
    """The option groups of the training config (dataset, network, optim, logger, and any a user
    config folder adds)."""
    return sorted(g for g in config_loader(config_dir).list_groups("") if g not in NOT_TRAIN_GROUPS)


#: Hydra's flags that take a value (`--config-dir DIR` or `--config-dir=DIR`); --info's is optional
VALUE_FLAGS: tuple[str, ...] = ("--config-dir", "-cd", "--config-path", "-cp", "--config-name", "-cn")
VALUE_FLAGS += ("--cfg", "-c", "--package", "-p", "--experimental-rerun")
INFO_CHOICES = ("all", "config", "defaults", "defaults-tree", "plugins", "searchpath")


def flag_values(args: list[str]) -> tuple[list[str], dict[str, str]]:
    """Hydra's command line split as Hydra reads it: (its overrides, {flag: value}) with flags by
    their long name, e.g. {"--config-dir": "my_conf"}."""
    long = {"-cd": "--config-dir", "-cp": "--config-path", "-cn": "--config-name", "-c": "--cfg"}
    long |= {"-p": "--package", "-i": "--info"}
    overrides: list[str] = []
    values: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, value = arg.partition("=")
        if arg.startswith("-") and name in (*VALUE_FLAGS, "--info", "-i"):
            flag = long.get(name, name)
            if eq:
                values[flag] = value
            elif flag == "--info":
                if i + 1 < len(args) and args[i + 1] in INFO_CHOICES:
                    values[flag] = args[i + 1]
                    i += 1
            elif i + 1 < len(args):
                values[flag] = args[i + 1]
                i += 1
        elif not arg.startswith("-"):
            overrides.append(arg)
        i += 1
    return overrides, values


def task_overrides(args: list[str]) -> list[str]:
    """The overrides that shape the task config (not Hydra's own, not flags nor their values)."""
    return [a for a in flag_values(args)[0] if not a.lstrip("+~").startswith("hydra")]


def searchpath_overrides(args: list[str]) -> list[str]:
    """The command line's `hydra.searchpath=[...]` overrides (they add config folders)."""
    return [a for a in flag_values(args)[0] if a.lstrip("+~").split("=", 1)[0] == "hydra.searchpath"]


def compose_args(config_name: str, args: list[str]) -> DictConfig:
    """The task config of a command line, composed as Hydra will compose it: its overrides, and
    the config folders it adds (--config-dir, hydra.searchpath); ConfigError for what Hydra refuses."""
    _, flags = flag_values(args)
    overrides = [*task_overrides(args), *searchpath_overrides(args)]
    return compose_config(flags.get("--config-name", config_name), overrides, flags.get("--config-dir"))


def compose_config(config_name: str, overrides: list[str], config_dir: ConfigDirs = None) -> DictConfig:
    """Compose CONFIG_NAME (conf/CONFIG_NAME.yaml and riemexp's schema) with overrides, turning
    Hydra's errors into ConfigError. `config_dir`: a user's config folder (as --config-dir)."""
    return _without_hydra(compose_full(config_name, overrides, config_dir))


def compose_full(config_name: str, overrides: list[str], config_dir: ConfigDirs = None) -> DictConfig:
    """`compose_config` with Hydra's own node (hydra.run.dir, ...) kept."""
    from hydra.types import RunMode

    loader = config_loader(config_dir)
    try:
        return loader.load_configuration(config_name, list(overrides), run_mode=RunMode.RUN, from_shell=False)
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        raise ConfigError(_explain(loader, config_name, overrides, str(err))) from None


def _without_hydra(cfg: DictConfig) -> DictConfig:
    with read_write(cfg), open_dict(cfg):
        cfg.pop("hydra", None)
    return cfg


def _explain(loader: Any, config_name: str, overrides: list[str], error: str) -> str:
    """Hydra's complaint about an override in one line, with what was expected where we know it."""
    missing = re.search(r"Could not find '([^']+)/([^'/]+)'", error)
    if missing:  # an unknown group option: Hydra lists the options it found
        group, option = missing.groups()
        options = re.findall(r"^\t(\S+)$", error.split("Config search path")[0], flags=re.M)
        listed = f"; expected one of: {', '.join(options)}" if options else ""
        return f"unknown {group} '{option}'{listed}"
    message = error.strip().splitlines()[0] if error.strip() else "unknown error"
    unknown = re.match(r"Could not override '([^']+)'", message)
    if unknown and unknown.group(1) == EXPERIMENT_GROUP:
        presets = ", ".join(group_options(EXPERIMENT_GROUP))
        return f"a preset is added with a plus: +{EXPERIMENT_GROUP}=NAME; expected one of: {presets}"
    if unknown:
        key = unknown.group(1)
        parent, _, leaf = key.rpartition(".")
        rest = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != key]
        try:
            from hydra.types import RunMode

            base = loader.load_configuration(config_name, rest, run_mode=RunMode.RUN, from_shell=False)
            node = OmegaConf.select(base, parent) if parent else _without_hydra(base)
        except Exception:  # the other overrides are broken too: say what Hydra said
            node = None
        if isinstance(node, DictConfig):
            where = f"'{parent}'" if parent else "the config"
            if parent in ("dataset", "optim") and isinstance(node.get("name"), str):
                where = f"{parent} '{node.name}'"  # each dataset and optimizer has its own options
            return (
                f"unknown key '{key}': {where} has no '{leaf}'; expected one of: {', '.join(map(str, node))}"
            )
    if "LexerNoViableAlt" in message or "mismatched input" in message:
        return (
            f"bad override: {message} (characters such as ; or spaces need quotes around the value, "
            "e.g. 'dataset.delimiter=\";\"', or use dataset.delimiter=semicolon)"
        )
    return f"bad override: {message}"


def to_run_config(dcfg: DictConfig | dict[str, Any]) -> RunConfig:
    """A composed Hydra config as a checked RunConfig."""
    if isinstance(dcfg, DictConfig):
        try:
            values = OmegaConf.to_container(dcfg, resolve=True)
        except OmegaConfBaseException as err:
            raise ConfigError(f"config could not be resolved: {err}") from None
    else:
        values = dcfg
    assert isinstance(values, dict)
    return load_config({str(k): v for k, v in values.items() if k != LOGGER_KEY})


#: the config group of the experiment loggers: not part of the experiment (nor of its identity)
LOGGER_KEY = "logger"


def logger_values(dcfg: DictConfig) -> dict[str, Any]:
    """The composed config's `logger` node as plain values ({} for logger=none), checked and
    installed (ConfigError naming the extra to install otherwise)."""
    from riemexp.loggers import check_installed

    node = dcfg.get(LOGGER_KEY) if isinstance(dcfg, DictConfig) else None
    try:
        values = OmegaConf.to_container(node, resolve=True) if node is not None else {}
    except OmegaConfBaseException as err:
        raise ConfigError(f"config could not be resolved: {err}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"logger must be one of the logger options or a list of them, got {values!r}")
    plain: dict[str, Any] = {str(k): v for k, v in values.items()}
    check_installed(plain)
    return plain


#: Hydra launchers that come from an optional plugin: option -> (plugin module, what to install)
LAUNCHER_PLUGINS = {
    "joblib": ("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher"),
    "slurm": ("hydra_plugins.hydra_submitit_launcher", "'riemexp[slurm]'"),
    "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "'riemexp[slurm]'"),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher", "'riemexp[slurm]'"),
}


def check_launcher(args: list[str]) -> None:
    """Refuse `hydra/launcher=NAME` when NAME's plugin is not installed, saying what to install."""
    import importlib.util

    for arg in args:
        key, _, value = arg.partition("=")
        if key.lstrip("+~") != "hydra/launcher" or value not in LAUNCHER_PLUGINS:
            continue
        module, package = LAUNCHER_PLUGINS[value]
        if importlib.util.find_spec(module) is None:
            raise ConfigError(
                f"hydra/launcher={value} needs a Hydra launcher plugin that is not installed; "
                f"install it with: pip install {package}"
            )


@contextmanager
def hydra_argv(prog: str, args: list[str]) -> Iterator[None]:
    """Let `@hydra.main` read `args` as if the program had been called as `prog`."""
    check_launcher(args)
    saved = sys.argv
    sys.argv = [prog, *args]
    try:
        with unwrapping_errors():
            yield
    finally:
        sys.argv = saved


class PassThrough(BaseException):
    """Carries a RiemexpError through Hydra, which reports any Exception with a traceback."""

    def __init__(self, error: RiemexpError) -> None:
        super().__init__(str(error))
        self.error = error


@contextmanager
def passing_errors_through() -> Iterator[None]:
    """Inside a Hydra task: wrap RiemexpError so that it reaches the CLI untouched."""
    try:
        yield
    except RiemexpError as err:
        raise PassThrough(err) from None
    except OSError as err:  # e.g. a run folder on a read-only disk
        raise PassThrough(OutputError.from_os_error(err)) from None


@contextmanager
def hydra_errors_raised() -> Iterator[None]:
    """Around a Hydra app: let exceptions raised by Hydra itself (an OSError writing .hydra/ on a
    full disk) reach the CLI, which reports a failed write in one line, instead of Hydra's
    shortened traceback (HYDRA_FULL_ERROR=1 makes Hydra re-raise them)."""
    saved = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved


@contextmanager
def unwrapping_errors() -> Iterator[None]:
    """Around a Hydra app: turn PassThrough back into the RiemexpError it carries."""
    try:
        yield
    except PassThrough as wrapped:
        raise wrapped.error from None


def job_cpus() -> int:
    """The CPUs one job of the running multirun may use (`launcher_share` of the launcher's config)."""
    from hydra.core.hydra_config import HydraConfig

    from riemexp.threads import available_cpus

    launcher = HydraConfig.get().launcher
    return launcher_share(str(launcher.get("_target_", "")), launcher.get("n_jobs"), available_cpus())


def launcher_share(target: str, n_jobs: int | None, cpus: int) -> int:
    """The CPUs of one job, for `threads: auto`: `cpus` shared among the joblib launcher's workers
    (n_jobs; -1 is one per CPU, -2 all but one, ...), or the ensemble launcher's (the same
    n_jobs); all of them with other launchers (basic runs
    one job at a time; submitit and SLURM give each job its own CPUs)."""
    if "joblib" not in target.lower() and "ensemble" not in target.lower():
        return cpus
    n_jobs = int(n_jobs or -1)
    workers = cpus + 1 + n_jobs if n_jobs < 0 else n_jobs
    return max(1, cpus // max(1, min(workers, cpus)))


def output_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)
