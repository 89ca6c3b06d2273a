"""riemexp.certify: the invertibility certificate on constructed weights; network.lipschitz in training."""

from __future__ import annotations

import json
import math

import pytest
import torch

from riemexp.certify import (
    CERTIFICATE_COLUMNS,
    invert_residual_layer,
    layer_certificates,
    network_certificate,
    project_lipschitz,
)
from riemexp.config import DatasetConfig, GeometryConfig, NetworkConfig, OdeConfig, OptimConfig, PlotConfig
from riemexp.errors import ConfigError
from riemexp.geometry import layer_coordinates, layer_jacobians, make_grid
from riemexp.notebook import read_records
from riemexp.runner import load_run, run
from tests.conftest import tiny_config

F64 = torch.float64


def _rotation(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s], [s, c]], dtype=F64)


def _known_weights() -> torch.Tensor:
    """Three 2 x 2 weights with singular values (1.5, 0.5), (3, 0) and (0.4, 0.4)."""
    return torch.stack(
        [
            _rotation(0.3) @ torch.diag(torch.tensor([1.5, 0.5], dtype=F64)) @ _rotation(-1.1),
            torch.tensor([[3.0, 0.0], [0.0, 0.0]], dtype=F64),
            0.4 * _rotation(2.0),
        ]
    )


def test_residual_certificate_of_known_norms() -> None:
    rows = layer_certificates("residual", _known_weights(), h=0.5, activation="tanh")
    c = [r["contraction"] for r in rows]
    assert c == pytest.approx([0.75, 1.5, 0.2], rel=1e-12)
    assert [r["certified_invertible"] for r in rows] == [True, False, True]
    assert rows[0]["lipschitz_bound"] == pytest.approx(1.75) and rows[0][
        "inverse_lipschitz_bound"
    ] == pytest.approx(4)
    assert rows[1]["inverse_lipschitz_bound"] is None
    assert [r["min_singular_value"] for r in rows] == pytest.approx([0.5, 0.0, 0.4], abs=1e-12)
    net = network_certificate("residual", rows)
    assert not net["certified_invertible"] and net["inverse_lipschitz_bound"] is None
    assert net["max_contraction"] == pytest.approx(1.5) and "1 of 3 layers" in net["certificate"]
    # sigmoid's slope is at most 1/4: the same weights, h = 0.5, are all certified
    net = network_certificate("residual", layer_certificates("residual", _known_weights(), 0.5, "sigmoid"))
    assert net["certified_invertible"]
    assert net["lipschitz_bound"] == pytest.approx((1 + 0.1875) * (1 + 0.375) * (1 + 0.05))
    assert net["inverse_lipschitz_bound"] == pytest.approx(1 / ((1 - 0.1875) * (1 - 0.375) * (1 - 0.05)))


def test_plain_certificate_is_invertible_weights_and_a_monotone_activation() -> None:
    W = _known_weights()
    assert [r["certified_invertible"] for r in layer_certificates("plain", W, 0.5, "tanh")] == [
        True,
        False,
        True,
    ]
    assert not any(r["certified_invertible"] for r in layer_certificates("plain", W, 0.5, "relu"))
    rows = layer_certificates("plain", W, 0.5, "identity")
    assert rows[0]["inverse_lipschitz_bound"] == pytest.approx(2.0)  # 1 / sigma_min
    assert rows[0]["lipschitz_bound"] == pytest.approx(1.5) and rows[0]["contraction"] is None
    assert layer_certificates("plain", W, 0.5, "tanh")[0]["inverse_lipschitz_bound"] is None  # tanh saturates


def test_c2_certificate_follows_the_velocity_recursion() -> None:
    W = torch.stack([0.3 * torch.eye(2, dtype=F64)] * 3)
    h = 0.5
    a = h * h * 0.3  # a_l = h^2 ||W_l|| max|sigma'|
    e, u, expected = 0.0, 0.0, []
    for _ in range(3):
        u += a * (1 + e)
        e += u
        expected.append(e)
    rows = layer_certificates("c2", W, h, "identity")
    assert [r["contraction"] for r in rows] == pytest.approx(expected, rel=1e-12)
    assert expected[-1] < 1 and network_certificate("c2", rows)["certified_invertible"]
    # sharp for the linear field (sigma = identity): x_L - x_0 = (P(A) - I) x_0, |P(A) - I| = e_L
    x0 = torch.eye(2, dtype=F64)
    x, prev = x0, x0
    for _ in range(3):
        x, prev = 2 * x - prev + h * h * x @ W[0].T, x
    assert torch.linalg.matrix_norm(x - x0, ord=2) == pytest.approx(expected[-1], rel=1e-12)
    assert not network_certificate("c2", layer_certificates("c2", 4 * W, h, "identity"))[
        "certified_invertible"
    ]


def test_projection_meets_the_bound_exactly_and_leaves_small_layers_alone() -> None:
    gen = torch.Generator().manual_seed(0)
    weight = 3 * torch.randn(20, 3, 3, generator=gen)  # float32, as in training
    weight[0] = 0.01 * torch.eye(3)
    small = weight[0].clone()
    project_lipschitz(weight, 0.9, factor=0.5, activation="tanh")
    c = 0.5 * torch.linalg.matrix_norm(weight.to(F64), ord=2)
    assert (c <= 0.9).all() and c[1:].min() > 0.9 * (1 - 1e-6)
    assert torch.equal(weight[0], small)


def test_fixed_point_inversion_of_a_certified_layer() -> None:
    W, b = _known_weights()[0], torch.tensor([0.3, -0.2], dtype=F64)
    x = torch.randn(50, 2, dtype=F64, generator=torch.Generator().manual_seed(1))
    y = x + 0.5 * torch.tanh(x @ W.T + b)
    back, iterations = invert_residual_layer(W, b, 0.5, torch.tanh, y, tol=1e-12)
    assert (back - x).abs().max() < 1e-10 and iterations < 200


def test_lipschitz_setting_is_checked() -> None:
    for bad in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ConfigError, match=r"network.lipschitz must lie in \(0, 1\)"):
            from riemexp.config import validate

            validate(tiny_config(network=NetworkConfig(lipschitz=bad)))
    from riemexp.config import validate

    with pytest.raises(
        ConfigError, match="network.lipschitz constrains residual layers; got network.kind=plain"
    ):
        validate(tiny_config(network=NetworkConfig(kind="plain", lipschitz=0.5)))


def test_lipschitz_training_is_certified_on_the_saved_weights(tmp_path) -> None:
    bound, h = 0.8, 0.9  # h large enough that the free network would break the bound
    cfg = tiny_config(
        dataset=DatasetConfig(name="circles", n_samples=120),
        network=NetworkConfig(depth=4, step_size=h, lipschitz=bound),
        optim=OptimConfig(epochs=30, lr=0.1),
        geometry=GeometryConfig(grid_density=12),
        plot=PlotConfig(enabled=False),
        ode=OdeConfig(enabled=False),
    )
    metrics = run(cfg, tmp_path)
    loaded = load_run(tmp_path)
    model = loaded.model
    weight, bias = model.float64_weights()
    c = h * torch.linalg.matrix_norm(weight, ord=2)
    assert (c <= bound).all() and c.max() > 0.5 * bound  # the bound holds exactly and is used
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["certified_invertible"] is True and saved["max_contraction"] == pytest.approx(float(c.max()))
    assert saved["max_contraction"] == metrics["max_contraction"] <= bound
    rows = read_records(tmp_path / "tables" / "layers.csv")
    assert set(CERTIFICATE_COLUMNS) <= set(rows[0])
    assert [r["certified_invertible"] for r in rows[:-1]] == ["True"] * 4 and rows[-1]["contraction"] in (
        "",
        None,
    )
    # det J_l > 0 at every point of a grid around the data, in every layer
    grid, _ = make_grid(loaded.data.x, 30, 0.5)
    coords = layer_coordinates(model, grid)
    det = torch.linalg.det(layer_jacobians(model, coords))  # (L, G)
    assert (det > 0).all()
    # every layer inverted by fixed-point iteration, back to the previous layer's coordinates
    for layer in range(model.depth):
        back, _ = invert_residual_layer(
            weight[layer], bias[layer], h, torch.tanh, coords[layer + 1], tol=1e-12
        )
        assert (back - coords[layer]).abs().max() < 1e-10


def test_a_kind_that_states_no_certificate_is_not_certified() -> None:
    from riemexp.nets.kind import Coefficients, Kind
    from riemexp.nets.registry import register, unregister

    class Damped(Kind):
        name = "damped-test"
        equation = "x_{l+1} = 0.9 x_l + h sigma(W_l x_l + b_l)"

        def coefficients(self, h: float) -> Coefficients:
            return Coefficients(a=0.9, c=0.0, beta=h)

    register(Damped())
    try:
        rows = layer_certificates("damped-test", _known_weights(), 0.5, "tanh")
        assert not any(r["certified_invertible"] for r in rows) and rows[0]["spectral_norm"] == pytest.approx(
            1.5
        )
        net = network_certificate("damped-test", rows)
        assert not net["certified_invertible"] and "3 of 3 layers" in net["certificate"]
        from riemexp.config import validate

        with pytest.raises(ConfigError, match="network.lipschitz constrains residual layers"):
            validate(tiny_config(network=NetworkConfig(kind="damped-test", lipschitz=0.5)))
    finally:
        unregister("damped-test")
