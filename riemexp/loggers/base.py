"""What every experiment logger gets from a run, and what it must do with it.

A logger mirrors a run folder into a tool people already look at (TensorBoard, MLflow). The
run folder stays the record: a logger only reads what the run hands it (the config, the
per-epoch history rows, the final metrics) and the files of the finished folder (figures,
tables, report.md). The hooks, in order:

    start(run)           the run begins (its folder holds config.yaml and a "running" metrics.json)
    log_epoch(row)       one history row: epoch, train_loss, train_accuracy, test_loss, test_accuracy
    pause()              the run's files are about to move (a re-run swapped into its folder):
                         write out and close whatever the logger holds open in them
    finish(run, metrics) the run stopped ("completed", "diverged", "failed", "interrupted");
                         its files are final: log the final numbers, figures and tables
    close()              free what the logger holds (called after finish, or when it failed)

`logged(run)` tells whether a finished run folder is already in the tool, so that a resumed
sweep does not log a skipped job twice (and does log one that was run without the logger).
Loggers never raise into the run: `riemexp.loggers.RunLoggers` catches what they raise.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from riemexp.identity import IDENTITY_KEY
from riemexp.layout import CONFIG_FILE, HISTORY_FILE, METRICS_FILE

#: metrics.json keys that are numbers but not results (never logged as final metrics)
NOT_RESULTS = frozenset({"seed", "pid", "epochs", "threads", "ensemble_members"})
#: prefix of the final numbers' names (TensorBoard tags, MLflow metric keys): final/test_accuracy
FINAL = "final/"


@dataclass
class RunInfo:
    """A run as loggers see it.

    out_dir: where the run's files are now; folder: the run folder (the same, except while a
    re-run is built in a staging folder inside it: `riemexp.runner`). config: the resolved config
    as plain values (nested dicts); identity: `riemexp.identity`'s hash of it; sweep_dir/job:
    the sweep folder and the job's folder name for a sweep job.
    """

    out_dir: Path
    config: dict[str, Any]
    identity: str
    sweep_dir: Path | None = None
    job: str | None = None
    history: list[dict[str, float]] = field(default_factory=list)  # rows already known (a finished run)
    folder: Path | None = None  # None: out_dir

    def __post_init__(self) -> None:
        if self.folder is None:
            self.folder = self.out_dir

    @property
    def name(self) -> str:
        """A short readable run name: dataset-network-L<depth>-w<width>-seed<seed>."""
        c = self.config
        d, n = c.get("dataset", {}), c.get("network", {})
        return f"{d.get('name')}-{n.get('kind')}-L{n.get('depth')}-w{n.get('width')}-seed{c.get('seed')}"

    @classmethod
    def from_folder(cls, out_dir: Path, sweep_dir: Path | None = None) -> RunInfo:
        """A finished run folder read back: config.yaml, metrics.json's identity, history.csv."""
        config = yaml.safe_load((out_dir / CONFIG_FILE).read_text()) or {}
        metrics = json.loads((out_dir / METRICS_FILE).read_text())
        return cls(
            out_dir=out_dir,
            config=config,
            identity=str(metrics.get(IDENTITY_KEY, "")),
            sweep_dir=sweep_dir,
            job=out_dir.name if sweep_dir is not None else None,
            history=read_history_rows(out_dir / HISTORY_FILE),
        )


def read_history_rows(path: Path) -> list[dict[str, float]]:
    """history.csv as rows of floats (epoch as a float too); [] when the file is missing."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def flat_config(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"network": {"depth": 4}} -> {"network.depth": 4}; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            out.update(flat_config(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def final_numbers(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The run's results in metrics.json as {"final/KEY": value}: finite or infinite numbers, no flags."""
    out = {}
    for key, value in metrics.items():
        if key in NOT_RESULTS or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isnan(value):
            continue
        out[f"{FINAL}{key}"] = float(value)
    return out


class Logger:
    """Base class of the loggers (see the module docstring); subclasses override the hooks."""

    #: the config group option (logger=NAME)
    name = ""

    def start(self, run: RunInfo) -> None:
        raise NotImplementedError

    def log_epoch(self, row: Mapping[str, float]) -> None:
        raise NotImplementedError

    def finish(self, run: RunInfo, metrics: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def logged(self, run: RunInfo) -> bool:
        raise NotImplementedError

    def pause(self) -> None:
        """The run's files are about to move: close what is open in them. Default: nothing."""

    def prepare_sweep(self, sweep_dir: Path | None) -> None:
        """Before a sweep's jobs start (in the sweep's own process). Default: nothing."""

    def close(self) -> None:
        pass

    def abandon(self) -> None:
        """Let go after a failure: free local resources, make no more requests. Default: close()."""
        self.close()


__all__ = ["FINAL", "Logger", "RunInfo", "final_numbers", "flat_config", "read_history_rows"]
