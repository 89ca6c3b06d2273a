"""riemexp's config schema in Hydra's ConfigStore: every option and its default, once.

The dataclasses of `riemexp.config` and `riemexp.data` are the schema. `register()` stores
their default values in Hydra's ConfigStore, where Hydra composes them like YAML files:

    riemexp_run        the top-level options (seed, device, threads, geometry, plot, ode)
    dataset/NAME       one option per registered dataset (riemexp.data.registry), e.g. dataset/moons
    optim/NAME         one per optimizer (riemexp.config.OPTIMIZERS): adam, sgd
    network/KIND       one per registered network kind (riemexp.nets.registry): plain, residual, c2

conf/train.yaml lists them in its defaults and adds only Hydra's own settings. A user's config
folder (`--config-dir DIR`, or `hydra.searchpath=[file://DIR]`) can add options to any of
these groups (DIR/network/shallow.yaml) or use them as defaults (`defaults: [residual]`).

The nodes hold plain values, not typed structured configs: riemexp checks every type and range
itself when the composed config is loaded (`riemexp.config.load_config`), so that a wrong value
gets riemexp's one-line message saying what was expected. Hydra still refuses a key a node does
not have (`dataset.turns=3` with dataset=moons).
"""

from __future__ import annotations

import dataclasses
from typing import Any

#: the top-level node of riemexp train's config (conf/train.yaml lists it first in its defaults)
RUN_NODE = "riemexp_run"

#: RunConfig's sections that are config groups (their options are nodes of their own)
GROUP_SECTIONS = ("dataset", "network", "optim")

_registered: list[bool] = []


def nodes() -> dict[tuple[str | None, str], dict[str, Any]]:
    """Every node riemexp stores, by (group, name): plain values from the dataclasses' defaults."""
    from riemexp.config import OPTIMIZERS, NetworkConfig, RunConfig, config_to_dict
    from riemexp.data.registry import DATASETS
    from riemexp.nets.registry import kind_names

    run = config_to_dict(RunConfig())
    found: dict[tuple[str | None, str], dict[str, Any]] = {
        (None, RUN_NODE): {k: v for k, v in run.items() if k not in GROUP_SECTIONS}
    }
    for name, source in DATASETS.items():
        found["dataset", name] = config_to_dict(source.config())
    for name, cls in OPTIMIZERS.items():
        found["optim", name] = config_to_dict(cls())
    for kind in kind_names():
        found["network", kind] = config_to_dict(dataclasses.replace(NetworkConfig(), kind=kind))
    return found


def register() -> None:
    """Store riemexp's nodes in Hydra's ConfigStore; again after a dataset or a network kind has
    been registered from Python (`riemexp.data.register`, `riemexp.nets.registry.register`), which
    `riemexp.commands.hydra_app` does before every composition."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for (group, name), node in nodes().items():
        store.store(name=name, node=node, group=group, provider="riemexp")
    _registered[:] = [True]


def ensure_registered() -> None:
    """`register()` unless done already in this process."""
    if not _registered:
        register()


__all__ = ["GROUP_SECTIONS", "RUN_NODE", "ensure_registered", "nodes", "register"]
