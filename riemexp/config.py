"""Typed run configuration, checked once when a config is loaded.

The dataclasses below are the schema: every option and its one default value. Hydra composes
the command line's config from them (`riemexp.commands.schema` registers them with Hydra's
ConfigStore) into a plain mapping; `load_config` turns that mapping into these frozen dataclasses
and checks every value's type and range before any work starts, without reading any file.
Core functions (`riemexp.runner.run`, ...) take a `RunConfig`, never a Hydra object, so Python
users and tests can build one directly:

    cfg = RunConfig(dataset=MoonsConfig(n_samples=500), network=NetworkConfig(depth=4))
    cfg = RunConfig(dataset=DatasetConfig.of("moons"), optim=OptimConfig.of("sgd", lr=0.05))

Datasets and optimizers have one config class each, holding only the options that apply to
them: the datasets' are in `riemexp.data` (one file per kind of dataset, and a registry), the
optimizers' here.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar

from riemexp.data.base import DatasetConfig, check
from riemexp.data.registry import config_class as dataset_class
from riemexp.errors import ConfigError

#: the data are points of the plane; wider networks pad them with zeros
INPUT_DIM = 2


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
    """The options every optimizer has; `AdamConfig` and `SgdConfig` are the optimizers.

    Make one with its class, or by name: `OptimConfig.of("sgd", lr=0.05)`.
    """

    name: OptimizerName = OptimizerName.ADAM
    lr: float = 0.05
    epochs: int = 300
    batch_size: int | None = None  # None: full batch
    weight_decay: float = 0.0

    #: the kind of thing a config of this family is, in messages
    family: ClassVar[str] = "optim"

    def __new__(cls, *args: Any, **options: Any) -> OptimConfig:
        """`OptimConfig(name="sgd", lr=0.05)` makes the named optimizer's own config (an SgdConfig,
        with SGD's defaults); without a name, Adam's. An option it does not have is a ConfigError."""
        if cls is OptimConfig:
            name = options.get("name", args[0] if args else OptimizerName.ADAM)
            own = optim_class(name)
            unknown = sorted(set(options) - set(own.option_names()))
            if unknown or len(args) > 1:
                shown = name.value if isinstance(name, OptimizerName) else name
                raise ConfigError(
                    f"unknown option optim.{unknown[0] if unknown else '?'} for optimizer '{shown}'; "
                    f"expected one of: {', '.join(own.option_names())}"
                )
            return super().__new__(own)
        return super().__new__(cls)

    def __post_init__(self) -> None:
        if type(self) is OptimConfig:
            raise TypeError(
                "OptimConfig holds the options every optimizer shares; make one optimizer's config with "
                "its class (AdamConfig, SgdConfig) or by name, OptimConfig.of('sgd', lr=0.05)"
            )
        _coerce_enums(self)
        own = type(self).default_name()
        if self.name.value != own:
            raise ConfigError(
                f"optim.name of a {type(self).__name__} must be '{own}', got '{self.name.value}'"
            )

    @classmethod
    def default_name(cls) -> str:
        return str(cls.__dataclass_fields__["name"].default.value)

    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @staticmethod
    def of(name: str, **options: Any) -> OptimConfig:
        """The config of optimizer `name` (adam, sgd) with `options`; ConfigError for an unknown
        optimizer or an option it does not have."""
        cls = optim_class(name)
        unknown = sorted(set(options) - set(cls.option_names()))
        if unknown:
            raise ConfigError(
                f"unknown option optim.{unknown[0]} for optimizer '{name}'; expected one of: "
                f"{', '.join(cls.option_names())}"
            )
        return cls(**options)

    def check(self) -> None:
        """Check the ranges of the options (ConfigError)."""
        check(self.lr > 0, f"optim.lr must be > 0, got {self.lr}")
        check(self.epochs >= 1, f"optim.epochs must be >= 1, got {self.epochs}")
        check(
            self.batch_size is None or self.batch_size >= 1,
            f"optim.batch_size must be >= 1 or null (full batch), got {self.batch_size}",
        )
        check(self.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {self.weight_decay}")


@dataclass(frozen=True)
class AdamConfig(OptimConfig):
    """Adam, full batch by default."""


@dataclass(frozen=True)
class SgdConfig(OptimConfig):
    """SGD with momentum, full batch by default."""

    name: OptimizerName = OptimizerName.SGD
    lr: float = 0.1
    epochs: int = 1000
    momentum: float = 0.9

    def check(self) -> None:
        super().check()
        check(0 <= self.momentum < 1, f"optim.momentum must lie in [0, 1), got {self.momentum}")


#: optimizer name -> its config class
OPTIMIZERS: dict[str, type[OptimConfig]] = {
    OptimizerName.ADAM.value: AdamConfig,
    OptimizerName.SGD.value: SgdConfig,
}


def optim_class(name: Any) -> type[OptimConfig]:
    """The config class of optimizer `name`; ConfigError naming the choices if there is none."""
    key = name.value if isinstance(name, OptimizerName) else name
    if not isinstance(key, str) or key not in OPTIMIZERS:
        shown = f"'{key}'" if isinstance(key, str) else repr(key)
        raise ConfigError(f"optim.name must be one of {{{', '.join(OPTIMIZERS)}}}, got {shown}")
    return OPTIMIZERS[key]


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
    # grid points along each axis of the snapshots' grid (the same box as grid_density's): coarser
    # than the final geometry's, so that recording costs a few milliseconds a snapshot
    snapshot_density: int = 40
    # the band around the decision boundary: half-width = this fraction of the grid box's shorter side
    boundary_band: float = 0.05


@dataclass(frozen=True)
class PlotConfig:
    """Figures written to `plots/` (`riemexp.plotting`)."""

    enabled: bool = True
    layers: tuple[int, ...] | None = None  # e.g. [0,5,10]; None: about `n_layers` evenly spaced
    n_layers: int = 8
    glyph_density: int = 12  # glyphs along each axis
    glyph: GlyphConvention = GlyphConvention.STRETCH  # stretch (axes ~ sqrt(lambda)) | unit_ball (~ 1/sqrt)
    formats: tuple[str, ...] = ("png",)  # any of png, pdf, svg
    animation: bool = False  # also write a GIF moving from layer to layer

    def __post_init__(self) -> None:
        _coerce_enums(self)


@dataclass(frozen=True)
class OdeConfig:
    """The ODE-consistency check of residual and c2 networks (`riemexp.ode`)."""

    enabled: bool = True  # residual and c2 networks: compare with the network's own ODE
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

    seed: int = 0  # fixes the data (unless dataset.seed is set), the initialisation and training
    device: Device = Device.AUTO  # auto (cuda when available, else cpu) | cpu | cuda
    max_memory_gb: float | None = None  # refuse any stage that would need more (None: free memory)
    threads: int | str = "auto"  # torch threads: auto (riemexp.threads) or 1 .. the CPUs
    dataset: DatasetConfig = field(default_factory=lambda: DatasetConfig.of("spirals"))
    network: NetworkConfig = field(default_factory=NetworkConfig)
    optim: OptimConfig = field(default_factory=AdamConfig)
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


#: config classes with one subclass per choice, picked by the section's `name`
_FAMILIES: dict[type, Any] = {DatasetConfig: dataset_class, OptimConfig: optim_class}


def _build(cls: type, values: Mapping[str, Any], where: str) -> Any:
    hints = _type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        prefix = f"{where}." if where else ""
        family: Any = cls  # DatasetConfig and OptimConfig subclasses say whose option it is not
        of = f" for {family.family} '{family.default_name()}'" if hasattr(cls, "family") else ""
        raise ConfigError(f"unknown option {prefix}{unknown[0]}{of}; expected one of: {', '.join(names)}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        at = f"{where}.{f.name}" if where else f.name
        hint, value = hints[f.name], values[f.name]
        if hint in _FAMILIES and isinstance(value, Mapping):  # the section's name picks its class
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
            hint = _FAMILIES[hint](value.get("name", getattr(default, "name", None)))
        kwargs[f.name] = _convert(value, hint, at)
    return cls(**kwargs)


def validate(cfg: RunConfig) -> RunConfig:
    """Check the range of every value; return cfg unchanged or raise ConfigError.

    Reads no file and loads no torch: what a run's data and memory could still refuse (a CSV
    file, a stage too large) is checked by `riemexp.preflight` before any run folder exists.
    """
    from riemexp.threads import check_setting

    d, n, g, p, e = cfg.dataset, cfg.network, cfg.geometry, cfg.plot, cfg.ode
    for section in ("dataset", "network", "optim", "geometry", "plot", "ode", "refine"):
        for f in dataclasses.fields(getattr(cfg, section)):
            value = getattr(getattr(cfg, section), f.name)
            check(
                not isinstance(value, float) or math.isfinite(value),
                f"{section}.{f.name} must be a finite number, got {value}",
            )
    for name, seed in (("seed", cfg.seed), ("dataset.seed", d.seed)):
        check(
            seed is None or -(2**63) <= seed < 2**63 - 1,
            f"{name} must lie in [-2**63, 2**63 - 1) (a 64-bit integer), got {seed}",
        )
    check_setting(cfg.threads)
    dataset_class(d.name)  # a registered dataset
    d.check()
    check(
        cfg.max_memory_gb is None or (math.isfinite(cfg.max_memory_gb) and cfg.max_memory_gb > 0),
        f"max_memory_gb must be > 0 or null (the memory free on this machine), got {cfg.max_memory_gb}",
    )
    check(n.depth >= 1, f"network.depth must be >= 1, got {n.depth}")
    check(n.width >= 2, f"network.width must be >= 2 (the input is 2-D), got {n.width}")
    check(n.step_size > 0, f"network.step_size must be > 0, got {n.step_size}")
    if n.lipschitz is not None:
        check(
            0 < n.lipschitz < 1,
            f"network.lipschitz must lie in (0, 1) (the bound on h ||W_l||_2 max|sigma'|) or be null, "
            f"got {n.lipschitz}",
        )
        from riemexp.nets.registry import get_kind  # torch-free

        check(
            get_kind(n.kind).contraction_factor(n.step_size) is not None,
            f"network.lipschitz constrains residual layers; got network.kind={n.kind} "
            "(use network=residual or network.lipschitz=null)",
        )
    r = cfg.refine
    if r.from_depth is not None:
        ratio = n.depth // r.from_depth if r.from_depth >= 1 else 0
        check(
            r.from_depth >= 1 and ratio >= 2 and ratio * r.from_depth == n.depth and ratio & (ratio - 1) == 0,
            f"refine.from_depth must divide network.depth={n.depth} by a power of two >= 2 (e.g. "
            f"{max(n.depth // 2, 1)}), or be null (train from scratch); got {r.from_depth}",
        )
        from riemexp.nets.registry import get_kind  # torch-free

        check(
            get_kind(n.kind).ode_order is not None,
            "refine.from_depth splits layers into steps of h/2 of the same ODE: kinds with an ODE only "
            f"(residual, c2); got network.kind={n.kind}",
        )
    check(r.epochs >= 0, f"refine.epochs must be >= 0, got {r.epochs}")
    check(r.lr is None or r.lr > 0, f"refine.lr must be > 0 or null (optim.lr), got {r.lr}")
    cfg.optim.check()
    check(g.grid_density >= 2, f"geometry.grid_density must be >= 2, got {g.grid_density}")
    check(g.margin >= 0, f"geometry.margin must be >= 0, got {g.margin}")
    check(g.max_memory_gb > 0, f"geometry.max_memory_gb must be > 0, got {g.max_memory_gb}")
    check(g.snapshots >= 0, f"geometry.snapshots must be >= 0 (0: none), got {g.snapshots}")
    check(g.snapshot_density >= 2, f"geometry.snapshot_density must be >= 2, got {g.snapshot_density}")
    check(
        0 < g.boundary_band < 0.5,
        f"geometry.boundary_band must lie in (0, 0.5) (a fraction of the grid box), got {g.boundary_band}",
    )
    check(p.n_layers >= 2, f"plot.n_layers must be >= 2, got {p.n_layers}")
    check(p.glyph_density >= 1, f"plot.glyph_density must be >= 1, got {p.glyph_density}")
    if p.layers is not None:
        check(
            len(p.layers) > 0,
            "plot.layers must list at least one layer, e.g. [0,5,10], or be null (about plot.n_layers "
            "evenly spaced), got []",
        )
        bad = [layer for layer in p.layers if not 0 <= layer <= n.depth]
        check(
            not bad,
            f"plot.layers must lie in [0, network.depth={n.depth}], got {list(p.layers)}",
        )
    formats = {"png", "pdf", "svg"}
    bad_formats = [f for f in p.formats if f not in formats]
    check(
        bool(p.formats) and not bad_formats,
        f"plot.formats must be one or more of {{png, pdf, svg}}, got {list(p.formats)}",
    )
    check(
        e.max_refinement >= 1 and e.max_refinement & (e.max_refinement - 1) == 0,
        f"ode.max_refinement must be a power of two >= 1, got {e.max_refinement}",
    )
    check(e.rtol > 0 and e.atol > 0, f"ode.rtol and ode.atol must be > 0, got {e.rtol}, {e.atol}")
    check(e.max_steps_per_layer >= 1, f"ode.max_steps_per_layer must be >= 1, got {e.max_steps_per_layer}")
    return cfg


def load_config(values: Mapping[str, Any]) -> RunConfig:
    """Build and check a RunConfig from a plain mapping (e.g. a resolved Hydra config).

    Keys outside the schema (such as Hydra's own `hydra` node) are not accepted, except
    that a top-level `hydra` key is ignored. The dataset's and the optimizer's `name` pick
    their config class; a section without one gets RunConfig's default (spirals, adam).
    """
    values = {k: v for k, v in values.items() if k != "hydra"}
    return validate(_build(RunConfig, values, ""))


#: riemexp's dataset and optim sections before each dataset and optimizer had a class of its own:
#: every option of every dataset (optimizer), with its default then. A run saved then lists all of
#: them, whichever applied, and its run identity (riemexp.identity) hashes them all.
LEGACY_SECTIONS: dict[str, dict[str, Any]] = {
    "dataset": {
        "name": "spirals",
        "n_samples": 1000,
        "noise": 0.05,
        "test_fraction": 0.25,
        "seed": None,
        "turns": 1.0,
        "factor": 0.5,
        "n_classes": 3,
        "spread": 0.25,
        "path": None,
        "header": None,
        "coordinate_columns": [0, 1],
        "label_column": 2,
        "delimiter": ",",
    },
    "optim": {
        "name": "adam",
        "lr": 0.05,
        "epochs": 300,
        "batch_size": None,
        "weight_decay": 0.0,
        "momentum": 0.9,
    },
}
_LEGACY_CLASS: dict[str, Any] = {"dataset": dataset_class, "optim": optim_class}


def load_saved_config(values: Mapping[str, Any]) -> RunConfig:
    """`load_config` for the config a run saved, by this version of riemexp or by one from before
    each dataset and optimizer had its own class: a dataset or optim section listing every old
    option (LEGACY_SECTIONS) keeps only those of its own dataset or optimizer."""
    values = dict(values)
    for section, legacy in LEGACY_SECTIONS.items():
        node = values.get(section)
        if isinstance(node, Mapping) and set(node) == set(legacy):
            own = _LEGACY_CLASS[section](node.get("name")).option_names()
            values[section] = {k: v for k, v in node.items() if k in own}
    return load_config(values)


def legacy_values(cfg: RunConfig) -> dict[str, Any]:
    """`config_to_dict(cfg)` as riemexp saved it before each dataset and optimizer had its own class
    (every old option in the dataset and optim sections, those that do not apply at their old
    defaults): what a run of cfg saved then, for finding such runs by their identity."""
    values = config_to_dict(cfg)
    for section, legacy in LEGACY_SECTIONS.items():
        values[section] = {**legacy, **values[section]}
    return values


def config_to_dict(cfg: Any) -> Any:
    """A RunConfig (or part of one) as plain YAML/JSON-friendly values."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: config_to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, Enum):
        return cfg.value
    if isinstance(cfg, tuple):
        return [config_to_dict(v) for v in cfg]
    return cfg
