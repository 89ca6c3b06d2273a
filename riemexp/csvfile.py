"""A user's CSV file, read and checked without torch, so that a bad file is refused at once.

`parse_csv(cfg)` reads `cfg.path` as a stream into compact arrays (`CsvRows`: 16 bytes per row
for the coordinates and 8 for the label); every problem is a DataError naming the file, the line
and what was expected. `riemexp.datasets.read_csv` turns the rows into tensors. Also here: the
checks on dataset sizes the config shares (`MIN_SAMPLES`, `check_split`), which need no torch.
"""

from __future__ import annotations

import codecs
import csv
import functools
import itertools
import math
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from riemexp import memory
from riemexp.config import DatasetConfig
from riemexp.errors import ConfigError, DataError

MIN_SAMPLES = 10

#: labels read as "missing" rather than as a class name
_MISSING_LABELS = {"nan", "na", "n/a", "null"}


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


#: delimiters by name (those Hydra's override syntax would need quoted)
NAMED_DELIMITERS = {"tab": "\t", "\\t": "\t", "semicolon": ";", "space": " ", "pipe": "|", "comma": ","}


def _delimiter(value: str) -> str:
    return NAMED_DELIMITERS.get(value, value)


def check_split(n: int, test_fraction: float, what: str, error: type[Exception] = ConfigError) -> int:
    """The number of test points round(n * test_fraction); raise `error` unless both splits are non-empty."""
    n_test = round(n * test_fraction)
    if not 1 <= n_test <= n - 1:
        raise error(
            f"dataset.test_fraction={test_fraction} of {what} leaves {n_test} test and "
            f"{n - n_test} training points; expected at least 1 of each"
        )
    return n_test


def parse_csv(cfg: DatasetConfig) -> CsvRows:
    """Read and check the CSV file `cfg.path` (cached while the file is unchanged).

    Expected: a header line (optional) and rows of at least 3 fields, with two finite
    numeric coordinates and a label (a name or an integer) in the configured columns; two
    classes or more; at least MIN_SAMPLES rows. Anything else raises DataError naming the
    file, the line and what was expected.
    """
    if not cfg.path:
        raise DataError(
            "dataset=csv needs a file: set dataset.path=FILE (a CSV with two numeric coordinate "
            "columns and a label column)"
        )
    if len(cfg.coordinate_columns) != 2:
        raise ConfigError(
            f"dataset.coordinate_columns must name 2 columns (x1 and x2), got {list(cfg.coordinate_columns)}"
        )
    delimiter = _delimiter(cfg.delimiter)
    if len(delimiter) != 1 or delimiter in ('"', "\n", "\r"):
        raise ConfigError(
            f"dataset.delimiter must be a single character or one of tab, semicolon, space, pipe, comma; "
            f"got {cfg.delimiter!r}"
        )
    path = Path(cfg.path)
    if not path.exists():
        raise DataError(
            f"{path}: no such file; expected a CSV file with two numeric coordinate columns and a "
            "label column (dataset.path; a relative path is relative to the working directory)"
        )
    if not path.is_file():
        raise DataError(f"{path}: is not a file; expected a CSV file (dataset.path)")
    _check_read_memory(path, None)
    stat = path.stat()
    return _read_csv_cached(
        str(path),
        stat.st_mtime_ns,
        stat.st_size,
        cfg.header,
        tuple(cfg.coordinate_columns),
        cfg.label_column,
        delimiter,
    )


def _check_read_memory(path: Path, max_memory_gb: float | None) -> None:
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


def _csv_rows(path: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
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
    # the first row, unless every row is blank (blank lines at the end of a file are harmless)
    leading: list[tuple[int, list[str]]] = []
    for row in rows:
        leading.append(row)
        if any(row[1]):
            break
    expect_row = "two numeric coordinates and a label"
    if not leading or not any(leading[-1][1]):
        raise DataError(f"{path}: the file is empty; expected rows of {expect_row}")
    first_line, first = leading[0]
    n_cols = len(first)
    if n_cols < 3:
        hint = "" if delimiter != "," else " (if the file uses another delimiter, set dataset.delimiter)"
        raise DataError(
            f"{path}: line {first_line}: {n_cols} column{'s' if n_cols != 1 else ''} "
            f"({delimiter.join(first)!r}); expected at least 3: {expect_row}{hint}"
        )

    # the header: given, or detected from the coordinate fields of the first line
    columns = (*coordinate_columns, label_column)
    settings = ("dataset.coordinate_columns[0]", "dataset.coordinate_columns[1]", "dataset.label_column")
    named = [(s, c) for s, c in zip(settings, columns) if isinstance(c, str)]
    if header is False and named:
        setting, name = named[0]
        raise DataError(
            f"{path}: {setting}={name!r} names a column, but dataset.header=false; expected a 0-based "
            "column index, or dataset.header=true"
        )
    for setting, column in zip(settings, columns):
        if isinstance(column, int) and not 0 <= column < n_cols:
            raise DataError(
                f"{path}: {setting}={column} is not a column: line {first_line} has {n_cols} "
                f"columns; expected an index in 0..{n_cols - 1}"
            )
    if header is None:
        if named:
            header = True
        else:
            numeric = [_is_number(first[int(c)]) for c in coordinate_columns]
            if all(numeric):
                header = False
            elif not any(numeric):
                header = True
            else:
                raise DataError(
                    f"{path}: line {first_line}: the coordinate fields {first[int(coordinate_columns[0])]!r} "
                    f"and {first[int(coordinate_columns[1])]!r} are neither two numbers (data) nor two "
                    "names (a header); expected one or the other; set dataset.header=true or false to say"
                )
    names = first if header else [str(i) for i in range(n_cols)]
    shown = [f"column {name!r}" for name in names] if header else [f"column {i}" for i in range(n_cols)]
    indices = []
    for setting, column in zip(settings, columns):
        if isinstance(column, str):
            if column not in names:
                raise DataError(
                    f"{path}: line {first_line} (header): no column named {column!r} ({setting}); "
                    f"expected one of: {', '.join(repr(n) for n in names)}"
                )
            column = names.index(column)
        indices.append(column)
    ix, iy, il = indices
    if len(set(indices)) < 3:
        raise DataError(
            f"{path}: dataset.coordinate_columns={list(coordinate_columns)} and dataset.label_column="
            f"{label_column!r} use column(s) {sorted({i for i in indices if indices.count(i) > 1})} "
            "twice; expected three different columns"
        )

    # every data row: the same number of fields, finite coordinates, a label
    points = array("d")  # x1, x2 of each row, interleaved
    codes = array("q")  # each row's label, as an index into `labels` (first-seen order)
    labels: dict[str, int] = {}
    blank_line = None  # a blank row, harmless only if no data row follows it
    lines = [0, 0]
    data_rows = itertools.chain(leading if not header else leading[1:], rows)
    for line, fields in data_rows:
        if not any(fields):
            blank_line = blank_line or line
            continue
        if blank_line is not None:
            raise DataError(f"{path}: line {blank_line}: empty row; expected {expect_row}")
        if len(fields) != n_cols:
            raise DataError(
                f"{path}: line {line}: {len(fields)} fields; expected {n_cols}, like line {first_line}"
            )
        for i in (ix, iy):
            value = fields[i]
            where = f"{path}: line {line}, {shown[i]}"
            if value == "":
                raise DataError(f"{where}: empty coordinate; expected a finite number")
            try:
                number = float(value)
            except ValueError:
                raise DataError(f"{where}: {value!r} is not a number; expected a finite number") from None
            if not math.isfinite(number):
                raise DataError(f"{where}: {value!r} is not finite; expected a finite number")
            points.append(number)
        label = fields[il]
        if label == "" or label.lower() in _MISSING_LABELS:
            raise DataError(
                f"{path}: line {line}, {shown[il]}: missing label {label!r}; expected a class "
                "name or an integer"
            )
        code = labels.get(label)
        if code is None:
            code = labels[label] = len(labels)
        codes.append(code)
        lines = [lines[0] or line, line]
    n = len(codes)
    if n == 0:
        raise DataError(f"{path}: no data rows after the header; expected rows of {expect_row}")

    # the classes, in a stable order: numeric if every label is an integer, else by name
    try:
        keys: list[int] | list[str] = [int(label) for label in labels]
    except ValueError:
        keys = list(labels)
    classes = sorted(set(keys))  # type: ignore[type-var]
    if n < MIN_SAMPLES:
        raise DataError(
            f"{path}: lines {lines[0]}-{lines[1]}: {n} data rows; expected at least {MIN_SAMPLES} "
            "(enough for a train and a test split)"
        )
    if len(classes) < 2:
        raise DataError(
            f"{path}: lines {lines[0]}-{lines[1]}: {shown[il]} holds a single class "
            f"({str(classes[0])!r}) on all {n} rows; expected at least 2 classes"
        )
    if len(classes) > n // 2:
        raise DataError(
            f"{path}: lines {lines[0]}-{lines[1]}: {shown[il]} holds {len(classes)} distinct labels in "
            f"{n} rows; expected class labels shared by several rows (does dataset.label_column point "
            "at a coordinate?)"
        )
    index = {key: k for k, key in enumerate(classes)}
    lookup = [index[key] for key in keys]  # label code (first-seen order) -> class
    return CsvRows(
        path=path,
        points=points,
        labels=array("q", (lookup[code] for code in codes)),
        class_names=tuple(str(c) for c in classes),
        coordinate_names=(names[ix], names[iy]),
        label_name=names[il],
        lines=(lines[0], lines[1]),
    )


__all__ = ["MIN_SAMPLES", "NAMED_DELIMITERS", "CsvRows", "check_split", "parse_csv"]
