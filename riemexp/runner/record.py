"""What a run records about itself: versions, scores, history.csv, what stopped it, its summary.

metrics.json is kept by a `riemexp.lock.Heartbeat` (status, phase, pid, host, heartbeat); these
helpers fill it: `final_scores` after training, `record_stop` when the run did not complete
(status "diverged", "interrupted" or "failed", with the error or signal), `show_summary` in the
terminal when it did.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
from pathlib import Path
from typing import Any

import riemexp
from riemexp import console, lock, signals, timing, verdict
from riemexp.config import RunConfig
from riemexp.data.registry import fingerprint
from riemexp.errors import DivergedError, OutputError, RiemexpError
from riemexp.identity import IDENTITY_KEY, run_identity
from riemexp.io import atomic_write_csv
from riemexp.layout import HISTORY_FILE, METRICS_FILE
from riemexp.lock import Heartbeat
from riemexp.loggers import RunLoggers
from riemexp.report import write_run_report
from riemexp.train import HISTORY_COLUMNS, TrainResult

log = logging.getLogger("riemexp")

#: metrics shown in the terminal summary of a run: (key, label)
SUMMARY_ROWS = (
    ("train_accuracy", "train accuracy"),
    ("test_accuracy", "test accuracy"),
    ("train_loss", "train loss"),
    ("test_loss", "test loss"),
    ("train_seconds", "training seconds"),
    ("input_log_volume_median", "input log volume element (median)"),
    ("input_anisotropy_median", "input anisotropy (median)"),
    ("boundary_spearman_grid", "Spearman(log volume, distance to boundary), grid"),
    ("boundary_band_ratio_grid", "median volume near boundary / away, grid"),
    ("boundary_spearman_data", "Spearman(log volume, distance to boundary), data"),
    ("boundary_band_ratio_data", "median volume near boundary / away, data"),
    ("ode_gap", "ODE gap (k=1 error / spread)"),
    ("ode_order", "refinement order"),
)


def versions() -> dict[str, str]:
    import torch

    return {
        "python_version": platform.python_version(),
        "torch_version": torch.__version__,
        "riemexp_version": riemexp.__version__,
    }


def write_history(out_dir: Path, history: list[dict[str, float]]) -> None:
    atomic_write_csv(out_dir / HISTORY_FILE, history, HISTORY_COLUMNS)


def final_scores(result: TrainResult) -> dict[str, Any]:
    """Scores of the trained model; of the last epoch's history row when training stopped early."""
    last = result.final or (result.history[-1] if result.history else {})
    return {
        "train_accuracy": last.get("train_accuracy"),
        "test_accuracy": last.get("test_accuracy"),
        "train_loss": last.get("train_loss"),
        "test_loss": last.get("test_loss"),
        "epochs": len(result.history),
        "train_seconds": round(result.seconds, 4),
    }


def record_stop(
    err: BaseException, record: Heartbeat, result: TrainResult, work: Path, write: bool = True
) -> BaseException:
    """Write what stopped the run into its metrics.json (and the history so far); best effort.

    Returns the error to raise: an OSError becomes an OutputError naming the file.
    """
    if isinstance(err, OSError):
        err = OutputError.from_os_error(err)
    if isinstance(err, DivergedError):
        update: dict[str, Any] = {**final_scores(result), "status": "diverged", "error": str(err)}
    elif isinstance(err, KeyboardInterrupt):
        update = {**final_scores(result), "status": "interrupted", "signal": signals.signal_name(err)}
    elif isinstance(err, RiemexpError):
        update = {"status": "failed", "error": str(err)}
    else:  # a bug: either way the run did not complete
        update = {"status": "failed", "error": repr(err)}
    update["finished"] = lock.now_iso()
    stopwatch = timing.current()
    if stopwatch is not None:
        update["timings"] = stopwatch.report()
    record.stop()
    if not write:
        return err
    with signals.deferred(), contextlib.suppress(Exception):
        if result.history:
            write_history(work, result.history)
    with signals.deferred(), contextlib.suppress(Exception):
        record.write(**update)
        err.recorded_in = record.path  # type: ignore[attr-defined]
    return err


def recorded_in(err: BaseException) -> Path | None:
    """The metrics.json where `run` recorded the error it raised (None: it recorded nothing, e.g.
    the folder could not be written); callers that record failures themselves check this first."""
    return getattr(err, "recorded_in", None)


def report_stopped(
    work: Path | None, metrics: dict[str, Any], loggers: RunLoggers, history: list[dict[str, float]]
) -> None:
    """A run that did not complete: its report.md in `work` (where its record is; None: nowhere),
    best effort (the run's own error comes first), then its loggers."""
    if work is not None and (work / METRICS_FILE).is_file():
        try:
            write_run_report(work, metrics)
        except Exception as err:
            log.warning("could not write %s: %s", work / "report.md", err)
    loggers.finish(metrics, history)


def show_summary(metrics: dict[str, Any], title: str, out_dir: Path) -> None:
    """The log line and the terminal table of a completed run."""
    log.info(
        "completed: train accuracy %.4f, test accuracy %.4f, %d epochs in %.2f s -> %s",
        metrics["train_accuracy"],
        metrics["test_accuracy"],
        metrics["epochs"],
        metrics["train_seconds"],
        out_dir,
    )
    console.show_table(
        title,
        ["summary", "value"],
        [[label, metrics[key]] for key, label in SUMMARY_ROWS if metrics.get(key) is not None],
    )
    log.info("%s", verdict.figures_line(metrics, out_dir))
    if metrics.get("near_chance"):
        log.warning("%s", metrics["warning"])


def first_record(cfg: RunConfig, threads: int) -> dict[str, Any]:
    """metrics.json as it stands when the run starts: status "running" and who runs it."""
    started = lock.now_iso()
    return {
        "status": "running",
        "dataset": cfg.dataset.name,
        "network": cfg.network.kind,
        "seed": cfg.seed,
        IDENTITY_KEY: run_identity(cfg, fingerprint(cfg.dataset)),
        **versions(),
        "pid": os.getpid(),
        "host": lock.host_name(),
        "started": started,
        "heartbeat": started,
        "threads": threads,
    }


__all__ = [
    "SUMMARY_ROWS",
    "final_scores",
    "first_record",
    "record_stop",
    "recorded_in",
    "report_stopped",
    "show_summary",
    "versions",
    "write_history",
]
