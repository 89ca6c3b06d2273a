"""2-D datasets: toy sets generated in memory from a seed, and the user's own CSV file.

Each toy generator takes a `DatasetConfig` and a `torch.Generator` and returns points
x (N, 2) float64 and integer labels y (N,). A CSV file is read by `read_csv` (every bad
row is a DataError naming the file, the line and what was expected). `make_dataset` adds
the seeded train/test split and, for CSV data, the standardisation statistics of the
training split. Datasets are looked up in the `DATASETS` dict by name.

Standardisation convention: Dataset points always stay in the data's own units. A dataset
in user units (csv) carries input_shift = mean and input_scale = std (population std, per
coordinate) of its TRAINING points; `riemexp.train.train` copies them into the network's
buffers, so the network sees (x - input_shift) / input_scale. The toy sets carry the
identity (shift 0, scale 1), so their points reach the network unchanged.
"""

from __future__ import annotations

import codecs
import csv
import functools
import hashlib
import itertools
import math
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from riemexp import memory
from riemexp.config import DatasetConfig
from riemexp.errors import ConfigError, DataError

MIN_SAMPLES = 10


@dataclass(frozen=True)
class Dataset:
    """A labelled 2-D dataset split into train and test.

    x_train (N_train, 2), x_test (N_test, 2): float64 points in the dataset's own units.
    y_train (N_train,), y_test (N_test,): int64 labels in 0 .. n_classes - 1; label k is
    class_names[k].
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    class_names: tuple[str, ...]
    # the network sees (x - input_shift) / input_scale; identity for the toy sets. (2,) float64
    input_shift: torch.Tensor = field(default_factory=lambda: torch.zeros(2, dtype=torch.float64))
    input_scale: torch.Tensor = field(default_factory=lambda: torch.ones(2, dtype=torch.float64))

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def x(self) -> torch.Tensor:
        """All points, train first then test: (N, 2)."""
        return torch.cat([self.x_train, self.x_test])

    @property
    def y(self) -> torch.Tensor:
        """All labels, train first then test: (N,)."""
        return torch.cat([self.y_train, self.y_test])

    @property
    def is_test(self) -> torch.Tensor:
        """Boolean mask over `x`: True for test points. (N,)"""
        return torch.cat(
            [
                torch.zeros(len(self.x_train), dtype=torch.bool),
                torch.ones(len(self.x_test), dtype=torch.bool),
            ]
        )


def _two_class_sizes(n: int) -> tuple[int, int]:
    return n // 2, n - n // 2


def make_spirals(cfg: DatasetConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved spiral arms, the second the first rotated by pi.

    Arm points: r = 0.1 + 0.9 t, angle = 2 pi turns t, t ~ U(0, 1); Gaussian noise of
    standard deviation `noise` on each coordinate.
    """
    parts, labels = [], []
    for label, n in enumerate(_two_class_sizes(cfg.n_samples)):
        t = torch.rand(n, generator=gen, dtype=torch.float64)
        r = 0.1 + 0.9 * t
        angle = 2 * math.pi * cfg.turns * t + math.pi * label
        parts.append(torch.stack([r * torch.cos(angle), r * torch.sin(angle)], dim=1))
        labels.append(torch.full((n,), label, dtype=torch.int64))
    x = torch.cat(parts)
    x = x + cfg.noise * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    return x, torch.cat(labels)


def make_circles(cfg: DatasetConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A disc (label 1) of radius `factor` inside a ring (label 0) of radius 1.

    Disc points are uniform in area; ring points lie on the unit circle. Gaussian noise of
    standard deviation `noise` on each coordinate.
    """
    n_ring, n_disc = _two_class_sizes(cfg.n_samples)
    a_ring = 2 * math.pi * torch.rand(n_ring, generator=gen, dtype=torch.float64)
    ring = torch.stack([torch.cos(a_ring), torch.sin(a_ring)], dim=1)
    a_disc = 2 * math.pi * torch.rand(n_disc, generator=gen, dtype=torch.float64)
    r_disc = cfg.factor * torch.sqrt(torch.rand(n_disc, generator=gen, dtype=torch.float64))
    disc = r_disc[:, None] * torch.stack([torch.cos(a_disc), torch.sin(a_disc)], dim=1)
    x = torch.cat([ring, disc])
    x = x + cfg.noise * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    y = torch.cat([torch.zeros(n_ring, dtype=torch.int64), torch.ones(n_disc, dtype=torch.int64)])
    return x, y


def make_moons(cfg: DatasetConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaving half circles (as in scikit-learn's make_moons), centred on 0."""
    n_upper, n_lower = _two_class_sizes(cfg.n_samples)
    a_up = math.pi * torch.rand(n_upper, generator=gen, dtype=torch.float64)
    a_lo = math.pi * torch.rand(n_lower, generator=gen, dtype=torch.float64)
    upper = torch.stack([torch.cos(a_up), torch.sin(a_up)], dim=1)
    lower = torch.stack([1 - torch.cos(a_lo), 0.5 - torch.sin(a_lo)], dim=1)
    x = torch.cat([upper, lower]) - torch.tensor([0.5, 0.25], dtype=torch.float64)
    x = x + cfg.noise * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    y = torch.cat([torch.zeros(n_upper, dtype=torch.int64), torch.ones(n_lower, dtype=torch.int64)])
    return x, y


def make_xor(cfg: DatasetConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """XOR: points uniform in the square [-1, 1]^2, labelled by quadrant.

    Label 0: quadrants I and III (x1 x2 > 0); label 1: quadrants II and IV (x1 x2 < 0).
    Each class gets half the points; the quadrant within a class is a fair coin. Gaussian
    noise of standard deviation `noise` on each coordinate is added after labelling.
    """
    parts, labels = [], []
    for label, n in enumerate(_two_class_sizes(cfg.n_samples)):
        magnitude = torch.rand(n, 2, generator=gen, dtype=torch.float64)  # (n, 2) in [0, 1)
        sign = 2.0 * torch.randint(0, 2, (n,), generator=gen, dtype=torch.float64) - 1.0  # (n,)
        signs = torch.stack([sign, sign if label == 0 else -sign], dim=1)  # (n, 2)
        parts.append(magnitude * signs)
        labels.append(torch.full((n,), label, dtype=torch.int64))
    x = torch.cat(parts)
    x = x + cfg.noise * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    return x, torch.cat(labels)


def make_gaussians(cfg: DatasetConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`n_classes` isotropic Gaussian blobs with centres on the unit circle.

    Class k: centre (cos 2 pi k / C, sin 2 pi k / C), standard deviation `spread`; the
    classes share the points as evenly as possible (the first n_samples mod C get one
    more). Gaussian noise of standard deviation `noise` is added on top, as for every toy set.
    """
    c, n = cfg.n_classes, cfg.n_samples
    parts, labels = [], []
    for k in range(c):
        n_k = n // c + (1 if k < n % c else 0)
        angle = 2 * math.pi * k / c
        centre = torch.tensor([math.cos(angle), math.sin(angle)], dtype=torch.float64)
        parts.append(centre + cfg.spread * torch.randn(n_k, 2, generator=gen, dtype=torch.float64))
        labels.append(torch.full((n_k,), k, dtype=torch.int64))
    x = torch.cat(parts)
    x = x + cfg.noise * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    return x, torch.cat(labels)


# --------------------------------------------------------------------------- CSV files

#: labels read as "missing" rather than as a class name
_MISSING_LABELS = {"nan", "na", "n/a", "null"}


@dataclass(frozen=True)
class CsvTable:
    """A CSV file's data: x (N, 2) float64 coordinates, y (N,) int64 labels into class_names.

    Class names are sorted: numerically when every label is an integer, else as strings,
    so label k means the same class whatever the order of the rows.
    """

    path: str
    x: torch.Tensor
    y: torch.Tensor
    class_names: tuple[str, ...]
    coordinate_names: tuple[str, str]  # header names, or "0", "1", ... without a header
    label_name: str
    lines: tuple[int, int]  # first and last line of data


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


def read_csv(cfg: DatasetConfig) -> CsvTable:
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
) -> CsvTable:
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
    lookup = torch.tensor([index[key] for key in keys], dtype=torch.int64)  # label code -> class
    return CsvTable(
        path=path,
        x=torch.frombuffer(points, dtype=torch.float64).reshape(n, 2).clone(),
        y=lookup[torch.frombuffer(codes, dtype=torch.int64)],
        class_names=tuple(str(c) for c in classes),
        coordinate_names=(names[ix], names[iy]),
        label_name=names[il],
        lines=(lines[0], lines[1]),
    )


def check_csv(cfg: DatasetConfig, seed: int, max_memory_gb: float | None = None) -> int:
    """Build the csv dataset of `cfg` once, so that every problem with the file (DataError)
    shows before any run starts: reading it (MemoryNeedError when that would not fit in
    max_memory_gb), splitting it, standardising its training split. Returns its number of rows."""
    if cfg.path:
        _check_read_memory(Path(cfg.path), max_memory_gb)
    data = make_dataset(cfg, seed)
    return len(data.x_train) + len(data.x_test)


# --------------------------------------------------------------------------- registry

Loader = Callable[[DatasetConfig, torch.Generator], tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]]


@dataclass(frozen=True)
class Source:
    """How one named dataset is made: points, labels and class names; and whether it is standardised."""

    load: Loader
    standardise: bool = False  # True: the network sees (x - mean) / std of the training split


def _toy(
    generate: Callable[[DatasetConfig, torch.Generator], tuple[torch.Tensor, torch.Tensor]],
    class_names: tuple[str, ...],
) -> Source:
    def load(cfg: DatasetConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
        x, y = generate(cfg, gen)
        return x, y, class_names

    return Source(load)


def _load_gaussians(
    cfg: DatasetConfig, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    x, y = make_gaussians(cfg, gen)
    return x, y, tuple(f"blob {k}" for k in range(cfg.n_classes))


def _load_csv(cfg: DatasetConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    table = read_csv(cfg)
    return table.x, table.y, table.class_names


#: name -> Source
DATASETS: dict[str, Source] = {
    "spirals": _toy(make_spirals, ("arm 0", "arm 1")),
    "circles": _toy(make_circles, ("ring", "disc")),
    "moons": _toy(make_moons, ("upper moon", "lower moon")),
    "xor": _toy(make_xor, ("quadrants I, III", "quadrants II, IV")),
    "gaussians": Source(_load_gaussians),
    "csv": Source(_load_csv, standardise=True),
}


def _standardisation(cfg: DatasetConfig, x_train: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, population std) of the training points x_train (N, 2), each (2,); DataError if a std is 0."""
    shift = x_train.mean(0)
    scale = x_train.std(0, correction=0)
    for i in range(2):
        if not (math.isfinite(scale[i].item()) and scale[i].to(torch.float32).item() > 0):
            name = read_csv(cfg).coordinate_names[i] if cfg.name == "csv" else f"x{i + 1}"
            raise DataError(
                f"{cfg.path or cfg.name}: coordinate column {name!r} is constant ({shift[i].item():g}) over "
                f"the {len(x_train)} training points; expected coordinates that vary (they are standardised)"
            )
    return shift, scale


def source_fingerprint(cfg: DatasetConfig) -> str | None:
    """sha256 of the file a dataset is read from (csv), None for generated datasets.

    Saved with a run, so that re-reading the run from an edited file is refused instead of
    silently regenerating different data.
    """
    if cfg.name != "csv" or cfg.path is None:
        return None
    digest = hashlib.sha256()
    try:
        with open(cfg.path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()
    except OSError as err:
        raise DataError(f"{cfg.path}: cannot be read ({err.strerror})") from None


def make_dataset(cfg: DatasetConfig, seed: int) -> Dataset:
    """Make the dataset `cfg.name` and split it into train and test, both from `seed`.

    The split is a seeded random permutation; the test set holds
    round(N * test_fraction) points (N = n_samples, or a CSV's number of rows). A dataset
    whose Source says `standardise` carries the mean and std of its training points as
    input_shift and input_scale; the others carry the identity.
    """
    if cfg.name not in DATASETS:
        raise DataError(f"dataset must be one of {{{', '.join(sorted(DATASETS))}}}, got '{cfg.name}'")
    source = DATASETS[cfg.name]
    gen = torch.Generator().manual_seed(seed)
    x, y, class_names = source.load(cfg, gen)
    perm = torch.randperm(len(x), generator=gen)
    n_test = round(len(x) * cfg.test_fraction)
    if cfg.name == "csv":
        check_split(len(x), cfg.test_fraction, f"{cfg.path} ({len(x)} data rows)", DataError)
    test, train = perm[:n_test], perm[n_test:]
    data = Dataset(cfg.name, x[train], y[train], x[test], y[test], class_names)
    if source.standardise:
        shift, scale = _standardisation(cfg, data.x_train)
        data = Dataset(cfg.name, data.x_train, y[train], x[test], y[test], class_names, shift, scale)
    return data


__all__ = ["DATASETS", "Dataset", "MIN_SAMPLES", "check_csv", "make_dataset", "read_csv"]
