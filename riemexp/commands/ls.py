"""`riemexp ls [FOLDER ...] [KEY=VALUE ...] [--csv] [--jobs]`: the runs and sweeps under folders.

One row per run folder (a folder with metrics.json) and one per sweep folder (a folder with
sweep.yaml, Hydra's multirun.yaml or summary.csv, whose job folders are runs): date, status,
dataset, network, depth, width, h (the step size), seed, test accuracy and path. A "running"
run is told apart as "running" (a live process works on it) or "dead" (killed), by
`riemexp.lock.run_state`. A sweep's row sums its jobs up (their statuses, the values they
take, the best test accuracy); `--jobs` lists the jobs as rows too.

Filters keep the runs whose config matches every KEY=VALUE: dotted config keys
(network.depth=10, optim.lr=0.01), a group's name for its choice (dataset=moons,
network=plain, optim=sgd), or status=completed; VALUE may list alternatives (depth=2,4).
With a filter, the matching jobs of sweeps are listed one by one.

Reads only the folders' small files (no torch, no Hydra), so that it answers at once.
Output: a rich table on a terminal, aligned plain text otherwise, CSV with --csv.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from riemexp.errors import ConfigError, RunFolderError
from riemexp.nets.registry import uses_step_size

try:  # libyaml's reader, when PyYAML was built with it: several times faster
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

DEFAULT_FOLDERS = ("outputs", "multirun")
METRICS_FILE = "metrics.json"  # riemexp.layout's names, without importing the run machinery
CONFIG_FILE = "config.yaml"
SWEEP_MARKERS = ("sweep.yaml", "multirun.yaml", "summary.csv")
#: riemexp.layout.NOT_RUN_FOLDERS (copies of run files: MLflow's artifacts) and TensorBoard's events
SKIPPED = ("mlflow-artifacts", "mlruns", "tensorboard")
#: a group's name as a filter key means its choice
GROUP_KEYS = {"dataset": "dataset.name", "network": "network.kind", "optim": "optim.name"}
COLUMNS = ("kind", "date", "status", "dataset", "network", "depth", "width", "h", "seed", "test_acc", "path")
MAX_VALUES_SHOWN = 4

USAGE = """\
riemexp ls: the runs and sweeps under folders (default: ./outputs and ./multirun)

usage: riemexp ls [FOLDER ...] [KEY=VALUE ...] [--jobs] [--csv]

  KEY=VALUE   keep the runs whose config has this value: network.depth=10, optim.lr=0.01,
              dataset=moons, network=plain, optim=sgd (a group's choice), status=completed;
              several values: network.depth=2,4,8. With a filter, sweeps' jobs are listed.
  --jobs      list every job of every sweep, not one row per sweep
  --csv       CSV on standard output (full precision), for scripts

Status: completed, diverged, failed, interrupted; a run whose metrics.json says "running" is
"running" while a live process works on it and "dead" when it was killed.

Examples:
  riemexp ls
  riemexp ls multirun/2024-05-01/12-00-00 --jobs
  riemexp ls dataset=moons network.depth=10
  riemexp ls network=plain --csv > plain.csv
"""


@dataclass
class Run:
    """A run folder as `ls` shows it."""

    path: Path
    config: dict[str, Any]  # flattened: network.depth -> 10
    metrics: dict[str, Any]
    status: str
    date: datetime | None

    def value(self, key: str) -> Any:
        if key == "status":
            return self.status
        return self.config.get(GROUP_KEYS.get(key, key))


@dataclass
class Sweep:
    path: Path
    jobs: list[Run] = field(default_factory=list)
    date: datetime | None = None


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _yaml(path: Path) -> dict[str, Any]:
    try:
        values = yaml.load(path.read_text(), Loader=_Loader)
    except (OSError, ValueError, yaml.YAMLError):
        return {}
    return values if isinstance(values, dict) else {}


def _date(text: Any) -> datetime | None:
    try:
        value = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _mtime(path: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
    except OSError:
        return None


def read_run(folder: Path) -> Run | None:
    """A run folder's config, metrics and state; None when its metrics.json is unreadable."""
    from riemexp.lock import run_state

    try:
        metrics = json.loads((folder / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(metrics, dict) or "status" not in metrics:
        return None
    config = _yaml(folder / CONFIG_FILE) or _yaml(folder / ".hydra" / "config.yaml")
    try:
        state = run_state(folder, metrics)
    except RunFolderError:
        state = str(metrics.get("status"))
    status = {"live": "running", "dead": "dead"}.get(state, state)
    date = _date(metrics["started"]) if metrics.get("started") else _mtime(folder / CONFIG_FILE)
    return Run(folder, flatten(config), metrics, status, date or _mtime(folder / METRICS_FILE))


def _is_sweep(folder: Path) -> bool:
    return any((folder / marker).is_file() for marker in SWEEP_MARKERS)


def scan(root: Path) -> Iterator[Run | Sweep]:
    """The runs and sweeps under root (root itself may be one), in folder order."""
    if (root / METRICS_FILE).is_file():
        run = read_run(root)
        if run is not None:
            yield run
        return
    if _is_sweep(root):
        sweep = Sweep(root, date=_date(_yaml(root / "sweep.yaml").get("started")) or _mtime(root))
        for child in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for found in scan(child):
                if isinstance(found, Run):
                    sweep.jobs.append(found)
                else:
                    yield found
        if sweep.jobs:
            yield sweep
        return
    try:
        children = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", *SKIPPED)))
    except OSError:
        return
    for child in children:
        yield from scan(child)


# --------------------------------------------------------------------------- filters


def parse_filters(args: Sequence[str]) -> list[tuple[str, list[Any]]]:
    filters = []
    for arg in args:
        key, _, value = arg.partition("=")
        if not key or not value:
            raise ConfigError(
                f"bad filter '{arg}'; expected KEY=VALUE, e.g. network.depth=10 or dataset=moons"
            )
        filters.append((key, [_parse(v) for v in value.split(",")]))
    return filters


def _parse(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError:
        return text


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return str(a) == str(b)


def matches(run: Run, filters: Sequence[tuple[str, list[Any]]]) -> bool:
    return all(any(_same(run.value(key), v) for v in values) for key, values in filters)


def check_keys(runs: Sequence[Run], filters: Sequence[tuple[str, list[Any]]]) -> None:
    """ConfigError for a filter key that no run has (a typo would otherwise match nothing, silently)."""
    known = {"status", *GROUP_KEYS}
    for run in runs:
        known.update(run.config)
    for key, _ in filters:
        if key not in known:
            close = (
                sorted(k for k in known if k.split(".")[-1] == key.split(".")[-1])
                or sorted(k for k in known if "." in k)[:12]
            )
            raise ConfigError(
                f"unknown key '{key}' in filter; expected a config key such as: {', '.join(close)}"
            )


# --------------------------------------------------------------------------- rows


def _relative(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def run_row(run: Run, kind: str = "run") -> dict[str, Any]:
    c = run.config
    return {
        "kind": kind,
        "date": run.date.astimezone().strftime("%Y-%m-%d %H:%M") if run.date else "",
        "status": run.status,
        "dataset": c.get("dataset.name", run.metrics.get("dataset")),
        "network": c.get("network.kind", run.metrics.get("network")),
        "depth": c.get("network.depth"),
        "width": c.get("network.width"),
        "h": c.get("network.step_size") if uses_step_size(str(c.get("network.kind"))) else None,
        "seed": c.get("seed", run.metrics.get("seed")),
        "test_acc": run.metrics.get("test_accuracy"),
        "path": _relative(run.path),
    }


def _values(values: Sequence[Any]) -> str:
    unique: list[Any] = []
    for v in values:
        if v is not None and not any(_same(v, u) for u in unique):
            unique.append(v)
    try:
        unique.sort()
    except TypeError:
        unique.sort(key=str)
    if len(unique) > MAX_VALUES_SHOWN:
        return f"{_fmt(unique[0])}..{_fmt(unique[-1])} ({len(unique)})"
    return ",".join(_fmt(v) for v in unique)


def sweep_row(sweep: Sweep) -> dict[str, Any]:
    rows = [run_row(job) for job in sweep.jobs]
    counts: dict[str, int] = {}
    for job in sweep.jobs:
        counts[job.status] = counts.get(job.status, 0) + 1
    accuracies = [r["test_acc"] for r in rows if isinstance(r["test_acc"], (int, float))]
    return {
        "kind": f"sweep ({len(rows)})",
        "date": sweep.date.astimezone().strftime("%Y-%m-%d %H:%M") if sweep.date else "",
        "status": ", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda kv: -kv[1])),
        **{k: _values([r[k] for r in rows]) for k in ("dataset", "network", "depth", "width", "h", "seed")},
        "test_acc": max(accuracies) if accuracies else None,
        "path": _relative(sweep.path),
    }


def collect(
    folders: Sequence[Path], filters: Sequence[tuple[str, list[Any]]], jobs: bool
) -> list[dict[str, Any]]:
    """The rows to show, oldest first (a sweep's jobs right after their sweep)."""
    found = [item for folder in folders for item in scan(folder)]
    runs = [item for item in found if isinstance(item, Run)]
    runs += [job for item in found if isinstance(item, Sweep) for job in item.jobs]
    check_keys(runs, filters)
    entries: list[tuple[datetime, list[dict[str, Any]]]] = []
    epoch = datetime.min.replace(tzinfo=timezone.utc)
    for item in found:
        if isinstance(item, Run):
            if matches(item, filters):
                entries.append((item.date or epoch, [run_row(item)]))
            continue
        members = [job for job in item.jobs if matches(job, filters)]
        if filters:  # the matching jobs, one by one
            entries += [(job.date or epoch, [run_row(job, "job")]) for job in members]
        else:
            rows = [sweep_row(item)] + ([run_row(job, "job") for job in item.jobs] if jobs else [])
            entries.append((item.date or epoch, rows))
    entries.sort(key=lambda e: e[0])
    return [row for _, rows in entries for row in rows]


# --------------------------------------------------------------------------- output

HEADERS = {"test_acc": "test acc"}


def write_csv(rows: Sequence[Mapping[str, Any]], out: Any) -> None:
    writer = csv.DictWriter(out, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in COLUMNS})


def plain_table(rows: Sequence[Mapping[str, Any]]) -> str:
    cells = [[HEADERS.get(c, c) for c in COLUMNS]] + [[_fmt(r.get(c)) for c in COLUMNS] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in cells) + "\n"


def show_rich(rows: Sequence[Mapping[str, Any]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    numeric = {"depth", "width", "h", "seed", "test_acc"}
    for c in COLUMNS:
        table.add_column(HEADERS.get(c, c), justify="right" if c in numeric else "left")
    colours = {"completed": "green", "running": "cyan", "dead": "red", "failed": "red", "diverged": "yellow"}
    for r in rows:
        cells = [_fmt(r.get(c)) for c in COLUMNS]
        status = str(r.get("status"))
        if status in colours:
            cells[COLUMNS.index("status")] = f"[{colours[status]}]{status}[/]"
        table.add_row(*cells, style="dim" if r.get("kind") == "job" else None)
    Console().print(table)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def on_terminal() -> bool:
    if os.environ.get("RIEMEXP_QUIET") or os.environ.get("CI", "").lower() in ("1", "true"):
        return False
    return sys.stdout.isatty()


def main(args: list[str]) -> int:
    if any(a in ("-h", "--help") for a in args):
        print(USAGE, end="")
        return 0
    flags = [a for a in args if a.startswith("-")]
    unknown = [a for a in flags if a not in ("--csv", "--jobs")]
    if unknown:
        raise ConfigError(
            f"unknown option {unknown[0]}; expected --csv, --jobs, KEY=VALUE filters or folders"
        )
    filters = parse_filters([a for a in args if "=" in a and not a.startswith("-")])
    given = [Path(a).expanduser() for a in args if "=" not in a and not a.startswith("-")]
    for folder in given:
        if not folder.exists():
            raise RunFolderError(f"folder {folder} does not exist; expected a folder of runs or sweeps")
        if not folder.is_dir():
            raise RunFolderError(f"{folder} is not a folder; expected a folder of runs or sweeps")
    folders = given or [Path(f) for f in DEFAULT_FOLDERS if Path(f).is_dir()]
    rows = collect(folders, filters, "--jobs" in flags)
    try:
        show(rows, folders, filters, args, csv_output="--csv" in flags)
    except BrokenPipeError:  # `riemexp ls | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 0


def show(
    rows: Sequence[Mapping[str, Any]],
    folders: Sequence[Path],
    filters: Sequence[tuple[str, list[Any]]],
    args: Sequence[str],
    csv_output: bool,
) -> None:
    if csv_output:
        write_csv(rows, sys.stdout)
        sys.stdout.flush()
        return
    where = ", ".join(f"{_relative(f)}/" for f in folders) or "./outputs/, ./multirun/"
    if not rows:
        what = "runs matching " + " ".join(a for a in args if "=" in a) if filters else "runs or sweeps"
        print(f"no {what} under {where}")
        return
    n_runs = sum(r["kind"] != "job" and not str(r["kind"]).startswith("sweep") for r in rows)
    n_sweeps = sum(str(r["kind"]).startswith("sweep") for r in rows)
    n_jobs = sum(r["kind"] == "job" for r in rows)
    title = (
        f"{_count(n_runs, 'run')}, {_count(n_sweeps, 'sweep')}"
        + (f", {_count(n_jobs, 'sweep job')}" if n_jobs else "")
        + f" under {where}"
    )
    if on_terminal():
        show_rich(rows, title)
    else:
        sys.stdout.write(plain_table(rows))
        sys.stdout.flush()
