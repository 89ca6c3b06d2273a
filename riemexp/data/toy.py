"""The toy datasets, generated in memory from a seed: spirals, circles, moons, xor, gaussians.

Each has its config class (the options that apply to it, with their defaults and range checks)
and a generator `make_NAME(cfg, gen)` returning points x (N, 2) float64 and integer labels
y (N,) drawn from the `torch.Generator` gen. Their points reach the network unchanged (no
standardisation). torch is imported by the generators only, so that configs load without it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from riemexp.data.base import MIN_SAMPLES, DatasetConfig, Source, check, check_split

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class GeneratedConfig(DatasetConfig):
    """The options of every generated dataset: how many points, and the Gaussian noise (standard
    deviation, on each coordinate) added to them."""

    n_samples: int = 1000  # points over all classes
    noise: float = 0.05

    def check(self) -> None:
        super().check()
        check(
            self.n_samples >= MIN_SAMPLES,
            f"dataset.n_samples must be >= {MIN_SAMPLES} (enough for a train and a test split), "
            f"got {self.n_samples}",
        )
        check_split(self.n_samples, self.test_fraction, f"n_samples={self.n_samples}")
        check(self.noise >= 0, f"dataset.noise must be >= 0, got {self.noise}")


@dataclass(frozen=True)
class SpiralsConfig(GeneratedConfig):
    """Two interleaved spiral arms: r = 0.1 + 0.9 t, angle = 2 pi turns t (+ pi for arm 1)."""

    name: str = "spirals"
    turns: float = 1.0  # turns of each arm

    def check(self) -> None:
        super().check()
        check(self.turns > 0, f"dataset.turns must be > 0, got {self.turns}")


@dataclass(frozen=True)
class CirclesConfig(GeneratedConfig):
    """A disc (inner class) inside a ring (outer class): the topological test of width 2."""

    name: str = "circles"
    factor: float = 0.5  # radius of the disc relative to the ring

    def check(self) -> None:
        super().check()
        check(0 < self.factor < 1, f"dataset.factor must lie in (0, 1), got {self.factor}")


@dataclass(frozen=True)
class MoonsConfig(GeneratedConfig):
    """Two interleaving half circles."""

    name: str = "moons"


@dataclass(frozen=True)
class XorConfig(GeneratedConfig):
    """XOR: points uniform in the square [-1, 1]^2; quadrants I and III are one class, II and IV
    the other. The noise is added after labelling."""

    name: str = "xor"


@dataclass(frozen=True)
class GaussiansConfig(GeneratedConfig):
    """n_classes Gaussian blobs with centres evenly spaced on the unit circle, one class each."""

    name: str = "gaussians"
    noise: float = 0.0  # extra Gaussian noise on each coordinate, on top of spread
    n_classes: int = 3
    spread: float = 0.25  # standard deviation of each blob

    def check(self) -> None:
        super().check()
        check(self.n_classes >= 2, f"dataset.n_classes must be >= 2, got {self.n_classes}")
        check(self.spread > 0, f"dataset.spread must be > 0, got {self.spread}")
        check(
            self.n_samples >= 2 * self.n_classes,
            f"dataset.n_samples={self.n_samples} is too few for n_classes={self.n_classes}; "
            f"expected at least 2 points per class (n_samples >= {2 * self.n_classes})",
        )


# --------------------------------------------------------------------------- generators


def _two_class_sizes(n: int) -> tuple[int, int]:
    return n // 2, n - n // 2


def _noisy(x: torch.Tensor, noise: float, gen: torch.Generator) -> torch.Tensor:
    """x plus Gaussian noise of standard deviation `noise` on each coordinate."""
    import torch

    return x + noise * torch.randn(x.shape, generator=gen, dtype=torch.float64)


def make_spirals(cfg: SpiralsConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved spiral arms, the second the first rotated by pi.

    Arm points: r = 0.1 + 0.9 t, angle = 2 pi turns t, t ~ U(0, 1); Gaussian noise of
    standard deviation `noise` on each coordinate.
    """
    import torch

    parts, labels = [], []
    for label, n in enumerate(_two_class_sizes(cfg.n_samples)):
        t = torch.rand(n, generator=gen, dtype=torch.float64)
        r = 0.1 + 0.9 * t
        angle = 2 * math.pi * cfg.turns * t + math.pi * label
        parts.append(torch.stack([r * torch.cos(angle), r * torch.sin(angle)], dim=1))
        labels.append(torch.full((n,), label, dtype=torch.int64))
    return _noisy(torch.cat(parts), cfg.noise, gen), torch.cat(labels)


def make_circles(cfg: CirclesConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A disc (label 1) of radius `factor` inside a ring (label 0) of radius 1.

    Disc points are uniform in area; ring points lie on the unit circle. Gaussian noise of
    standard deviation `noise` on each coordinate.
    """
    import torch

    n_ring, n_disc = _two_class_sizes(cfg.n_samples)
    a_ring = 2 * math.pi * torch.rand(n_ring, generator=gen, dtype=torch.float64)
    ring = torch.stack([torch.cos(a_ring), torch.sin(a_ring)], dim=1)
    a_disc = 2 * math.pi * torch.rand(n_disc, generator=gen, dtype=torch.float64)
    r_disc = cfg.factor * torch.sqrt(torch.rand(n_disc, generator=gen, dtype=torch.float64))
    disc = r_disc[:, None] * torch.stack([torch.cos(a_disc), torch.sin(a_disc)], dim=1)
    y = torch.cat([torch.zeros(n_ring, dtype=torch.int64), torch.ones(n_disc, dtype=torch.int64)])
    return _noisy(torch.cat([ring, disc]), cfg.noise, gen), y


def make_moons(cfg: MoonsConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaving half circles (as in scikit-learn's make_moons), centred on 0."""
    import torch

    n_upper, n_lower = _two_class_sizes(cfg.n_samples)
    a_up = math.pi * torch.rand(n_upper, generator=gen, dtype=torch.float64)
    a_lo = math.pi * torch.rand(n_lower, generator=gen, dtype=torch.float64)
    upper = torch.stack([torch.cos(a_up), torch.sin(a_up)], dim=1)
    lower = torch.stack([1 - torch.cos(a_lo), 0.5 - torch.sin(a_lo)], dim=1)
    x = torch.cat([upper, lower]) - torch.tensor([0.5, 0.25], dtype=torch.float64)
    y = torch.cat([torch.zeros(n_upper, dtype=torch.int64), torch.ones(n_lower, dtype=torch.int64)])
    return _noisy(x, cfg.noise, gen), y


def make_xor(cfg: XorConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """XOR: points uniform in the square [-1, 1]^2, labelled by quadrant.

    Label 0: quadrants I and III (x1 x2 > 0); label 1: quadrants II and IV (x1 x2 < 0).
    Each class gets half the points; the quadrant within a class is a fair coin. Gaussian
    noise of standard deviation `noise` on each coordinate is added after labelling.
    """
    import torch

    parts, labels = [], []
    for label, n in enumerate(_two_class_sizes(cfg.n_samples)):
        magnitude = torch.rand(n, 2, generator=gen, dtype=torch.float64)  # (n, 2) in [0, 1)
        sign = 2.0 * torch.randint(0, 2, (n,), generator=gen, dtype=torch.float64) - 1.0  # (n,)
        signs = torch.stack([sign, sign if label == 0 else -sign], dim=1)  # (n, 2)
        parts.append(magnitude * signs)
        labels.append(torch.full((n,), label, dtype=torch.int64))
    return _noisy(torch.cat(parts), cfg.noise, gen), torch.cat(labels)


def make_gaussians(cfg: GaussiansConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`n_classes` isotropic Gaussian blobs with centres on the unit circle.

    Class k: centre (cos 2 pi k / C, sin 2 pi k / C), standard deviation `spread`; the
    classes share the points as evenly as possible (the first n_samples mod C get one
    more). Gaussian noise of standard deviation `noise` is added on top, as for every toy set.
    """
    import torch

    c, n = cfg.n_classes, cfg.n_samples
    parts, labels = [], []
    for k in range(c):
        n_k = n // c + (1 if k < n % c else 0)
        angle = 2 * math.pi * k / c
        centre = torch.tensor([math.cos(angle), math.sin(angle)], dtype=torch.float64)
        parts.append(centre + cfg.spread * torch.randn(n_k, 2, generator=gen, dtype=torch.float64))
        labels.append(torch.full((n_k,), k, dtype=torch.int64))
    return _noisy(torch.cat(parts), cfg.noise, gen), torch.cat(labels)


# --------------------------------------------------------------------------- sources


class Generated(Source):
    """A dataset generated from the seed by `generate(cfg, gen) -> (x, y)`; its class names are
    fixed, or given by `class_names(cfg)`."""

    def __init__(
        self,
        config: type[GeneratedConfig],
        generate: Callable[[Any, torch.Generator], tuple[torch.Tensor, torch.Tensor]],
        class_names: tuple[str, ...] | Callable[[Any], tuple[str, ...]],
    ) -> None:
        self.config = config
        self.generate = generate
        self.class_names = class_names

    def names(self, cfg: Any) -> tuple[str, ...]:
        return self.class_names(cfg) if callable(self.class_names) else self.class_names

    def load(self, cfg: Any, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
        x, y = self.generate(cfg, gen)
        return x, y, self.names(cfg)

    def size(self, cfg: Any, max_memory_gb: float | None = None) -> tuple[int, int]:
        return cfg.n_samples, len(self.names(cfg))

    def describe(self, cfg: Any, n: int) -> str:
        return f"n_samples={n}"


SPIRALS = Generated(SpiralsConfig, make_spirals, ("arm 0", "arm 1"))
CIRCLES = Generated(CirclesConfig, make_circles, ("ring", "disc"))
MOONS = Generated(MoonsConfig, make_moons, ("upper moon", "lower moon"))
XOR = Generated(XorConfig, make_xor, ("quadrants I, III", "quadrants II, IV"))
GAUSSIANS = Generated(
    GaussiansConfig, make_gaussians, lambda cfg: tuple(f"blob {k}" for k in range(cfg.n_classes))
)

__all__ = [
    "CIRCLES",
    "CirclesConfig",
    "GAUSSIANS",
    "GaussiansConfig",
    "Generated",
    "GeneratedConfig",
    "MOONS",
    "MoonsConfig",
    "SPIRALS",
    "SpiralsConfig",
    "XOR",
    "XorConfig",
]
