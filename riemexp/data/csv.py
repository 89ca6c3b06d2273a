"""The user's own CSV file: its config, reading it as a stream, checking every row, and its
Source (standardised: the points are in the user's units).

`parse_csv(cfg)` reads `cfg.path` into compact arrays (`CsvRows`: 16 bytes per row for the
coordinates and 8 for the label) without torch, so that a bad file is refused at once; every
problem is a DataError naming the file, the line and what was expected. The reading goes in
steps: the first row (`_first_row`), the header and the columns (`_layout`), the data rows
(`_read_rows`), the classes (`_classes`). `read_csv` turns the rows into tensors.
"""

from __future__ import annotations

import codecs
import csv
import functools
import hashlib
import itertools
import math
import os
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from riemexp import memory
from riemexp.data.base import MIN_SAMPLES, DatasetConfig, Source, check, check_split
from riemexp.errors import DataError

if TYPE_CHECKING:
    import torch

#: labels read as "missing" rather than as a class name
_MISSING_LABELS = {"nan", "na", "n/a", "null"}

#: delimiters by name (those Hydra's override syntax would need quoted)
NAMED_DELIMITERS = {"tab": "\t", "\\t": "\t", "semicolon": ";", "space": " ", "pipe": "|", "comma": ","}

EXPECT_ROW = "two numeric coordinates and a label"


@dataclass(frozen=True)
class CsvConfig(DatasetConfig):
    """Your own points: a CSV file with two numeric coordinate columns and a label column.

    The network sees the points standardised with the mean and std of the training split;
    these are saved with the model, and plots and geometry stay in the file's own units.
    Columns are names (from the header) or 0-based indices; labels are names or integers.
    """

    name: str = "csv"
    path: str | None = None  # the file; a relative path is relative to where you run riemexp (kept absolute)
    header: bool | None = None  # None: detect (a first line whose coordinate fields are not numbers)
    coordinate_columns: tuple[str | int, ...] = (0, 1)
    label_column: str | int = 2
    delimiter: str = ","  # one character, or tab, semicolon, space, pipe, comma

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.coordinate_columns, list):
            object.__setattr__(self, "coordinate_columns", tuple(self.coordinate_columns))
        if self.path is not None and self.path != "":
            # absolute, so that a run folder can regenerate its dataset from any directory
            object.__setattr__(self, "path", os.path.abspath(os.path.expanduser(self.path)))

    def check(self) -> None:
        super().check()
        columns = list(self.coordinate_columns)
        check(len(columns) == 2, f"dataset.coordinate_columns must name 2 columns (x1 and x2), got {columns}")
        delimiter = NAMED_DELIMITERS.get(self.delimiter, self.delimiter)
        check(
            len(delimiter) == 1 and delimiter not in ('"', "\n", "\r"),
            "dataset.delimiter must be a single character or one of tab, semicolon, space, pipe, comma; "
            f"got {self.delimiter!r}",
        )


@dataclass(frozen=True)
class CsvRows:
    """A CSV file's data as compact arrays: points (2N float64: x1, x2 of each row, interleaved)
    and labels (N int64, indices into class_names).

    Class names are sorted: numerically when every label is an integer, else as strings,
    so label k means the same class whatever the order of the rows.
    """

    path: str
    points: array
    labels: array
    class_names: tuple[str, ...]
    coordinate_names: tuple[str, str]  # header names, or "0", "1", ... without a header
    label_name: str
    lines: tuple[int, int]  # first and last line of data

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class CsvTable:
    """A CSV file's data as tensors: x (N, 2) float64 coordinates, y (N,) int64 labels into
    class_names (sorted: numerically when every label is an integer, else as strings)."""

    path: str
    x: torch.Tensor
    y: torch.Tensor
    class_names: tuple[str, ...]
    coordinate_names: tuple[str, str]  # header names, or "0", "1", ... without a header
    label_name: str
    lines: tuple[int, int]  # first and last line of data


# --------------------------------------------------------------------------- reading


def parse_csv(cfg: CsvConfig) -> CsvRows:
    """Read and check the CSV file `cfg.path` (cached while the file is unchanged).

    Expected: a header line (optional) and rows of at least 3 fields, with two finite
    numeric coordinates and a label (a name or an integer) in the configured columns; two
    classes or more; at least MIN_SAMPLES rows. Anything else raises DataError naming the
    file, the line and what was expected (ConfigError for options out of range).
    """
    if not cfg.path:
        raise DataError(
            "dataset=csv needs a file: set dataset.path=FILE (a CSV with two numeric coordinate "
            "columns and a label column)"
        )
    cfg.check()
    path = Path(cfg.path)
    if not path.exists():
        raise DataError(
            f"{path}: no such file; expected a CSV file with two numeric coordinate columns and a "
            "label column (dataset.path; a relative path is relative to the working directory)"
        )
    if not path.is_file():
        raise DataError(f"{path}: is not a file; expected a CSV file (dataset.path)")
    check_read_memory(path, None)
    stat = path.stat()
    return _read_csv_cached(
        str(path),
        stat.st_mtime_ns,
        stat.st_size,
        cfg.header,
        tuple(cfg.coordinate_columns),
        cfg.label_column,
        NAMED_DELIMITERS.get(cfg.delimiter, cfg.delimiter),
    )


def read_csv(cfg: CsvConfig) -> CsvTable:
    """The CSV file `cfg.path` read and checked (`parse_csv`) as tensors."""
    import torch

    rows = parse_csv(cfg)
    n = len(rows)
    return CsvTable(
        path=rows.path,
        x=torch.frombuffer(rows.points, dtype=torch.float64).reshape(n, 2).clone(),
        y=torch.frombuffer(rows.labels, dtype=torch.int64).clone(),
        class_names=rows.class_names,
        coordinate_names=rows.coordinate_names,
        label_name=rows.label_name,
        lines=rows.lines,
    )


def check_read_memory(path: Path, max_memory_gb: float | None) -> None:
    """Refuse (MemoryNeedError) a file whose reading would need more memory than there is."""
    try:
        size = path.stat().st_size
    except OSError:
        return  # reported by the reader
    memory.check(
        memory.csv_bytes(size),
        f"reading {path}",
        f"a {size / 1e6:.4g} MB file",
        "use a smaller file (fewer rows)" + (", or raise max_memory_gb" if max_memory_gb else ""),
        max_memory_gb,
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _bad_byte(path: str) -> tuple[int, str]:
    """The file offset of the first byte that is not UTF-8, and why (for the error message)."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    offset = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as err:
                return offset + err.start, err.reason
            offset += len(chunk)
    return offset, "truncated data"


Row = tuple[int, list[str]]  # (line, stripped fields)


def _csv_rows(path: str, delimiter: str) -> Iterator[Row]:
    """(line, stripped fields) of each row, read as a stream; DataError on bad text or quoting."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter=delimiter)
            try:
                for fields in reader:
                    yield reader.line_num, [f.strip() for f in fields]
            except csv.Error as err:
                raise DataError(f"{path}: line {reader.line_num}: {err}; expected CSV fields") from None
    except UnicodeDecodeError:
        start, reason = _bad_byte(path)
        raise DataError(
            f"{path}: byte {start} is not UTF-8 text ({reason}); expected a CSV text file"
        ) from None
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror}); expected a readable CSV file") from None


def _first_row(path: str, rows: Iterator[Row], delimiter: str) -> list[Row]:
    """The rows up to the first that is not blank (blank lines at the end of a file are harmless);
    DataError for an empty file or a first row of fewer than 3 columns."""
    leading: list[Row] = []
    for row in rows:
        leading.append(row)
        if any(row[1]):
            break
    if not leading or not any(leading[-1][1]):
        raise DataError(f"{path}: the file is empty; expected rows of {EXPECT_ROW}")
    first_line, first = leading[0]
    if len(first) < 3:
        n_cols = len(first)
        hint = "" if delimiter != "," else " (if the file uses another delimiter, set dataset.delimiter)"
        raise DataError(
            f"{path}: line {first_line}: {n_cols} column{'s' if n_cols != 1 else ''} "
            f"({delimiter.join(first)!r}); expected at least 3: {EXPECT_ROW}{hint}"
        )
    return leading


#: the settings naming the three columns, in messages
COLUMN_SETTINGS = ("dataset.coordinate_columns[0]", "dataset.coordinate_columns[1]", "dataset.label_column")


@dataclass(frozen=True)
class _Layout:
    """Where the data are in the file: whether line `first_line` is a header, the column names,
    the columns of x1, x2 and the label, and how each column is named in messages."""

    header: bool
    first_line: int
    n_cols: int
    names: list[str]
    shown: list[str]
    ix: int
    iy: int
    il: int


def _detect_header(
    path: str, first_line: int, first: list[str], coordinate_columns: tuple[str | int, ...], named: bool
) -> bool:
    """A header when a column is named, or when neither coordinate field of the first line is a
    number; data when both are; DataError when one is."""
    if named:
        return True
    numeric = [_is_number(first[int(c)]) for c in coordinate_columns]
    if all(numeric):
        return False
    if not any(numeric):
        return True
    raise DataError(
        f"{path}: line {first_line}: the coordinate fields {first[int(coordinate_columns[0])]!r} "
        f"and {first[int(coordinate_columns[1])]!r} are neither two numbers (data) nor two "
        "names (a header); expected one or the other; set dataset.header=true or false to say"
    )


def _layout(
    path: str,
    first_line: int,
    first: list[str],
    header: bool | None,
    coordinate_columns: tuple[str | int, ...],
    label_column: str | int,
) -> _Layout:
    """The header (given, or detected from the first line) and the three columns' indices;
    DataError for a column that is not in the file, or one used twice."""
    n_cols = len(first)
    columns = (*coordinate_columns, label_column)
    named = [(s, c) for s, c in zip(COLUMN_SETTINGS, columns) if isinstance(c, str)]
    if header is False and named:
        setting, name = named[0]
        raise DataError(
            f"{path}: {setting}={name!r} names a column, but dataset.header=false; expected a 0-based "
            "column index, or dataset.header=true"
        )
    for setting, column in zip(COLUMN_SETTINGS, columns):
        if isinstance(column, int) and not 0 <= column < n_cols:
            raise DataError(
                f"{path}: {setting}={column} is not a column: line {first_line} has {n_cols} "
                f"columns; expected an index in 0..{n_cols - 1}"
            )
    if header is None:
        header = _detect_header(path, first_line, first, coordinate_columns, bool(named))
    names = first if header else [str(i) for i in range(n_cols)]
    shown = [f"column {name!r}" for name in names] if header else [f"column {i}" for i in range(n_cols)]
    indices = []
    for setting, column in zip(COLUMN_SETTINGS, columns):
        if isinstance(column, str):
            if column not in names:
                raise DataError(
                    f"{path}: line {first_line} (header): no column named {column!r} ({setting}); "
                    f"expected one of: {', '.join(repr(n) for n in names)}"
                )
            column = names.index(column)
        indices.append(column)
    if len(set(indices)) < 3:
        raise DataError(
            f"{path}: dataset.coordinate_columns={list(coordinate_columns)} and dataset.label_column="
            f"{label_column!r} use column(s) {sorted({i for i in indices if indices.count(i) > 1})} "
            "twice; expected three different columns"
        )
    ix, iy, il = indices
    return _Layout(header, first_line, n_cols, names, shown, ix, iy, il)


def _coordinate(value: str, where: str) -> float:
    """One coordinate field as a finite number; DataError naming `where` otherwise."""
    if value == "":
        raise DataError(f"{where}: empty coordinate; expected a finite number")
    try:
        number = float(value)
    except ValueError:
        raise DataError(f"{where}: {value!r} is not a number; expected a finite number") from None
    if not math.isfinite(number):
        raise DataError(f"{where}: {value!r} is not finite; expected a finite number")
    return number


@dataclass
class _Rows:
    """The data rows read so far: coordinates, each row's label code, the labels by code."""

    points: array  # x1, x2 of each row, interleaved
    codes: array  # each row's label, as an index into `labels` (first-seen order)
    labels: dict[str, int]
    lines: tuple[int, int]  # first and last line of data


def _read_rows(path: str, rows: Iterable[Row], layout: _Layout) -> _Rows:
    """Every data row, streamed into compact arrays: the same number of fields as the first
    line, finite coordinates, a label; blank rows only at the end."""
    out = _Rows(array("d"), array("q"), {}, (0, 0))
    blank_line = None  # a blank row, harmless only if no data row follows it
    for line, fields in rows:
        if not any(fields):
            blank_line = blank_line or line
            continue
        if blank_line is not None:
            raise DataError(f"{path}: line {blank_line}: empty row; expected {EXPECT_ROW}")
        if len(fields) != layout.n_cols:
            raise DataError(
                f"{path}: line {line}: {len(fields)} fields; expected {layout.n_cols}, like line "
                f"{layout.first_line}"
            )
        for i in (layout.ix, layout.iy):
            out.points.append(_coordinate(fields[i], f"{path}: line {line}, {layout.shown[i]}"))
        label = fields[layout.il]
        if label == "" or label.lower() in _MISSING_LABELS:
            raise DataError(
                f"{path}: line {line}, {layout.shown[layout.il]}: missing label {label!r}; expected a class "
                "name or an integer"
            )
        code = out.labels.setdefault(label, len(out.labels))
        out.codes.append(code)
        out.lines = (out.lines[0] or line, line)
    if not out.codes:
        raise DataError(f"{path}: no data rows after the header; expected rows of {EXPECT_ROW}")
    return out


def _classes(path: str, read: _Rows, label_shown: str) -> tuple[list[int] | list[str], list[int]]:
    """The classes in a stable order (numeric if every label is an integer, else by name) and,
    per label code, its class; DataError for too few rows or classes, or too many classes."""
    try:
        keys: list[int] | list[str] = [int(label) for label in read.labels]
    except ValueError:
        keys = list(read.labels)
    classes = sorted(set(keys))  # type: ignore[type-var]
    n, (first, last) = len(read.codes), read.lines
    if n < MIN_SAMPLES:
        raise DataError(
            f"{path}: lines {first}-{last}: {n} data rows; expected at least {MIN_SAMPLES} "
            "(enough for a train and a test split)"
        )
    if len(classes) < 2:
        raise DataError(
            f"{path}: lines {first}-{last}: {label_shown} holds a single class "
            f"({str(classes[0])!r}) on all {n} rows; expected at least 2 classes"
        )
    if len(classes) > n // 2:
        raise DataError(
            f"{path}: lines {first}-{last}: {label_shown} holds {len(classes)} distinct labels in "
            f"{n} rows; expected class labels shared by several rows (does dataset.label_column point "
            "at a coordinate?)"
        )
    index = {key: k for k, key in enumerate(classes)}
    return classes, [index[key] for key in keys]  # type: ignore[index, return-value]


@functools.lru_cache(maxsize=8)
def _read_csv_cached(
    path: str,
    mtime_ns: int,
    size: int,
    header: bool | None,
    coordinate_columns: tuple[str | int, ...],
    label_column: str | int,
    delimiter: str,
) -> CsvRows:
    """Parse the file as a stream into compact arrays: 16 bytes per row for the coordinates and a
    small code per row for the label, so that a large file needs a small multiple of its size."""
    del mtime_ns, size  # part of the cache key only: a changed file is read again
    rows = _csv_rows(path, delimiter)
    leading = _first_row(path, rows, delimiter)
    first_line, first = leading[0]
    layout = _layout(path, first_line, first, header, coordinate_columns, label_column)
    read = _read_rows(path, itertools.chain(leading[1:] if layout.header else leading, rows), layout)
    classes, lookup = _classes(path, read, layout.shown[layout.il])
    return CsvRows(
        path=path,
        points=read.points,
        labels=array("q", (lookup[code] for code in read.codes)),
        class_names=tuple(str(c) for c in classes),
        coordinate_names=(layout.names[layout.ix], layout.names[layout.iy]),
        label_name=layout.names[layout.il],
        lines=read.lines,
    )


# --------------------------------------------------------------------------- source


def file_sha256(path: str) -> str:
    """sha256 of a file's contents; DataError when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror})") from None


class CsvSource(Source):
    """A CSV file's rows, in the user's units (standardised for the network)."""

    config = CsvConfig
    standardise = True

    def load(self, cfg: Any, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
        table = read_csv(cfg)
        return table.x, table.y, table.class_names

    def size(self, cfg: Any, max_memory_gb: float | None = None) -> tuple[int, int]:
        """The file read and checked: its rows (split in two) and classes."""
        if cfg.path:
            check_read_memory(Path(cfg.path), max_memory_gb)
        rows = parse_csv(cfg)
        check_split(len(rows), cfg.test_fraction, self.describe(cfg, len(rows)), DataError)
        return len(rows), len(rows.class_names)

    def check(self, cfg: Any, seed: int, max_memory_gb: float | None = None) -> None:
        """The dataset made once (torch): its seeded split and the standardisation of its
        training split (a constant coordinate) are refused before a run starts."""
        from riemexp.data.dataset import make_dataset

        if cfg.path:
            check_read_memory(Path(cfg.path), max_memory_gb)
        make_dataset(cfg, seed)

    def fingerprint(self, cfg: Any) -> str | None:
        return None if cfg.path is None else file_sha256(cfg.path)

    def where(self, cfg: Any) -> str:
        return str(cfg.path or cfg.name)

    def describe(self, cfg: Any, n: int) -> str:
        return f"{cfg.path} ({n} data rows)"

    def coordinate_names(self, cfg: Any) -> tuple[str, str]:
        return parse_csv(cfg).coordinate_names


CSV = CsvSource()

__all__ = [
    "CSV",
    "CsvConfig",
    "CsvRows",
    "CsvSource",
    "CsvTable",
    "NAMED_DELIMITERS",
    "check_read_memory",
    "parse_csv",
    "read_csv",
]
