"""riemexp.ode and riemexp.lie: refinement orders, the reference solver, Lie tables of hand-built layers."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from riemexp.analyses import RunContext
from riemexp.analyses.lie import lie_step
from riemexp.analyses.ode import ode_step
from riemexp.config import NetworkConfig, PlotConfig
from riemexp.data.dataset import make_dataset
from riemexp.geometry.lie import lie_table, matrix_log
from riemexp.nets.network import build_network
from riemexp.ode import convergence_table, measure, reference_solve, refine, table_order
from tests.conftest import TINY_OVERRIDES, run_cli, tiny_config

F64 = torch.float64
TOL = 1e-11


def known_network(kind: str, depth: int = 4, h: float = 0.5, activation: str = "tanh", width: int = 2):
    """A float64 network whose weights are fixed formulas (no randomness): rotations and shears."""
    net = build_network(
        NetworkConfig(kind=kind, width=width, depth=depth, step_size=h, activation=activation), 2
    ).double()
    with torch.no_grad():
        for layer in range(depth):
            a = 0.7 * layer + 0.3
            W = torch.zeros(width, width, dtype=F64)
            W[:2, :2] = torch.tensor([[math.cos(a), -1.5 * math.sin(a)], [1.2 * math.sin(a), math.cos(a)]])
            if width > 2:
                W[2:, 2:] = 0.5 * torch.eye(width - 2, dtype=F64)
                W[2, 0] = 0.8
            net.weight[layer] = 1.3 * W
            net.bias[layer] = 0.2 * torch.arange(width, dtype=F64) - 0.1 * layer
    return net


def grid_points(n: int = 7) -> torch.Tensor:
    s = torch.linspace(-1, 1, n, dtype=F64)
    return torch.cartesian_prod(s, s)  # (n*n, 2)


def study(net, corrected: bool = False, max_refinement: int = 64):
    x0 = net.pad(grid_points())
    ref = reference_solve(net, x0, rtol=1e-10, atol=1e-10).end
    return convergence_table(net, x0, ref, max_refinement, corrected=corrected)


# --------------------------------------------------------------------------- refinement


@pytest.mark.parametrize("kind", ["residual", "c2"])
def test_k1_refinement_is_the_network(kind):
    net = known_network(kind)
    x = grid_points()
    assert torch.allclose(refine(net, net.pad(x), 1), net.hidden(x), atol=1e-14, rtol=0)


def test_residual_refinement_converges_with_order_one():
    rows = study(known_network("residual"))
    order = table_order(rows)
    assert 0.9 < order < 1.1, order
    assert [r["k"] for r in rows] == [1, 2, 4, 8, 16, 32, 64]
    assert all(0.9 < r["observed_order"] < 1.1 for r in rows[3:])
    assert rows[-1]["error_mean"] < rows[0]["error_mean"] / 30
    assert all(r["error_max"] >= r["error_mean"] for r in rows)


def test_c2_refinement_has_order_one_and_two_once_start_and_jumps_are_corrected():
    # module docstring: x_{-1} = x_0 carried over to every k, and the force jumps at layer
    # boundaries, each leave an O(h/k) velocity error -> order 1; correcting both gives order 2.
    net = known_network("c2")
    plain_order = table_order(study(net))
    corrected_order = table_order(study(net, corrected=True))
    assert 0.9 < plain_order < 1.1, plain_order
    assert 1.9 < corrected_order < 2.1, corrected_order


def test_c2_single_layer_the_start_alone_makes_order_one():
    # one layer: no boundary inside (0, T); the x_{-1} = x_0 start alone keeps the order at 1
    net = known_network("c2", depth=1, h=2.0)
    assert 0.9 < table_order(study(net)) < 1.1
    assert 1.9 < table_order(study(net, corrected=True)) < 2.1


def test_width_three_network_is_padded_and_still_order_one():
    rows = study(known_network("residual", width=3), max_refinement=32)
    assert 0.9 < table_order(rows) < 1.1


# --------------------------------------------------------------------------- reference solver


def _expm_flow(net, x0: torch.Tensor) -> torch.Tensor:
    """Exact x(T) for identity activation, composed layer by layer with augmented matrix exponentials.

    residual: d/dt [x; 1] = [[W, b], [0, 0]] [x; 1];  c2: d/dt [x; v; 1] = [[0, I, 0], [W, 0, b], [0, 0, 0]].
    """
    w, h = net.width, net.h
    n = x0.shape[0]
    if net.kind.name == "residual":
        state = torch.cat([x0, torch.ones(n, 1, dtype=F64)], 1)
    else:
        state = torch.cat([x0, torch.zeros_like(x0), torch.ones(n, 1, dtype=F64)], 1)
    for W, b in zip(net.weight.detach(), net.bias.detach()):
        m = state.shape[1]
        M = torch.zeros(m, m, dtype=F64)
        if net.kind.name == "residual":
            M[:w, :w], M[:w, w] = W, b
        else:
            M[:w, w : 2 * w] = torch.eye(w, dtype=F64)
            M[w : 2 * w, :w], M[w : 2 * w, 2 * w] = W, b
        state = state @ torch.linalg.matrix_exp(h * M).T
    return state[:, :w]


@pytest.mark.parametrize("kind", ["residual", "c2"])
def test_reference_solver_matches_matrix_exponential_for_linear_field(kind):
    net = known_network(kind, depth=3, h=0.4, activation="identity")
    x0 = net.pad(grid_points(5))
    sol = reference_solve(net, x0, rtol=1e-11, atol=1e-11, n_dense=4)
    exact = _expm_flow(net, x0)
    assert (sol.end - exact).abs().max() < 1e-8
    assert sol.path.shape == (3 * 4 + 1, 25, 2)
    assert sol.times[sol.layer_index].tolist() == pytest.approx([0.0, 0.4, 0.8, 1.2])
    assert torch.equal(sol.path[0], x0)


def test_measure_gap_is_k1_error_over_rms_spread():
    net = known_network("residual")
    x = grid_points()
    report = measure(net, x, max_refinement=8, rtol=1e-10, atol=1e-10)
    end = report.solution.end
    rms = math.sqrt(float(((end - end.mean(0)) ** 2).sum(1).mean()))
    k1 = float((net.hidden(x).detach() - end).norm(dim=1).mean())
    assert report.spread == pytest.approx(rms, rel=1e-12)
    assert report.gap == pytest.approx(k1 / rms, rel=1e-9)


def test_refine_refuses_plain_networks():
    with pytest.raises(ValueError, match=r"kind with an ODE \(residual, c2, ...\), got kind 'plain'"):
        refine(known_network("plain"), grid_points(), 2)


# --------------------------------------------------------------------------- Lie tables


def one_layer(kind: str, W, b, h: float):
    net = build_network(NetworkConfig(kind=kind, depth=1, step_size=h), 2).double()
    with torch.no_grad():
        net.weight[0] = torch.tensor(W, dtype=F64)
        net.bias[0] = torch.tensor(b, dtype=F64)
    return net


def test_lie_row_of_a_diagonal_residual_layer():
    h, W, b = 0.3, [[2.0, 0.0], [0.0, -1.5]], [0.1, -0.2]
    x = torch.tensor([[0.0, 0.0], [0.5, -1.0], [-1.0, 2.0]], dtype=F64)
    (row,) = lie_table(one_layer("residual", W, b, h), x)
    a = torch.stack(
        [
            2.0 * (1 - torch.tanh(2.0 * x[:, 0] + 0.1) ** 2),
            -1.5 * (1 - torch.tanh(-1.5 * x[:, 1] - 0.2) ** 2),
        ],
        1,
    )
    det = (1 + h * a).prod(1)  # J = diag(1 + h a_i)
    dist = (h * a).norm(dim=1)
    log_err = (torch.log1p(h * a) - h * a).norm(dim=1)
    assert row["layer"] == 0
    assert row["det_mean"] == pytest.approx(float(det.mean()), rel=TOL)
    assert row["det_min"] == pytest.approx(float(det.min()), rel=TOL)
    assert row["det_positive_fraction"] == 1.0
    assert row["identity_distance_mean"] == pytest.approx(float(dist.mean()), rel=TOL)
    assert row["log_error_mean"] == pytest.approx(float(log_err.mean()), rel=1e-9)
    assert row["log_defined_fraction"] == 1.0


def test_lie_row_of_a_rotation_layer_and_h_squared_shrinkage():
    # at x = 0 with b = 0: D = I, J = I + h a R, R the quarter turn; log J = log(r) I + theta R
    a = 1.7
    errors = []
    for h in (0.2, 0.1, 0.05):
        net = one_layer("residual", [[0.0, -a], [a, 0.0]], [0.0, 0.0], h)
        (row,) = lie_table(net, torch.zeros(1, 2, dtype=F64))
        r, theta = math.hypot(1.0, h * a), math.atan(h * a)
        expected = math.sqrt(2 * math.log(r) ** 2 + 2 * (theta - h * a) ** 2)
        assert row["det_mean"] == pytest.approx(1 + (h * a) ** 2, rel=TOL)
        assert row["identity_distance_mean"] == pytest.approx(math.sqrt(2) * h * a, rel=TOL)
        assert row["log_error_mean"] == pytest.approx(expected, rel=1e-9)
        errors.append(row["log_error_mean"])
    assert errors[0] / errors[1] == pytest.approx(4.0, rel=0.05)  # |log J - hA| = O(h^2)
    assert errors[1] / errors[2] == pytest.approx(4.0, rel=0.05)


def test_lie_row_without_real_logarithm_is_nan_not_a_number_made_up():
    # h = 2, W = -I, x = 0: J = I - 2I = -I: det 1 (orientation kept) but no real principal log
    net = one_layer("residual", [[-1.0, 0.0], [0.0, -1.0]], [0.0, 0.0], 2.0)
    (row,) = lie_table(net, torch.zeros(2, 2, dtype=F64))
    assert row["det_mean"] == pytest.approx(1.0, rel=TOL)
    assert row["identity_distance_mean"] == pytest.approx(2 * math.sqrt(2), rel=TOL)
    assert row["log_defined_fraction"] == 0.0
    assert math.isnan(row["log_error_mean"])


def test_lie_rows_of_plain_and_c2_layers():
    W, b, x = [[1.0, 0.5], [-0.3, 2.0]], [0.1, 0.0], torch.tensor([[0.3, -0.4]], dtype=F64)
    (plain,) = lie_table(one_layer("plain", W, b, 0.5), x)
    D = torch.diag(1 - torch.tanh(torch.tensor(W, dtype=F64) @ x[0] + torch.tensor(b, dtype=F64)) ** 2)
    J = D @ torch.tensor(W, dtype=F64)
    assert plain["det_mean"] == pytest.approx(float(torch.linalg.det(J)), rel=TOL)
    assert plain["identity_distance_mean"] == pytest.approx(
        float((J - torch.eye(2, dtype=F64)).norm()), rel=TOL
    )
    assert plain["log_error_mean"] is None and plain["log_defined_fraction"] is None
    (c2,) = lie_table(one_layer("c2", W, b, 0.5), x)
    assert c2["det_mean"] == pytest.approx(1.0, rel=TOL)  # det [[2I + h^2 A, -I], [I, 0]] = 1
    assert c2["log_error_mean"] is None


def test_matrix_log_inverts_matrix_exp_and_handles_defective_matrices():
    gen = torch.Generator().manual_seed(0)
    logs = 0.8 * torch.randn(200, 3, 3, generator=gen, dtype=F64)
    a = torch.linalg.matrix_exp(logs)
    assert (torch.linalg.matrix_exp(matrix_log(a)) - a).abs().max() < 1e-10
    jordan = torch.tensor([[1.0, 1.0], [0.0, 1.0]], dtype=F64)
    assert torch.allclose(matrix_log(jordan), torch.tensor([[0.0, 1.0], [0.0, 0.0]], dtype=F64), atol=1e-13)
    assert torch.isnan(matrix_log(torch.diag(torch.tensor([2.0, -0.5], dtype=F64)))).all()


# --------------------------------------------------------------------------- the analysis step


def test_plain_network_reports_not_applicable(tmp_path):
    cfg = tiny_config(network=NetworkConfig(kind="plain", depth=3), plot=PlotConfig(enabled=False))
    data = make_dataset(cfg.dataset, 0)
    net = build_network(cfg.network, data.n_classes).eval()
    metrics: dict = {}
    ctx = RunContext(cfg, tmp_path, net, data, metrics)
    ode_step(ctx)
    lie_step(ctx)
    assert metrics["ode_applicable"] is False
    assert metrics["ode_gap"] is None and metrics["ode_order"] is None
    assert "no step size" in metrics["ode_note"]
    assert not (tmp_path / "tables" / "ode.csv").exists()
    with open(tmp_path / "tables" / "lie.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and rows[0]["log_error_mean"] == ""


@pytest.mark.slow
def test_cli_run_writes_ode_and_lie_tables(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("train", *TINY_OVERRIDES, "ode.max_refinement=8", f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr
    with open(out / "tables" / "ode.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["k"]) for r in rows] == [1, 2, 4, 8]
    assert float(rows[1]["substep"]) == pytest.approx(0.25)
    assert (out / "tables" / "ode.md").is_file() and (out / "tables" / "lie.md").is_file()
    with open(out / "tables" / "lie.csv") as f:
        assert len(list(csv.DictReader(f))) == 3
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["ode_applicable"] is True
    assert metrics["ode_gap"] > 0 and 0.5 < metrics["ode_order"] < 1.5
    assert (out / "plots" / "trajectories.png").is_file()
    # metrics.json lists every figure of the run, and only files that exist
    listed, on_disk = set(metrics["plots"]), {f"plots/{p.name}" for p in (out / "plots").iterdir()}
    assert {"plots/trajectories.png", "plots/ode_convergence.png", "plots/layers.png"} <= listed
    assert listed == on_disk and len(metrics["plots"]) == len(listed)
