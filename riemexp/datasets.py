"""2-D datasets: toy sets generated in memory from a seed, and the user's own CSV file.

Each toy generator takes a `DatasetConfig` and a `torch.Generator` and returns points
x (N, 2) float64 and integer labels y (N,). A CSV file is read by `read_csv` (parsed and
checked by `riemexp.csvfile`: every bad row is a DataError naming the file, the line and what
was expected). `make_dataset` adds the seeded train/test split and, for CSV data, the
standardisation statistics of the training split. Datasets are looked up in the `DATASETS` dict by name.

Standardisation convention: Dataset points always stay in the data's own units. A dataset
in user units (csv) carries input_shift = mean and input_scale = std (population std, per
coordinate) of its TRAINING points; `riemexp.train.train` copies them into the network's
buffers, so the network sees (x - input_shift) / input_scale. The toy sets carry the
identity (shift 0, scale 1), so their points reach the network unchanged.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from riemexp.config import DATASET_NAMES, DatasetConfig
from riemexp.csvfile import MIN_SAMPLES, _check_read_memory, check_split, parse_csv
from riemexp.errors import DataError


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


def read_csv(cfg: DatasetConfig) -> CsvTable:
    """Read and check the CSV file `cfg.path` (`riemexp.csvfile.parse_csv`, cached while the file
    is unchanged) as tensors. Expected: a header line (optional) and rows of at least 3 fields, with
    two finite numeric coordinates and a label (a name or an integer) in the configured columns;
    two classes or more; at least MIN_SAMPLES rows. Anything else raises DataError naming the file,
    the line and what was expected."""
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
# the config checks dataset names without importing torch (riemexp.config.DATASET_NAMES)
assert tuple(DATASETS) == DATASET_NAMES, "riemexp.config.DATASET_NAMES must list the DATASETS"


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


__all__ = ["DATASETS", "Dataset", "MIN_SAMPLES", "check_csv", "check_split", "make_dataset", "read_csv"]
