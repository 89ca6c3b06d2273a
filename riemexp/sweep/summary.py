"""A sweep folder's jobs read back and aggregated: summary.{csv,md,tex} and summary_grouped.{csv,md,tex}.

The rows are the jobs of the sweep (the `job_list` of SWEEP_DIR/sweep.yaml, or the jobs a
`riemexp sweep` just planned), each matched to its folder by run identity
(`riemexp.sweep.plan.match`): a configuration counts once, and folders of an earlier grid are
listed as outside the sweep, never counted. A folder without that record (another tool's
multirun) is read as it is: every job folder a row, copies of one identity once. A job still
running, killed or never started is a row with its status; a completed folder whose files name
different runs is a row with status "untrusted" and says why. Saved configs are read as written,
never resolved (`${oc.env:...}` stays text).

summary:          one row per job: `job`, the swept keys (config keys whose value differs
                  between jobs; `seed` last), `status`, then `METRIC_COLUMNS`; the CSV also
                  has `error` (the failure message of failed and diverged jobs).
summary_grouped:  one row per configuration (the swept keys but `seed`): `runs`, `completed`,
                  then KEY_mean and KEY_std of every metric over the completed seeds (std is the
                  sample standard deviation, n - 1; empty with fewer than two values).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from riemexp import console
from riemexp.errors import RunFolderError
from riemexp.layout import METRICS_FILE
from riemexp.sweep.folders import NOT_STARTED, JobFolder, flatten, read_job_folder, read_literal_yaml, scan
from riemexp.sweep.plan import PlannedJob, match
from riemexp.tables import format_value, write_table

SUMMARY = "summary"
GROUPED = "summary_grouped"
SEED_KEY = "seed"
METRIC_COLUMNS = (
    "train_accuracy",
    "test_accuracy",
    "train_loss",
    "test_loss",
    "input_log_volume_median",
    "input_anisotropy_median",
    "boundary_spearman_grid",
    "boundary_band_ratio_grid",
    "boundary_spearman_data",
    "boundary_band_ratio_data",
    "train_seconds",
    "ode_gap",
    "ode_order",
)
UNTRUSTED = "untrusted"  # "completed", but its files name different runs
DEAD = "dead"  # "running", but no live process works on it (riemexp.lock.run_state): killed
FAILED = ("failed", "diverged", "interrupted", UNTRUSTED)  # statuses that count as a failed job
RECORD = "sweep.yaml"  # what the last sweep into the folder planned (riemexp.commands.sweep)


@dataclass
class Job:
    """One job folder of a sweep, as far as its files tell."""

    name: str
    path: Path
    config: dict[str, Any]  # the job's config, flattened to dotted keys (as written, unresolved)
    metrics: dict[str, Any]  # metrics.json, {} when absent
    record: dict[str, Any]  # job.json, {} when absent
    problem: str | None = None  # why its status is not believed: completed but untrusted, running but dead
    identity: str | None = None  # the run identity the job's folder holds (or is planned for)

    @property
    def status(self) -> str:
        status = str(self.metrics.get("status", NOT_STARTED))
        if status == "completed" and self.problem:
            return UNTRUSTED
        return DEAD if status == "running" and self.problem else status

    @property
    def error(self) -> str:
        return self.problem or str(self.metrics.get("error") or "")


@dataclass
class Summary:
    sweep_dir: Path
    jobs: list[Job]
    keys: list[str]  # swept keys, seed last
    rows: list[dict[str, Any]]
    grouped: list[dict[str, Any]]
    outside: list[tuple[JobFolder, str]] = field(default_factory=list)  # folders not counted, and why
    planned: bool = False  # the rows are a sweep's planned jobs (else: every folder found)

    @property
    def group_keys(self) -> list[str]:
        return [k for k in self.keys if k != SEED_KEY]


def _job_sort_key(name: str) -> tuple[int, int, str]:
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def _job(folder: JobFolder) -> Job:
    problem = folder.problem
    if folder.status == "running":  # live, or killed (riemexp.lock: lock, pid, heartbeat)
        from riemexp.lock import describe_state, run_state

        if run_state(folder.path, folder.metrics) == "dead":
            problem = describe_state(folder.path, folder.metrics)
    return Job(
        folder.name,
        folder.path,
        flatten(folder.config),
        folder.metrics,
        folder.record,
        problem,
        folder.identity or folder.claimed,
    )


def read_job(path: Path) -> Job:
    """A job folder: config from config.yaml (the run's resolved config), else .hydra/config.yaml."""
    return _job(read_job_folder(path))


def _check_sweep_dir(sweep_dir: Path) -> None:
    if sweep_dir.exists() and not sweep_dir.is_dir():
        raise RunFolderError(f"{sweep_dir} is not a folder; expected a sweep folder (hydra.sweep.dir)")
    if not sweep_dir.is_dir():
        raise RunFolderError(f"sweep folder {sweep_dir} does not exist")


def find_jobs(sweep_dir: str | Path) -> list[Job]:
    """Every job folder of a sweep folder, by name; RunFolderError when there are none."""
    sweep_dir = Path(sweep_dir)
    _check_sweep_dir(sweep_dir)
    folders = scan(sweep_dir)
    if not folders:
        raise RunFolderError(
            f"{sweep_dir} is not a sweep folder: no job folders (with .hydra/ or {METRICS_FILE}) in it"
        )
    return [_job(f) for f in sorted(folders, key=lambda f: _job_sort_key(f.name))]


def recorded_jobs(sweep_dir: Path) -> list[PlannedJob] | None:
    """The jobs the last sweep into the folder planned (sweep.yaml's job_list), or None."""
    try:
        record = read_literal_yaml(sweep_dir / RECORD)
        planned = [
            PlannedJob(
                [str(o) for o in job["overrides"]],
                str(job["identity"]),
                str(job["folder"]),
                values={str(k): v for k, v in (job.get("values") or {}).items()},
                legacy=str(job["legacy_identity"]) if job.get("legacy_identity") else None,
            )
            for job in record["job_list"]
        ]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return planned


def _planned_rows(
    sweep_dir: Path, jobs: Sequence[PlannedJob], folders: list[JobFolder]
) -> tuple[list[Job], list]:
    matched = match(list(jobs), folders)
    rows = []
    for job in matched.jobs:
        folder = matched.folder_of(job)
        if folder is None:
            rows.append(Job(job.folder, sweep_dir / job.folder, dict(job.values), {}, {}, None, job.identity))
            continue
        row = _job(folder)
        if (
            folder.status == "completed"
            and row.problem is None
            and folder.identity not in (job.identity, job.legacy)
        ):
            row.problem = f"the folder holds run {folder.identity}, not this job's run {job.identity}"
        if not row.config:
            row.config = dict(job.values)
        rows.append(row)
    return rows, matched.outside


def _unplanned_rows(folders: list[JobFolder]) -> tuple[list[Job], list]:
    """Every folder a row, but one row per identity among the trusted completed ones."""
    seen: set[str] = set()
    rows, outside = [], []
    for folder in sorted(folders, key=lambda f: _job_sort_key(f.name)):
        if folder.trusted and folder.identity in seen:
            outside.append((folder, "another copy of a run counted in this summary"))
            continue
        if folder.trusted and folder.identity is not None:
            seen.add(folder.identity)
        rows.append(_job(folder))
    return rows, outside


def swept_keys(jobs: Sequence[Job]) -> list[str]:
    """Config keys with two or more values among the jobs that have them, in config order; seed last."""
    order: list[str] = []
    for job in jobs:
        order += [k for k in job.config if k not in order]
    keys = [k for k in order if len({repr(j.config[k]) for j in jobs if k in j.config}) > 1]
    return [k for k in keys if k != SEED_KEY] + [k for k in keys if k == SEED_KEY]


def _sort_value(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool) or value is None:
        return (2, str(value))
    if isinstance(value, (int, float)):
        return (0, value)
    return (1, str(value))


STEP_KEY = "network.step_size"


def config_value(job: Job, key: str) -> Any:
    """The job's value of a config key as its tables show it: None for a key its network kind
    does not have (a plain network's network.step_size is in its config but never used)."""
    if key == STEP_KEY and "network.kind" in job.config:
        from riemexp.nets.registry import uses_step_size

        if not uses_step_size(str(job.config["network.kind"])):
            return None
    return job.config.get(key)


def summary_rows(jobs: Sequence[Job], keys: Sequence[str]) -> list[dict[str, Any]]:
    """One row per job (see the module docstring), sorted by the swept values; a key the job's
    network kind does not have (a plain network's step size) is empty."""
    rows = []
    for job in jobs:
        row: dict[str, Any] = {"job": job.name}
        row.update({k: config_value(job, k) for k in keys})
        row["status"] = job.status
        row.update({m: job.metrics.get(m) for m in METRIC_COLUMNS})
        row["error"] = job.error or None
        rows.append(row)
    return sorted(rows, key=lambda r: [*(_sort_value(r[k]) for k in keys), _job_sort_key(r["job"])])


def _numbers(values: Sequence[Any]) -> list[float]:
    return [
        float(v)
        for v in values
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)
    ]


def mean(values: Sequence[float]) -> float | None:
    """The mean; None for no values."""
    return statistics.fmean(values) if values else None


def sample_std(values: Sequence[float]) -> float | None:
    """Sample standard deviation (n - 1); None below two values, nan when a value is infinite."""
    if len(values) < 2:
        return None
    if not all(math.isfinite(v) for v in values):
        return math.nan  # e.g. an infinite anisotropy (a singular metric) among the seeds
    return statistics.stdev(values)


def grouped_rows(rows: Sequence[Mapping[str, Any]], group_keys: Sequence[str]) -> list[dict[str, Any]]:
    """Mean and sample std of every metric over the completed runs of each configuration."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(repr([row.get(k) for k in group_keys]), []).append(row)
    out = []
    for members in groups.values():
        done = [r for r in members if r["status"] == "completed"]
        entry: dict[str, Any] = {k: members[0].get(k) for k in group_keys}
        entry.update(runs=len(members), completed=len(done))
        for metric in METRIC_COLUMNS:
            values = _numbers([r.get(metric) for r in done])
            entry[f"{metric}_mean"] = mean(values)
            entry[f"{metric}_std"] = sample_std(values)
        out.append(entry)
    return out


def grouped_columns(group_keys: Sequence[str]) -> list[str]:
    return [*group_keys, "runs", "completed", *(f"{m}_{s}" for m in METRIC_COLUMNS for s in ("mean", "std"))]


def summarize(
    sweep_dir: str | Path, jobs: Sequence[PlannedJob] | None = None, folders: list[JobFolder] | None = None
) -> Summary:
    """Read the jobs of a sweep folder and build its tables (nothing written).

    jobs: the sweep's planned jobs (default: sweep.yaml's job_list; without one, every job
    folder); folders: the folder's job folders when already read (`riemexp.sweep.folders.scan`).
    """
    sweep_dir = Path(sweep_dir)
    _check_sweep_dir(sweep_dir)
    folders = scan(sweep_dir) if folders is None else folders
    if jobs is None:
        jobs = recorded_jobs(sweep_dir)
    if jobs is None:
        if not folders:
            raise RunFolderError(
                f"{sweep_dir} is not a sweep folder: no job folders (with .hydra/ or {METRICS_FILE}) in it"
            )
        found, outside = _unplanned_rows(folders)
    else:
        found, outside = _planned_rows(sweep_dir, jobs, folders)
    keys = swept_keys(found)
    rows = summary_rows(found, keys)
    grouped = grouped_rows(rows, [k for k in keys if k != SEED_KEY])
    return Summary(sweep_dir, found, keys, rows, grouped, outside=outside, planned=jobs is not None)


def write_summary(summary: Summary) -> list[Path]:
    """summary.{csv,md,tex} and summary_grouped.{csv,md,tex} in the sweep folder (atomically)."""
    columns = ["job", *summary.keys, "status", *METRIC_COLUMNS]
    stem = summary.sweep_dir / SUMMARY
    files = write_table(stem, summary.rows, [*columns, "error"], formats=("csv",))
    files += write_table(stem, summary.rows, columns, formats=("md", "tex"))
    files += write_table(
        summary.sweep_dir / GROUPED,
        summary.grouped,
        grouped_columns(summary.group_keys),
        formats=("csv", "md", "tex"),
    )
    return files


def _mean_std(row: Mapping[str, Any], metric: str) -> str:
    mean, std = row.get(f"{metric}_mean"), row.get(f"{metric}_std")
    if mean is None:
        return ""
    return format_value(mean, 3) + ("" if std is None else f" ± {format_value(std, 2)}")


def show_grouped(summary: Summary) -> None:
    """The grouped table on a terminal (mean ± std over seeds); nothing otherwise."""
    shown = ("test_accuracy", "train_accuracy", "input_log_volume_median", "ode_gap", "train_seconds")
    titles = ("test acc", "train acc", "log vol (median)", "ode gap", "seconds")
    console.show_table(
        f"sweep {summary.sweep_dir.name}: mean ± std over seeds ({GROUPED}.md)",
        [*summary.group_keys, "runs", *titles],
        [
            [*(format_value(r.get(k)) for k in summary.group_keys), f"{r['completed']}/{r['runs']}"]
            + [_mean_std(r, m) for m in shown]
            for r in summary.grouped
        ],
    )
