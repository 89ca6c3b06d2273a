"""Toy 2-D datasets, generated in memory from a seed.

Each generator takes a `DatasetConfig` and a `torch.Generator` and returns points
x (N, 2) float64 and integer labels y (N,). `make_dataset` adds the seeded train/test
split. Datasets are looked up in the `DATASETS` dict by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from riemexp.config import DatasetConfig
from riemexp.errors import DataError

MIN_SAMPLES = 10


@dataclass(frozen=True)
class Dataset:
    """A labelled 2-D dataset split into train and test.

    x_train (N_train, 2), x_test (N_test, 2): float64 points in the dataset's own units.
    y_train (N_train,), y_test (N_test,): int64 labels in 0 .. n_classes - 1.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    class_names: tuple[str, ...]

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


Generator = Callable[[DatasetConfig, torch.Generator], tuple[torch.Tensor, torch.Tensor]]

#: name -> (generator, class names)
DATASETS: dict[str, tuple[Generator, tuple[str, ...]]] = {
    "spirals": (make_spirals, ("arm 0", "arm 1")),
    "circles": (make_circles, ("ring", "disc")),
    "moons": (make_moons, ("upper moon", "lower moon")),
}


def make_dataset(cfg: DatasetConfig, seed: int) -> Dataset:
    """Generate the dataset `cfg.name` and split it into train and test, both from `seed`.

    The split is a seeded random permutation; the test set holds
    round(n_samples * test_fraction) points.
    """
    if cfg.name not in DATASETS:
        raise DataError(f"dataset must be one of {{{', '.join(sorted(DATASETS))}}}, got '{cfg.name}'")
    generate, class_names = DATASETS[cfg.name]
    gen = torch.Generator().manual_seed(seed)
    x, y = generate(cfg, gen)
    perm = torch.randperm(len(x), generator=gen)
    n_test = round(len(x) * cfg.test_fraction)
    test, train = perm[:n_test], perm[n_test:]
    return Dataset(cfg.name, x[train], y[train], x[test], y[test], class_names)
