"""Results in a notebook: a sweep's summary as records or a pandas DataFrame, a run's tables as records.

    import riemexp

    run = riemexp.load_run("outputs/2024-05-01/12-00-00_spirals_residual")
    run.metrics["test_accuracy"], run.model, run.data        # read at once
    run.geometry["layer_metric"]                             # geometry.npz, read on first use
    run.tables["layers"]                                     # tables/layers.csv as records
    run.table("ode")                                         # a DataFrame when pandas is installed

    df = riemexp.load_sweep("multirun/2024-05-01/12-00-00")  # one row per job
    df.groupby("network.kind")["test_accuracy"].mean()

Records are lists of dicts, one per CSV row, numbers as int or float and empty cells as None.
pandas is optional (`pip install 'riemexp[pandas]'`): `as_frame=None` gives a DataFrame when it
is installed and records otherwise; True asks for a DataFrame (ConfigError naming the extra
when pandas is missing); False always gives records.
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path
from typing import Any

from riemexp.errors import ConfigError, RunFolderError

Records = list[dict[str, Any]]


def parse_cell(text: str) -> Any:
    """A CSV cell as a value: "" -> None, "3" -> 3, "0.5" / "inf" / "nan" -> float, else the text."""
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def read_records(path: str | Path) -> Records:
    """A CSV file (with a header) as records; RunFolderError when it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise RunFolderError(f"{path} is missing")
    try:
        with open(path, newline="") as f:
            return [{k: parse_cell(v or "") for k, v in row.items()} for row in csv.DictReader(f)]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise RunFolderError(f"{path} is corrupt: {err}") from None


def pandas_installed() -> bool:
    return importlib.util.find_spec("pandas") is not None


def to_frame(records: Records, wanted: bool | None, columns: list[str] | None = None) -> Any:
    """records as a pandas DataFrame (wanted True, or None with pandas installed), else unchanged."""
    if wanted is False or (wanted is None and not pandas_installed()):
        return records
    if not pandas_installed():
        raise ConfigError(
            "a DataFrame needs pandas, which is not installed; install it with: pip install 'riemexp[pandas]'"
        )
    import pandas  # type: ignore[import-untyped]

    return pandas.DataFrame.from_records(records, columns=columns)


def load_sweep(path: str | Path, as_frame: bool | None = None) -> Any:
    """A sweep folder's summary, read fresh from its job folders: one record per job.

    Columns: job (the job folder's name), path (the job folder), the swept config keys (dotted:
    network.depth; seed last), status, then train_accuracy, test_accuracy, train_loss, test_loss,
    input_log_volume_median, input_anisotropy_median, the boundary numbers (boundary_spearman_grid,
    boundary_band_ratio_grid, boundary_spearman_data, boundary_band_ratio_data), train_seconds,
    ode_gap, ode_order, and
    error (the message of a failed job). These are summary.csv's rows (`riemexp sweep aggregate`),
    computed again, so that jobs finished since are counted. A job that has not finished has its
    status ("running", "not started", ...) and empty metrics.

    Returns a pandas DataFrame when `as_frame` is True, or None and pandas is installed; else a
    list of dicts. Raises RunFolderError when path is not a sweep folder.
    """
    from riemexp.sweep.summary import METRIC_COLUMNS, summarize

    summary = summarize(path)
    paths = {job.name: str(job.path) for job in summary.jobs}
    columns = ["job", "path", *summary.keys, "status", *METRIC_COLUMNS, "error"]
    records = [{"job": r["job"], "path": paths[r["job"]], **r} for r in summary.rows]
    return to_frame(records, as_frame, columns)


__all__ = ["load_sweep", "parse_cell", "read_records", "to_frame"]
