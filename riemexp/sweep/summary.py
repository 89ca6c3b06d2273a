"""A sweep folder's jobs read back and aggregated: summary.{csv,md,tex} and summary_grouped.{csv,md,tex}.

Works on any folder of Hydra multirun jobs (SWEEP_DIR/NUM/ with .hydra/ or metrics.json),
complete or not: a job still running, killed or never started is a row with its status.

summary:          one row per job: `job`, the swept keys (config keys whose value differs
                  between jobs; `seed` last), `status`, then `METRIC_COLUMNS`; the CSV also
                  has `error` (the failure message of failed and diverged jobs).
summary_grouped:  one row per configuration (the swept keys but `seed`): `runs`, `completed`,
                  then KEY_mean and KEY_std of every metric over the completed seeds (std is the
                  sample standard deviation, n - 1; empty with fewer than two values).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from riemexp import console
from riemexp.errors import RunFolderError
from riemexp.layout import CONFIG_FILE, METRICS_FILE
from riemexp.sweep.jobs import JOB_FILE
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
    "train_seconds",
    "ode_gap",
    "ode_order",
)
NOT_STARTED = "not started"
FAILED = ("failed", "diverged", "interrupted")  # statuses that count as a failed job


@dataclass
class Job:
    """One job folder of a sweep, as far as its files tell."""

    name: str
    path: Path
    config: dict[str, Any]  # the job's config, flattened to dotted keys
    metrics: dict[str, Any]  # metrics.json, {} when absent
    record: dict[str, Any]  # job.json, {} when absent

    @property
    def status(self) -> str:
        return str(self.metrics.get("status", NOT_STARTED))

    @property
    def error(self) -> str:
        return str(self.metrics.get("error") or "")


@dataclass
class Summary:
    sweep_dir: Path
    jobs: list[Job]
    keys: list[str]  # swept keys, seed last
    rows: list[dict[str, Any]]
    grouped: list[dict[str, Any]]
    files: list[Path] = field(default_factory=list)

    @property
    def group_keys(self) -> list[str]:
        return [k for k in self.keys if k != SEED_KEY]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for job in self.jobs:
            out[job.status] = out.get(job.status, 0) + 1
        return out


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"network": {"depth": 4}} -> {"network.depth": 4}; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    conf = OmegaConf.load(path)
    try:
        values = OmegaConf.to_container(conf, resolve=True)
    except Exception:  # an interpolation that needs Hydra's runtime: keep it unresolved
        values = OmegaConf.to_container(conf, resolve=False)
    return values if isinstance(values, dict) else {}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _job_sort_key(name: str) -> tuple[int, int, str]:
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def read_job(path: Path) -> Job:
    """A job folder: config from config.yaml (the run's resolved config), else .hydra/config.yaml."""
    config: dict[str, Any] = {}
    for source in (path / CONFIG_FILE, path / ".hydra" / "config.yaml"):
        if source.is_file():
            try:
                config = flatten(_read_yaml(source))
                break
            except Exception:  # corrupt: try the next source
                continue
    return Job(path.name, path, config, _read_json(path / METRICS_FILE), _read_json(path / JOB_FILE))


def find_jobs(sweep_dir: str | Path) -> list[Job]:
    """The job folders of a sweep folder, in job order; RunFolderError when there are none."""
    sweep_dir = Path(sweep_dir)
    if sweep_dir.exists() and not sweep_dir.is_dir():
        raise RunFolderError(f"{sweep_dir} is not a folder; expected a sweep folder (hydra.sweep.dir)")
    if not sweep_dir.is_dir():
        raise RunFolderError(f"sweep folder {sweep_dir} does not exist")
    paths = [
        p
        for p in sweep_dir.iterdir()
        if p.is_dir()
        and not p.name.startswith(".")
        and ((p / ".hydra").is_dir() or (p / METRICS_FILE).is_file())
    ]
    if not paths:
        raise RunFolderError(
            f"{sweep_dir} is not a sweep folder: no job folders (NUM/ with .hydra/ or {METRICS_FILE}) in it"
        )
    return [read_job(p) for p in sorted(paths, key=lambda p: _job_sort_key(p.name))]


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


def summary_rows(jobs: Sequence[Job], keys: Sequence[str]) -> list[dict[str, Any]]:
    """One row per job (see the module docstring), sorted by the swept values."""
    rows = []
    for job in jobs:
        row: dict[str, Any] = {"job": job.name}
        row.update({k: job.config.get(k) for k in keys})
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


def summarize(sweep_dir: str | Path) -> Summary:
    """Read every job of a sweep folder and build its tables (nothing written)."""
    sweep_dir = Path(sweep_dir)
    jobs = find_jobs(sweep_dir)
    keys = swept_keys(jobs)
    rows = summary_rows(jobs, keys)
    grouped = grouped_rows(rows, [k for k in keys if k != SEED_KEY])
    return Summary(sweep_dir, jobs, keys, rows, grouped)


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
    summary.files = files
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
