"""Experiment loggers: a run mirrored into TensorBoard or MLflow, chosen with the `logger` config group.

    logger=none                      the default: the run folder is the whole record
    logger=tensorboard               event files in RUN/tensorboard/ (riemexp.loggers.tensorboard)
    logger=mlflow                    an MLflow run per riemexp run (riemexp.loggers.mlflow)
    logger=[tensorboard,mlflow]      both

The composed config's `logger` node maps each chosen logger's name to its options, e.g.
{"mlflow": {"tracking_uri": None, ...}}. `check_installed` refuses a logger whose package is
missing (one line naming the extra to install) without importing anything heavy, so that the
command can say so before any run folder exists. `RunLoggers` drives the chosen loggers
through a run and keeps them from ever harming it: the first error a logger raises is
reported once as a warning and that logger is dropped; the run goes on and its folder is
complete either way. Adding a logger: a module with a `Logger` subclass and an options
dataclass, a line in `LOGGERS`, and conf/logger/NAME.yaml.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from riemexp.errors import ConfigError
from riemexp.loggers.base import Logger, RunInfo


@dataclass(frozen=True)
class LoggerSpec:
    """Where a logger lives and what it needs: its class, and the package that must be importable."""

    target: str  # "module:Class"
    options: str  # "module:OptionsClass" (a dataclass of the logger's options)
    requires: str  # the module that must be importable
    extra: str  # what to install when it is not


#: logger name (conf/logger/NAME.yaml) -> spec
LOGGERS: dict[str, LoggerSpec] = {
    "tensorboard": LoggerSpec(
        "riemexp.loggers.tensorboard:TensorBoardLogger",
        "riemexp.loggers.tensorboard:TensorBoardOptions",
        "tensorboard",
        "riemexp[tensorboard]",
    ),
    "mlflow": LoggerSpec(
        "riemexp.loggers.mlflow:MlflowLogger",
        "riemexp.loggers.mlflow:MlflowOptions",
        "mlflow",
        "riemexp[mlflow]",
    ),
}

log = logging.getLogger("riemexp")


def _load(target: str) -> Any:
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def chosen(values: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The `logger` config node as {name: options}; ConfigError for an unknown name or option."""
    from riemexp.config import _build  # the same checks and messages as every other config value

    out: dict[str, dict[str, Any]] = {}
    for name, options in (values or {}).items():
        if name not in LOGGERS:
            raise ConfigError(f"unknown logger '{name}'; expected one of: none, {', '.join(LOGGERS)}")
        if options is not None and not isinstance(options, Mapping):
            raise ConfigError(f"logger.{name} must be a mapping of options, got {options!r}")
        _build(_load(LOGGERS[name].options), options or {}, f"logger.{name}")
        out[str(name)] = dict(options or {})
    return out


def missing(values: Mapping[str, Any] | None) -> list[str]:
    """The chosen loggers whose package is not installed (found without importing it)."""
    return [name for name in chosen(values) if importlib.util.find_spec(LOGGERS[name].requires) is None]


def check_installed(values: Mapping[str, Any] | None) -> None:
    """ConfigError naming the extra to install for the first chosen logger that is not installed."""
    for name in missing(values):
        spec = LOGGERS[name]
        raise ConfigError(
            f"logger={name} needs the '{spec.requires}' package, which is not installed; "
            f"install it with: pip install '{spec.extra}'"
        )


class RunLoggers:
    """The chosen loggers of one process, driven through runs; a failing logger never fails the run.

    For each run: `start(run)`, `epoch(row)` per history row, `finish(metrics, history)`. A run
    folder that finished without them (a skipped sweep job, a run trained without the logger)
    is logged from its files by `record_finished(folder)` unless it is there already.
    """

    def __init__(self, loggers: list[Logger], sweep_dir: Path | None = None) -> None:
        self.loggers = list(loggers)
        self.sweep_dir = Path(sweep_dir) if sweep_dir is not None else None  # set for a sweep's jobs
        self.run: RunInfo | None = None
        self._streamed = 0.0  # the last epoch handed to the loggers

    @classmethod
    def from_config(cls, values: Mapping[str, Any] | None, sweep_dir: Path | None = None) -> RunLoggers:
        """Loggers from the `logger` config node (checked; ConfigError when one is not installed).

        sweep_dir: the sweep folder when the runs are a sweep's jobs (one MLflow experiment).
        """
        from riemexp.config import _build

        check_installed(values)
        loggers = []
        for name, options in chosen(values).items():
            spec = LOGGERS[name]
            loggers.append(_load(spec.target)(_build(_load(spec.options), options, f"logger.{name}")))
        return cls(loggers, sweep_dir)

    def run_info(
        self, out_dir: Path, config: dict[str, Any], identity: str, folder: Path | None = None
    ) -> RunInfo:
        """The RunInfo of a run writing into out_dir, whose run folder is `folder` (default out_dir);
        a sweep job when the loggers serve a sweep."""
        folder = Path(folder if folder is not None else out_dir)
        job = folder.name if self.sweep_dir is not None else None
        return RunInfo(Path(out_dir), config, identity, self.sweep_dir, job, folder=folder)

    def __bool__(self) -> bool:
        return bool(self.loggers)

    @property
    def names(self) -> list[str]:
        return [lg.name for lg in self.loggers]

    def _each(self, stage: str, call: Any) -> None:
        for lg in list(self.loggers):
            try:
                call(lg)
            except Exception as err:  # a server gone, a full disk, a bug: the run must not suffer
                self._drop(lg, stage, err)

    def _drop(self, lg: Logger, stage: str, err: Exception) -> None:
        where = f" for {self.run.out_dir}" if self.run is not None else ""
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        log.warning(
            "logger %s failed while %s%s (%s%s); the run goes on without it, and its folder is "
            "the complete record",
            lg.name,
            stage,
            where,
            type(err).__name__,
            f": {message[:300]}" if message else "",
        )
        if lg in self.loggers:
            self.loggers.remove(lg)
        try:
            lg.abandon()
        except Exception:  # letting go of a broken logger may fail too; it is gone either way
            pass

    def prepare_sweep(self) -> None:
        """Before a sweep's jobs start: set up what they share (e.g. the sweep's MLflow experiment)."""
        sweep_dir = self.sweep_dir
        self._each("preparing the sweep", lambda lg: lg.prepare_sweep(sweep_dir))

    def start(self, run: RunInfo) -> None:
        self.run = run
        self._streamed = 0.0
        self._each("starting the run", lambda lg: lg.start(run))

    def epoch(self, row: Mapping[str, float]) -> None:
        if not self.loggers:
            return
        self._streamed = float(row.get("epoch", self._streamed + 1))
        self._each("logging an epoch", lambda lg: lg.log_epoch(row))

    def pause(self) -> None:
        """The run's files are about to move into its folder (a staged re-run): see Logger.pause."""
        self._each("pausing", lambda lg: lg.pause())

    def finish(
        self,
        metrics: Mapping[str, Any],
        history: list[dict[str, float]] | None = None,
        out_dir: Path | None = None,
    ) -> None:
        """The run stopped: hand over the history rows not streamed yet, then the final metrics.

        out_dir: where the run's files are now, when they moved since `start` (a staged re-run
        swapped into its folder)."""
        if self.run is None:
            return
        if out_dir is not None:
            self.run.out_dir = Path(out_dir)
        for row in history or []:
            if float(row.get("epoch", 0)) > self._streamed:
                self.epoch(row)
        run = self.run
        self._each("finishing the run", lambda lg: lg.finish(run, metrics))
        self._each("closing", lambda lg: lg.close())
        self.run = None

    def record_finished(self, out_dir: Path) -> None:
        """Log a finished run folder from its files, to each logger that does not have it yet."""
        if not self.loggers:
            return
        import json

        from riemexp.layout import METRICS_FILE

        try:
            run = RunInfo.from_folder(Path(out_dir), self.sweep_dir)
            metrics = json.loads((Path(out_dir) / METRICS_FILE).read_text())
        except Exception as err:  # an unreadable folder: nothing to log, say so once
            log.warning("cannot log %s: its files could not be read (%s)", out_dir, err)
            return
        for lg in list(self.loggers):
            self.run = run
            try:
                if lg.logged(run):
                    continue
                lg.start(run)
                for row in run.history:
                    lg.log_epoch(row)
                lg.finish(run, metrics)
                lg.close()
            except Exception as err:
                self._drop(lg, "logging a finished run", err)
        self.run = None


__all__ = ["LOGGERS", "Logger", "RunInfo", "RunLoggers", "check_installed", "chosen", "missing"]
