"""The metric pulled back to every layer (the pullback of the Euclidean metric of the last layer).

g_L = I at the last hidden layer (the head is linear) and g_l = J_l^T g_{l+1} J_l. We never form the
product that way: we carry Q_l = dx_L/dx_l (Q_L = I, Q_l = Q_{l+1} J_l) and write g_l = Q_l^T Q_l,
which is symmetric and positive semi-definite by construction and gives log det g_l = 2 log|det Q_l|
without squaring.

Two-step kinds (c2) carry the state row R_l = dx_L/ds_l (w, 2w) (R_L = [I, 0], R_l = R_{l+1} J_l, i.e.
R <- [R1 A_l + R2, c R1]) and report, at every layer,

    g_l = E^T G_l E,   G_l = R_l^T R_l,   E = [I; I]  (2w x w),

the metric for moving the point at layer l with its velocity x_l - x_{l-1} kept (both halves of the
state move by the same dx). At l = 0 this is exactly J^T J of the whole map x_0 -> x_L (because
x_{-1} = x_0); at l = L it is I. `state_metrics` returns the full state metrics G_l.

g_0 is the metric in layer-0 (standardised) coordinates; `input_metric` converts it to the user's
input units by the chain rule through the standardisation and the padding.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from riemexp.config import INPUT_DIM
from riemexp.errors import GeometryError
from riemexp.geometry.coordinates import F64, layer_coordinates, layer_jacobians, weights_on
from riemexp.nets.network import LayeredNetwork


def pullback_from_jacobians(
    model: LayeredNetwork,
    coords: torch.Tensor,
    block_at: Callable[[int], torch.Tensor],
) -> torch.Tensor:
    """Generic pullback from per-layer Jacobian blocks: metric (L+1, N, w, w).

    block_at(l) gives the (N, w, w) block of layer l (J_l; for two-step kinds the position block
    A_l). One-step: Q_L = I, Q_l = Q_{l+1} J_l. Two-step: the state row R = [R1, R2] = dx_L/ds_l
    (w x 2w) starts at [I, 0] and follows R <- R J_l = [R1 A_l + R2, c R1]; Q_l = R1 + R2 = R E.
    Then g_l = Q_l^T Q_l. Batched matmuls over the N points. `pullback_metrics` uses the faster
    `pullback`, which never forms J_l; this one serves Jacobians from elsewhere (the benchmark's
    autograd reference).
    """
    L, N, w = coords.shape[0] - 1, coords.shape[1], coords.shape[2]
    c = model.coefficients.c
    metric = torch.empty((L + 1, N, w, w), dtype=F64, device=coords.device)  # (L+1, N, w, w)
    r1 = torch.eye(w, dtype=F64, device=coords.device).expand(N, w, w).contiguous()  # (N, w, w)
    r2 = torch.zeros_like(r1) if model.kind.two_step else None
    for layer in range(L, -1, -1):
        if layer < L:
            block = block_at(layer)  # (N, w, w)
            if r2 is None:
                r1 = torch.bmm(r1, block)
            else:
                r1, r2 = torch.baddbmm(r2, r1, block), (-r1 if c == -1.0 else c * r1)
        q = r1 if r2 is None else r1 + r2  # (N, w, w)
        torch.matmul(q.mT, q, out=metric[layer])
    return metric


def pullback(
    model: LayeredNetwork, coords: torch.Tensor, keep_q: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Pull g_L = I back to every layer: metric (L+1, N, w, w) and, if keep_q, Q (L+1, N, w, w).

    The recursion of `pullback_from_jacobians` without forming J_l: with D = sigma'(z_l), the
    kind's coefficients (a, c, beta) and Q stored points-last as q[i, k, n] (contiguous in n),

        one-step   Q <- a Q + beta (Q D) W                       plain (Q D) W, residual Q + h (Q D) W
        two-step   R1 <- a R1 + R2 + beta (R1 D) W,  R2 <- c R1   (Q = R1 + R2)

    where (Q D) scales column k by D_k and "(.) W" is one small GEMM per row of Q. Then
    g_l[a, b] = sum_i Q[i, a] Q[i, b], computed points-last and copied into the (N, w, w) output.
    """
    L, N, w = coords.shape[0] - 1, coords.shape[1], coords.shape[2]
    W, b = weights_on(model, coords.device)
    co = model.coefficients
    metric = torch.empty((L + 1, N, w, w), dtype=F64, device=coords.device)  # (L+1, N, w, w)
    qs = torch.empty_like(metric) if keep_q else None
    eye = torch.eye(w, dtype=F64, device=coords.device)
    r1 = eye[:, :, None].expand(w, w, N).contiguous()  # (w, w, N): Q_L = I, stored q[i, k, n]
    r2 = torch.zeros_like(r1) if model.kind.two_step else None
    g = torch.empty_like(r1)  # (w, w, N): one layer's metric, points last
    for layer in range(L, -1, -1):
        if layer < L:
            z = torch.addmm(b[layer][:, None], W[layer], coords[layer].T)  # (w, N)
            qd = r1 * model.dsigma(z)[None, :, :]  # (w, w, N): Q D
            wt = W[layer].T.expand(w, w, w)  # (w, w, w): (Q D) W row by row as W^T (Q D)[i]
            if r2 is None:
                if co.a == 0.0 and co.beta == 1.0:
                    r1 = torch.bmm(wt, qd)
                else:
                    r1 = torch.baddbmm(r1, wt, qd, beta=co.a, alpha=co.beta)
            else:
                base = torch.add(r2, r1, alpha=co.a)
                r1, r2 = torch.baddbmm(base, wt, qd, alpha=co.beta), (-r1 if co.c == -1.0 else co.c * r1)
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
    metric, _ = pullback(model, coords)
    return coords, metric


def pullback_metrics(model: LayeredNetwork, x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """The metric tensor of every layer at input points x (N, 2): (L+1, N, w, w), float64.

    g_L = I; g_l = J_l^T g_{l+1} J_l, so g_l = Q_l^T Q_l with Q_l = dx_L/dx_l.
    g_0 is J^T J of the whole map x_0 -> x_L, in layer-0 (standardised) coordinates.
    For two-step kinds, g_l = E^T G_l E is the state metric G_l reduced to moving the point with
    its velocity kept (module docstring); g_0 is again J^T J of the whole map.
    """
    return coordinates_and_metrics(model, x)[1]


@torch.no_grad()
def state_metrics(model: LayeredNetwork, x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """For a two-step kind (c2), the metric on the state s_l = (x_l, x_{l-1}): (L+1, N, 2w, 2w), float64.

    G_L = P^T P with P = [I, 0] (only x_L reaches the head), G_l = J_l^T G_{l+1} J_l with the
    state Jacobians of `layer_jacobians`. `pullback_metrics` reports E^T G_l E, E = [I; I].
    """
    if not model.kind.two_step:
        raise GeometryError(
            f"state_metrics needs a two-step kind such as c2, got a {model.kind.name} network"
        )
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


__all__ = [
    "coordinates_and_metrics",
    "input_metric",
    "pullback",
    "pullback_from_jacobians",
    "pullback_metrics",
    "state_metrics",
]
