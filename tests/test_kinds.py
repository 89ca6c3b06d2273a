"""A network kind defined here, in the test, used end to end: the registry is the only place riemexp
learns about it.

Two kinds outside the built-in three:

    damped    x_{l+1} = x_l + h sigma(W_l x_l + b_l) - h gamma x_l        (a = 1 - h gamma, c = 0, beta = h)
              forward Euler for dx/dt = sigma(W x + b) - gamma x
    momentum  x_{l+1} = x_l + mu (x_l - x_{l-1}) + h sigma(W_l x_l + b_l)  (a = 1 + mu, c = -mu, beta = h)
              a two-step kind with c != -1, no ODE

Each is one small class (its coefficients, state convention and ODE) registered by name; the
tests check its forward pass against the equation, its closed-form geometry against torch.func
autograd in float64, its ODE refinement order against the reference solver, the ensemble
against single runs, and a whole run folder written and read back.
"""

from __future__ import annotations

import json

import pytest
import torch

from riemexp import geometry as geo
from riemexp import load_run, run
from riemexp.config import NetworkConfig, OdeConfig, OptimConfig, PlotConfig, RunConfig
from riemexp.errors import ConfigError
from riemexp.nets import Coefficients, Kind, kind_names, register, unregister
from riemexp.nets.network import LayeredNetwork
from riemexp.ode import measure
from tests.conftest import tiny_config

F64 = torch.float64


class Damped(Kind):
    name = "damped"
    equation = "x_{l+1} = x_l + h sigma(W_l x_l + b_l) - h gamma x_l"
    ode_order = 1
    near_identity = True
    gamma = 0.5

    def coefficients(self, h: float) -> Coefficients:
        return Coefficients(a=1.0 - h * self.gamma, c=0.0, beta=h)

    def ode_field(self, x: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return act - self.gamma * x


class Momentum(Kind):
    name = "momentum"
    equation = "x_{l+1} = x_l + mu (x_l - x_{l-1}) + h sigma(W_l x_l + b_l)"
    two_step = True
    mu = 0.6

    def coefficients(self, h: float) -> Coefficients:
        return Coefficients(a=1.0 + self.mu, c=-self.mu, beta=h)


@pytest.fixture(autouse=True)
def kinds():
    added = [register(Damped()), register(Momentum())]
    yield added
    for kind in added:
        unregister(kind.name)


def network(kind: str, width: int = 2, depth: int = 4, h: float = 0.4, seed: int = 0) -> LayeredNetwork:
    torch.manual_seed(seed)
    model = LayeredNetwork(NetworkConfig(kind=kind, width=width, depth=depth, step_size=h), 2)
    with torch.no_grad():
        model.weight.mul_(1.5)  # a layer that does something
    return model.eval()


def reference_layer(model: LayeredNetwork, layer: int):
    """Layer `layer` from the equations above, written out: a function of x (damped) or (x, x_prev)."""
    W, b = model.weight.detach().to(F64)[layer], model.bias.detach().to(F64)[layer]
    h, w = model.h, model.width
    if model.kind.name == "damped":
        return lambda x: x + h * torch.tanh(W @ x + b) - h * Damped.gamma * x
    mu = Momentum.mu

    def state(s: torch.Tensor) -> torch.Tensor:
        x, prev = s[:w], s[w:]
        return torch.cat([x + mu * (x - prev) + h * torch.tanh(W @ x + b), x])

    return state


def test_a_registered_kind_is_a_config_choice_and_an_unknown_one_is_refused() -> None:
    assert {"plain", "residual", "c2", "damped", "momentum"} <= set(kind_names())
    assert NetworkConfig(kind="damped").kind == "damped"
    with pytest.raises(ConfigError, match=r"network.kind must be one of \{.*damped.*\}, got 'nope'"):
        NetworkConfig(kind="nope")
    with pytest.raises(ValueError, match="registered already"):
        register(Damped())


@pytest.mark.parametrize("kind", ["damped", "momentum"])
def test_forward_pass_follows_the_kinds_equation(kind: str) -> None:
    model = network(kind).double()
    x = torch.randn(9, 2, dtype=F64)
    coords = model.coordinates(x)
    for layer in range(model.depth):
        step = reference_layer(model, layer)
        for n in range(len(x)):
            if kind == "damped":
                expected = step(coords[layer, n])
            else:
                prev = coords[layer - 1, n] if layer > 0 else coords[0, n]
                expected = step(torch.cat([coords[layer, n], prev]))[: model.width]
            torch.testing.assert_close(coords[layer + 1, n], expected, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(geo.layer_coordinates(model, x), coords, rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["damped", "momentum"])
@pytest.mark.parametrize("width", [2, 3])
def test_closed_form_geometry_equals_autograd(kind: str, width: int) -> None:
    model = network(kind, width=width)
    x = torch.randn(11, 2, dtype=F64)
    coords = geo.layer_coordinates(model, x)
    jac = geo.layer_jacobians(model, coords)
    for layer in range(model.depth):
        if kind == "momentum":
            prev = coords[layer - 1] if layer > 0 else coords[0]
            at = torch.cat([coords[layer], prev], dim=1)  # (N, 2w): the state
        else:
            at = coords[layer]
        expected = torch.func.vmap(torch.func.jacrev(reference_layer(model, layer)))(at)
        torch.testing.assert_close(jac[layer], expected, rtol=1e-12, atol=1e-13)

    # g_0 is J^T J of the whole map x_0 -> x_L (the state starts at (x_0, x_0))
    def whole(x0: torch.Tensor) -> torch.Tensor:
        x = prev = x0
        for layer in range(model.depth):
            f = reference_layer(model, layer)
            x, prev = (f(x), x) if kind == "damped" else (f(torch.cat([x, prev]))[:width], x)
        return x

    j = torch.func.vmap(torch.func.jacrev(whole))(coords[0])  # (N, w, w)
    metric = geo.pullback_metrics(model, x)
    torch.testing.assert_close(metric[0], j.mT @ j, rtol=1e-11, atol=1e-12)
    assert torch.equal(metric[-1], torch.eye(width, dtype=F64).expand_as(metric[-1]))
    # the generic pullback from the closed-form blocks gives the same metrics as the fast one
    blocks = geo.position_blocks(model, *[p.to(F64) for p in model.float64_weights()], coords[:-1])
    generic = geo.pullback_from_jacobians(model, coords, lambda layer: blocks[layer])
    torch.testing.assert_close(generic, metric, rtol=1e-12, atol=1e-13)
    # log volume elements from the factor agree with the eigenvalues of g
    torch.testing.assert_close(
        geo.log_volume_elements(model, x), geo.log_volume_element(metric), rtol=1e-9, atol=1e-9
    )


def test_the_damped_kinds_refinement_converges_to_its_ode_at_order_one() -> None:
    model = network("damped", depth=3, h=0.5)
    report = measure(model, torch.randn(40, 2), max_refinement=64, rtol=1e-10, atol=1e-10)
    assert report.converged
    assert report.order == pytest.approx(1.0, abs=0.1)
    errors = [r["error_mean"] for r in report.rows]
    assert all(a > b for a, b in zip(errors, errors[1:]))


def test_the_ensemble_trains_a_new_kind_as_single_runs_do() -> None:
    from tests.test_ensemble import check_against_single_runs

    for kind in ("damped", "momentum"):
        cfgs = [
            tiny_config(network=NetworkConfig(kind=kind, depth=3, step_size=h), optim=OptimConfig(epochs=4))
            for h in (0.2, 0.5)
        ]
        check_against_single_runs(cfgs)


def test_a_new_kind_trains_into_a_run_folder_and_reads_back(tmp_path) -> None:
    cfg: RunConfig = tiny_config(
        network=NetworkConfig(kind="damped", depth=3, step_size=0.5),
        ode=OdeConfig(max_refinement=8),
        plot=PlotConfig(glyph_density=4),
    )
    metrics = run(cfg, tmp_path)
    assert metrics["status"] == "completed" and metrics["network"] == "damped"
    assert metrics["ode_applicable"] is True and metrics["ode_converged"] is True
    for name in ("geometry.npz", "ode.npz", "tables/layers.csv", "tables/ode.csv", "tables/lie.csv"):
        assert (tmp_path / name).is_file(), name
    for name in ("layers", "input_space", "training_curves", "trajectories", "ode_convergence"):
        assert (tmp_path / "plots" / f"{name}.png").is_file(), name
    assert json.loads((tmp_path / "metrics.json").read_text())["lie_log_defined_fraction_min"] > 0
    loaded = load_run(tmp_path)
    assert loaded.model.kind.name == "damped" and loaded.config.network.kind == "damped"
    assert [r["layer"] for r in loaded.tables["layers"]] == [0, 1, 2, 3]
    # a two-step kind without an ODE: the ODE step says so, everything else is written
    metrics = run(tiny_config(network=NetworkConfig(kind="momentum", depth=3)), tmp_path / "momentum")
    assert metrics["ode_applicable"] is False and "no discretisation of an ODE" in metrics["ode_note"]
    assert (tmp_path / "momentum" / "plots" / "trajectories.png").is_file()
    assert not (tmp_path / "momentum" / "ode.npz").exists()


def test_a_run_of_a_kind_this_process_does_not_know_is_refused_on_load(tmp_path) -> None:
    run(tiny_config(network=NetworkConfig(kind="damped", depth=2), plot=PlotConfig(enabled=False)), tmp_path)
    unregister("damped")
    with pytest.raises(Exception, match="network.kind must be one of .*got 'damped'"):
        load_run(tmp_path)
