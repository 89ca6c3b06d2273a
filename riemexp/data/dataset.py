"""A dataset made, split and (for data in the user's units) standardised: `make_dataset`.

Standardisation convention: Dataset points always stay in the data's own units. A dataset
whose Source says `standardise` (csv) carries input_shift = mean and input_scale = std
(population std, per coordinate) of its TRAINING points; `riemexp.train.train` copies them into
the network's buffers, so the network sees (x - input_shift) / input_scale. The generated sets
carry the identity (shift 0, scale 1), so their points reach the network unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from riemexp.data.base import DatasetConfig, Source, check_split
from riemexp.data.registry import source_of
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


def _standardisation(
    source: Source, cfg: DatasetConfig, x_train: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, population std) of the training points x_train (N, 2), each (2,); DataError if a std is 0."""
    shift = x_train.mean(0)
    scale = x_train.std(0, correction=0)
    for i in range(2):
        if not (math.isfinite(scale[i].item()) and scale[i].to(torch.float32).item() > 0):
            name = source.coordinate_names(cfg)[i]
            raise DataError(
                f"{source.where(cfg)}: coordinate column {name!r} is constant ({shift[i].item():g}) over "
                f"the {len(x_train)} training points; expected coordinates that vary (they are standardised)"
            )
    return shift, scale


def make_dataset(cfg: DatasetConfig, seed: int) -> Dataset:
    """Make the dataset of `cfg` and split it into train and test, both from `seed`.

    The split is a seeded random permutation; the test set holds round(N * test_fraction)
    points (N = n_samples, or a CSV's number of rows). A dataset whose Source says `standardise`
    carries the mean and std of its training points as input_shift and input_scale; the others
    carry the identity.
    """
    source = source_of(cfg)
    gen = torch.Generator().manual_seed(seed)
    x, y, class_names = source.load(cfg, gen)
    perm = torch.randperm(len(x), generator=gen)
    n_test = check_split(len(x), cfg.test_fraction, source.describe(cfg, len(x)), DataError)
    test, train = perm[:n_test], perm[n_test:]
    data = Dataset(cfg.name, x[train], y[train], x[test], y[test], class_names)
    if source.standardise:
        shift, scale = _standardisation(source, cfg, data.x_train)
        data = Dataset(cfg.name, data.x_train, y[train], x[test], y[test], class_names, shift, scale)
    return data


__all__ = ["Dataset", "make_dataset"]
