"""One job of a sweep: skip it when already done, else run it and record any failure; never raise.

`sweep_job(make_config, out_dir)` is what the training task does under a Hydra multirun.
A failing job (bad combination, divergence, a bug) must not stop the others, so every
outcome lands in the job folder instead of propagating:

    metrics.json   status completed | diverged | failed (+ error: the message)
    job.json       this invocation's id, action ("ran" or "skipped"), status, start time, seconds

`riemexp sweep` launches only the jobs it did not find completed (riemexp.sweep.plan); a job
still checks its folder and is skipped when the folder already holds a trusted completed run of
the same identity (riemexp.sweep.folders). A job whose config resolves to another identity than
the one the sweep planned (a CSV edited in between) fails with a message instead of running.

A process running sweep jobs watches the sweep's main process (riemexp.sweep.watchdog) and ends
with it.
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from riemexp import timing
from riemexp.config import RunConfig
from riemexp.errors import ConfigError, DivergedError, FolderBusyError, RiemexpError, RunFolderError
from riemexp.identity import identities, run_identity
from riemexp.io import atomic_write_json
from riemexp.layout import METRICS_FILE
from riemexp.loggers import RunLoggers
from riemexp.sweep import ensemble, watchdog
from riemexp.sweep.folders import JOB_FILE, read_job_folder
from riemexp.sweep.launch import JOB_IDENTITY_ENV

log = logging.getLogger("riemexp")

INVOCATION_ENV = "RIEMEXP_SWEEP_ID"  # set by `riemexp sweep` in every job (hydra.job.env_set)


def finished(out_dir: Path, cfg: RunConfig) -> bool:
    """True when out_dir holds a trusted completed run of cfg (riemexp.sweep.folders): its
    config.yaml, metrics.json and model.pt name the identity of cfg and of the dataset file as it
    is now (so an edited CSV is trained again), and no analysis file is missing."""
    from riemexp.data.registry import fingerprint

    try:
        folder = read_job_folder(out_dir)
        return folder.trusted and folder.identity in identities(cfg, fingerprint(cfg.dataset))
    except Exception:  # an unreadable record or data file: run the job again
        return False


def _check_planned_identity(cfg: RunConfig) -> None:
    """ConfigError when the job's config is not the one its sweep planned (by identity)."""
    from riemexp.data.registry import fingerprint

    planned = os.environ.get(JOB_IDENTITY_ENV)
    if not planned:
        return
    actual = run_identity(cfg, fingerprint(cfg.dataset))
    if actual != planned:
        raise ConfigError(
            f"this job's config resolved to run identity {actual}, but the sweep planned {planned} "
            "(a dataset file or a config changed while the sweep ran); re-run the sweep"
        )


def _add_to_record(path: Path | None, **values: Any) -> None:
    """Add values to the metrics.json where run() recorded how it stopped (best effort)."""
    if path is None:
        return
    try:
        metrics = json.loads(Path(path).read_text())
        atomic_write_json(path, {**metrics, **values})
    except (OSError, ValueError):
        pass


def _merge_metrics(out_dir: Path, **values: Any) -> None:
    """Add values to metrics.json (creating it when the run never started)."""
    from riemexp.runner import read_metrics, versions

    try:
        metrics = read_metrics(out_dir)
    except RunFolderError:
        metrics = {"status": "failed", **versions()}
    metrics.update(values)
    atomic_write_json(out_dir / METRICS_FILE, metrics)


@contextmanager
def _job_environment() -> Iterator[None]:
    """No progress bars, and a stopwatch of the job's own (riemexp.timing)."""
    quiet = os.environ.get("RIEMEXP_QUIET")
    os.environ["RIEMEXP_QUIET"] = "1"
    try:
        with timing.recording(timing.Stopwatch()):
            yield
    finally:
        if quiet is None:
            os.environ.pop("RIEMEXP_QUIET", None)
        else:
            os.environ["RIEMEXP_QUIET"] = quiet


def sweep_job(
    make_config: Callable[[], RunConfig],
    out_dir: str | Path,
    cpus: int | None = None,
    loggers: Callable[[], RunLoggers] | None = None,
) -> str:
    """Run one sweep job into out_dir; return its status ("completed", "skipped", "diverged", "failed",
    or "busy": another live run holds the folder, which is then left untouched).

    make_config builds the job's RunConfig (raising ConfigError for a bad combination). cpus: the
    CPUs this job may use (its share when the launcher runs several jobs at once), for `threads:
    auto`; default all. loggers: the job's experiment loggers (`riemexp.loggers`); a skipped job
    is logged from its folder when a logger does not have it yet. KeyboardInterrupt still
    propagates (run() marks the folder "interrupted").
    """
    from riemexp.runner import recorded_in, run  # torch: only where a job runs, not where one is summarised

    watchdog.watch()
    watchdog.check_main_alive()  # a job handed to a worker after its sweep ended never starts
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    start = time.perf_counter()
    action = "ran"
    watchdog.job_started()
    with _job_environment():
        try:
            # the record its ensemble member kept in the folder makes way for what the job records
            ensemble.hand_over(os.environ.get(JOB_IDENTITY_ENV, ""))
            cfg = make_config()
            _check_planned_identity(cfg)
            run_loggers = loggers() if loggers is not None else None
            if finished(out_dir, cfg):
                action, status = "skipped", "completed"
                log.info("already completed with the same config: skipped (%s)", out_dir)
                if run_loggers:
                    run_loggers.record_finished(out_dir)
            else:  # trained already when its launcher trains jobs as ensembles (riemexp.sweep.ensemble)
                trained = ensemble.member_for(cfg)
                status = run(cfg, out_dir, cpus=cpus, loggers=run_loggers, trained=trained)["status"]
        except FolderBusyError as err:  # another live run writes the folder: leave it alone
            log.error("job not run: %s", err)
            return "busy"
        except DivergedError as err:  # run() wrote status "diverged" and the reason
            status = "diverged"
            if not recorded_in(err):
                _merge_metrics(out_dir, status=status, error=str(err))
        except RiemexpError as err:  # a bad config or a failed analysis step
            status = "failed"
            if not recorded_in(err):  # (a re-run that failed left the completed run it would replace)
                _merge_metrics(out_dir, status=status, error=str(err))
        except Exception as err:  # a bug: record it with its traceback in the log, go on
            status = "failed"
            log.error("job failed:\n%s", traceback.format_exc())
            if not recorded_in(err):
                _merge_metrics(out_dir, status=status, error=f"{type(err).__name__}: {err}")
        except KeyboardInterrupt as err:  # a stop signal, or the sweep ended (run() wrote "interrupted")
            ensemble.stop_waiting(err)  # so do the ensemble members still waiting for their jobs
            reason = watchdog.orphan_reason()
            if reason is not None and recorded_in(err) is not None:
                _add_to_record(recorded_in(err), error=reason)
            elif watchdog.in_worker():  # the main process stops the launcher once all jobs recorded
                watchdog.wait_for_main()
            raise
        finally:
            watchdog.job_ended()
    atomic_write_json(
        out_dir / JOB_FILE,
        {
            "invocation": os.environ.get(INVOCATION_ENV),
            "action": action,
            "status": status,
            "started": started,
            "seconds": round(time.perf_counter() - start, 4),
            "pid": os.getpid(),
        },
    )
    return "skipped" if action == "skipped" else status
