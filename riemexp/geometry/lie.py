"""Layer Jacobians as elements of GL(w): determinants, distance from I, the matrix logarithm.

A layer near the identity, J_l = I + h A_l with A_l = D W_l, D = diag(sigma'(W_l x_l + b_l)) (a
residual layer), has log J_l = h A_l - (h A_l)^2 / 2 + ..., so |log J_l - h A_l| = O(h^2): the layer
is one step of size h along the one-parameter subgroup exp(t A_l), up to a second-order remainder.

`lie_table(model, x)` evaluates, at the data points' own coordinates x_l (`layer_coordinates`,
Jacobians from `layer_jacobians`), one row per layer l = 0 .. L-1:

    det_mean, det_min           mean and min over points of det J_l
    det_positive_fraction       fraction of points with det J_l > 0 (orientation kept, J_l in GL+)
    identity_distance_mean      mean of |J_l - I|_F (Frobenius; for two-step kinds the 2w x 2w
                                state Jacobian)
    log_error_mean              kinds near the identity (`Kind.near_identity`: residual) only: mean
                                of |log J_l - (J_l - I)|_F over the points where J_l has a real
                                principal logarithm (no eigenvalue on (-inf, 0])
    log_defined_fraction        the same kinds only: the fraction of points where it has one

Other kinds leave the two log columns empty: a plain J_l = D W_l is not near I, and the c2 state
Jacobian [[2I + h^2 A, -I], [I, 0]] (det = 1 always) is not of the form I + h A.

`matrix_log` computes the real principal logarithm of a batch of real matrices by inverse
scaling and squaring: Denman-Beavers square roots until |J^(1/2^s) - I|_F <= 1/4, then the
series log(I + X) = sum_k (-1)^(k+1) X^k / k (30 terms, error < 1e-19), times 2^s. It is valid for
any matrix with no eigenvalue on the closed negative real axis, defective ones included; where
a matrix has such an eigenvalue there is no real principal logarithm and the result is NaN.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from riemexp.geometry.coordinates import layer_coordinates, layer_jacobians
from riemexp.nets.network import LayeredNetwork

_SERIES_TERMS = 30
_MAX_SQRTS = 60


def _sqrt_denman_beavers(a: torch.Tensor, iterations: int = 60) -> torch.Tensor:
    """Principal square root of a batch of matrices (..., n, n) by the Denman-Beavers iteration."""
    y, z = a, torch.eye(a.shape[-1], dtype=a.dtype, device=a.device).expand_as(a)
    for _ in range(iterations):
        y_next = 0.5 * (y + torch.linalg.inv(z))
        z = 0.5 * (z + torch.linalg.inv(y))
        done = (y_next - y).abs().amax() <= 1e-15 * max(1.0, float(y_next.abs().amax()))
        y = y_next
        if done:
            break
    return y


def has_real_log(a: torch.Tensor, tol: float = 1e-12) -> torch.Tensor:
    """True where the real matrix a (..., n, n) has no eigenvalue on (-inf, 0]: shape (...)."""
    lam = torch.linalg.eigvals(a)  # (..., n) complex
    scale = lam.abs().clamp_min(1.0)
    on_axis = (lam.real <= tol * scale) & (lam.imag.abs() <= tol * scale)
    return ~on_axis.any(-1)


@torch.no_grad()
def matrix_log(a: torch.Tensor) -> torch.Tensor:
    """Real principal logarithm of real matrices a (..., n, n), float64; NaN where none exists."""
    a = a.to(torch.float64)
    n = a.shape[-1]
    eye = torch.eye(n, dtype=a.dtype, device=a.device)
    ok = has_real_log(a)  # (...)
    y = torch.where(ok[..., None, None], a, eye)  # matrices without a log replaced by I
    s = torch.zeros(ok.shape, dtype=a.dtype, device=a.device)
    for _ in range(_MAX_SQRTS):
        far = torch.linalg.matrix_norm(y - eye) > 0.25  # (...)
        if not far.any():
            break
        y = torch.where(far[..., None, None], _sqrt_denman_beavers(y), y)
        s = s + far.to(a.dtype)
    x = y - eye
    term, total = eye.expand_as(x), torch.zeros_like(x)
    for k in range(1, _SERIES_TERMS + 1):
        term = term @ x
        total = total + ((-1) ** (k + 1) / k) * term
    total = total * (2.0**s)[..., None, None]
    return torch.where(ok[..., None, None], total, torch.full_like(total, math.nan))


@torch.no_grad()
def lie_rows(model: LayeredNetwork, jac: torch.Tensor) -> list[dict[str, Any]]:
    """Rows of lie.csv from the layer Jacobians jac (L, N, m, m) of `model` at the data points.

    For kinds near the identity (residual: J_l = I + h D W_l), h A_l = J_l - I, so the log
    columns report log J_l - (J_l - I).
    """
    L, _, m, _ = jac.shape
    eye = torch.eye(m, dtype=jac.dtype, device=jac.device)
    det = torch.linalg.det(jac)  # (L, N)
    dist = torch.linalg.matrix_norm(jac - eye)  # (L, N)
    log_err = None
    if model.kind.near_identity:
        h_a = jac - eye  # h A_l = h D W_l, (L, N, w, w)
        log_err = torch.linalg.matrix_norm(matrix_log(jac) - h_a)  # (L, N), NaN where no log
    rows = []
    for layer in range(L):
        row: dict[str, Any] = {
            "layer": layer,
            "det_mean": float(det[layer].mean()),
            "det_min": float(det[layer].min()),
            "det_positive_fraction": float((det[layer] > 0).to(torch.float64).mean()),
            "identity_distance_mean": float(dist[layer].mean()),
            "log_error_mean": None,
            "log_defined_fraction": None,
        }
        if log_err is not None:
            defined = ~torch.isnan(log_err[layer])
            row["log_defined_fraction"] = float(defined.to(torch.float64).mean())
            row["log_error_mean"] = float(log_err[layer][defined].mean()) if defined.any() else math.nan
        rows.append(row)
    return rows


def lie_table(model: LayeredNetwork, x: torch.Tensor) -> list[dict[str, Any]]:
    """One row per layer for input points x (N, 2); see the module docstring for the columns."""
    coords = layer_coordinates(model, x)  # (L+1, N, w)
    return lie_rows(model, layer_jacobians(model, coords))


__all__ = ["has_real_log", "lie_rows", "lie_table", "matrix_log"]
