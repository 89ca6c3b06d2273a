"""The network kinds riemexp knows, by name: `network.kind` is checked against this registry.

Adding a kind is one file in riemexp/nets/ (a `Kind` subclass: riemexp.nets.kind) and one line
here. Code elsewhere (a test, a notebook, a plug-in) adds one with `register(MyKind())`; from then
on `NetworkConfig(kind="my-kind")` trains, analyses and loads like a built-in kind, in this process.
Torch-free.
"""

from __future__ import annotations

from riemexp.errors import ConfigError
from riemexp.nets.c2 import C2
from riemexp.nets.kind import Kind
from riemexp.nets.plain import Plain
from riemexp.nets.residual import Residual

#: name -> kind, in the order the docs list them
KINDS: dict[str, Kind] = {}


def register(kind: Kind, replace: bool = False) -> Kind:
    """Make `kind` available as network.kind=<kind.name>; return it.

    Refuses (ValueError) a name already taken, unless replace is True.
    """
    if not isinstance(kind, Kind):
        raise TypeError(f"expected a riemexp.nets.Kind instance, got {kind!r}")
    name = getattr(kind, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"a network kind needs a non-empty name, got {name!r}")
    if name in KINDS and not replace and KINDS[name] is not kind:
        raise ValueError(f"network kind '{name}' is registered already ({KINDS[name]!r})")
    KINDS[name] = kind
    return kind


def unregister(name: str) -> None:
    """Forget the kind `name` (tests that registered their own)."""
    KINDS.pop(name, None)


def kind_names() -> list[str]:
    return list(KINDS)


def get_kind(name: str) -> Kind:
    """The kind registered as `name`; ConfigError naming the choices otherwise."""
    try:
        return KINDS[name]
    except (KeyError, TypeError):
        choices = ", ".join(KINDS)
        raise ConfigError(f"network.kind must be one of {{{choices}}}, got {name!r}") from None


def uses_step_size(name: str) -> bool:
    """Whether kind `name` depends on h (tables and titles show h); True for a name not registered
    in this process (a saved run of a kind defined elsewhere: show what its config says)."""
    kind = KINDS.get(name)
    return True if kind is None else kind.uses_step_size


register(Plain())
register(Residual())
register(C2())
