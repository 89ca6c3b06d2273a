"""Layer coordinates and closed-form layer Jacobians, float64, batched over points, no autograd.

Layers. Layer 0 is the *standardised, zero-padded* input x_0 = pad((x - shift) / scale), exactly
as `LayeredNetwork.coordinates` defines it; layer L is the last hidden layer. Every kind updates
x_{l+1} = a x_l + c x_{l-1} + beta sigma(W_l x_l + b_l) with x_{-1} = x_0 (riemexp.nets.kind).

Layer Jacobians, J_l = dx_{l+1}/dx_l at x_l, with D = diag(sigma'(W_l x_l + b_l)) and the position
block A_l = a I + beta D W_l:

    one-step kinds (c = 0)    J_l = A_l                         (L, N, w, w)
        plain     D W_l,   residual  I + h D W_l
    two-step kinds (c != 0)   J_l = [[A_l, c I], [I, 0]]        (L, N, 2w, 2w)
        c2        [[2I + h^2 D W_l, -I], [I, 0]]

For two-step kinds the Jacobian acts on the state s_l = (x_l, x_{l-1}), s_0 = (x_0, x_0).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from riemexp.config import INPUT_DIM
from riemexp.errors import GeometryError
from riemexp.nets.kind import add, carry, scaled
from riemexp.nets.network import LayeredNetwork

F64 = torch.float64


def as_points(model: LayeredNetwork, x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Input points as a float64 tensor (N, 2) on the model's device; GeometryError for another shape."""
    x = torch.as_tensor(x).to(device=model.weight.device, dtype=F64)
    if x.ndim != 2 or x.shape[1] != INPUT_DIM:
        raise GeometryError(f"points must have shape (N, {INPUT_DIM}), got {tuple(x.shape)}")
    return x


def weights_on(model: LayeredNetwork, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """W (L, w, w) and b (L, w) in float64 on `device`."""
    W, b = model.float64_weights()
    return W.to(device), b.to(device)


@torch.no_grad()
def layer_coordinates(model: LayeredNetwork, x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Coordinates of input points x (N, 2) in every layer, float64: (L+1, N, w).

    Layer 0 is the standardised, zero-padded input; the update is the kind's own
    (`riemexp.nets.kind.carry` and `add`, with x_{-1} = x_0), evaluated in float64.
    """
    x = as_points(model, x)
    W, b = model.float64_weights()
    L, w = W.shape[0], W.shape[1]
    coords = torch.empty((L + 1, x.shape[0], w), dtype=F64, device=x.device)  # (L+1, N, w)
    shift, scale = model.input_shift.to(F64), model.input_scale.to(F64)
    coords[0].zero_()
    coords[0, :, :INPUT_DIM] = (x - shift) / scale
    co, sigma = model.coefficients, model.sigma
    for layer in range(L):
        xl = coords[layer]
        prev = coords[layer - 1] if layer > 0 else xl
        act = sigma(torch.addmm(b[layer], xl, W[layer].T))  # (N, w)
        if co.a == 1.0 and co.c == 0.0:
            # x_l + beta act in one torch.add (fused multiply-add on CPU): the rounding these
            # coordinates have always had, so that saved geometry stays bit for bit the same
            torch.add(xl, act, alpha=co.beta, out=coords[layer + 1])
        else:
            coords[layer + 1] = add(carry(xl, prev, co.a, co.c), scaled(act, co.beta))
    return coords


def position_blocks(model: LayeredNetwork, W: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A = a I + beta D W with D = diag(sigma'(W x + b)), batched: the block the recursions need.

    W (..., w, w), b (..., w), x (..., N, w) -> (..., N, w, w). For one-step kinds A is J_l itself.
    """
    z = torch.matmul(x, W.mT) + b.unsqueeze(-2)  # (..., N, w)
    jac = model.dsigma(z).unsqueeze(-1) * W.unsqueeze(-3)  # (..., N, w, w): D W
    co = model.coefficients
    if co.beta != 1.0:
        jac.mul_(co.beta)
    if co.a != 0.0:
        jac.diagonal(dim1=-2, dim2=-1).add_(co.a)
    return jac


@torch.no_grad()
def layer_jacobians(model: LayeredNetwork, coords: torch.Tensor) -> torch.Tensor:
    """Closed-form layer Jacobians at the points' own coordinates, float64.

    coords: (L+1, N, w) from `layer_coordinates` (or `model.coordinates(x)` in float64).
    Returns J_l = dx_{l+1}/dx_l evaluated at x_l, for l = 0 .. L-1 (module docstring):
    (L, N, w, w) for one-step kinds, (L, N, 2w, 2w) on the state (x_l, x_{l-1}) for two-step kinds.
    One batched evaluation, no autograd.
    """
    coords = coords.to(F64)
    W, b = weights_on(model, coords.device)
    block = position_blocks(model, W, b, coords[:-1])  # (L, N, w, w)
    if not model.kind.two_step:
        return block
    L, N, w, _ = block.shape
    eye = torch.eye(w, dtype=F64, device=block.device)
    state = torch.zeros((L, N, 2 * w, 2 * w), dtype=F64, device=block.device)
    state[..., :w, :w] = block
    state[..., :w, w:] = model.coefficients.c * eye
    state[..., w:, :w] = eye
    return state


@torch.no_grad()
def trajectory_jacobians(model: LayeredNetwork, coords: torch.Tensor) -> torch.Tensor:
    """dx_{l+1}/dx_l along the data trajectory, (L, N, w, w).

    One-step kinds: the layer Jacobians J_l. Two-step kinds, where x_{l+1} depends on
    (x_l, x_{l-1}): K_{l+1} K_l^{-1} with K_l = dx_l/dx_0 (K_{-1} = K_0 = I,
    K_{l+1} = A_l K_l + c K_{l-1}), i.e. how layer l -> l+1 changes coordinates on the data
    manifold; NaN where K_l is singular.
    """
    if not model.kind.two_step:
        return layer_jacobians(model, coords)
    a = position_blocks(model, *weights_on(model, coords.device), coords[:-1])  # (L, N, w, w)
    c = model.coefficients.c
    L, N, w, _ = a.shape
    k_prev = k = torch.eye(w, dtype=F64, device=a.device).expand(N, w, w)
    out = torch.empty_like(a)
    for layer in range(L):
        k_next = torch.matmul(a[layer], k)
        k_next = k_next - k_prev if c == -1.0 else k_next + c * k_prev
        sol, info = torch.linalg.solve_ex(k.mT, k_next.mT)  # (K_{l+1} K_l^{-1})^T
        out[layer] = torch.where((info == 0)[:, None, None], sol.mT, torch.full_like(sol, math.nan))
        k_prev, k = k, k_next
    return out


__all__ = [
    "F64",
    "as_points",
    "layer_coordinates",
    "layer_jacobians",
    "position_blocks",
    "trajectory_jacobians",
    "weights_on",
]
