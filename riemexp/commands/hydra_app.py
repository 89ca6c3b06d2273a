"""Hydra at the edge: compose and check configs, and run a task under `@hydra.main`.

Every subcommand goes through here, so that unknown group options and bad values get the
same one-line message before Hydra creates any output folder.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from riemexp.cli import conf_dir
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
)


def group_options(group: str) -> list[str]:
    """The options of a config group: the YAML files in conf/GROUP/."""
    return sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))


#: the group of experiment presets (conf/experiment/, `# @package _global_`): not in the defaults
#: list, so a preset is added with `+experiment=NAME`
EXPERIMENT_GROUP = "experiment"

#: folders of conf/ that are not option groups of the training config
NOT_TRAIN_GROUPS = ("grid", "hydra")


def groups() -> list[str]:
    """The option groups of the training config (conf/dataset/, conf/network/, ...)."""
    return sorted(
        p.name
        for p in conf_dir().iterdir()
        if p.is_dir() and not p.name.startswith(("_", ".")) and p.name not in NOT_TRAIN_GROUPS
    )


def check_group_choices(overrides: list[str]) -> None:
    """Refuse `group=option` overrides whose option has no YAML file, naming the choices.

    Comma-separated sweep values (`dataset=spirals,moons`) are checked one by one.
    """
    known = set(groups())
    for item in overrides:
        if "=" not in item or item.startswith(("-", "hydra")):
            continue
        key, value = item.split("=", 1)
        key = key.lstrip("+~")
        if key not in known:
            continue
        options = group_options(key)
        if value.startswith("[") and value.endswith("]"):  # several options at once: logger=[a,b]
            value = value[1:-1]
            if not value.strip():
                continue
        values = value.split(",") if "(" not in value else []
        for choice in values:
            if choice.strip() not in options:
                raise ConfigError(f"unknown {key} '{choice.strip()}'; expected one of: {', '.join(options)}")


def task_overrides(args: list[str]) -> list[str]:
    """The overrides that shape the task config (not Hydra's own, not flags)."""
    return [a for a in args if not a.startswith("-") and not a.lstrip("+~").startswith("hydra")]


def compose_config(config_name: str, overrides: list[str]) -> DictConfig:
    """Compose conf/CONFIG_NAME.yaml with overrides, turning Hydra's errors into ConfigError."""
    check_group_choices(overrides)
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            return compose(config_name=config_name, overrides=overrides)
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(_explain(config_name, overrides, message)) from None


def _explain(config_name: str, overrides: list[str], message: str) -> str:
    """Hydra's one-line complaint about an override, with what was expected where we know it."""
    unknown = re.match(r"Could not override '([^']+)'", message)
    if unknown and unknown.group(1) == EXPERIMENT_GROUP:
        presets = ", ".join(group_options(EXPERIMENT_GROUP))
        return f"a preset is added with a plus: +{EXPERIMENT_GROUP}=NAME; expected one of: {presets}"
    if unknown:
        key = unknown.group(1)
        parent, _, leaf = key.rpartition(".")
        rest = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != key]
        try:
            with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
                base = compose(config_name=config_name, overrides=rest)
            node = OmegaConf.select(base, parent) if parent else base
        except Exception:  # the other overrides are broken too: say what Hydra said
            node = None
        if isinstance(node, DictConfig):
            where = f"'{parent}'" if parent else "the config"
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
