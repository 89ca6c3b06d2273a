"""Geometry snapshots recorded for an ensemble's members in one batched pass equal each member's own
recording bit for bit (riemexp.analyses.ensemble_snapshots)."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from riemexp.analyses.ensemble_snapshots import batchable, record_members
from riemexp.analyses.snapshots import SnapshotRecorder
from riemexp.config import Activation, NetworkConfig
from riemexp.data import make_dataset
from riemexp.nets.network import build_network
from tests.conftest import tiny_config
from tests.test_ensemble import EXACT_PLATFORM

needs_exact = pytest.mark.skipif(not EXACT_PLATFORM, reason="bit-identity measured on x86-64 with MKL")


def members(kind: str, activation: Activation, steps: list[float], depth: int = 4):
    """Configs, datasets and trained-looking networks (random weights, scaled up so that their
    boundaries bend) of one kind and shape, with per-member seeds and step sizes."""
    cfgs, datasets, models = [], [], []
    for seed, h in enumerate(steps):
        cfg = tiny_config(network=NetworkConfig(kind=kind, depth=depth, step_size=h, activation=activation))
        cfg = replace(cfg, seed=seed, geometry=replace(cfg.geometry, snapshots=2, snapshot_density=12))
        data = make_dataset(cfg.dataset, cfg.data_seed)
        torch.manual_seed(seed)
        model = build_network(cfg.network, data.n_classes)
        with torch.no_grad():
            model.weight.mul_(2.5)
            model.bias.normal_()
            model.input_shift.copy_(torch.tensor([0.1 * seed, -0.2]))
            model.input_scale.copy_(torch.tensor([1.0 + 0.1 * seed, 0.8]))
        cfgs.append(cfg)
        datasets.append(data)
        models.append(model.eval())
    return cfgs, datasets, models


def assert_same_rows(mine: SnapshotRecorder, theirs: SnapshotRecorder) -> None:
    mine_arrays, their_arrays = mine.arrays(), theirs.arrays()
    assert sorted(mine_arrays) == sorted(their_arrays)
    for name, value in mine_arrays.items():
        np.testing.assert_array_equal(value, their_arrays[name], err_msg=name)


@needs_exact
@pytest.mark.parametrize(
    "kind,activation",
    [
        ("residual", Activation.TANH),
        ("residual", Activation.SIGMOID),
        ("residual", Activation.SOFTPLUS),
        ("residual", Activation.RELU),
        ("plain", Activation.TANH),
        ("plain", Activation.IDENTITY),
    ],
)
def test_batched_snapshots_equal_each_members_own(kind: str, activation: Activation) -> None:
    steps = [0.1, 0.5, 1.0, 0.5, 0.3]
    cfgs, datasets, models = members(kind, activation, steps)
    alone = [SnapshotRecorder(cfg, data) for cfg, data in zip(cfgs, datasets)]
    together = copy.deepcopy(alone)
    pairs = list(zip(together, models))
    assert batchable(pairs)
    for epoch in (0, 1, 3, 5):  # 1 is no snapshot epoch: nothing is recorded
        for recorder, model in zip(alone, models):
            recorder.record(model, epoch)
        record_members(pairs, epoch)
    for mine, theirs in zip(together, alone):
        assert [r["epoch"] for r in mine.rows] == [0, 3, 5]
        assert mine.seconds > 0 and set(mine.seconds_at) == {0, 3, 5}
        assert_same_rows(mine, theirs)
    # the members' boundaries were located in the batch: some cross the grid, some more than others
    counts = {len(r["segments"]) for rec in together for r in rec.rows}
    assert len(counts) > 1 and max(counts) > 0


def test_unbatchable_members_record_alone() -> None:
    """Two-step kinds and lone members record one by one, with the same results."""
    cfgs, datasets, models = members("c2", Activation.TANH, [0.2, 0.4], depth=3)
    recorders = [SnapshotRecorder(cfg, data) for cfg, data in zip(cfgs, datasets)]
    pairs = list(zip(recorders, models))
    assert not batchable(pairs) and not batchable(pairs[:1])
    record_members(pairs, 0)
    reference = SnapshotRecorder(cfgs[1], datasets[1])
    reference.record(models[1], 0)
    assert_same_rows(recorders[1], reference)
