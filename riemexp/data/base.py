"""What every dataset shares: the options of its config, their range checks, and the `Source`
by which `riemexp.data.registry` makes it. No torch and no file I/O here.

A dataset is one config class (a frozen dataclass deriving from `DatasetConfig`, its `name`
defaulting to the dataset's name, its own options with their defaults, a `check` method for
their ranges) and one `Source` (how its points are made). `DatasetConfig.of("moons", ...)`
builds the config of any registered dataset by name.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

from riemexp.errors import ConfigError

if TYPE_CHECKING:
    import torch

#: the fewest points (rows of a CSV) a dataset may have: enough for a train and a test split
MIN_SAMPLES = 10


def check(ok: bool, message: str) -> None:
    """Raise ConfigError(message) unless ok."""
    if not ok:
        raise ConfigError(message)


def check_split(n: int, test_fraction: float, what: str, error: type[Exception] = ConfigError) -> int:
    """The number of test points round(n * test_fraction); raise `error` unless both splits are non-empty."""
    n_test = round(n * test_fraction)
    if not 1 <= n_test <= n - 1:
        raise error(
            f"dataset.test_fraction={test_fraction} of {what} leaves {n_test} test and "
            f"{n - n_test} training points; expected at least 1 of each"
        )
    return n_test


@dataclass(frozen=True)
class DatasetConfig:
    """The options every dataset has; each dataset's own class adds its options.

    `seed` None means: use the run's top-level seed. Make a dataset's config with its class
    (`riemexp.data.SpiralsConfig(turns=2)`) or by name (`DatasetConfig(name="spirals", turns=2)`,
    `DatasetConfig.of("spirals", turns=2)`): either way it is the dataset's own class.
    """

    name: str = ""
    test_fraction: float = 0.25  # held out for testing (a seeded random split)
    seed: int | None = None

    #: the kind of thing a config of this family is, in messages
    family: ClassVar[str] = "dataset"
    #: the dataset of `DatasetConfig(...)` without a name
    default_dataset: ClassVar[str] = "spirals"

    def __new__(cls, *args: Any, **options: Any) -> DatasetConfig:
        """`DatasetConfig(name="moons", n_samples=500)` makes the named dataset's own config
        (here a MoonsConfig); an option the dataset does not have is a ConfigError."""
        if cls is DatasetConfig:
            name = options.get("name", args[0] if args else cls.default_dataset)
            from riemexp.data.registry import config_class

            own = config_class(name)
            unknown = sorted(set(options) - set(own.option_names()))
            if unknown or len(args) > 1:
                raise ConfigError(
                    f"unknown option dataset.{unknown[0] if unknown else '?'} for dataset '{name}'; "
                    f"expected one of: {', '.join(own.option_names())}"
                )
            return super().__new__(own)
        return super().__new__(cls)

    def __post_init__(self) -> None:
        if type(self) is DatasetConfig:
            raise TypeError(
                "DatasetConfig holds the options every dataset shares; make one dataset's config by "
                "name, DatasetConfig.of('moons', n_samples=500), or with its class (riemexp.data.MoonsConfig)"
            )
        own = type(self).default_name()
        if self.name != own:
            raise ConfigError(f"dataset.name of a {type(self).__name__} must be '{own}', got {self.name!r}")

    @classmethod
    def default_name(cls) -> str:
        """The dataset this class configures: the default of its `name` field."""
        return str(cls.__dataclass_fields__["name"].default)

    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @staticmethod
    def of(name: str, **options: Any) -> DatasetConfig:
        """The config of the registered dataset `name` with `options` (ConfigError for an unknown
        dataset or an option it does not have)."""
        from riemexp.data.registry import config_class

        cls = config_class(name)
        unknown = sorted(set(options) - set(cls.option_names()))
        if unknown:
            raise ConfigError(
                f"unknown option dataset.{unknown[0]} for dataset '{name}'; expected one of: "
                f"{', '.join(cls.option_names())}"
            )
        return cls(**{"name": name, **options})

    def check(self) -> None:
        """Check the ranges of the options (ConfigError); subclasses add theirs. Reads no file."""
        check(
            0 < self.test_fraction < 1,
            f"dataset.test_fraction must lie in (0, 1), got {self.test_fraction}",
        )


class Source:
    """How one registered dataset is made. Subclasses set `config` and implement `load`.

    The registry (`riemexp.data.registry`) finds a dataset's Source by its config's name;
    `riemexp.data.make_dataset` splits and, where `standardise` is set, standardises what `load`
    returns.
    """

    config: type[DatasetConfig]
    #: True: the data are in the user's own units; the network sees (x - mean) / std of the
    #: training split (riemexp.data.dataset)
    standardise: bool = False

    @property
    def name(self) -> str:
        return self.config.default_name()

    def load(self, cfg: Any, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
        """All points x (N, 2) float64, labels y (N,) int64 and the class names, from `gen`."""
        raise NotImplementedError

    def size(self, cfg: Any, max_memory_gb: float | None = None) -> tuple[int, int]:
        """(points, classes) of the dataset, known before it is made (for the memory checks).
        DataError or MemoryNeedError when the data cannot be had."""
        raise NotImplementedError

    def check(self, cfg: Any, seed: int, max_memory_gb: float | None = None) -> None:
        """Anything else that would stop a run, said before it starts (a CSV's split and
        standardisation). Nothing for generated data."""

    def fingerprint(self, cfg: Any) -> str | None:
        """sha256 of the file the data come from; None for generated data."""
        return None

    def where(self, cfg: Any) -> str:
        """The data's origin, in messages: a file's path, or the dataset's name."""
        return str(cfg.name)

    def describe(self, cfg: Any, n: int) -> str:
        """The data's size, in messages about the split."""
        return f"{n} points"

    def coordinate_names(self, cfg: Any) -> tuple[str, str]:
        return ("x1", "x2")


__all__ = ["MIN_SAMPLES", "DatasetConfig", "Source", "check", "check_split"]
