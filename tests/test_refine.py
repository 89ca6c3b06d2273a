"""riemexp.refine and riemexp.sweep.refine: the refinement path of the depth limit and its table."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from riemexp import ode
from riemexp.config import (
    GeometryConfig,
    NetworkConfig,
    OdeConfig,
    OptimConfig,
    PlotConfig,
    RefineConfig,
    validate,
)
from riemexp.data.dataset import make_dataset
from riemexp.errors import ConfigError
from riemexp.geometry import layer_coordinates
from riemexp.refine import path_depths, split_layers
from riemexp.runner import run
from riemexp.sweep import refine
from riemexp.sweep.summary import summarize
from riemexp.train import train
from tests.conftest import tiny_config


@pytest.mark.parametrize("kind", ["residual", "c2"])
def test_zero_epochs_of_refinement_is_the_ode_steps_k2_refinement(kind: str) -> None:
    base = tiny_config(network=NetworkConfig(kind=kind, depth=3, step_size=0.8), optim=OptimConfig(epochs=4))
    data = make_dataset(base.dataset, base.data_seed)
    coarse = train(base, data)
    cfg = dataclasses.replace(
        base,
        network=dataclasses.replace(base.network, depth=6, step_size=0.4),
        refine=RefineConfig(from_depth=3, epochs=0),
    )
    fine = train(validate(cfg), data)
    assert len(fine.history) == 4  # the depth-3 stage's epochs, none after the split
    assert torch.equal(fine.model.weight, coarse.model.weight.repeat_interleave(2, dim=0))
    assert torch.equal(fine.model.head.weight, coarse.model.head.weight)
    x0 = torch.zeros(len(data.x), 2, dtype=torch.float64)
    x0[:, :2] = data.x
    k2 = ode.refine(coarse.model, x0, 2)
    assert torch.equal(ode.refine(fine.model, x0, 1), k2)  # the same operations: bit for bit
    assert torch.allclose(layer_coordinates(fine.model, data.x)[-1], k2, rtol=0, atol=1e-13)


def test_refinement_trains_after_each_doubling() -> None:
    cfg = tiny_config(
        network=NetworkConfig(depth=8, step_size=0.25),
        optim=OptimConfig(epochs=3),
        refine=RefineConfig(from_depth=2, epochs=2),
    )
    assert path_depths(validate(cfg)) == [2, 4, 8]
    result = train(cfg, make_dataset(cfg.dataset, cfg.data_seed))
    assert [row["epoch"] for row in result.history] == list(range(1, 8))  # 3 + 2 + 2, numbered on
    assert result.model.depth == 8 and result.model.h == 0.25
    again = train(cfg, make_dataset(cfg.dataset, cfg.data_seed))
    assert torch.equal(again.model.weight, result.model.weight)  # one seed fixes every stage


def test_split_layers_repeats_each_layer() -> None:
    state = {"weight": torch.arange(8.0).reshape(2, 2, 2), "bias": torch.arange(4.0).reshape(2, 2), "x": 1}
    out = split_layers(state, 3)
    assert out["weight"].shape == (6, 2, 2)
    assert torch.equal(out["weight"][3:], state["weight"][1:].expand(3, 2, 2))
    assert torch.equal(out["bias"][:3], state["bias"][:1].expand(3, 2)) and out["x"] == 1


@pytest.mark.parametrize(
    "network, refine_cfg, expected",
    [
        (NetworkConfig(depth=8), RefineConfig(from_depth=3), "refine.from_depth must divide network.depth=8"),
        (NetworkConfig(depth=8), RefineConfig(from_depth=8), "by a power of two >= 2"),
        (NetworkConfig(depth=12), RefineConfig(from_depth=4), "by a power of two >= 2"),
        (NetworkConfig(kind="plain", depth=8), RefineConfig(from_depth=4), "kinds with an ODE only"),
        (NetworkConfig(depth=8), RefineConfig(from_depth=4, epochs=-1), "refine.epochs must be >= 0, got -1"),
    ],
)
def test_bad_refinement_settings_are_refused(network, refine_cfg, expected) -> None:
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(")):
        validate(tiny_config(network=network, refine=refine_cfg))


@pytest.mark.slow
def test_depth_limit_table_of_both_paths(tmp_path) -> None:
    n = 0
    for depth, start in ((2, None), (4, None), (4, 2)):
        cfg = tiny_config(
            network=NetworkConfig(depth=depth, step_size=2.0 / depth),
            optim=OptimConfig(epochs=5),
            refine=RefineConfig(from_depth=start, epochs=0),
            geometry=GeometryConfig(grid_density=8),
            plot=PlotConfig(enabled=False),
            ode=OdeConfig(enabled=False),
        )
        run(cfg, tmp_path / str(n))
        n += 1
    summary = summarize(tmp_path)
    assert refine.applies(summary)
    rows = refine.depth_rows(summary)
    assert [r["depth"] for r in rows] == [2, 4]
    # the refined path starts from the depth-2 scratch run; splitting adds no roughness
    assert rows[0]["refined_completed"] == rows[0]["scratch_completed"] == 1
    coarse = rows[0]["scratch_weight_roughness"]
    assert rows[1]["refined_weight_roughness"] == pytest.approx(coarse, rel=1e-12)
    assert rows[1]["scratch_weight_roughness"] != pytest.approx(coarse)
    assert 0 < rows[1]["refined_g0_change"] and 0 < rows[1]["refined_output_change"] < 1
    files = refine.write_depth_limit(summary)
    names = sorted(str(p.relative_to(tmp_path)) for p in files)
    assert names == [
        "depth_limit.csv",
        "depth_limit.md",
        "depth_limit_orders.csv",
        "plots/depth_limit_field.png",
        "plots/depth_limit_weights.png",
    ]
    assert "Fitted order" in (tmp_path / "depth_limit.md").read_text()


def test_fitted_order_of_known_changes() -> None:
    steps = [0.5, 0.25, 0.125]
    assert refine.fit_order(steps, [3 * h**2 for h in steps]) == pytest.approx(2.0)
    assert refine.fit_order(steps, [None, 0.1, np.nan]) is None
    rows = [
        {"depth": 4 * 2**i, "step_size": h, "scratch_g0_change": h, "refined_g0_change": h**1.5}
        for i, h in enumerate(steps)
    ]
    orders = {(r["path"], r["quantity"]): r["order"] for r in refine.order_rows(rows)}
    assert orders[("scratch", "g0_change")] == pytest.approx(1.0)
    assert orders[("refined", "g0_change")] == pytest.approx(1.5)
    assert orders[("refined", "output_change")] is None
