"""riemexp.geometry against autograd (torch.func) in float64, finite differences, and its run artifacts."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from riemexp import budget
from riemexp import geometry as geo
from riemexp.analyses import geometry as steps
from riemexp.config import GeometryConfig, NetworkConfig, RunConfig
from riemexp.data.csv import CsvConfig
from riemexp.data.dataset import Dataset
from riemexp.errors import GeometryError, RunFolderError
from riemexp.nets.network import LayeredNetwork
from tests.conftest import TINY_OVERRIDES, run_cli

KINDS = ("plain", "residual", "c2")
ACTIVATIONS = ("tanh", "sigmoid", "relu", "softplus", "identity")
F64 = torch.float64


def random_network(kind: str, activation: str, width: int, depth: int = 4, seed: int = 0) -> LayeredNetwork:
    """A network with random weights large enough that every layer is clearly nonlinear."""
    torch.manual_seed(seed)
    model = LayeredNetwork(
        NetworkConfig(kind=kind, width=width, depth=depth, step_size=0.7, activation=activation), 2
    )
    with torch.no_grad():
        model.weight.copy_(torch.randn(depth, width, width))
        model.bias.copy_(0.5 * torch.randn(depth, width))
    return model


def reference_step(model: LayeredNetwork, layer: int):
    """Layer `layer` as a function of one point's layer coordinates (for c2: of the state (x_l, x_{l-1}))."""
    W, b = model.weight.detach().to(F64)[layer], model.bias.detach().to(F64)[layer]
    sigma, h, w = model.sigma, model.h, model.width
    if model.kind.name == "plain":
        return lambda x: sigma(W @ x + b)
    if model.kind.name == "residual":
        return lambda x: x + h * sigma(W @ x + b)
    return lambda s: torch.cat([2 * s[:w] - s[w:] + h * h * sigma(W @ s[:w] + b), s[:w]])


def reference_hidden(model: LayeredNetwork, upto: int | None = None):
    """x_0 (w,) -> x_n (w,) (default n = L), written independently of riemexp.geometry."""

    def forward(x0: torch.Tensor) -> torch.Tensor:
        x, prev = x0, x0
        for layer in range(model.depth if upto is None else upto):
            if model.kind.name == "c2":
                x, prev = reference_step(model, layer)(torch.cat([x, prev]))[: model.width], x
            else:
                x = reference_step(model, layer)(x)
        return x

    return forward


def points_away_from_kinks(model: LayeredNetwork, n: int = 24, gap: float = 1e-3) -> torch.Tensor:
    """Random input points whose pre-activations stay at least `gap` from 0 in every layer (relu's kink)."""
    x = torch.randn(4 * n, 2, dtype=F64, generator=torch.Generator().manual_seed(1))
    coords = geo.layer_coordinates(model, x)
    W, b = model.weight.detach().to(F64), model.bias.detach().to(F64)
    z = torch.matmul(coords[:-1], W.mT) + b[:, None, :]  # (L, N, w)
    keep = (z.abs() > gap).all(dim=-1).all(dim=0)  # (N,)
    assert keep.sum() >= n
    return x[keep][:n]


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1.0))


# --------------------------------------------------------------------------- against autograd


@pytest.mark.parametrize("width", [2, 3])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("kind", KINDS)
def test_layer_jacobians_equal_jacrev(kind: str, activation: str, width: int) -> None:
    model = random_network(kind, activation, width)
    x = points_away_from_kinks(model)
    coords = geo.layer_coordinates(model, x)
    double = random_network(kind, activation, width).double()
    assert relative_error(coords, double.coordinates(x)) < 1e-12
    jac = geo.layer_jacobians(model, coords)
    state_dim = 2 * width if kind == "c2" else width
    assert jac.shape == (model.depth, len(x), state_dim, state_dim) and jac.dtype == F64
    for layer in range(model.depth):
        if kind == "c2":
            prev = coords[layer - 1] if layer > 0 else coords[0]
            at = torch.cat([coords[layer], prev], dim=1)  # (N, 2w) state
        else:
            at = coords[layer]
        expected = torch.func.vmap(torch.func.jacrev(reference_step(model, layer)))(at)
        assert relative_error(jac[layer], expected) < 1e-10, (kind, activation, width, layer)


@pytest.mark.parametrize("width", [2, 3])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("kind", KINDS)
def test_metrics_pull_back_to_whole_map_jtj(kind: str, activation: str, width: int) -> None:
    model = random_network(kind, activation, width)
    x = points_away_from_kinks(model)
    coords, metric = geo.coordinates_and_metrics(model, x)
    assert metric.shape == (model.depth + 1, len(x), width, width) and metric.dtype == F64
    # g_0 = J^T J of the whole map x_0 -> x_L, by autograd
    whole = torch.func.vmap(torch.func.jacrev(reference_hidden(model)))(coords[0])  # (N, w, w)
    assert relative_error(metric[0], whole.mT @ whole) < 1e-10
    assert relative_error(geo.pullback_metrics(model, x), metric) == 0.0
    # g_L = I, every g_l symmetric positive semi-definite
    assert torch.equal(metric[-1], torch.eye(width, dtype=F64).expand_as(metric[-1]))
    scale = metric.abs().amax(dim=(-2, -1), keepdim=True).clamp_min(1e-300)
    assert ((metric - metric.mT).abs() / scale).max() < 1e-14
    lam = torch.linalg.eigvalsh(metric / scale)
    assert lam.min() > -1e-12
    # the recursion g_l = J_l^T g_{l+1} J_l, layer by layer
    jac = geo.layer_jacobians(model, coords)
    if kind == "c2":
        state = geo.state_metrics(model, x)
        E = torch.cat([torch.eye(width, dtype=F64)] * 2)  # (2w, w)
        for layer in range(model.depth):
            pulled = jac[layer].mT @ state[layer + 1] @ jac[layer]
            assert relative_error(state[layer], pulled) < 1e-10
        assert relative_error(geo.velocity_kept_metrics(model, x), E.T @ state @ E) < 1e-10
    else:
        for layer in range(model.depth):
            pulled = jac[layer].mT @ metric[layer + 1] @ jac[layer]
            assert relative_error(metric[layer], pulled) < 1e-10


@pytest.mark.parametrize("kind", KINDS)
def test_input_metric_in_user_units(kind: str) -> None:
    model = random_network(kind, "tanh", 3)
    with torch.no_grad():
        model.input_shift.copy_(torch.tensor([0.3, -1.0]))
        model.input_scale.copy_(torch.tensor([2.0, 0.5]))
    x = torch.randn(10, 2, dtype=F64)
    double = random_network(kind, "tanh", 3).double()
    double.load_state_dict(model.state_dict())
    jac = torch.func.vmap(torch.func.jacrev(lambda p: double.hidden(p[None])[0]))(x)  # (N, w, 2)
    g_in = geo.input_metric(model, x)
    assert g_in.shape == (10, 2, 2)
    assert relative_error(g_in, jac.mT @ jac) < 1e-10


@pytest.mark.parametrize("kind", KINDS)
def test_table_jacobians_along_the_trajectory(kind: str) -> None:
    """dx_{l+1}/dx_0 = J_l dx_l/dx_0 with the J_l of the layers table (for c2 the trajectory Jacobian)."""
    model = random_network(kind, "tanh", 2)
    x = torch.randn(8, 2, dtype=F64)
    coords = geo.layer_coordinates(model, x)
    jac = geo.trajectory_jacobians(model, coords)  # (L, N, w, w)
    for layer in range(model.depth):
        k = torch.func.vmap(torch.func.jacrev(reference_hidden(model, layer)))(coords[0])
        k_next = torch.func.vmap(torch.func.jacrev(reference_hidden(model, layer + 1)))(coords[0])
        assert relative_error(jac[layer] @ k, k_next) < 1e-10


# --------------------------------------------------------------------------- finite differences


def test_finite_differences_converge_to_the_metric_at_second_order() -> None:
    """|x_L(p + dx) - x_L(p)|^2 = dx^T g_0 dx + O(|dx|^4) with g_0 averaged over the two grid points."""
    model = random_network("residual", "tanh", 2, depth=4)
    box = torch.tensor([[-1.0, -1.0], [1.0, 1.0]], dtype=F64)
    errors, spacings = [], []
    for density in (81, 161, 321):
        grid, (ny, nx) = geo.make_grid(box, density, margin=0.0)
        coords, metric = geo.coordinates_and_metrics(model, grid)
        last = coords[-1].reshape(ny, nx, 2)
        g0 = metric[0].reshape(ny, nx, 2, 2)
        pts = torch.as_tensor(grid).reshape(ny, nx, 2)
        worst = 0.0
        for axis in (0, 1):  # neighbours along y (rows), then along x (columns)
            n = (ny if axis == 0 else nx) - 1
            a, b = (slice(0, n), slice(1, n + 1))
            sl = (lambda s: (s, slice(None))) if axis == 0 else (lambda s: (slice(None), s))
            d2 = ((last[sl(b)] - last[sl(a)]) ** 2).sum(-1)
            dx = pts[sl(b)] - pts[sl(a)]
            g = (g0[sl(a)] + g0[sl(b)]) / 2
            predicted = torch.einsum("...i,...ij,...j->...", dx, g, dx)
            worst = max(worst, float(((d2 - predicted).abs() / predicted).max()))
        errors.append(worst)
        spacings.append(2.0 / (density - 1))
    orders = [math.log(errors[i] / errors[i + 1]) / math.log(spacings[i] / spacings[i + 1]) for i in range(2)]
    assert errors[-1] < 5e-3
    assert all(1.8 < order < 2.2 for order in orders), (errors, orders)


# --------------------------------------------------------------------------- scalars, deep networks


def linear_network(kind: str, depth: int, scale: float, width: int = 2) -> LayeredNetwork:
    model = LayeredNetwork(NetworkConfig(kind=kind, width=width, depth=depth, activation="identity"), 2)
    with torch.no_grad():
        model.weight.copy_(scale * torch.eye(width).expand(depth, width, width))
        model.bias.zero_()
    return model


def test_log_volume_is_stable_for_deep_networks() -> None:
    """Linear layers W = c I (c a power of 2, exact in float32): 1/2 log det g_l = (L - l) w log c."""
    x = torch.randn(5, 2, dtype=F64)
    # det g_0 = 8^(-2 w L) = 2^-2400 underflows float64; its log does not
    deep = linear_network("plain", depth=200, scale=0.125)
    logvol = geo.log_volume_elements(deep, x)
    expected = torch.arange(200, -1, -1, dtype=F64) * 2 * math.log(0.125)  # (L+1,)
    assert torch.allclose(logvol, expected[:, None].expand(201, 5), rtol=1e-13, atol=1e-13)
    # the metric itself: entries 2^-900 are representable, det g = 2^-1800 is not; slogdet copes
    shallow = linear_network("plain", depth=150, scale=0.125)
    metric = geo.pullback_metrics(shallow, x)
    assert torch.isfinite(metric).all() and (torch.linalg.det(metric[0]) == 0).all()
    expected = torch.full((5,), 300 * math.log(0.125), dtype=F64)
    assert torch.allclose(geo.log_volume_element(metric[0]), expected, rtol=1e-13)
    # growth: W = 8 I over 120 layers, metric entries 2^720, det g = 2^1440 overflows
    big = linear_network("plain", depth=120, scale=8.0)
    metric = geo.pullback_metrics(big, x)
    assert torch.isfinite(metric).all() and torch.isinf(torch.linalg.det(metric[0])).all()
    expected = torch.full((5,), 240 * math.log(8.0), dtype=F64)
    assert torch.allclose(geo.log_volume_element(metric[0]), expected, rtol=1e-13)
    assert torch.allclose(geo.log_volume_elements(big, x)[0], expected, rtol=1e-13)


def test_metric_scalars() -> None:
    metric = torch.tensor(
        [[[4.0, 0.0], [0.0, 1.0]], [[2.0, 1.0], [1.0, 2.0]], [[1.0, 0.0], [0.0, 0.0]]], dtype=F64
    )
    lam, vec = geo.metric_eigh(metric)
    assert torch.allclose(lam, torch.tensor([[1.0, 4.0], [1.0, 3.0], [0.0, 1.0]], dtype=F64))
    assert torch.allclose(vec @ torch.diag_embed(lam) @ vec.mT, metric)
    assert torch.allclose(geo.anisotropy(metric)[:2], torch.tensor([4.0, 3.0], dtype=F64))
    assert geo.anisotropy(metric)[2] == math.inf
    assert torch.allclose(
        geo.log_volume_element(metric)[:2], 0.5 * torch.log(torch.tensor([4.0, 3.0], dtype=F64))
    )
    assert geo.log_volume_element(metric)[2] == -math.inf
    # singular to float64 precision: lambda_min below the rounding level of g
    noisy = torch.tensor([[[1.0, 1e-9], [1e-9, 1e-18]]], dtype=F64)  # rank 1 plus rounding noise
    assert geo.log_volume_element(noisy)[0] == -math.inf and geo.anisotropy(noisy)[0] == math.inf


def test_a_relu_layer_switching_a_unit_off_gives_minus_inf_everywhere() -> None:
    """Plain relu, depth 2: layer 0 switches unit 1 off at every point, so g_0 has rank 1."""
    model = LayeredNetwork(NetworkConfig(kind="plain", depth=2, activation="relu"), 2).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[[1.0, 0.3], [0.2, 1.0]], [[0.7, -0.6], [0.5, 0.9]]]))
        model.bias.copy_(torch.tensor([[5.0, -50.0], [5.0, 5.0]]))  # unit 1 of layer 0: off
    x = torch.randn(6, 2, dtype=F64)
    logvol = geo.log_volume_elements(model, x)
    assert torch.all(logvol[0] == -math.inf)  # the singular layer and every layer before it
    assert torch.isfinite(logvol[1:]).all() and torch.all(logvol[2] == 0)
    assert torch.all(geo.input_log_volume(model, x) == -math.inf)
    g0 = geo.pullback_metrics(model, x)[0]
    assert torch.all(geo.log_volume_element(g0) == -math.inf)
    assert np.all(geo.input_log_volume_from_metric(g0.numpy(), [1.0, 1.0]) == -math.inf)
    rows = geo.layer_statistics(model, x)
    assert rows[0]["log_volume_max"] == -math.inf and rows[0]["anisotropy_median"] == math.inf
    # a residual relu layer with a unit off is I + h D W: not singular, and the paths agree
    res = LayeredNetwork(NetworkConfig(kind="residual", depth=2, activation="relu"), 2).double()
    with torch.no_grad():
        res.weight.copy_(model.weight)
        res.bias.copy_(model.bias)
    expected = geo.log_volume_element(geo.pullback_metrics(res, x)[0])
    assert torch.allclose(geo.log_volume_elements(res, x)[0], expected, rtol=1e-12)


def test_make_grid_is_x_fastest_over_the_box_with_margin() -> None:
    points = np.array([[0.0, 10.0], [4.0, 12.0]])
    grid, shape = geo.make_grid(points, 5, margin=0.25)
    assert shape == (5, 5) and grid.shape == (25, 2)
    assert np.allclose(grid[:5, 1], grid[0, 1]) and np.all(np.diff(grid[:5, 0]) > 0)
    assert np.allclose(grid[0], [-1.0, 9.5]) and np.allclose(grid[-1], [5.0, 12.5])
    with pytest.raises(GeometryError, match=r"shape \(N, 2\)"):
        geo.make_grid(np.zeros((3, 3)), 5, 0.1)


# ------------------------------------------------------------------------ compute_geometry, geometry.npz


def small_dataset(n: int = 30) -> Dataset:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(n, 2, dtype=F64, generator=gen)
    y = (x[:, 0] > 0).to(torch.int64)
    return Dataset("toy", x[:20], y[:20], x[20:], y[20:], ("left", "right"))


def test_compute_geometry_arrays() -> None:
    model = random_network("c2", "tanh", 3, depth=3)
    data = small_dataset()
    arrays = steps.compute_geometry(model, data, GeometryConfig(grid_density=7, margin=0.1))
    assert list(arrays) == [*steps.GEOMETRY_ARRAYS, *steps.LOG_VOLUME_ARRAYS]
    shapes = {name: a.shape for name, a in arrays.items()}
    assert shapes == {
        "grid_points": (49, 2),
        "grid_shape": (2,),
        "grid_coords": (4, 49, 3),
        "grid_metric": (4, 49, 3, 3),
        "data_points": (30, 2),
        "data_labels": (30,),
        "data_coords": (4, 30, 3),
        "data_metric": (4, 30, 3, 3),
        "grid_proba": (49, 2),
        "grid_input_log_volume": (49,),
        "data_input_log_volume": (30,),
    }
    assert arrays["grid_metric"].dtype == np.float64 and arrays["data_labels"].dtype == np.int64
    assert np.array_equal(arrays["data_points"], data.x.numpy())
    assert np.array_equal(arrays["data_labels"], data.y.numpy())
    assert np.allclose(arrays["grid_proba"].sum(axis=1), 1.0)
    with torch.no_grad():
        expected = torch.softmax(model.double()(torch.as_tensor(arrays["grid_points"])), dim=1)
    assert np.allclose(arrays["grid_proba"], expected.numpy(), rtol=1e-12)


def test_memory_refusal_states_the_size() -> None:
    model = random_network("residual", "tanh", 2, depth=50)
    need = budget.geometry_nbytes(4000**2, 30, 50, 2, 2, "residual")
    expected = rf"would need about {need / 2**30:.3g} GB for a 4000 x 4000 grid"
    with pytest.raises(GeometryError, match=expected):
        steps.compute_geometry(model, small_dataset(), GeometryConfig(grid_density=4000, max_memory_gb=4.0))


def test_overflow_is_reported_not_written() -> None:
    model = linear_network("plain", depth=200, scale=8.0)  # metric entries 2^1200
    with pytest.raises(GeometryError, match="overflows float64"):
        steps.compute_geometry(model, small_dataset(), GeometryConfig(grid_density=3))


def test_npz_round_trip_and_corruption(tmp_path) -> None:
    model = random_network("residual", "tanh", 2, depth=2)
    arrays = steps.compute_geometry(model, small_dataset(), GeometryConfig(grid_density=4))
    path = tmp_path / "geometry.npz"
    steps.save_geometry(path, arrays)
    back = steps.load_geometry(tmp_path)
    assert list(back) == list(arrays) and all(np.array_equal(back[k], arrays[k]) for k in arrays)
    assert [p.name for p in tmp_path.iterdir()] == ["geometry.npz"]  # no temporary left behind
    # missing file, missing array, wrong shape, garbage
    with pytest.raises(RunFolderError, match="missing"):
        steps.load_geometry(tmp_path / "nope.npz")
    np.savez(tmp_path / "partial.npz", **{k: v for k, v in arrays.items() if k != "grid_metric"})
    with pytest.raises(RunFolderError, match="missing grid_metric"):
        steps.load_geometry(tmp_path / "partial.npz")
    np.savez(tmp_path / "shape.npz", **{**arrays, "data_metric": arrays["data_metric"][:, :5]})
    with pytest.raises(RunFolderError, match="data_metric has shape"):
        steps.load_geometry(tmp_path / "shape.npz")
    (tmp_path / "garbage.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(RunFolderError, match="corrupt"):
        steps.load_geometry(tmp_path / "garbage.npz")
    truncated = path.read_bytes()[: path.stat().st_size // 2]
    (tmp_path / "truncated.npz").write_bytes(truncated)
    with pytest.raises(RunFolderError, match="corrupt"):
        steps.load_geometry(tmp_path / "truncated.npz")
    nan = arrays["grid_coords"].copy()
    nan[0, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", **{**arrays, "grid_coords": nan})
    with pytest.raises(RunFolderError, match="grid_coords holds inf or NaN"):
        steps.load_geometry(tmp_path / "nan.npz")
    np.savez(tmp_path / "objects.npz", **{**arrays, "grid_proba": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(RunFolderError, match="corrupt") as err:
        steps.load_geometry(tmp_path / "objects.npz")
    assert "allow_pickle" not in str(err.value) and "\n" not in str(err.value)


def test_layer_table_orientation_and_distance() -> None:
    """A linear plain network with one reflecting layer: known det signs, |J - I| and log volumes."""
    model = linear_network("plain", depth=3, scale=1.0)
    with torch.no_grad():
        model.weight[1] = torch.diag(torch.tensor([-1.0, 2.0]))
    rows = geo.layer_statistics(model, torch.randn(12, 2, dtype=F64))
    assert [r["layer"] for r in rows] == [0, 1, 2, 3]
    assert [r["det_positive_fraction"] for r in rows] == [1.0, 0.0, 1.0, None]
    assert rows[1]["identity_distance_mean"] == pytest.approx(math.sqrt(5.0))
    assert rows[0]["identity_distance_mean"] == 0.0
    assert [r["log_volume_median"] for r in rows] == pytest.approx(
        [math.log(2), math.log(2), 0, 0], abs=1e-14
    )
    assert rows[0]["anisotropy_max"] == pytest.approx(4.0) and rows[3]["anisotropy_max"] == 1.0


@pytest.mark.slow
def test_cli_run_writes_geometry_and_layer_tables(tmp_path) -> None:
    out = tmp_path / "run"
    result = run_cli("train", *TINY_OVERRIDES, f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr
    arrays = steps.load_geometry(out / "geometry.npz")
    density = RunConfig().geometry.grid_density  # the default grid
    assert arrays["grid_metric"].shape == (4, density**2, 2, 2)
    assert arrays["data_coords"].shape == (4, 120, 2)
    assert arrays["grid_proba"].shape == (density**2, 2)
    with open(out / "tables" / "layers.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["layer"]) for r in rows] == [0, 1, 2, 3] and list(rows[0]) == list(steps.LAYER_COLUMNS)
    assert rows[-1]["det_positive_fraction"] == "" and float(rows[-1]["log_volume_median"]) == 0.0
    assert (out / "tables" / "layers.md").read_text().startswith("| layer |")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert metrics["input_log_volume_median"] == pytest.approx(float(rows[0]["log_volume_median"]))
    assert metrics["input_anisotropy_median"] >= 1.0


@pytest.mark.slow
def test_cli_refuses_a_grid_too_big_for_memory(tmp_path) -> None:
    out = tmp_path / "run"
    result = run_cli("train", *TINY_OVERRIDES, "geometry.grid_density=20000", f"hydra.run.dir={out}")
    assert result.returncode == GeometryError.exit_code
    assert "20000 x 20000 grid (geometry.grid_density=20000)" in result.stderr and "GB" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists(), "refused before training: no run folder"


# --------------------------------------------------------------------------- the input log volume


def test_input_log_volume_is_the_area_element_of_the_data_plane_in_input_units() -> None:
    """1/2 log det g_in, g_in = S P^T g_0 P S: checked against autograd at width 3."""
    torch.manual_seed(3)
    model = LayeredNetwork(NetworkConfig(kind="residual", width=3, depth=4, step_size=0.5), 2).double()
    with torch.no_grad():
        model.input_shift.copy_(torch.tensor([50.0, -20.0]))
        model.input_scale.copy_(torch.tensor([10.0, 0.5]))
    x = torch.tensor([[52.0, -19.5], [45.0, -20.3], [60.0, -21.0]], dtype=F64)
    expected = []
    for point in x:  # x (input units) -> x_L: the Jacobian (w, 2) and its area element
        jac = torch.func.jacrev(lambda p: model.coordinates(p[None])[-1, 0])(point)
        expected.append(0.5 * torch.logdet(jac.T @ jac))
    got = geo.input_log_volume(model, x)
    assert torch.allclose(got, torch.stack(expected), rtol=1e-10, atol=1e-12)
    # the same from a saved layer-0 metric, and not the w x w volume of the padded space
    g0 = geo.pullback_metrics(model, x)[0]
    saved = geo.input_log_volume_from_metric(g0.numpy(), model.input_scale.numpy())
    assert np.allclose(saved, got.numpy(), rtol=1e-10)
    assert not np.allclose(geo.log_volume_element(g0).numpy(), got.numpy(), rtol=1e-3)


def test_input_log_volume_stays_finite_where_the_metric_underflows() -> None:
    x = torch.randn(4, 2, dtype=F64)
    for width in (2, 3):  # W = I / 8 over 200 layers: g_0 = 2^-1200 I underflows float64
        deep = linear_network("plain", depth=200, scale=0.125, width=width)
        with torch.no_grad():
            deep.input_scale.copy_(torch.tensor([2.0, 4.0]))
        expected = torch.full((4,), 2 * 200 * math.log(0.125) - math.log(8.0), dtype=F64)
        assert torch.allclose(geo.input_log_volume(deep, x), expected, rtol=1e-13)


def test_run_metrics_heat_map_and_sweep_maps_share_one_input_log_volume(tmp_path) -> None:
    """A CSV in far-from-unit units at width 3: every reader gives the same numbers."""
    from riemexp import load_run, run
    from riemexp.config import OdeConfig, PlotConfig
    from riemexp.sweep.figures import read_log_volume
    from tests.conftest import tiny_config
    from tests.test_datasets import write_csv

    data = CsvConfig(path=str(write_csv(tmp_path / "blobs.csv")))
    cfg = tiny_config(
        dataset=data,
        network=NetworkConfig(kind="residual", width=3, depth=3),
        geometry=GeometryConfig(grid_density=12),
        plot=PlotConfig(enabled=False),
        ode=OdeConfig(enabled=False),
    )
    metrics = run(cfg, tmp_path / "run")
    loaded = load_run(tmp_path / "run")
    assert not np.allclose(loaded.model.input_scale.numpy(), 1.0)
    on_data = geo.input_log_volume(loaded.model, loaded.data.x)
    assert metrics["input_log_volume_median"] == pytest.approx(float(on_data.median()), rel=1e-12)
    arrays = steps.load_geometry(tmp_path / "run")
    on_grid = geo.input_log_volume(loaded.model, arrays["grid_points"]).numpy()
    swept = read_log_volume(tmp_path / "run")
    assert swept is not None and np.allclose(swept.logvol.ravel(), on_grid, rtol=1e-9, atol=1e-9)


def test_memory_check_counts_a_csv_datasets_real_points(tmp_path) -> None:
    """The check before a run reads the CSV and counts its rows; run() checks again before training."""
    from riemexp import run
    from riemexp.config import config_to_dict, load_config
    from riemexp.preflight import check_run
    from tests.conftest import tiny_config
    from tests.test_datasets import write_csv

    path = write_csv(tmp_path / "many.csv", n_per_class=2000)  # 6000 points
    grid_only = budget.geometry_nbytes(8 * 8, 0, 3, 2, 3, "residual")
    with_data = budget.geometry_nbytes(8 * 8, 6000, 3, 2, 3, "residual")
    limit = (grid_only + with_data) / 2 / 2**30
    cfg = tiny_config(
        dataset=CsvConfig(path=str(path)),
        geometry=GeometryConfig(grid_density=8, max_memory_gb=limit),
    )
    load_config(config_to_dict(cfg))  # the config alone reads no file
    with pytest.raises(GeometryError, match="for 6000 data points through 4 layers"):
        check_run(cfg)  # the grid alone would fit; the file's 6000 rows do not
    with pytest.raises(GeometryError, match="would need"):
        run(cfg, tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "would need" in metrics["error"]
    assert not (tmp_path / "run" / "model.pt").exists() and not (tmp_path / "run" / "history.csv").exists()
