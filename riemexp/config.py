"""Typed run configuration, checked once when a config is loaded.

Hydra composes YAML from `conf/` into a plain mapping; `load_config` turns that mapping
into frozen dataclasses and checks every value before any work starts. Core functions
(`riemexp.train.run`, ...) take a `RunConfig`, never a Hydra object, so Python users and
tests can build one directly:

    cfg = RunConfig(dataset=DatasetConfig(name="moons"), network=NetworkConfig(depth=4))
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from riemexp.errors import ConfigError, DataError, MemoryNeedError

#: the data are points of the plane; wider networks pad them with zeros
INPUT_DIM = 2

#: dataset.name choices (`riemexp.datasets.DATASETS` makes them; named here so that checking a
#: config needs no torch)
DATASET_NAMES = ("spirals", "circles", "moons", "xor", "gaussians", "csv")


class Activation(str, Enum):
    TANH = "tanh"
    SIGMOID = "sigmoid"
    RELU = "relu"
    SOFTPLUS = "softplus"
    IDENTITY = "identity"


class OptimizerName(str, Enum):
    ADAM = "adam"
    SGD = "sgd"


class Device(str, Enum):
    AUTO = "auto"  # cuda when available, else cpu
    CPU = "cpu"
    CUDA = "cuda"


class GlyphConvention(str, Enum):
    STRETCH = "stretch"  # ellipse axes proportional to sqrt(lambda): image of a unit circle
    UNIT_BALL = "unit_ball"  # axes proportional to 1/sqrt(lambda): the unit ball of g


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    """The resolved field types of a config dataclass (computed once: typing's lookup is slow)."""
    return typing.get_type_hints(cls)


def _coerce_enums(obj: Any) -> None:
    """Let Python callers pass enum fields as plain strings: NetworkConfig(kind="plain")."""
    hints = _type_hints(type(obj))  # type: ignore[arg-type]  # (a class is hashable)
    for f in dataclasses.fields(obj):
        hint, value = hints[f.name], getattr(obj, f.name)
        if isinstance(hint, type) and issubclass(hint, Enum) and not isinstance(value, hint):
            try:
                object.__setattr__(obj, f.name, hint(value))
            except ValueError:
                choices = ", ".join(m.value for m in hint)
                raise ConfigError(f"{f.name} must be one of {{{choices}}}, got {value!r}") from None
        elif isinstance(value, list):
            object.__setattr__(obj, f.name, tuple(value))


@dataclass(frozen=True)
class DatasetConfig:
    """A 2-D dataset: a toy set generated in memory, or the user's own CSV (`riemexp.datasets`).

    `seed` None means: use the run's top-level seed.
    """

    name: str = "spirals"
    n_samples: int = 1000
    noise: float = 0.05
    test_fraction: float = 0.25
    seed: int | None = None
    # spirals: number of turns of each arm
    turns: float = 1.0
    # circles: radius of the inner disc relative to the outer ring
    factor: float = 0.5
    # gaussians: number of classes (blobs, centred on the unit circle) and each blob's std
    n_classes: int = 3
    spread: float = 0.25
    # csv: the file (relative to the working directory; kept absolute) and its layout.
    # Columns are names (from the header) or 0-based indices. n_samples and noise are unused.
    path: str | None = None
    header: bool | None = None  # None: detect (a first line whose coordinates are not numbers)
    coordinate_columns: tuple[str | int, ...] = (0, 1)
    label_column: str | int = 2
    delimiter: str = ","

    def __post_init__(self) -> None:
        _coerce_enums(self)
        if self.path is not None and self.path != "":
            # absolute, so that a run folder can regenerate its dataset from any directory
            object.__setattr__(self, "path", os.path.abspath(os.path.expanduser(self.path)))


@dataclass(frozen=True)
class NetworkConfig:
    """Width, depth and update rule of the hidden layers; a linear softmax head follows.

    kind: a name registered in `riemexp.nets` (built in: plain, residual, c2).
    """

    kind: str = "residual"
    width: int = 2
    depth: int = 10
    step_size: float = 0.5  # h; used by residual and c2, ignored by plain
    activation: Activation = Activation.TANH
    #: residual (kinds with a `contraction_factor`): keep c_l = h ||W_l||_2 max|sigma'| <= lipschitz
    #: (0 < c < 1) in training, so that every layer is a certified homeomorphism (riemexp.certify)
    lipschitz: float | None = None

    def __post_init__(self) -> None:
        _coerce_enums(self)
        from riemexp.nets.registry import get_kind  # torch-free

        get_kind(self.kind)  # ConfigError naming the registered kinds


@dataclass(frozen=True)
class OptimConfig:
    name: OptimizerName = OptimizerName.ADAM
    lr: float = 0.05
    epochs: int = 300
    batch_size: int | None = None  # None: full batch
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd only

    def __post_init__(self) -> None:
        _coerce_enums(self)


@dataclass(frozen=True)
class GeometryConfig:
    """Where the metric is evaluated after training (`riemexp.geometry`)."""

    enabled: bool = True
    grid_density: int = 80  # grid points along each axis of the data's bounding box
    margin: float = 0.1  # bounding box grown by this fraction of its size on every side
    max_memory_gb: float = 4.0  # refuse a grid whose arrays would need more
    # g_0, class probabilities, losses and accuracies on the grid at initialisation and at this many
    # epochs spread over training, in snapshots.npz (`riemexp.analyses.snapshots`); 0: none
    snapshots: int = 20
    # the band around the decision boundary: half-width = this fraction of the grid box's shorter side
    boundary_band: float = 0.05


@dataclass(frozen=True)
class PlotConfig:
    """Figures written to `plots/` (`riemexp.plotting`)."""

    enabled: bool = True
    layers: tuple[int, ...] | None = None  # None: about `n_layers` evenly spaced
    n_layers: int = 8
    glyph_density: int = 12  # glyphs along each axis
    glyph: GlyphConvention = GlyphConvention.STRETCH
    formats: tuple[str, ...] = ("png",)
    animation: bool = False

    def __post_init__(self) -> None:
        _coerce_enums(self)


@dataclass(frozen=True)
class OdeConfig:
    """The ODE-consistency check of residual and c2 networks (`riemexp.ode`)."""

    enabled: bool = True
    max_refinement: int = 64  # k = 1, 2, 4, ..., max_refinement sub-steps per layer
    rtol: float = 1e-9
    atol: float = 1e-9
    max_steps_per_layer: int = 1000  # reference solve: more steps in a layer = not converged


@dataclass(frozen=True)
class RefineConfig:
    """The refinement path of the depth limit (`riemexp.refine`): grow a network from a shallower one.

    from_depth None: train network.depth from scratch. D: train depth D first (optim.epochs, step
    network.step_size * network.depth / D, the same total time T = L h), then repeatedly split every
    layer into two layers of half the step with the same weights (the same piecewise-constant ODE)
    and train `epochs` more epochs (0: no training), until network.depth. network.depth / D must be
    a power of two >= 2.
    """

    from_depth: int | None = None
    epochs: int = 100
    lr: float | None = None  # the learning rate after each doubling; None: optim.lr


@dataclass(frozen=True)
class RunConfig:
    """Everything one `riemexp train` run needs. One seed fixes data, init and training."""

    seed: int = 0
    device: Device = Device.AUTO
    max_memory_gb: float | None = None  # refuse any stage that would need more (None: free memory)
    threads: int | str = "auto"  # torch threads: auto (riemexp.threads) or 1 .. the CPUs
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    plot: PlotConfig = field(default_factory=PlotConfig)
    ode: OdeConfig = field(default_factory=OdeConfig)
    refine: RefineConfig = field(default_factory=RefineConfig)

    @property
    def data_seed(self) -> int:
        return self.seed if self.dataset.seed is None else self.dataset.seed

    def __post_init__(self) -> None:
        _coerce_enums(self)


# --------------------------------------------------------------------------- loading


def _describe(value: Any) -> str:
    return repr(value) if not isinstance(value, str) else f"'{value}'"


def _convert(value: Any, hint: Any, where: str) -> Any:
    """Convert one YAML value to the annotated type, or raise ConfigError."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _convert(value, inner[0], where)
        for option in inner:  # e.g. str | int: the first type that accepts the value
            try:
                return _convert(value, option, where)
            except ConfigError:
                pass
        if where == "threads":  # int | str: the one place the words say more than the types
            raise ConfigError(f"threads must be auto or an integer >= 1, got {_describe(value)}")
        names = " or ".join(getattr(a, "__name__", str(a)) for a in inner)
        raise ConfigError(f"{where} must be a {names}, got {_describe(value)}")
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping of options, got {_describe(value)}")
        return _build(hint, value, where)
    if isinstance(hint, type) and issubclass(hint, Enum):
        choices = ", ".join(m.value for m in hint)
        try:
            return hint(value)
        except ValueError:
            raise ConfigError(f"{where} must be one of {{{choices}}}, got {_describe(value)}") from None
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {_describe(value)}")
        return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {_describe(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {_describe(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {_describe(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {_describe(value)}")
        return value
    raise TypeError(f"unsupported config type {hint!r} at {where}")  # programming error


def _build(cls: type, values: Mapping[str, Any], where: str) -> Any:
    hints = _type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(f"unknown option {prefix}{unknown[0]}; expected one of: {', '.join(names)}")
    kwargs = {
        name: _convert(values[name], hints[name], f"{where}.{name}" if where else name)
        for name in names
        if name in values
    }
    return cls(**kwargs)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def validate(cfg: RunConfig) -> RunConfig:
    """Check the ranges of every value; return cfg unchanged or raise ConfigError.

    A csv dataset's file is read and checked here too (DataError), so that a bad file is
    reported before any run folder exists. Nothing here loads torch but the last check of a
    valid CSV (its seeded split and standardisation).
    """
    from riemexp.csvfile import MIN_SAMPLES, _check_read_memory, check_split, parse_csv
    from riemexp.threads import check_setting

    d, n, o, g, p, e = cfg.dataset, cfg.network, cfg.optim, cfg.geometry, cfg.plot, cfg.ode
    for section in ("dataset", "network", "optim", "geometry", "plot", "ode", "refine"):
        for f in dataclasses.fields(getattr(cfg, section)):
            value = getattr(getattr(cfg, section), f.name)
            _check(
                not isinstance(value, float) or math.isfinite(value),
                f"{section}.{f.name} must be a finite number, got {value}",
            )
    for name, seed in (("seed", cfg.seed), ("dataset.seed", d.seed)):
        _check(
            seed is None or -(2**63) <= seed < 2**63 - 1,
            f"{name} must lie in [-2**63, 2**63 - 1) (a 64-bit integer), got {seed}",
        )
    check_setting(cfg.threads)
    _check(
        d.name in DATASET_NAMES,
        f"dataset must be one of {{{', '.join(sorted(DATASET_NAMES))}}}, got '{d.name}'",
    )
    _check(
        0 < d.test_fraction < 1,
        f"dataset.test_fraction must lie in (0, 1), got {d.test_fraction}",
    )
    if d.name != "csv":  # a CSV's size is its number of rows, checked with the file below
        _check(
            d.n_samples >= MIN_SAMPLES,
            f"dataset.n_samples must be >= {MIN_SAMPLES} (enough for a train and a test split), "
            f"got {d.n_samples}",
        )
        check_split(d.n_samples, d.test_fraction, f"n_samples={d.n_samples}")
    _check(d.noise >= 0, f"dataset.noise must be >= 0, got {d.noise}")
    _check(d.turns > 0, f"dataset.turns must be > 0, got {d.turns}")
    _check(0 < d.factor < 1, f"dataset.factor must lie in (0, 1), got {d.factor}")
    _check(d.n_classes >= 2, f"dataset.n_classes must be >= 2, got {d.n_classes}")
    _check(
        cfg.max_memory_gb is None or (math.isfinite(cfg.max_memory_gb) and cfg.max_memory_gb > 0),
        f"max_memory_gb must be > 0 or null (the memory free on this machine), got {cfg.max_memory_gb}",
    )
    _check(d.spread > 0, f"dataset.spread must be > 0, got {d.spread}")
    if d.name == "gaussians":
        _check(
            d.n_samples >= 2 * d.n_classes,
            f"dataset.n_samples={d.n_samples} is too few for n_classes={d.n_classes}; "
            f"expected at least 2 points per class (n_samples >= {2 * d.n_classes})",
        )
    n_points = d.n_samples
    if d.name == "csv":
        # the file: exists, parses, 2+ classes, splits (DataError); its size is its number of rows
        if d.path:
            _check_read_memory(Path(d.path), cfg.max_memory_gb)
        n_points = len(parse_csv(d))
        check_split(n_points, d.test_fraction, f"{d.path} ({n_points} data rows)", DataError)
    _check(n.depth >= 1, f"network.depth must be >= 1, got {n.depth}")
    _check(n.width >= 2, f"network.width must be >= 2 (the input is 2-D), got {n.width}")
    _check(n.step_size > 0, f"network.step_size must be > 0, got {n.step_size}")
    if n.lipschitz is not None:
        _check(
            0 < n.lipschitz < 1,
            f"network.lipschitz must lie in (0, 1) (the bound on h ||W_l||_2 max|sigma'|) or be null, "
            f"got {n.lipschitz}",
        )
        from riemexp.nets.registry import get_kind  # torch-free

        _check(
            get_kind(n.kind).contraction_factor(n.step_size) is not None,
            f"network.lipschitz constrains residual layers; got network.kind={n.kind} "
            "(use network=residual or network.lipschitz=null)",
        )
    r = cfg.refine
    if r.from_depth is not None:
        ratio = n.depth // r.from_depth if r.from_depth >= 1 else 0
        _check(
            r.from_depth >= 1 and ratio >= 2 and ratio * r.from_depth == n.depth and ratio & (ratio - 1) == 0,
            f"refine.from_depth must divide network.depth={n.depth} by a power of two >= 2 (e.g. "
            f"{max(n.depth // 2, 1)}), or be null (train from scratch); got {r.from_depth}",
        )
        from riemexp.nets.registry import get_kind  # torch-free

        _check(
            get_kind(n.kind).ode_order is not None,
            "refine.from_depth splits layers into steps of h/2 of the same ODE: kinds with an ODE only "
            f"(residual, c2); got network.kind={n.kind}",
        )
    _check(r.epochs >= 0, f"refine.epochs must be >= 0, got {r.epochs}")
    _check(r.lr is None or r.lr > 0, f"refine.lr must be > 0 or null (optim.lr), got {r.lr}")
    _check(o.lr > 0, f"optim.lr must be > 0, got {o.lr}")
    _check(o.epochs >= 1, f"optim.epochs must be >= 1, got {o.epochs}")
    _check(
        o.batch_size is None or o.batch_size >= 1,
        f"optim.batch_size must be >= 1 or null (full batch), got {o.batch_size}",
    )
    _check(o.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {o.weight_decay}")
    _check(0 <= o.momentum < 1, f"optim.momentum must lie in [0, 1), got {o.momentum}")
    _check(g.grid_density >= 2, f"geometry.grid_density must be >= 2, got {g.grid_density}")
    _check(g.margin >= 0, f"geometry.margin must be >= 0, got {g.margin}")
    _check(g.max_memory_gb > 0, f"geometry.max_memory_gb must be > 0, got {g.max_memory_gb}")
    _check(g.snapshots >= 0, f"geometry.snapshots must be >= 0 (0: none), got {g.snapshots}")
    _check(
        0 < g.boundary_band < 0.5,
        f"geometry.boundary_band must lie in (0, 0.5) (a fraction of the grid box), got {g.boundary_band}",
    )
    _check(p.n_layers >= 2, f"plot.n_layers must be >= 2, got {p.n_layers}")
    _check(p.glyph_density >= 1, f"plot.glyph_density must be >= 1, got {p.glyph_density}")
    if p.layers is not None:
        _check(
            len(p.layers) > 0,
            "plot.layers must list at least one layer, e.g. [0,5,10], or be null (about plot.n_layers "
            "evenly spaced), got []",
        )
        bad = [layer for layer in p.layers if not 0 <= layer <= n.depth]
        _check(
            not bad,
            f"plot.layers must lie in [0, network.depth={n.depth}], got {list(p.layers)}",
        )
    formats = {"png", "pdf", "svg"}
    bad_formats = [f for f in p.formats if f not in formats]
    _check(
        bool(p.formats) and not bad_formats,
        f"plot.formats must be one or more of {{png, pdf, svg}}, got {list(p.formats)}",
    )
    _check(
        e.max_refinement >= 1 and e.max_refinement & (e.max_refinement - 1) == 0,
        f"ode.max_refinement must be a power of two >= 1, got {e.max_refinement}",
    )
    _check(e.rtol > 0 and e.atol > 0, f"ode.rtol and ode.atol must be > 0, got {e.rtol}, {e.atol}")
    _check(e.max_steps_per_layer >= 1, f"ode.max_steps_per_layer must be >= 1, got {e.max_steps_per_layer}")
    # refuse a stage that cannot fit before training, not after (MemoryNeedError, GeometryError)
    from riemexp.memory import check_stages

    n_classes = d.n_classes if d.name == "gaussians" else 2
    check_stages(cfg, n_points, n_classes)
    # snapshots.npz: per snapshot and grid point g_0 (4), log volume (1), probabilities (C), det J_l (L)
    snapshot_bytes = (
        (g.snapshots + 1)
        * g.grid_density**2
        * (5 + (d.n_classes if d.name == "gaussians" else 2) + n.depth)
        * 8
    )
    if g.enabled and g.snapshots > 0 and snapshot_bytes > g.max_memory_gb * 2**30:
        raise MemoryNeedError(
            f"geometry.snapshots={g.snapshots} on a {g.grid_density} x {g.grid_density} grid at depth "
            f"{n.depth} needs {snapshot_bytes / 2**30:.2f} GB, more than geometry.max_memory_gb="
            f"{g.max_memory_gb}; expected fewer snapshots or a coarser grid"
        )
    if d.name == "csv":  # last, as it needs torch: the seeded split and the standardisation
        from riemexp.datasets import check_csv

        check_csv(d, cfg.data_seed, cfg.max_memory_gb)
    return cfg


def load_config(values: Mapping[str, Any]) -> RunConfig:
    """Build and check a RunConfig from a plain mapping (e.g. a resolved Hydra config).

    Keys outside the schema (such as Hydra's own `hydra` node) are not accepted, except
    that a top-level `hydra` key is ignored.
    """
    values = {k: v for k, v in values.items() if k != "hydra"}
    return validate(_build(RunConfig, values, ""))


def config_to_dict(cfg: Any) -> Any:
    """A RunConfig (or part of one) as plain YAML/JSON-friendly values."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: config_to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, Enum):
        return cfg.value
    if isinstance(cfg, tuple):
        return [config_to_dict(v) for v in cfg]
    return cfg
