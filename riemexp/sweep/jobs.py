"""One job of a sweep: skip it when already done, else run it and record any failure; never raise.

`sweep_job(make_config, out_dir)` is what the training task does under a Hydra multirun.
A failing job (bad combination, divergence, a bug) must not stop the others, so every
outcome lands in the job folder instead of propagating:

    metrics.json   status completed | diverged | failed (+ error: the message)
    job.json       this invocation's id, action ("ran" or "skipped"), status, start time, seconds

A job is skipped when its folder already holds a completed run of the same resolved config.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from riemexp import timing
from riemexp.config import RunConfig, config_to_dict
from riemexp.errors import DivergedError, RiemexpError, RunFolderError
from riemexp.io import atomic_write_json
from riemexp.layout import CONFIG_FILE, GEOMETRY_FILE, METRICS_FILE

log = logging.getLogger("riemexp")

JOB_FILE = "job.json"
INVOCATION_ENV = "RIEMEXP_SWEEP_ID"  # set by `riemexp sweep` in every job (hydra.job.env_set)


def finished(out_dir: Path, cfg: RunConfig) -> bool:
    """True when out_dir holds a completed run of cfg: same saved config, same dataset file.

    A CSV dataset is compared by the sha256 saved in model.pt, so an edited file is trained again.
    """
    from riemexp.datasets import source_fingerprint
    from riemexp.run import read_metrics, read_model_file

    try:
        if read_metrics(out_dir)["status"] != "completed":
            return False
        saved = OmegaConf.to_container(OmegaConf.load(out_dir / CONFIG_FILE), resolve=True)
        if saved != config_to_dict(cfg):
            return False
        if cfg.geometry.enabled and not (out_dir / GEOMETRY_FILE).is_file():
            return False  # an analysis file was removed since: run the job again
        return read_model_file(out_dir).get("dataset_sha256") == source_fingerprint(cfg.dataset)
    except Exception:  # a missing or unreadable record (or data file): run the job again
        return False


def _merge_metrics(out_dir: Path, **values: Any) -> None:
    """Add values to metrics.json (creating it when the run never started)."""
    from riemexp.run import read_metrics, versions

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


def sweep_job(make_config: Callable[[], RunConfig], out_dir: str | Path, cpus: int | None = None) -> str:
    """Run one sweep job into out_dir; return its status ("completed", "skipped", "diverged", "failed").

    make_config builds the job's RunConfig (raising ConfigError for a bad combination). cpus: the
    CPUs this job may use (its share when the launcher runs several jobs at once), for `threads:
    auto`; default all. KeyboardInterrupt still propagates (run() marks the folder "interrupted").
    """
    from riemexp.run import recorded_in, run  # torch: only where a job runs, not where one is summarised

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    start = time.perf_counter()
    action = "ran"
    with _job_environment():
        try:
            cfg = make_config()
            if finished(out_dir, cfg):
                action, status = "skipped", "completed"
                log.info("already completed with the same config: skipped (%s)", out_dir)
            else:
                status = run(cfg, out_dir, cpus=cpus)["status"]
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
