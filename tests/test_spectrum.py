"""Values labelled right: sigma' without underflow, exact metric scalars of saturated networks (against
60-digit arithmetic), singularity only where a layer's determinant is 0, c2's g_l in x_l coordinates
(against torch.func autograd), the usual median."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch

from riemexp import geometry as geo
from riemexp.activations import ACTIVATIONS, get_activation, get_log_derivative
from riemexp.analyses import geometry as steps
from riemexp.config import NetworkConfig
from riemexp.errors import RunFolderError
from riemexp.geometry import spectrum as sp
from riemexp.nets.network import LayeredNetwork

F64 = torch.float64


# --------------------------------------------------------------------------- sigma'


def reference_derivative(name: str, z: float) -> mpmath.mpf:
    z = mpmath.mpf(z)
    return {
        "tanh": lambda: mpmath.sech(z) ** 2,
        "sigmoid": lambda: mpmath.exp(-z) / (1 + mpmath.exp(-z)) ** 2,
        "softplus": lambda: 1 / (1 + mpmath.exp(-z)),
        "relu": lambda: mpmath.mpf(1 if z > 0 else 0),
        "identity": lambda: mpmath.mpf(1),
    }[name]()


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_derivatives_stay_positive_and_their_logs_finite_where_sigma_saturates(name: str) -> None:
    mpmath.mp.dps = 40
    z = [-1000.0, -400.0, -300.0, -40.0, -19.5, -3.0, -1e-9, 0.5, 19.5, 40.0, 300.0, 1000.0]
    z = torch.tensor(z, dtype=F64)
    _, dsigma = get_activation(name)
    log_d = get_log_derivative(name)(z)
    d = dsigma(z)
    for zi, di, li in zip(z.tolist(), d.tolist(), log_d.tolist()):
        ref = reference_derivative(name, zi)
        if ref == 0:
            assert di == 0 and li == -math.inf
            continue
        assert li == pytest.approx(float(mpmath.log(ref)), rel=1e-14, abs=1e-14), (name, zi)
        if abs(zi) < 300:  # sigma' itself is representable there: positive, to rounding
            assert di > 0 and di == pytest.approx(float(ref), rel=1e-13), (name, zi)
    # the textbook forms underflow: 1 - tanh^2 and s (1 - s) are 0 at |z| = 40 where sigma' is not
    if name == "tanh":
        assert float(1 - torch.tanh(torch.tensor(40.0, dtype=F64)) ** 2) == 0.0
    # agreement with autograd where autograd's own form (1 - tanh^2 for tanh) keeps its digits
    zz = torch.linspace(-4, 4, 41, dtype=F64, requires_grad=True)
    (grad,) = torch.autograd.grad(get_activation(name)[0](zz).sum(), zz)
    assert torch.allclose(dsigma(zz.detach()), grad, rtol=1e-12, atol=0.0)


# --------------------------------------------------------------------------- exact scalars


def saturated_network(kind: str, width: int, depth: int = 6, gain: float = 6.0) -> LayeredNetwork:
    """Random weights with large gain: tanh saturates (|z| up to ~40) yet every layer is invertible."""
    torch.manual_seed(0)
    model = LayeredNetwork(NetworkConfig(kind=kind, width=width, depth=depth, step_size=0.5), 2)
    with torch.no_grad():
        model.weight.copy_(gain * torch.randn(depth, width, width))
        model.bias.copy_(torch.randn(depth, width))
    return model


def reference_spectrum(model: LayeredNetwork, x0: torch.Tensor, layer: int) -> tuple[float, float, float]:
    """(1/2 log det g_l, log lambda_max, log lambda_min) at one point, in 400-digit arithmetic.

    Written from the update rules alone: Q = dx_L/dx_l by the chain rule (one-step kinds), the
    singular values of Q by mpmath's SVD, with digits to spare for lambda_min / lambda_max ~ 1e-200.
    """
    mpmath.mp.dps = 400
    W, b = model.float64_weights()
    w, h = model.width, model.h
    x = mpmath.matrix([mpmath.mpf(float(v)) for v in x0])
    q = mpmath.eye(w)
    for k in range(model.depth):
        Wk = mpmath.matrix([[mpmath.mpf(float(W[k, i, j])) for j in range(w)] for i in range(w)])
        z = Wk * x + mpmath.matrix([mpmath.mpf(float(b[k, i])) for i in range(w)])
        d = mpmath.diag([mpmath.sech(z[i]) ** 2 for i in range(w)])
        act = mpmath.matrix([mpmath.tanh(z[i]) for i in range(w)])
        if model.kind.name == "plain":
            jac, x = d * Wk, act
        else:
            jac, x = mpmath.eye(w) + h * d * Wk, x + h * act
        if k >= layer:
            q = jac * q
    sv = mpmath.svd_r(q, compute_uv=False)
    logs = sorted(float(mpmath.log(s)) for s in sv)
    return sum(logs), 2 * logs[-1], 2 * logs[0]


@pytest.mark.parametrize(("kind", "width"), [("plain", 2), ("plain", 3), ("residual", 2)])
def test_saturated_networks_get_exact_scalars_and_no_false_singularity(kind: str, width: int) -> None:
    model = saturated_network(kind, width, gain=6.0 if kind == "plain" else 12.0)
    x = torch.randn(8, 2, dtype=F64, generator=torch.Generator().manual_seed(2))
    coords = geo.layer_coordinates(model, x)
    spec = sp.metric_spectrum(model, coords)
    metric = geo.pullback_metrics(model, x)
    # the metric's own eigenvalues lose lambda_min below eps * lambda_max: read from g, these
    # saturated plain networks look singular; they are not
    if kind == "plain":
        assert torch.isinf(geo.anisotropy(metric[0])).any()
    assert torch.isfinite(spec.log_volume).all() and torch.isfinite(spec.anisotropy).all()
    for point in range(len(x)):
        for layer in (0, model.depth // 2):
            logvol, log_max, log_min = reference_spectrum(model, coords[0, point], layer)
            assert float(spec.log_volume[layer, point]) == pytest.approx(logvol, rel=1e-10, abs=1e-10)
            assert float(spec.log_lambda_max[layer, point]) == pytest.approx(log_max, rel=1e-10, abs=1e-10)
            assert float(spec.log_lambda_min[layer, point]) == pytest.approx(log_min, rel=1e-10, abs=1e-10)
    # the run's log volume and the layers table agree with it; no "inf" beside a finite log volume
    assert torch.allclose(geo.log_volume_elements(model, x), spec.log_volume, rtol=1e-12, atol=1e-12)
    rows = geo.layer_statistics(model, x)
    for row in rows:
        assert math.isfinite(row["log_volume_max"]) and math.isfinite(row["anisotropy_max"])


def test_a_layer_far_in_saturation_keeps_a_finite_log_volume() -> None:
    """Plain tanh, diagonal W: |z| = 500 (sigma' = 4 e^-1000 underflows float64, its log does not)."""
    model = LayeredNetwork(NetworkConfig(kind="plain", depth=2, activation="tanh"), 2).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[[500.0, 0.0], [0.0, 2.0]], [[1.0, 0.0], [0.0, 1.0]]]))
        model.bias.zero_()
    x = torch.tensor([[1.0, 0.3], [-1.0, 0.1]], dtype=F64)
    mpmath.mp.dps = 30
    expected, axes = [], []  # W diagonal: the singular values of Q_0 are products along each axis
    for x1, x2 in x.tolist():
        z0 = [500 * x1, 2 * x2]
        y = [mpmath.tanh(v) for v in z0]
        along = [mpmath.log(mpmath.sech(z0[i]) ** 2 * [500, 2][i] * mpmath.sech(y[i]) ** 2) for i in (0, 1)]
        axes.append(sorted(float(2 * v) for v in along))
        expected.append(float(sum(along)))
    expected = torch.tensor(expected, dtype=F64)
    assert torch.allclose(geo.log_volume_elements(model, x)[0], expected, rtol=1e-13)
    assert torch.allclose(geo.input_log_volume(model, x), expected, rtol=1e-13)
    spec = sp.metric_spectrum(model, geo.layer_coordinates(model, x))
    # lambda_min ~ e^-1986 (sigma' = 4 e^-1000 along x_1): finite in log space, exact
    axes = torch.tensor(axes, dtype=F64)  # (N, 2): log lambda_min, log lambda_max
    assert torch.allclose(spec.log_lambda_min[0], axes[:, 0], rtol=1e-13)
    assert torch.allclose(spec.log_lambda_max[0], axes[:, 1], rtol=1e-13)


def test_relu_switching_a_unit_off_is_still_singular() -> None:
    model = LayeredNetwork(NetworkConfig(kind="plain", depth=2, activation="relu"), 2).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[[1.0, 0.3], [0.2, 1.0]], [[0.7, -0.6], [0.5, 0.9]]]))
        model.bias.copy_(torch.tensor([[5.0, -50.0], [5.0, 5.0]]))
    x = torch.randn(6, 2, dtype=F64)
    spec = sp.metric_spectrum(model, geo.layer_coordinates(model, x))
    assert torch.all(spec.log_volume[0] == -math.inf) and torch.all(spec.anisotropy[0] == math.inf)
    assert torch.isfinite(spec.anisotropy[1:]).all()


@pytest.mark.parametrize(
    ("kind", "width", "activation"),
    [
        ("plain", 2, "tanh"),
        ("plain", 2, "relu"),
        ("residual", 2, "softplus"),
        ("residual", 3, "tanh"),
        ("c2", 2, "tanh"),
    ],
)
def test_log_volumes_alone_are_the_factors_log_volumes_bit_for_bit(
    kind: str, width: int, activation: str
) -> None:
    """The cheap path (layer log-determinants only) gives the bits of the full factors, -inf included."""
    torch.manual_seed(3)
    model = LayeredNetwork(NetworkConfig(kind=kind, width=width, depth=7, activation=activation), 2)
    with torch.no_grad():
        model.weight.mul_(8.0)  # saturated layers; relu switches units off (log volume -inf)
        model.bias.mul_(4.0)
    x = torch.randn(300, 2, dtype=F64, generator=torch.Generator().manual_seed(4))
    coords = geo.layer_coordinates(model, x)
    expected = sp.factors(model, coords).log_det
    assert torch.equal(sp.log_volumes(model, coords), expected)
    if activation == "relu":
        assert torch.isinf(expected).any() and torch.isfinite(expected).any()
    spectrum_volume = sp.input_spectrum(model, coords).log_volume
    assert torch.equal(geo.input_log_volume(model, x), spectrum_volume)


# --------------------------------------------------------------------------- the usual median


def test_median_is_the_mean_of_the_two_middle_values() -> None:
    assert sp.median(torch.tensor([1.0, 2.0, 10.0, 20.0], dtype=F64)) == 6.0
    assert sp.median(torch.tensor([3.0, 1.0, 2.0], dtype=F64)) == 2.0
    assert sp.median(torch.tensor([1.0, math.nan, 3.0], dtype=F64)) == 2.0
    assert math.isnan(sp.median(torch.tensor([], dtype=F64)))
    values = torch.randn(100, dtype=F64)
    assert sp.median(values) == pytest.approx(float(np.median(values.numpy())), rel=1e-15)


# --------------------------------------------------------------------------- c2: g_l in x_l coordinates


def c2_network(width: int, activation: str = "tanh", depth: int = 5, seed: int = 0) -> LayeredNetwork:
    torch.manual_seed(seed)
    cfg = NetworkConfig(kind="c2", width=width, depth=depth, step_size=0.7, activation=activation)
    model = LayeredNetwork(cfg, 2)
    with torch.no_grad():
        model.weight.copy_(torch.randn(depth, width, width))
        model.bias.copy_(0.5 * torch.randn(depth, width))
    return model


def c2_upto(model: LayeredNetwork, n: int):
    """x_0 (w,) -> x_n (w,) of a c2 network, from its update rule alone."""
    W, b = model.float64_weights()

    def forward(x0: torch.Tensor) -> torch.Tensor:
        x, prev = x0, x0
        for layer in range(n):
            x, prev = 2 * x - prev + model.h**2 * model.sigma(W[layer] @ x + b[layer]), x
        return x

    return forward


@pytest.mark.parametrize("width", [2, 3])
@pytest.mark.parametrize("activation", ["tanh", "softplus"])
def test_c2_metric_is_the_datas_metric_in_layer_coordinates(width: int, activation: str) -> None:
    """K_l = dx_l/dx_0 equals autograd's; g_l pulled back to the input by K_l is g_0 at every layer."""
    model = c2_network(width, activation)
    x = torch.randn(16, 2, dtype=F64, generator=torch.Generator().manual_seed(5))
    coords, metric = geo.coordinates_and_metrics(model, x)
    k = sp.trajectory_factors(model, coords)  # (L+1, N, w, w)
    for layer in range(model.depth + 1):
        expected = torch.func.vmap(torch.func.jacrev(c2_upto(model, layer)))(coords[0])
        assert torch.allclose(k[layer], expected, rtol=1e-12, atol=1e-12), layer
        pulled = expected.mT @ metric[layer] @ expected  # to the input with autograd's K_l
        assert torch.allclose(pulled, metric[0], rtol=1e-9, atol=1e-9 * float(metric[0].abs().max())), layer
    whole = torch.func.vmap(torch.func.jacrev(c2_upto(model, model.depth)))(coords[0])
    assert torch.allclose(metric[0], whole.mT @ whole, rtol=1e-10, atol=1e-12)
    assert torch.equal(metric[-1], torch.eye(width, dtype=F64).expand_as(metric[-1]))
    # the state metric under its own name: moving x_l with the velocity x_l - x_{l-1} kept
    state = geo.state_metrics(model, x)
    E = torch.cat([torch.eye(width, dtype=F64)] * 2)  # (2w, w)
    kept = geo.velocity_kept_metrics(model, x)
    assert torch.allclose(kept, E.T @ state @ E, rtol=1e-12, atol=1e-12)
    assert torch.allclose(kept[0], metric[0], rtol=1e-10) and not torch.allclose(kept[1:-1], metric[1:-1])
    # the scalars: log volumes of one convention, consistent with the trajectory Jacobians
    spec = sp.metric_spectrum(model, coords)
    assert torch.allclose(spec.log_volume, 0.5 * torch.linalg.slogdet(metric).logabsdet, rtol=1e-9, atol=1e-9)
    lam = torch.linalg.eigvalsh(metric)
    assert torch.allclose(spec.log_lambda_max, torch.log(lam[..., -1]), rtol=1e-9, atol=1e-9)
    assert torch.allclose(spec.log_lambda_min, torch.log(lam[..., 0]), rtol=1e-7, atol=1e-7)
    traj = geo.trajectory_jacobians(model, coords)  # (L, N, w, w): K_{l+1} K_l^{-1}
    step = spec.log_volume[:-1] - spec.log_volume[1:]
    assert torch.allclose(step, torch.linalg.slogdet(traj).logabsdet, rtol=1e-9, atol=1e-9)


# --------------------------------------------------------------------------- what the sweep reads


def test_sweep_maps_and_ode_limit_read_the_true_log_volume(tmp_path) -> None:
    """A saturated plain network: its saved g_0 reads as singular, its saved log volume is finite."""
    from riemexp.config import GeometryConfig
    from riemexp.data.dataset import Dataset
    from riemexp.sweep import ode_limit
    from riemexp.sweep.figures import read_log_volume
    from riemexp.sweep.summary import Job
    from tests.test_sweep import fake_job

    model = saturated_network("plain", 2)
    x = torch.randn(30, 2, dtype=F64, generator=torch.Generator().manual_seed(3))
    y = (x[:, 0] > 0).to(torch.int64)
    data = Dataset("toy", x[:20], y[:20], x[20:], y[20:], ("left", "right"))
    arrays = steps.compute_geometry(model, data, GeometryConfig(grid_density=12))
    from_g0 = geo.input_log_volume_from_metric(arrays["grid_metric"][0], [1.0, 1.0])
    assert np.isinf(from_g0).mean() > 0.5  # what the sweep maps used to show: mostly grey
    saved = arrays["grid_input_log_volume"]
    assert np.isfinite(saved).all() and np.isfinite(arrays["data_input_log_volume"]).all()
    assert np.allclose(saved, geo.input_log_volume(model, arrays["grid_points"]).numpy(), rtol=1e-13)
    job = fake_job(tmp_path, 0, depth=6, seed=0, kind="plain")
    steps.save_geometry(job / "geometry.npz", arrays)
    field = read_log_volume(job)
    assert field is not None and np.array_equal(field.logvol.ravel(), saved)
    grid = ode_limit._grid_metric(Job("0", job, {}, {}, {}))
    assert grid is not None and np.array_equal(grid[3], saved)
    # a geometry.npz of an earlier version (no saved log volume): read from g_0, as then
    steps.save_geometry(job / "geometry.npz", {name: arrays[name] for name in steps.GEOMETRY_ARRAYS})
    field = read_log_volume(job)
    assert field is not None and np.array_equal(field.logvol.ravel(), from_g0)
    # a corrupt saved log volume is refused like any corrupt array
    bad = {**arrays, "grid_input_log_volume": np.full_like(saved, np.nan)}
    np.savez(job / "geometry.npz", **bad)
    with pytest.raises(RunFolderError, match="grid_input_log_volume holds NaN"):
        steps.load_geometry(job)
