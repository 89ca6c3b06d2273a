"""The metric pulled back to every layer (the pullback of the Euclidean metric of the last layer).

g_l is, for every kind, the metric of the data in layer-l coordinates: g_L = I at the last hidden
layer (the head is linear) and g_l = Q_l^T Q_l with Q_l = dx_L/dx_l along the data, so that
K_l^T g_l K_l = g_0 with K_l = dx_l/dx_0. One-step kinds: g_l = J_l^T g_{l+1} J_l; we never form the
product that way but carry Q_l (Q_L = I, Q_l = Q_{l+1} J_l), which makes g_l symmetric and positive
semi-definite by construction and gives log det g_l = 2 log|det Q_l| without squaring.

Two-step kinds (c2): x_{l+1} depends on (x_l, x_{l-1}), so x_L is a function of x_l only along the
data. We carry K_l forward, K_{-1} = K_0 = I, K_{l+1} = A_l K_l + c K_{l-1} (A_l = a I + beta D W_l),
and take Q_l = K_L K_l^{-1} (`riemexp.geometry.spectrum`; NaN where K_l is singular: there x_l is no
coordinate system for the data). The metric on the state s_l = (x_l, x_{l-1}),
G_l = R_l^T R_l with R_l = dx_L/ds_l, is `state_metrics`; its restriction to moving the point at
layer l with its velocity x_l - x_{l-1} kept, E^T G_l E with E = [I; I] (2w x w), is
`velocity_kept_metrics`. Both equal g_l at l = 0 and l = L only.

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
from riemexp.geometry.spectrum import carry_trajectory, data_factors, trajectory_factors
from riemexp.nets.network import LayeredNetwork


def pullback_from_jacobians(
    model: LayeredNetwork,
    coords: torch.Tensor,
    block_at: Callable[[int], torch.Tensor],
) -> torch.Tensor:
    """Generic pullback from per-layer Jacobian blocks: metric (L+1, N, w, w).

    block_at(l) gives the (N, w, w) block of layer l (J_l; for two-step kinds the position block
    A_l). One-step: Q_L = I, Q_l = Q_{l+1} J_l. Two-step: K_l = dx_l/dx_0 forward
    (K_{l+1} = A_l K_l + c K_{l-1}) and Q_l = K_L K_l^{-1}. Then g_l = Q_l^T Q_l. Batched matmuls
    over the N points. `pullback_metrics` uses the faster `pullback`, which never forms J_l; this
    one serves Jacobians from elsewhere (the benchmark's autograd reference).
    """
    L, N, w = coords.shape[0] - 1, coords.shape[1], coords.shape[2]
    if model.kind.two_step:
        blocks = torch.stack([block_at(layer) for layer in range(L)]).to(F64)  # (L, N, w, w)
        q = data_factors(carry_trajectory(blocks, model.coefficients.c))
        return q.mT @ q
    metric = torch.empty((L + 1, N, w, w), dtype=F64, device=coords.device)  # (L+1, N, w, w)
    r1 = torch.eye(w, dtype=F64, device=coords.device).expand(N, w, w).contiguous()  # (N, w, w)
    for layer in range(L, -1, -1):
        if layer < L:
            r1 = torch.bmm(r1, block_at(layer))
        torch.matmul(r1.mT, r1, out=metric[layer])
    return metric


def pullback(
    model: LayeredNetwork, coords: torch.Tensor, keep_q: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Pull g_L = I back to every layer: metric (L+1, N, w, w) and, if keep_q, Q (L+1, N, w, w).

    The recursion of `pullback_from_jacobians` without forming J_l: with D = sigma'(z_l), the
    kind's coefficients (a, beta) and Q stored points-last as q[i, k, n] (contiguous in n),

        one-step   Q <- a Q + beta (Q D) W                       plain (Q D) W, residual Q + h (Q D) W

    where (Q D) scales column k by D_k and "(.) W" is one small GEMM per row of Q. Then
    g_l[a, b] = sum_i Q[i, a] Q[i, b], computed points-last and copied into the (N, w, w) output.
    Two-step kinds: Q_l = K_L K_l^{-1} (module docstring), g_l = Q_l^T Q_l.
    """
    L, N, w = coords.shape[0] - 1, coords.shape[1], coords.shape[2]
    if model.kind.two_step:
        q = data_factors(trajectory_factors(model, coords))  # (L+1, N, w, w)
        return q.mT @ q, (q if keep_q else None)
    W, b = weights_on(model, coords.device)
    co = model.coefficients
    metric = torch.empty((L + 1, N, w, w), dtype=F64, device=coords.device)  # (L+1, N, w, w)
    qs = torch.empty_like(metric) if keep_q else None
    eye = torch.eye(w, dtype=F64, device=coords.device)
    r1 = eye[:, :, None].expand(w, w, N).contiguous()  # (w, w, N): Q_L = I, stored q[i, k, n]
    g = torch.empty_like(r1)  # (w, w, N): one layer's metric, points last
    for layer in range(L, -1, -1):
        if layer < L:
            z = torch.addmm(b[layer][:, None], W[layer], coords[layer].T)  # (w, N)
            qd = r1 * model.dsigma(z)[None, :, :]  # (w, w, N): Q D
            wt = W[layer].T.expand(w, w, w)  # (w, w, w): (Q D) W row by row as W^T (Q D)[i]
            if co.a == 0.0 and co.beta == 1.0:
                r1 = torch.bmm(wt, qd)
            else:
                r1 = torch.baddbmm(r1, wt, qd, beta=co.a, alpha=co.beta)
        q = r1  # (w, w, N), q[i, a, n] = Q_n[i, a]
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
    g_0 is J^T J of the whole map x_0 -> x_L, in layer-0 (standardised) coordinates. For
    two-step kinds g_l is likewise the data's metric in x_l coordinates, Q_l = K_L K_l^{-1}
    (module docstring): K_l^T g_l K_l = g_0 at every layer, for every kind.
    """
    return coordinates_and_metrics(model, x)[1]


@torch.no_grad()
def state_metrics(model: LayeredNetwork, x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """For a two-step kind (c2), the metric on the state s_l = (x_l, x_{l-1}): (L+1, N, 2w, 2w), float64.

    G_L = P^T P with P = [I, 0] (only x_L reaches the head), G_l = J_l^T G_{l+1} J_l with the
    state Jacobians of `layer_jacobians`. `velocity_kept_metrics` gives E^T G_l E, E = [I; I].
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


def velocity_kept_metrics(model: LayeredNetwork, x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """For a two-step kind, the state metric for moving x_l with its velocity kept: (L+1, N, w, w).

    E^T G_l E with E = [I; I] (2w x w) and G_l = `state_metrics`: both halves of the state
    s_l = (x_l, x_{l-1}) move by the same dx. It equals g_0 at l = 0 and I at l = L; in between it
    is not the data's metric g_l in x_l coordinates (`pullback_metrics`; earlier versions of
    riemexp reported this one as g_l): a point moved on the data does not keep its velocity.
    """
    state = state_metrics(model, x)
    w = state.shape[-1] // 2
    return state[..., :w, :w] + state[..., :w, w:] + state[..., w:, :w] + state[..., w:, w:]


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
    "velocity_kept_metrics",
]
