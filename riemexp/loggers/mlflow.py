"""MLflow: one MLflow run per riemexp run (`logger=mlflow`); a sweep is one MLflow experiment.

What is logged:

    params       the resolved config, flattened (dataset.name, network.depth, optim.lr, ...)
    metrics      train_loss, train_accuracy, test_loss, test_accuracy per epoch (step = epoch),
                 from history.csv; final/KEY for every number of metrics.json (step = epochs)
    tags         riemexp.identity (the run identity, `riemexp.identity`), riemexp.run_dir,
                 riemexp.status, and for a sweep job riemexp.sweep_dir and riemexp.job
    artifacts    plots/ and tables/ (figures, CSV and Markdown tables), config.yaml,
                 metrics.json, history.csv and report.md

Where: `tracking_uri` (null: $MLFLOW_TRACKING_URI when set, else the embedded store
sqlite:///outputs/mlflow.db under the current folder, with artifacts in
outputs/mlflow-artifacts/; view it with `mlflow ui --backend-store-uri sqlite:///outputs/mlflow.db`).
A team's server: logger.mlflow.tracking_uri=http://HOST:5000.

Experiments: `experiment` when given; else "riemexp" for single runs and "riemexp sweep
SWEEP_DIR" for the jobs of a sweep (created once by the sweep before its jobs start).

No duplicates: a run folder's MLflow run is found by its tags (identity and folder). A re-run
into the folder that completes replaces the folder's earlier MLflow runs (they are deleted:
they described files that are gone); one that does not complete is logged as FAILED or KILLED
beside the earlier run, which the folder keeps. A resumed sweep's skipped jobs are logged only
when missing.

Per-epoch metrics are buffered and sent in batches (every few seconds and at the end), so that
a long run costs a handful of requests, not one per epoch. HTTP retries are bounded (2 tries,
20 s timeout unless MLFLOW_HTTP_REQUEST_MAX_RETRIES / MLFLOW_HTTP_REQUEST_TIMEOUT say
otherwise), so that a server that has gone away costs seconds, not minutes, before the run
goes on without it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from riemexp.layout import CONFIG_FILE, HISTORY_FILE, METRICS_FILE, PLOTS_DIR, REPORT_FILE, TABLES_DIR
from riemexp.loggers.base import Logger, RunInfo, final_numbers, flat_config

#: the embedded store, relative to the current folder (beside Hydra's outputs/ run folders)
DEFAULT_STORE = Path("outputs") / "mlflow.db"
ARTIFACTS_DIR = "mlflow-artifacts"  # beside a local SQLite store
DEFAULT_EXPERIMENT = "riemexp"
IDENTITY_TAG = "riemexp.identity"
FOLDER_TAG = "riemexp.run_dir"
SWEEP_TAG = "riemexp.sweep_dir"
JOB_TAG = "riemexp.job"
STATUS_TAG = "riemexp.status"
#: riemexp status -> MLflow run status
RUN_STATUS = {"completed": "FINISHED", "interrupted": "KILLED"}
FLUSH_SECONDS = 5.0
MAX_METRICS_PER_BATCH = 1000  # MLflow's limit per log_batch request
MAX_PARAMS_PER_BATCH = 100
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


@dataclass(frozen=True)
class MlflowOptions:
    tracking_uri: str | None = None  # null: $MLFLOW_TRACKING_URI, else sqlite:///outputs/mlflow.db
    experiment: str | None = None  # null: "riemexp", or one experiment per sweep folder
    artifacts: bool = True  # figures, tables and the run's small files as artifacts


def tracking_uri(options: MlflowOptions) -> str:
    """The store to log to: the option, else $MLFLOW_TRACKING_URI, else the embedded SQLite file."""
    given = options.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if given:
        return given
    return f"sqlite:///{DEFAULT_STORE.resolve()}"


def local_store(uri: str) -> Path | None:
    """The database file of a local SQLite store URI; None for anything else (a server)."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :])
    return None


def sweep_label(sweep_dir: Path) -> str:
    """A sweep folder as people typed it: relative to the current folder when inside it."""
    sweep_dir = Path(sweep_dir).resolve()
    try:
        return sweep_dir.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return sweep_dir.as_posix()


def experiment_name(options: MlflowOptions, sweep_dir: Path | None) -> str:
    if options.experiment:
        return options.experiment
    if sweep_dir is not None:
        return f"{DEFAULT_EXPERIMENT} sweep {sweep_label(sweep_dir)}"
    return DEFAULT_EXPERIMENT


class MlflowLogger(Logger):
    name = "mlflow"

    def __init__(self, options: MlflowOptions | None = None) -> None:
        self.options = options or MlflowOptions()
        self.client: Any = None
        self.run_id: str | None = None
        self._buffer: list[Any] = []
        self._flushed = time.monotonic()

    # --------------------------------------------------------------------------- the store

    def _client(self) -> Any:
        if self.client is None:
            for name, value in HTTP_DEFAULTS.items():
                os.environ.setdefault(name, value)
            for name in ("mlflow", "alembic"):  # their INFO lines (schema set-up) are not ours to show
                logging.getLogger(name).setLevel(logging.WARNING)
            from mlflow.tracking import MlflowClient

            uri = tracking_uri(self.options)
            store = local_store(uri)
            if store is not None:
                store.parent.mkdir(parents=True, exist_ok=True)
            self.client = MlflowClient(tracking_uri=uri)
        return self.client

    def _experiment(self, sweep_dir: Path | None) -> str:
        """The id of the run's experiment, created when missing (restored when deleted)."""
        from mlflow.exceptions import MlflowException

        client = self._client()
        name = experiment_name(self.options, sweep_dir)
        found = client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                client.restore_experiment(found.experiment_id)
            return str(found.experiment_id)
        store = local_store(tracking_uri(self.options))
        location = None
        if store is not None:  # artifacts beside the database, not in ./mlruns
            slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
            location = (store.parent / ARTIFACTS_DIR / slug).resolve().as_uri()
        tags = {SWEEP_TAG: str(Path(sweep_dir).resolve())} if sweep_dir is not None else {}
        try:
            return str(client.create_experiment(name, artifact_location=location, tags=tags))
        except MlflowException:  # another job of the sweep created it a moment ago
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
            return str(found.experiment_id)

    def _runs_of(self, run: RunInfo) -> list[Any]:
        """The MLflow runs logged for this run folder (same identity, same folder)."""
        client = self._client()
        experiment = self._experiment(run.sweep_dir)
        found = client.search_runs([experiment], filter_string=f"tags.`{IDENTITY_TAG}` = '{run.identity}'")
        folder = str(Path(run.folder or run.out_dir).resolve())
        return [r for r in found if r.data.tags.get(FOLDER_TAG) == folder]

    def prepare_sweep(self, sweep_dir: Path | None) -> None:
        """Create the sweep's experiment (and a new embedded store's tables) before the jobs run."""
        self._experiment(sweep_dir)

    # --------------------------------------------------------------------------- the hooks

    def start(self, run: RunInfo) -> None:
        from mlflow.entities import Param

        client = self._client()
        tags = {
            IDENTITY_TAG: run.identity,
            FOLDER_TAG: str(Path(run.folder or run.out_dir).resolve()),
            STATUS_TAG: "running",
            "mlflow.source.name": "riemexp",
        }
        if run.sweep_dir is not None:
            tags[SWEEP_TAG] = str(Path(run.sweep_dir).resolve())
            tags[JOB_TAG] = str(run.job)
        created = client.create_run(self._experiment(run.sweep_dir), run_name=run.name, tags=tags)
        self.run_id = created.info.run_id
        params = [Param(k, "null" if v is None else str(v)) for k, v in flat_config(run.config).items()]
        for i in range(0, len(params), MAX_PARAMS_PER_BATCH):
            client.log_batch(self.run_id, params=params[i : i + MAX_PARAMS_PER_BATCH])
        self._buffer, self._flushed = [], time.monotonic()

    def log_epoch(self, row: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        step = int(row["epoch"])
        self._buffer += [Metric(k, float(v), now, step) for k, v in row.items() if k != "epoch"]
        if len(self._buffer) >= MAX_METRICS_PER_BATCH or time.monotonic() - self._flushed > FLUSH_SECONDS:
            self._flush()

    def _flush(self) -> None:
        buffer, self._buffer = self._buffer, []
        for i in range(0, len(buffer), MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=buffer[i : i + MAX_METRICS_PER_BATCH])
        self._flushed = time.monotonic()

    def finish(self, run: RunInfo, metrics: Mapping[str, Any]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        step = int(metrics.get("epochs") or 0)
        self._buffer += [Metric(k, v, now, step) for k, v in final_numbers(metrics).items()]
        self._flush()
        status = str(metrics.get("status"))
        self.client.set_tag(self.run_id, STATUS_TAG, status)
        if self.options.artifacts:
            out = Path(run.out_dir)
            for name in (CONFIG_FILE, METRICS_FILE, HISTORY_FILE, REPORT_FILE):
                if (out / name).is_file():
                    self.client.log_artifact(self.run_id, str(out / name))
            for folder in (PLOTS_DIR, TABLES_DIR):
                if (out / folder).is_dir() and any((out / folder).iterdir()):
                    self.client.log_artifacts(self.run_id, str(out / folder), folder)
        self.client.set_terminated(self.run_id, RUN_STATUS.get(status, "FAILED"))
        if status == "completed":  # the folder's earlier runs are replaced by this one
            for earlier in self._runs_of(run):
                if earlier.info.run_id != self.run_id:
                    self.client.delete_run(earlier.info.run_id)
        self.run_id = None

    def logged(self, run: RunInfo) -> bool:
        return any(r.info.status == "FINISHED" for r in self._runs_of(run))

    def abandon(self) -> None:
        self.run_id = None  # the store failed: no more requests to it

    def close(self) -> None:
        if self.run_id is not None and self.client is not None:  # stopped before finish: say so
            run_id, self.run_id = self.run_id, None
            self.client.set_terminated(run_id, "KILLED")


__all__ = ["DEFAULT_STORE", "MlflowLogger", "MlflowOptions", "tracking_uri"]
