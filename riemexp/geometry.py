"""Exact per-layer geometry: closed-form layer Jacobians and the metric pulled back to every layer.

Implements paper.md §3 (and the Lie-group diagnostics of §4) in float64, batched over
points, without autograd. Conventions:

Layers. Layer 0 is the *standardised, zero-padded* input x_0 = pad((x - shift) / scale),
exactly as `LayeredNetwork.coordinates` defines it; layer L is the last hidden layer.
`layer_coordinates(model, x)` -> (L+1, N, w) recomputes those coordinates in float64.

Layer Jacobians, J_l = dx_{l+1}/dx_l at x_l, with D = diag(sigma'(W_l x_l + b_l)):

    plain     J_l = D W_l                                   (L, N, w, w)
    residual  J_l = I + h D W_l                             (L, N, w, w)
    c2        J_l = [[2I + h^2 D W_l, -I], [I, 0]]          (L, N, 2w, 2w)

For c2 the Jacobian acts on the state s_l = (x_l, x_{l-1}), s_0 = (x_0, x_0).

Metrics. g_L = I at the last hidden layer (the head is linear) and g_l = J_l^T g_{l+1} J_l.
We never form the product that way: we carry Q_l = dx_L/dx_l (Q_L = I, Q_l = Q_{l+1} J_l)
and write g_l = Q_l^T Q_l, which is symmetric and positive semi-definite by construction
and gives log det g_l = 2 log|det Q_l| without squaring. For c2 we carry the state row
R_l = dx_L/ds_l (w, 2w) (R_L = [I, 0], R_l = R_{l+1} J_l) and report, at every layer,

    g_l = E^T G_l E,   G_l = R_l^T R_l,   E = [I; I]  (2w x w),

the metric for moving the point at layer l with its velocity x_l - x_{l-1} kept (both
halves of the state move by the same dx). At l = 0 this is exactly J^T J of the whole
map x_0 -> x_L (because x_{-1} = x_0); at l = L it is I. `c2_state_metrics` returns the
full state metrics G_l (L+1, N, 2w, 2w) for anyone who wants the other blocks.

g_0 is the metric in layer-0 (standardised) coordinates; `input_metric` converts it to
the user's input units by the chain rule through the standardisation and the padding.

The run artifact `geometry.npz` (see `compute_geometry`) and the per-layer table
`tables/layers.csv|md` (see `layer_table`) are written by `geometry_step`, the first
analysis step of `riemexp train`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from riemexp import console
from riemexp.budget import (  # noqa: F401 (torch-free, so that config checks need no torch; part of this API)
    MIN_COVERAGE,
    check_memory,
    fitting_density,
    geometry_nbytes,
    lattice_fits,
    plots_grid_density,
)
from riemexp.config import GeometryConfig, NetworkKind
from riemexp.errors import GeometryError, RunFolderError, safe_reason
from riemexp.io import atomic_save
from riemexp.layout import GEOMETRY_FILE, TABLES_DIR
from riemexp.networks import INPUT_DIM, LayeredNetwork
from riemexp.tables import write_table
from riemexp.timing import stage

if TYPE_CHECKING:
    from riemexp.datasets import Dataset
    from riemexp.run import RunContext

F64 = torch.float64
LAYERS_TABLE = f"{TABLES_DIR}/layers"
#: a metric with lambda_min <= SINGULAR_RTOL * lambda_max is singular to float64 precision: the
#: rounding error of a computed g is about eps * lambda_max, so smaller eigenvalues are noise
SINGULAR_RTOL = 1e-12

# --------------------------------------------------------------------------- parameters


def _as_points(model: LayeredNetwork, x: torch.Tensor | np.ndarray) -> torch.Tensor:
    x = torch.as_tensor(x).to(device=model.weight.device, dtype=F64)
    if x.ndim != 2 or x.shape[1] != INPUT_DIM:
        raise GeometryError(f"points must have shape (N, {INPUT_DIM}), got {tuple(x.shape)}")
    return x


# --------------------------------------------------------------------------- coordinates


@torch.no_grad()
def layer_coordinates(model: LayeredNetwork, x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Coordinates of input points x (N, 2) in every layer, float64: (L+1, N, w).

    Layer 0 is the standardised, zero-padded input; the update rules are those of
    `riemexp.networks` (plain, residual, c2 with x_{-1} = x_0), evaluated in float64.
    """
    x = _as_points(model, x)
    W, b = model.float64_weights()
    L, w = W.shape[0], W.shape[1]
    coords = torch.empty((L + 1, x.shape[0], w), dtype=F64, device=x.device)  # (L+1, N, w)
    shift, scale = model.input_shift.to(F64), model.input_scale.to(F64)
    coords[0].zero_()
    coords[0, :, :INPUT_DIM] = (x - shift) / scale
    h, sigma = model.h, model.sigma
    for layer in range(L):
        xl = coords[layer]
        act = sigma(torch.addmm(b[layer], xl, W[layer].T))  # (N, w)
        if model.kind is NetworkKind.PLAIN:
            coords[layer + 1] = act
        elif model.kind is NetworkKind.RESIDUAL:
            torch.add(xl, act, alpha=h, out=coords[layer + 1])
        else:
            prev = coords[layer - 1] if layer > 0 else xl
            coords[layer + 1] = 2 * xl - prev + h * h * act
    return coords


# --------------------------------------------------------------------------- Jacobians


def _dw(model: LayeredNetwork, W: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """D W with D = diag(sigma'(W x + b)), batched.

    W (..., w, w), b (..., w), x (..., N, w) -> (..., N, w, w).
    """
    z = torch.matmul(x, W.mT) + b.unsqueeze(-2)  # (..., N, w)
    return model.dsigma(z).unsqueeze(-1) * W.unsqueeze(-3)  # (..., N, w, w)


def _block(model: LayeredNetwork, W: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The per-layer block that the recursions need, (..., N, w, w):

    plain D W, residual I + h D W, c2 the position block A = 2I + h^2 D W of the state Jacobian.
    """
    jac = _dw(model, W, b, x)
    if model.kind is NetworkKind.PLAIN:
        return jac
    if model.kind is NetworkKind.RESIDUAL:
        jac.mul_(model.h).diagonal(dim1=-2, dim2=-1).add_(1.0)
    else:
        jac.mul_(model.h**2).diagonal(dim1=-2, dim2=-1).add_(2.0)
    return jac


@torch.no_grad()
def layer_jacobians(model: LayeredNetwork, coords: torch.Tensor) -> torch.Tensor:
    """Closed-form layer Jacobians at the points' own coordinates, float64.

    coords: (L+1, N, w) from `layer_coordinates` (or `model.coordinates(x)` in float64).
    Returns J_l = dx_{l+1}/dx_l evaluated at x_l, for l = 0 .. L-1:

        plain     D W_l                                  (L, N, w, w)
        residual  I + h D W_l                            (L, N, w, w)
        c2        [[2I + h^2 D W_l, -I], [I, 0]]         (L, N, 2w, 2w), on the state (x_l, x_{l-1})

    with D = diag(sigma'(W_l x_l + b_l)). One batched evaluation, no autograd.
    """
    coords = coords.to(F64)
    W, b = model.float64_weights()
    W, b = W.to(coords.device), b.to(coords.device)
    block = _block(model, W, b, coords[:-1])  # (L, N, w, w)
    if model.kind is not NetworkKind.C2:
        return block
    L, N, w, _ = block.shape
    eye = torch.eye(w, dtype=F64, device=block.device)
    state = torch.zeros((L, N, 2 * w, 2 * w), dtype=F64, device=block.device)
    state[..., :w, :w] = block
    state[..., :w, w:] = -eye
    state[..., w:, :w] = eye
    return state


# --------------------------------------------------------------------------- pullback


def pullback_from_jacobians(
    model: LayeredNetwork,
    coords: torch.Tensor,
    block_at: Callable[[int], torch.Tensor],
) -> torch.Tensor:
    """Generic pullback from per-layer Jacobian blocks: metric (L+1, N, w, w).

    block_at(l) gives the (N, w, w) block of layer l (J_l; for c2 the position block A_l).
    Plain/residual: Q_L = I, Q_l = Q_{l+1} J_l. c2: the state row R = [R1, R2] = dx_L/ds_l
    (w x 2w) starts at [I, 0] and follows R <- R J_l = [R1 A_l + R2, -R1]; Q_l = R1 + R2 = R E.
    Then g_l = Q_l^T Q_l. Batched matmuls over the N points. `pullback_metrics` uses the
    faster `_pullback`, which exploits J_l = I + h D W; this one serves Jacobians from
    elsewhere (the benchmark's autograd reference).
    """
    L, N, w = coords.shape[0] - 1, coords.shape[1], coords.shape[2]
    metric = torch.empty((L + 1, N, w, w), dtype=F64, device=coords.device)  # (L+1, N, w, w)
    r1 = torch.eye(w, dtype=F64, device=coords.device).expand(N, w, w).contiguous()  # (N, w, w)
    r2 = torch.zeros_like(r1) if model.kind is NetworkKind.C2 else None
    for layer in range(L, -1, -1):
        if layer < L:
            block = block_at(layer)  # (N, w, w)
            if r2 is None:
                r1 = torch.bmm(r1, block)
            else:
                r1, r2 = torch.baddbmm(r2, r1, block), -r1
        q = r1 if r2 is None else r1 + r2  # (N, w, w)
        torch.matmul(q.mT, q, out=metric[layer])
    return metric


def _pullback(
    model: LayeredNetwork, coords: torch.Tensor, keep_q: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Pull g_L = I back to every layer: metric (L+1, N, w, w) and, if keep_q, Q (L+1, N, w, w).

    The recursion of `pullback_from_jacobians` without forming J_l: with D = sigma'(z_l)
    and Q stored points-last as q[i, k, n] (contiguous in n),

        plain     Q <- (Q D) W
        residual  Q <- Q + h (Q D) W
        c2        R1 <- 2 R1 + h^2 (R1 D) W + R2,  R2 <- -R1   (Q = R1 + R2)

    where (Q D) scales column k by D_k and "(.) W" is one small GEMM per row of Q. Then
    g_l[a, b] = sum_i Q[i, a] Q[i, b], computed points-last and copied into the (N, w, w) output.
    """
    L, N, w = coords.shape[0] - 1, coords.shape[1], coords.shape[2]
    W, b = model.float64_weights()
    W, b = W.to(coords.device), b.to(coords.device)
    metric = torch.empty((L + 1, N, w, w), dtype=F64, device=coords.device)  # (L+1, N, w, w)
    qs = torch.empty_like(metric) if keep_q else None
    eye = torch.eye(w, dtype=F64, device=coords.device)
    r1 = eye[:, :, None].expand(w, w, N).contiguous()  # (w, w, N): Q_L = I, stored q[i, k, n]
    r2 = torch.zeros_like(r1) if model.kind is NetworkKind.C2 else None
    g = torch.empty_like(r1)  # (w, w, N): one layer's metric, points last
    kind, h = model.kind, model.h
    for layer in range(L, -1, -1):
        if layer < L:
            z = torch.addmm(b[layer][:, None], W[layer], coords[layer].T)  # (w, N)
            qd = r1 * model.dsigma(z)[None, :, :]  # (w, w, N): Q D
            wt = W[layer].T.expand(w, w, w)  # (w, w, w): (Q D) W row by row as W^T (Q D)[i]
            if kind is NetworkKind.PLAIN:
                r1 = torch.bmm(wt, qd)
            elif kind is NetworkKind.RESIDUAL:
                r1 = torch.baddbmm(r1, wt, qd, alpha=h)
            else:
                r1, r2 = torch.baddbmm(torch.add(r2, r1, alpha=2.0), wt, qd, alpha=h * h), -r1
        q = r1 if r2 is None else r1 + r2  # (w, w, N), q[i, a, n] = Q_n[i, a]
        torch.mul(q[0, :, None, :], q[0, None, :, :], out=g)  # g[a, b, n] = sum_i q[i, a, n] q[i, b, n]
        for i in range(1, w):
            g.addcmul_(q[i, :, None, :], q[i, None, :, :])
        metric[layer].copy_(g.permute(2, 0, 1))
        if qs is not None:
            qs[layer] = q.permute(2, 0, 1)
    return metric, qs


@torch.no_grad()
def coordinates_and_metrics(
    model: LayeredNetwork, x: torch.Tensor | np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """Coordinates (L+1, N, w) and metrics (L+1, N, w, w) of points x (N, 2), float64, in one pass."""
    coords = layer_coordinates(model, x)
    metric, _ = _pullback(model, coords)
    return coords, metric


def pullback_metrics(model: LayeredNetwork, x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """The metric tensor of every layer at input points x (N, 2): (L+1, N, w, w), float64.

    g_L = I; g_l = J_l^T g_{l+1} J_l (paper.md §3), so g_l = Q_l^T Q_l with Q_l = dx_L/dx_l.
    g_0 is J^T J of the whole map x_0 -> x_L, in layer-0 (standardised) coordinates.
    For c2, g_l = E^T G_l E is the state metric G_l reduced to moving the point with its
    velocity kept (module docstring); g_0 is again J^T J of the whole map.
    """
    return coordinates_and_metrics(model, x)[1]


@torch.no_grad()
def c2_state_metrics(model: LayeredNetwork, x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """For a c2 network, the metric on the state s_l = (x_l, x_{l-1}): (L+1, N, 2w, 2w), float64.

    G_L = P^T P with P = [I, 0] (only x_L reaches the head), G_l = J_l^T G_{l+1} J_l with the
    state Jacobians of `layer_jacobians`. `pullback_metrics` reports E^T G_l E, E = [I; I].
    """
    if model.kind is not NetworkKind.C2:
        raise GeometryError(f"c2_state_metrics needs a c2 network, got a {model.kind.value} network")
    coords = layer_coordinates(model, x)
    jac = layer_jacobians(model, coords)  # (L, N, 2w, 2w)
    L, N, w = coords.shape[0] - 1, coords.shape[1], coords.shape[2]
    state = torch.empty((L + 1, N, 2 * w, 2 * w), dtype=F64, device=coords.device)
    r = torch.zeros((N, w, 2 * w), dtype=F64, device=coords.device)  # dx_L/ds_l
    r[:, :, :w] = torch.eye(w, dtype=F64)
    for layer in range(L, -1, -1):
        if layer < L:
            r = torch.bmm(r, jac[layer])
        torch.matmul(r.mT, r, out=state[layer])
    return state


def input_metric(model: LayeredNetwork, x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """The input metric in the user's input units at points x (N, 2): (N, 2, 2), float64.

    x_0 = P S (x - shift) with S = diag(1 / input_scale) and P the zero padding (w x 2), so by
    the chain rule g_in = S P^T g_0 P S = S g_0[:2, :2] S. A displacement dx in input units
    has length sqrt(dx^T g_in dx) in the last hidden layer.
    """
    g0 = pullback_metrics(model, x)[0, :, :INPUT_DIM, :INPUT_DIM]  # (N, 2, 2)
    inv = 1.0 / model.input_scale.detach().to(F64).to(g0.device)  # (2,)
    return g0 * inv[:, None] * inv[None, :]


# --------------------------------------------------------------------------- scalars of a metric


def metric_eigh(metric: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigen-decomposition of symmetric metrics (..., w, w).

    Returns eigenvalues ascending (..., w) and eigenvectors (..., w, w) (torch.linalg.eigh).
    Column k of the eigenvectors belongs to eigenvalue k.
    """
    return torch.linalg.eigh(metric)


def _eigenvalues(metric: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ascending eigenvalues (..., w) of metrics (..., w, w) and where they are singular (...).

    Singular to float64 precision: lambda_min <= SINGULAR_RTOL * lambda_max, below the rounding
    level of a computed g.
    """
    lam = torch.linalg.eigvalsh(metric)
    return lam, lam[..., 0] <= SINGULAR_RTOL * lam[..., -1].clamp_min(0.0)


def log_volume_element(metric: torch.Tensor) -> torch.Tensor:
    """1/2 log det g of metrics (..., w, w) -> (...), without forming det g.

    1/2 sum log lambda_i over the eigenvalues (symmetric solver), so values far outside
    float64's range of det g (e.g. det g = 1e-400 from a deep network) come out finite. A
    metric that is singular to float64 precision (`_eigenvalues`) gives -inf.
    """
    lam, singular = _eigenvalues(metric)
    logvol = 0.5 * torch.log(lam.clamp_min(torch.finfo(lam.dtype).tiny)).sum(-1)
    return torch.where(singular, torch.full_like(logvol, -math.inf), logvol)


def anisotropy(metric: torch.Tensor) -> torch.Tensor:
    """lambda_max / lambda_min of metrics (..., w, w) -> (...); inf where singular (as above)."""
    lam, singular = _eigenvalues(metric)
    ratio = lam[..., -1] / lam[..., 0].clamp_min(torch.finfo(lam.dtype).tiny)
    return torch.where(singular, torch.full_like(ratio, math.inf), ratio)


def _factor_log_volumes(
    model: LayeredNetwork, coords: torch.Tensor, q: torch.Tensor | None, jac: torch.Tensor | None = None
) -> torch.Tensor:
    """log|det Q_l| = 1/2 log det g_l for every layer: (L+1, N).

    Plain and residual: sum over k >= l of log|det J_k| (each layer's own determinant, summed
    from the top; `jac` (L, N, w, w) if already computed), so a layer that is exactly singular
    (a relu unit switched off in a plain layer) gives exactly -inf, not a rounding-level finite
    number. c2 (whose layer Jacobians act on the state): log|det Q_l| of the carried factor q.
    """
    if model.kind is NetworkKind.C2:
        assert q is not None
        return torch.linalg.slogdet(q).logabsdet
    jac = layer_jacobians(model, coords) if jac is None else jac
    per_layer = torch.linalg.slogdet(jac).logabsdet  # (L, N)
    out = torch.zeros((coords.shape[0], coords.shape[1]), dtype=F64, device=coords.device)
    out[:-1] = per_layer.flip(0).cumsum(0).flip(0)
    return out


@torch.no_grad()
def log_volume_elements(model: LayeredNetwork, x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """1/2 log det g_l of every layer at input points x (N, 2): (L+1, N), float64.

    Computed as log|det Q_l| with Q_l the factor of g_l = Q_l^T Q_l (for plain/residual
    Q_l = dx_L/dx_l, so this is the sum over k >= l of log|det J_k|, see `_factor_log_volumes`):
    det g is never formed, so deep networks whose metric entries would under- or overflow still
    get finite values. -inf only where a layer is exactly singular (e.g. relu switching a unit off).
    """
    coords = layer_coordinates(model, x)
    q = _pullback(model, coords, keep_q=True)[1] if model.kind is NetworkKind.C2 else None
    return _factor_log_volumes(model, coords, q)


@torch.no_grad()
def input_log_volume(model: LayeredNetwork, x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """1/2 log det g_in at input points x (N, 2): (N,), float64, in the user's input units.

    g_in = S P^T g_0 P S (`input_metric`) is the metric of the data plane, so for width w > 2
    this is the area element of the plane, not the w-volume of the padded space. With
    g_0 = Q_0^T Q_0, P^T g_0 P = (Q_0 P)^T (Q_0 P) and Q_0 P = U R (QR, R 2 x 2), so

        1/2 log det g_in = log|det R| - sum log input_scale,

    without forming det g: finite where the metric's entries under- or overflow. At w = 2 for
    plain and residual networks log|det R| = log|det Q_0| is the sum of the layers' own
    log|det J_k| (`_factor_log_volumes`: exactly -inf where a layer is singular). The one
    definition of "input log volume element" used by the run's metrics, its input-space heat
    map and the sweep tables and figures (`input_log_volume_from_metric` for saved arrays).
    """
    coords = layer_coordinates(model, x)
    log_scale = torch.log(model.input_scale.detach().to(F64).to(coords.device)).sum()
    if model.width == INPUT_DIM and model.kind is not NetworkKind.C2:
        return _factor_log_volumes(model, coords, None)[0] - log_scale
    _, q = _pullback(model, coords, keep_q=True)
    r = torch.linalg.qr(q[0][..., :INPUT_DIM], mode="r").R  # (N, 2, 2)
    return torch.linalg.slogdet(r).logabsdet - log_scale


def input_log_volume_from_metric(metric0: torch.Tensor | np.ndarray, input_scale: Any) -> np.ndarray:
    """`input_log_volume` from saved layer-0 metrics g_0 (..., w, w) (geometry.npz): (...), float64.

    1/2 log det g_0[:2, :2] - sum log input_scale, by `log_volume_element` of the stored
    2 x 2 block (-inf where that block is singular to float64 precision).
    """
    g = torch.as_tensor(np.asarray(metric0, dtype=np.float64))[..., :INPUT_DIM, :INPUT_DIM]
    log_scale = float(np.log(np.asarray(input_scale, dtype=np.float64)).sum())
    return (log_volume_element(g) - log_scale).numpy()


# --------------------------------------------------------------------------- grid


def make_grid(
    points: torch.Tensor | np.ndarray, density: int, margin: float
) -> tuple[np.ndarray, tuple[int, int]]:
    """A regular grid over the bounding box of points (N, 2), grown by `margin` x its size per side.

    Returns grid_points (G, 2) float64 with G = ny * nx and grid_shape (ny, nx) = (density,
    density); x varies fastest, so grid_points.reshape(ny, nx, 2)[i, j] is row i (y), column j (x).
    An axis along which all points coincide gets a box of size 1 around them.
    """
    pts = np.asarray(torch.as_tensor(points).detach().cpu(), dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != INPUT_DIM or len(pts) == 0:
        raise GeometryError(f"points must have shape (N, {INPUT_DIM}) with N >= 1, got {pts.shape}")
    if density < 2:
        raise GeometryError(f"grid density must be >= 2, got {density}")
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    centre = (lo + hi) / 2
    lo, hi = centre - span * (0.5 + margin), centre + span * (0.5 + margin)
    xs = np.linspace(lo[0], hi[0], density)
    ys = np.linspace(lo[1], hi[1], density)
    gx, gy = np.meshgrid(xs, ys, indexing="xy")  # (ny, nx) each, x fastest when flattened
    return np.stack([gx.ravel(), gy.ravel()], axis=1), (density, density)


# --------------------------------------------------------------------------- the run artifact

#: geometry.npz: name -> shape with symbolic sizes (G grid points, N data points, L depth,
#: w width, C classes)
GEOMETRY_ARRAYS: dict[str, tuple[str, ...]] = {
    "grid_points": ("G", "2"),
    "grid_shape": ("2",),
    "grid_coords": ("L+1", "G", "w"),
    "grid_metric": ("L+1", "G", "w", "w"),
    "data_points": ("N", "2"),
    "data_labels": ("N",),
    "data_coords": ("L+1", "N", "w"),
    "data_metric": ("L+1", "N", "w", "w"),
    "grid_proba": ("G", "C"),
}


def _check_finite(name: str, array: torch.Tensor, what: str) -> None:
    """Raise GeometryError if `array` (L+1, M, ...) holds inf or NaN, naming layers and counts."""
    bad = ~torch.isfinite(array.reshape(array.shape[0], array.shape[1], -1)).all(dim=-1)  # (L+1, M)
    if bad.any():
        layers = torch.nonzero(bad.any(dim=1)).flatten().tolist()
        raise GeometryError(
            f"{name} overflows float64: {int(bad[layers[0]].sum())} of {array.shape[1]} {what} are "
            f"inf or NaN at layer {layers[0]} (layers affected: {layers[0]}..{layers[-1]}); the network "
            "stretches space beyond float64's range there (try a smaller network.depth or step_size, or "
            "a bounded activation)"
        )


@torch.no_grad()
def compute_geometry(model: LayeredNetwork, data: Dataset, cfg: GeometryConfig) -> dict[str, np.ndarray]:
    """Coordinates and metrics of a grid and of the dataset in every layer: the `geometry.npz` arrays.

    data.x / data.y (train then test) give data_points (N, 2) and data_labels (N,); the grid
    covers their bounding box (`make_grid` with cfg.grid_density and cfg.margin). Returns
    float64 arrays with the names and shapes of `GEOMETRY_ARRAYS` (grid_shape and data_labels
    are int64). Raises GeometryError before any work when the arrays would need more than
    cfg.max_memory_gb, and when coordinates or metrics overflow float64.
    """
    points = data.x.detach().cpu().to(F64)
    labels = data.y.detach().cpu().to(torch.int64)
    check_memory(cfg, len(points), model.depth, model.width, model.head.out_features, model.kind.value)
    grid, shape = make_grid(points, cfg.grid_density, cfg.margin)
    grid_coords, grid_metric = coordinates_and_metrics(model, grid)
    _check_finite("grid coordinates", grid_coords, "grid points")
    _check_finite("the grid metric", grid_metric, "grid points")
    data_coords, data_metric = coordinates_and_metrics(model, points)
    _check_finite("data coordinates", data_coords, "data points")
    _check_finite("the data metric", data_metric, "data points")
    V = model.head.weight.detach().to(F64).to(grid_coords.device)  # (C, w)
    c = model.head.bias.detach().to(F64).to(grid_coords.device)  # (C,)
    proba = torch.softmax(torch.addmm(c, grid_coords[-1], V.T), dim=1)  # (G, C)
    return {
        "grid_points": grid,
        "grid_shape": np.asarray(shape, dtype=np.int64),
        "grid_coords": grid_coords.cpu().numpy(),
        "grid_metric": grid_metric.cpu().numpy(),
        "data_points": points.numpy(),
        "data_labels": labels.numpy(),
        "data_coords": data_coords.cpu().numpy(),
        "data_metric": data_metric.cpu().numpy(),
        "grid_proba": proba.cpu().numpy(),
    }


def check_geometry(arrays: Mapping[str, np.ndarray], where: str = "geometry arrays") -> None:
    """Check the names and consistent shapes of geometry arrays; raise RunFolderError naming the problem."""
    missing = [name for name in GEOMETRY_ARRAYS if name not in arrays]
    if missing:
        raise RunFolderError(f"{where} is incomplete: missing {', '.join(missing)}")
    sizes: dict[str, int] = {"2": INPUT_DIM}
    for name, dims in GEOMETRY_ARRAYS.items():
        shape = tuple(arrays[name].shape)
        ok = len(shape) == len(dims)
        for dim, size in zip(dims, shape) if ok else ():
            if sizes.setdefault(dim, size) != size:
                ok = False
        if not ok:
            expected = "(" + ", ".join(f"{d}={sizes[d]}" if d in sizes else d for d in dims) + ")"
            raise RunFolderError(f"{where} is corrupt: {name} has shape {shape}, expected {expected}")
    ny, nx = (int(v) for v in arrays["grid_shape"])
    if ny * nx != sizes["G"]:
        raise RunFolderError(
            f"{where} is corrupt: grid_shape {ny} x {nx} does not match {sizes['G']} grid points"
        )
    for name in GEOMETRY_ARRAYS:  # compute_geometry never saves inf or NaN (GeometryError instead)
        values = np.asarray(arrays[name])
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            raise RunFolderError(f"{where} is corrupt: {name} holds inf or NaN")


def save_geometry(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write geometry arrays (names of `GEOMETRY_ARRAYS`) to an .npz file atomically."""
    check_geometry(arrays)

    def saver(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **{name: np.asarray(arrays[name]) for name in GEOMETRY_ARRAYS})

    atomic_save(path, saver)


def load_geometry(path: str | Path) -> dict[str, np.ndarray]:
    """Read a geometry.npz (a file, or a run folder holding one); check its arrays.

    Raises RunFolderError naming the missing file, the missing arrays or the corrupt ones.
    """
    path = Path(path)
    if path.is_dir():
        path = path / GEOMETRY_FILE
    if not path.is_file():
        raise RunFolderError(f"{path} is missing (run `riemexp train` with geometry.enabled=true)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except Exception as err:  # zip, zlib and format errors come in many types
        raise RunFolderError(f"{path} is corrupt: {safe_reason(err)}") from None
    check_geometry(arrays, str(path))
    return arrays


# --------------------------------------------------------------------------- the layers table

#: columns of tables/layers.csv|md; row l describes layer l (the metric g_l at x_l) and, in the
#: last three columns, the map l -> l+1 (empty in the last row, l = L, where g_L = I)
LAYER_COLUMNS = (
    "layer",
    "log_volume_mean",
    "log_volume_median",
    "log_volume_max",
    "anisotropy_median",
    "anisotropy_max",
    "step_length_mean",
    "det_positive_fraction",
    "jacobian_minus_identity_mean",
)


@torch.no_grad()
def _trajectory_jacobians(model: LayeredNetwork, coords: torch.Tensor) -> torch.Tensor:
    """dx_{l+1}/dx_l along the data trajectory, (L, N, w, w).

    Plain/residual: the layer Jacobians J_l. c2, where x_{l+1} depends on (x_l, x_{l-1}):
    K_{l+1} K_l^{-1} with K_l = dx_l/dx_0 (K_{-1} = K_0 = I, K_{l+1} = A_l K_l - K_{l-1}),
    i.e. how layer l -> l+1 changes coordinates on the data manifold; NaN where K_l is singular.
    """
    if model.kind is not NetworkKind.C2:
        return layer_jacobians(model, coords)
    a = _block(model, *(p.to(coords.device) for p in model.float64_weights()), coords[:-1])  # (L, N, w, w)
    L, N, w, _ = a.shape
    k_prev = k = torch.eye(w, dtype=F64, device=a.device).expand(N, w, w)
    out = torch.empty_like(a)
    for layer in range(L):
        k_next = torch.matmul(a[layer], k) - k_prev
        sol, info = torch.linalg.solve_ex(k.mT, k_next.mT)  # (K_{l+1} K_l^{-1})^T
        out[layer] = torch.where((info == 0)[:, None, None], sol.mT, torch.full_like(sol, math.nan))
        k_prev, k = k, k_next
    return out


def _stat(values: torch.Tensor, how: str) -> float:
    if values.numel() == 0:
        return math.nan
    if how == "mean":
        return float(values.mean())
    if how == "median":
        return float(values.median())
    return float(values.max())


@torch.no_grad()
def layer_table(model: LayeredNetwork, x: torch.Tensor | np.ndarray) -> list[dict[str, Any]]:
    """One row per layer l = 0 .. L of statistics over input points x (N, 2); columns `LAYER_COLUMNS`.

    log_volume_*: 1/2 log det g_l (mean, median, max over points; robust, see
    `log_volume_elements`). anisotropy_*: lambda_max / lambda_min of g_l (median, max).
    step_length_mean: mean |x_{l+1} - x_l|. det_positive_fraction: fraction of points with
    det J_l > 0 (the layer keeps orientation). jacobian_minus_identity_mean: mean Frobenius
    norm |J_l - I|. The last three describe the map l -> l+1 and are None in the last row
    (l = L, the last hidden layer, where g_L = I: log volume 0, anisotropy 1). For c2, J_l is
    the trajectory Jacobian dx_{l+1}/dx_l (see `_trajectory_jacobians`), not the state Jacobian,
    whose determinant is always 1.
    """
    coords = layer_coordinates(model, x)
    metric, q = _pullback(model, coords, keep_q=True)
    jac = _trajectory_jacobians(model, coords)  # (L, N, w, w): the layer Jacobians unless c2
    logvol = _factor_log_volumes(model, coords, q, jac)  # (L+1, N)
    aniso = anisotropy(metric)  # (L+1, N)
    steps = (coords[1:] - coords[:-1]).norm(dim=-1)  # (L, N)
    sign, _ = torch.linalg.slogdet(jac.nan_to_num(0.0))
    eye = torch.eye(jac.shape[-1], dtype=F64, device=jac.device)
    dist = (jac - eye).flatten(-2).norm(dim=-1)  # (L, N)
    rows = []
    for layer in range(coords.shape[0]):
        row: dict[str, Any] = {
            "layer": layer,
            "log_volume_mean": _stat(logvol[layer], "mean"),
            "log_volume_median": _stat(logvol[layer], "median"),
            "log_volume_max": _stat(logvol[layer], "max"),
            "anisotropy_median": _stat(aniso[layer], "median"),
            "anisotropy_max": _stat(aniso[layer], "max"),
            "step_length_mean": None,
            "det_positive_fraction": None,
            "jacobian_minus_identity_mean": None,
        }
        if layer < coords.shape[0] - 1:
            finite = dist[layer][torch.isfinite(dist[layer])]
            row.update(
                step_length_mean=_stat(steps[layer], "mean"),
                det_positive_fraction=float((sign[layer] > 0).to(F64).mean()),
                jacobian_minus_identity_mean=_stat(finite, "mean"),
            )
        rows.append(row)
    return rows


def _shown_layers(n_layers: int, at_most: int = 9) -> list[int]:
    if n_layers <= at_most:
        return list(range(n_layers))
    return sorted({round(i * (n_layers - 1) / (at_most - 1)) for i in range(at_most)})


def geometry_step(ctx: RunContext) -> None:
    """Analysis step of `riemexp train`: geometry.npz, tables/layers.csv|md and two metrics.

    Adds to ctx.metrics: input_log_volume_median and input_anisotropy_median (medians over the
    dataset of `input_log_volume` and of the anisotropy of `input_metric`, the metric of the
    data plane in the user's input units) and geometry_seconds. The layers table's row 0 is
    instead g_0 itself, in layer-0 (standardised, padded) coordinates, like every other row.
    """
    start = time.perf_counter()
    arrays = compute_geometry(ctx.model, ctx.data, ctx.cfg.geometry)
    with stage("writing"):
        save_geometry(ctx.out_dir / GEOMETRY_FILE, arrays)
    rows = layer_table(ctx.model, ctx.data.x)
    with stage("writing"):
        write_table(ctx.out_dir / LAYERS_TABLE, rows, LAYER_COLUMNS)
    ctx.metrics["input_log_volume_median"] = _stat(input_log_volume(ctx.model, ctx.data.x), "median")
    ctx.metrics["input_anisotropy_median"] = _stat(anisotropy(input_metric(ctx.model, ctx.data.x)), "median")
    ctx.metrics["geometry_seconds"] = round(time.perf_counter() - start, 4)

    def cell(value: Any) -> Any:
        return "" if value is None else value

    console.show_table(
        f"geometry per layer over the data (all layers: {LAYERS_TABLE}.md)",
        ["layer", "log vol (median)", "anisotropy (median)", "det J > 0", "|J - I| (mean)"],
        [
            [
                rows[i]["layer"],
                rows[i]["log_volume_median"],
                rows[i]["anisotropy_median"],
                cell(rows[i]["det_positive_fraction"]),
                cell(rows[i]["jacobian_minus_identity_mean"]),
            ]
            for i in _shown_layers(len(rows))
        ],
    )
