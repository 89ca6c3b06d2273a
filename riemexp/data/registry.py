"""The datasets by name: each is a config class and a `Source` (riemexp.data.base).

Adding a dataset is one file (its config class with its options and checks, its generator,
its Source: see toy.py) and its line in BUILT_IN below; from Python, `register(source)` adds
one for the running process. The config (`riemexp.config.load_config`), Hydra's config group
`dataset` (`riemexp.commands.schema`) and `make_dataset` all read this registry. No torch here.
"""

from __future__ import annotations

from typing import Any

from riemexp.data import csv, toy
from riemexp.data.base import DatasetConfig, Source
from riemexp.errors import ConfigError

BUILT_IN: tuple[Source, ...] = (
    toy.SPIRALS,
    toy.CIRCLES,
    toy.MOONS,
    toy.XOR,
    toy.GAUSSIANS,
    csv.CSV,
)

#: name -> Source, in the order registered
DATASETS: dict[str, Source] = {}


def register(source: Source) -> Source:
    """Make `source` a dataset, named by its config class's `name`; returns it. ValueError when
    the name is another dataset's already."""
    name = source.name
    if not name:
        raise ValueError(f"{source.config.__name__}.name must default to the dataset's name")
    if name in DATASETS and DATASETS[name] is not source:
        raise ValueError(f"a dataset named '{name}' is registered already")
    DATASETS[name] = source
    return source


for _source in BUILT_IN:
    register(_source)


def names() -> list[str]:
    """The registered datasets' names, sorted."""
    return sorted(DATASETS)


def config_class(name: Any) -> type[DatasetConfig]:
    """The config class of dataset `name`; ConfigError naming the choices if there is none."""
    if not isinstance(name, str) or name not in DATASETS:
        shown = f"'{name}'" if isinstance(name, str) else repr(name)
        raise ConfigError(f"dataset must be one of {{{', '.join(names())}}}, got {shown}")
    return DATASETS[name].config


def source_of(cfg: DatasetConfig) -> Source:
    """The Source that makes the dataset of `cfg`."""
    config_class(cfg.name)
    return DATASETS[cfg.name]


def size(cfg: DatasetConfig, max_memory_gb: float | None = None) -> tuple[int, int]:
    """(points, classes) of the dataset of cfg, before it is made (a CSV file is read)."""
    return source_of(cfg).size(cfg, max_memory_gb)


def fingerprint(cfg: DatasetConfig) -> str | None:
    """sha256 of the file a dataset is read from (csv), None for generated datasets.

    Saved with a run, so that re-reading the run from an edited file is refused instead of
    silently regenerating different data.
    """
    return source_of(cfg).fingerprint(cfg)


__all__ = ["BUILT_IN", "DATASETS", "config_class", "fingerprint", "names", "register", "size", "source_of"]
