"""Which runs can be trained together: the shape an ensemble's members must share, and grouping.

Members of one ensemble share everything that fixes the shape of the stacked tensors or the
sequence of steps: network kind, width, depth and activation, the optimizer, the (effective)
batch size, the numbers of training and test points, the number of classes, and the device.
Everything else may differ from member to member: seed, dataset (name, noise, its own seed,
...), step size h, learning rate, weight decay, momentum and number of epochs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import NamedTuple

from riemexp.config import RunConfig, config_to_dict
from riemexp.data.dataset import Dataset, make_dataset
from riemexp.errors import ConfigError
from riemexp.train import resolve_device


class EnsembleKey(NamedTuple):
    """What the members of one ensemble must share (see the module docstring)."""

    kind: str
    width: int
    depth: int
    activation: str
    optimizer: str
    n_train: int
    n_test: int
    batch_size: int  # effective: min(optim.batch_size, training points); full batch = training points
    n_classes: int
    device: str


#: how each key field is named in a config, for messages
KEY_NAMES = {
    "kind": "network.kind",
    "width": "network.width",
    "depth": "network.depth",
    "activation": "network.activation",
    "optimizer": "optim.name",
    "batch_size": "optim.batch_size (effective)",
    "n_train": "the number of training points",
    "n_test": "the number of test points",
    "n_classes": "the number of classes",
    "device": "device",
}


def ensemble_key(cfg: RunConfig, data: Dataset) -> EnsembleKey:
    """The shape of run `cfg` on its dataset `data`: runs with equal keys can share an ensemble."""
    n_train = len(data.x_train)
    batch = n_train if cfg.optim.batch_size is None else min(cfg.optim.batch_size, n_train)
    return EnsembleKey(
        kind=cfg.network.kind,
        width=cfg.network.width,
        depth=cfg.network.depth,
        activation=cfg.network.activation.value,
        optimizer=cfg.optim.name.value,
        n_train=n_train,
        n_test=len(data.x_test),
        batch_size=batch,
        n_classes=data.n_classes,
        device=str(resolve_device(cfg.device)),
    )


def member_datasets(cfgs: Sequence[RunConfig]) -> list[Dataset]:
    """Each run's dataset, as `riemexp.runner` makes it; runs with one dataset and data seed share one."""
    made: dict[str, Dataset] = {}
    out = []
    for cfg in cfgs:
        key = json.dumps([config_to_dict(cfg.dataset), cfg.data_seed], sort_keys=True)
        if key not in made:
            made[key] = make_dataset(cfg.dataset, cfg.data_seed)
        out.append(made[key])
    return out


def check_members(cfgs: Sequence[RunConfig], datasets: Sequence[Dataset]) -> EnsembleKey:
    """The shared key of the members, or ConfigError naming the first value they do not share."""
    if not cfgs:
        raise ConfigError("an ensemble needs at least one member; got none")
    if len(datasets) != len(cfgs):
        raise ConfigError(f"expected one dataset per member ({len(cfgs)}), got {len(datasets)}")
    for i, cfg in enumerate(cfgs):
        if cfg.network.lipschitz is not None or cfg.refine.from_depth is not None:
            setting = (
                f"network.lipschitz={cfg.network.lipschitz}"
                if cfg.network.lipschitz is not None
                else f"refine.from_depth={cfg.refine.from_depth}"
            )
            raise ConfigError(
                f"ensembles train free networks from their own initialisation; member {i} has {setting} "
                "(train it alone: riemexp train)"
            )
    keys = [ensemble_key(cfg, data) for cfg, data in zip(cfgs, datasets)]
    for i, key in enumerate(keys[1:], start=1):
        for name, first, value in zip(EnsembleKey._fields, keys[0], key):
            if value != first:
                raise ConfigError(
                    f"ensemble members must share {KEY_NAMES[name]}: member 0 has {first}, member {i} has "
                    f"{value}; train them in separate ensembles (riemexp.ensemble.group_members)"
                )
    return keys[0]


def group_members(
    cfgs: Sequence[RunConfig], datasets: Sequence[Dataset], max_size: int | None = None
) -> list[list[int]]:
    """Positions of cfgs grouped by `ensemble_key`, in order of first appearance.

    Groups keep the order of cfgs inside; with `max_size`, a larger group is cut into
    consecutive pieces of at most max_size members.
    """
    if max_size is not None and max_size < 1:
        raise ConfigError(f"max_size must be >= 1 or None, got {max_size}")
    groups: dict[EnsembleKey, list[int]] = {}
    for i, (cfg, data) in enumerate(zip(cfgs, datasets, strict=True)):
        groups.setdefault(ensemble_key(cfg, data), []).append(i)
    out = []
    for members in groups.values():
        size = max_size or len(members)
        out += [members[i : i + size] for i in range(0, len(members), size)]
    return out
