"""The metric's scalars from its factors, exact where the metric's own eigenvalues are not.

g_l = Q_l^T Q_l with Q_l = dx_L/dx_l along the data (for two-step kinds such as c2,
Q_l = K_L K_l^{-1} with K_l = dx_l/dx_0, see `trajectory_factors`). Computed from the
float64 matrix g_l, lambda_min carries an absolute rounding error of about eps * lambda_max, so
any lambda_min / lambda_max below ~1e-16 is noise: a saturated tanh network (log volume -57,
every det J_l != 0) would look singular. Here nothing is read from g:

    log volume   1/2 log det g_l = log|det Q_l| = sum over k >= l of log|det J_k|, each layer's
                 own determinant; for plain layers J_k = beta D W_k in log space,
                 log|det J_k| = sum_i log sigma'(z_i) + w log|beta| + log|det W_k|, so it never
                 underflows (c2: log|det K_L| - log|det K_l|);
    lambda_max   ||Q_l||_2^2, from Q_l carried with a separate log scale (Q_l = e^{s_l} Q^_l,
                 max |Q^_l| = 1), accurate to rounding whatever the conditioning;
    lambda_min   1 / ||Q_l^{-1}||_2^2, from Q_l^{-1} = J_l^{-1} ... J_{L-1}^{-1} carried the same
                 way (c2: K_l K_L^{-1});
    anisotropy   lambda_max / lambda_min = (||Q_l|| ||Q_l^{-1}||)^2.

A metric is singular exactly where a layer's determinant is 0 (log|det J_k| = -inf, e.g. relu
switching a unit off): its log volume is -inf, lambda_min 0 and anisotropy inf. Nowhere else is
anything called singular; values beyond float64's range (an anisotropy over 1.8e308) round to inf
like any other number, but their logarithms are returned finite (`MetricSpectrum`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from riemexp.config import INPUT_DIM
from riemexp.geometry.coordinates import F64, position_blocks, weights_on
from riemexp.nets.network import LayeredNetwork

# --------------------------------------------------------------------------- one-step kinds


@dataclass(frozen=True)
class LayerFactors:
    """Layer Jacobians of a one-step kind, J_l = e^{log_scale_l} block_l, with their determinants.

    block          (L, N, w, w)  J_l divided by e^{log_scale}
    log_scale      (L, N)        0 unless a = 0 (plain), where it is max_i log sigma'(z_i)
    inverse        (L, N, w, w)  J_l^{-1} divided by e^{inverse_scale} (0 where J_l is singular)
    inverse_scale  (L, N)        0 unless a = 0, where it is -min_i log sigma'(z_i)
    log_det        (L, N)        log|det J_l|, -inf exactly where J_l is singular
    sign           (L, N)        sign of det J_l (0 where singular)
    """

    block: torch.Tensor
    log_scale: torch.Tensor
    inverse: torch.Tensor
    inverse_scale: torch.Tensor
    log_det: torch.Tensor
    sign: torch.Tensor


@torch.no_grad()
def layer_factors(model: LayeredNetwork, coords: torch.Tensor) -> LayerFactors:
    """J_l = a I + beta D W_l of a one-step kind at the points' own coordinates coords (L+1, N, w).

    Plain (a = 0): D = diag(e^{log sigma'(z)}) is scaled by its largest entry and
    J_l^{-1} = W_l^{-1} D^{-1} / beta with D^{-1} scaled by its own largest entry, so that a layer
    whose units saturate at different rates keeps every direction, and log|det J_l| =
    sum_i log sigma'(z_i) + w log|beta| + log|det W_l| is exact in log space. Otherwise the block
    is J_l itself (a sigma' that underflows leaves a = 1 or 2 on the diagonal), its inverse by LU
    and log|det J_l| its slogdet.
    """
    co = model.coefficients
    a, beta = co.a, co.beta
    if model.kind.two_step:
        raise ValueError(f"layer_factors needs a one-step kind, got {model.kind.name}")
    coords = coords.to(F64)
    W, b = weights_on(model, coords.device)
    w = W.shape[-1]
    if a == 0.0:
        log_d, sign_w, log_det = _plain_log_dets(model, W, b, coords)
        invertible = torch.isfinite(log_det)
        top = torch.where(invertible, log_d.amax(dim=-1), 0.0)  # (L, N)
        bottom = torch.where(invertible, log_d.amin(dim=-1), 0.0)
        block = (beta * torch.exp(log_d - top[..., None]))[..., None] * W[:, None]  # (L, N, w, w)
        w_inv = torch.linalg.inv_ex(W)[0] / beta  # (L, w, w)
        d_inv = torch.where(invertible[..., None], torch.exp(bottom[..., None] - log_d), 0.0)  # (L, N, w)
        inverse = w_inv[:, None] * d_inv[..., None, :]  # W^{-1} D^{-1} / beta, scaled
        sign = sign_w[:, None] * (math.copysign(1.0, beta) ** w) * invertible.to(F64)
        return LayerFactors(block, top, inverse, -bottom, log_det, sign)
    block = position_blocks(model, W, b, coords[:-1])  # (L, N, w, w)
    sign, log_det = torch.linalg.slogdet(block)
    inverse, info = torch.linalg.inv_ex(block)
    inverse = torch.where(((info == 0) & torch.isfinite(log_det))[..., None, None], inverse, 0.0)
    zeros = torch.zeros_like(log_det)
    return LayerFactors(block, zeros, inverse, zeros, log_det, sign)


def _plain_log_dets(
    model: LayeredNetwork, W: torch.Tensor, b: torch.Tensor, coords: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """log sigma'(z) (L, N, w), sign det W_l (L,) and log|det J_l| (L, N) of plain layers J_l = beta D W_l.

    log|det J_l| = sum_i log sigma'(z_i) + w log|beta| + log|det W_l|, in log space (never underflows).
    """
    z = torch.matmul(coords[:-1], W.mT) + b[:, None, :]  # (L, N, w)
    log_d = model.log_dsigma(z)  # (L, N, w)
    sign_w, log_det_w = torch.linalg.slogdet(W)  # (L,)
    beta = model.coefficients.beta
    log_det = log_d.sum(-1) + W.shape[-1] * math.log(abs(beta)) + log_det_w[:, None]  # (L, N)
    return log_d, sign_w, log_det


@torch.no_grad()
def log_volumes(model: LayeredNetwork, coords: torch.Tensor) -> torch.Tensor:
    """log|det Q_l| = 1/2 log det g_l for l = 0 .. L at coords (L+1, N, w): (L+1, N), float64.

    The `log_det` of `factors` without the factors themselves (no products, inverses or norms),
    the same bits: one-step kinds sum each layer's own log|det J_k| over k >= l, from the top
    (plain layers in log space, `_plain_log_dets`; otherwise slogdet of J_k); two-step kinds
    log|det K_L| - log|det K_l|. -inf exactly where a layer is singular.
    """
    coords = coords.to(F64)
    if model.kind.two_step:
        log_det_k = torch.linalg.slogdet(trajectory_factors(model, coords)).logabsdet  # (L+1, N)
        return log_det_k[-1] - log_det_k
    W, b = weights_on(model, coords.device)
    if model.coefficients.a == 0.0:
        layer_log_det = _plain_log_dets(model, W, b, coords)[2]
    else:
        layer_log_det = torch.linalg.slogdet(position_blocks(model, W, b, coords[:-1])).logabsdet
    log_det = torch.zeros(coords.shape[:2], dtype=F64, device=coords.device)  # (L+1, N)
    for layer in range(layer_log_det.shape[0] - 1, -1, -1):  # the order of `one_step_factors`
        log_det[layer] = log_det[layer + 1] + layer_log_det[layer]
    return log_det


def _normalise(m: torch.Tensor, log_scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(m / s, log_scale + log s) with s = max |m| per matrix (1 where m = 0 or not finite)."""
    s = m.abs().amax(dim=(-2, -1))
    s = torch.where((s > 0) & torch.isfinite(s), s, torch.ones_like(s))
    return m / s[..., None, None], log_scale + torch.log(s)


@torch.no_grad()
def one_step_factors(
    factors: LayerFactors,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Q_l = dx_L/dx_l and Q_l^{-1}, each as a normalised matrix and a log scale, for l = 0 .. L.

    Returns (q (L+1, N, w, w), q_log (L+1, N), p (L+1, N, w, w), p_log (L+1, N), log_det (L+1, N))
    with Q_l = e^{q_log} q, Q_l^{-1} = e^{p_log} p (max |q| = max |p| = 1) and
    log|det Q_l| = sum_{k >= l} log|det J_k|. Q_L = I, Q_l = Q_{l+1} J_l,
    Q_l^{-1} = J_l^{-1} Q_{l+1}^{-1}; where some J_k (k >= l) is singular, p is 0 and log_det -inf.
    """
    block, log_scale, layer_log_det = factors.block, factors.log_scale, factors.log_det
    inverse, inverse_scale = factors.inverse, factors.inverse_scale
    L, N, w, _ = block.shape
    eye = torch.eye(w, dtype=F64, device=block.device).expand(N, w, w)
    q = torch.empty((L + 1, N, w, w), dtype=F64, device=block.device)
    p = torch.empty_like(q)
    q_log = torch.zeros((L + 1, N), dtype=F64, device=block.device)
    p_log = torch.zeros_like(q_log)
    log_det = torch.zeros_like(q_log)
    q[L], p[L] = eye, eye
    for layer in range(L - 1, -1, -1):
        q[layer], q_log[layer] = _normalise(q[layer + 1] @ block[layer], q_log[layer + 1] + log_scale[layer])
        p[layer], p_log[layer] = _normalise(
            inverse[layer] @ p[layer + 1], p_log[layer + 1] + inverse_scale[layer]
        )
        log_det[layer] = log_det[layer + 1] + layer_log_det[layer]
    p[~torch.isfinite(log_det)] = 0.0
    return q, q_log, p, p_log, log_det


# --------------------------------------------------------------------------- c2


@torch.no_grad()
def trajectory_factors(model: LayeredNetwork, coords: torch.Tensor) -> torch.Tensor:
    """K_l = dx_l/dx_0 of a two-step kind for l = 0 .. L at coords (L+1, N, w): (L+1, N, w, w), float64.

    x_{l+1} = a x_l + c x_{l-1} + beta sigma(W_l x_l + b_l) with x_{-1} = x_0 gives, with the
    position block A_l = a I + beta D W_l (`carry_trajectory`), K_{l+1} = A_l K_l + c K_{l-1}.
    """
    coords = coords.to(F64)
    blocks = position_blocks(model, *weights_on(model, coords.device), coords[:-1])  # (L, N, w, w)
    return carry_trajectory(blocks, model.coefficients.c)


def carry_trajectory(blocks: torch.Tensor, c: float) -> torch.Tensor:
    """K_l = dx_l/dx_0, l = 0 .. L, from the position blocks A_l (L, N, w, w) of a two-step kind.

    K_{-1} = K_0 = I (x_{-1} = x_0), K_{l+1} = A_l K_l + c K_{l-1}: (L+1, N, w, w).
    """
    L, N, w, _ = blocks.shape
    k = torch.empty((L + 1, N, w, w), dtype=blocks.dtype, device=blocks.device)
    k[0] = torch.eye(w, dtype=blocks.dtype, device=blocks.device)
    prev = k[0]
    for layer in range(L):
        k[layer + 1] = blocks[layer] @ k[layer] + c * prev
        prev = k[layer]
    return k


# --------------------------------------------------------------------------- the spectrum


@dataclass(frozen=True)
class Factors:
    """Q_l = e^{q_log} q and Q_l^{-1} = e^{p_log} p for l = 0 .. L, with log|det Q_l|.

    q, p (L+1, N, w, w); q_log, p_log, log_det (L+1, N). p is NaN where Q_l is singular
    (log_det = -inf) or, for two-step kinds, where x_l is no coordinate system (K_l singular).
    """

    q: torch.Tensor
    q_log: torch.Tensor
    p: torch.Tensor
    p_log: torch.Tensor
    log_det: torch.Tensor


@torch.no_grad()
def factors(model: LayeredNetwork, coords: torch.Tensor) -> Factors:
    """`Factors` of every layer's metric at layer coordinates coords (L+1, N, w).

    One-step kinds: `one_step_factors`. Two-step kinds: Q_l = K_L K_l^{-1} (`data_factors`),
    Q_l^{-1} = K_l K_L^{-1}, log|det Q_l| = log|det K_L| - log|det K_l| (scales 0).
    """
    if not model.kind.two_step:
        return Factors(*one_step_factors(layer_factors(model, coords)))
    k = trajectory_factors(model, coords)  # (L+1, N, w, w)
    q = data_factors(k)
    inv_last, info = torch.linalg.inv_ex(k[-1])  # (N, w, w)
    p = k @ inv_last
    p = torch.where((info == 0)[:, None, None], p, torch.full_like(p, math.nan))
    log_det_k = torch.linalg.slogdet(k).logabsdet  # (L+1, N)
    zeros = torch.zeros_like(log_det_k)
    return Factors(q, zeros, p, zeros, log_det_k[-1] - log_det_k)


def data_factors(k: torch.Tensor) -> torch.Tensor:
    """Q_l = K_L K_l^{-1} = dx_L/dx_l along the data manifold from K (L+1, N, w, w): (L+1, N, w, w).

    NaN where K_l is singular (x_l is no coordinate system for the data there).
    """
    sol, info = torch.linalg.solve_ex(k.mT, k[-1].mT.expand_as(k))  # Q_l^T = K_l^{-T} K_L^T
    q = torch.where((info == 0)[..., None, None], sol.mT, math.nan)
    q[-1] = torch.eye(k.shape[-1], dtype=k.dtype, device=k.device)  # Q_L = I exactly
    return q


@dataclass(frozen=True)
class MetricSpectrum:
    """Scalars of a metric g = F^T F at every point, float64, all of one shape (e.g. (L+1, N)).

    log_volume       1/2 log det g = log|det F| (-inf where singular)
    log_lambda_max   log of the largest eigenvalue of g
    log_lambda_min   log of the smallest (-inf where singular)
    """

    log_volume: torch.Tensor
    log_lambda_max: torch.Tensor
    log_lambda_min: torch.Tensor

    @property
    def log_anisotropy(self) -> torch.Tensor:
        """log(lambda_max / lambda_min), >= 0 (inf where singular, NaN where g = 0)."""
        return (self.log_lambda_max - self.log_lambda_min).clamp_min(0.0)

    @property
    def anisotropy(self) -> torch.Tensor:
        """lambda_max / lambda_min, >= 1 (inf where singular)."""
        return torch.exp(self.log_anisotropy)


def _log_norm2(m: torch.Tensor) -> torch.Tensor:
    """log of the spectral norm of matrices (..., n, k): (...); -inf for 0, NaN for a matrix holding NaN."""
    finite = torch.isfinite(m).flatten(-2).all(-1)
    norm = torch.linalg.matrix_norm(torch.where(finite[..., None, None], m, 0.0), ord=2)
    return torch.where(finite, torch.log(norm), math.nan)


def _spectrum(q, q_log, p, p_log, log_det) -> MetricSpectrum:
    log_max = 2.0 * (_log_norm2(q) + q_log)
    log_min = -2.0 * (_log_norm2(p) + p_log)
    singular = log_det == -math.inf
    log_min = torch.where(singular, torch.full_like(log_min, -math.inf), log_min)
    return MetricSpectrum(log_det, log_max, log_min)


@torch.no_grad()
def metric_spectrum(model: LayeredNetwork, coords: torch.Tensor) -> MetricSpectrum:
    """`MetricSpectrum` of every layer's g_l at layer coordinates coords (L+1, N, w): (L+1, N) each."""
    f = factors(model, coords)
    return _spectrum(f.q, f.q_log, f.p, f.p_log, f.log_det)


@torch.no_grad()
def input_spectrum(model: LayeredNetwork, coords: torch.Tensor) -> MetricSpectrum:
    """`MetricSpectrum` of the input metric g_in = S P^T g_0 P S (user's units) at coords: (N,) each.

    g_in = F^T F with F = Q_0 P S (w x 2), S = diag(1 / input_scale), P the zero padding. At w = 2,
    F = Q_0 S is square: log|det F| = log|det Q_0| - sum log input_scale and F^{-1} = S^{-1} Q_0^{-1},
    exact like every layer's scalars. At w > 2 F is the data plane inside the padded layer 0, whose
    area no layer determinant gives: its singular values come from F (carried with its log scale),
    accurate relative to the largest one (eps ~ 1e-16).
    """
    f = factors(model, coords)
    scale = model.input_scale.detach().to(F64).to(coords.device)  # (2,)
    log_scale = float(torch.log(scale).sum())
    w = coords.shape[-1]
    q = f.q[0][..., :INPUT_DIM] / scale  # (N, w, 2): F / e^{q_log}
    if w == INPUT_DIM:
        p = f.p[0] * scale[:, None]  # (N, 2, 2): F^{-1} / e^{p_log}
        return _spectrum(q, f.q_log[0], p, f.p_log[0], f.log_det[0] - log_scale)
    sv = torch.linalg.svdvals(q)  # (N, 2) descending
    log_sv = torch.log(sv) + f.q_log[0][:, None]
    return MetricSpectrum(log_sv.sum(-1), 2.0 * log_sv[:, 0], 2.0 * log_sv[:, 1])


# --------------------------------------------------------------------------- statistics


def median(values: torch.Tensor) -> float:
    """The usual median of a tensor's values, NaN left out: the middle value, or the mean of the two
    middle ones (torch's own `median` returns the lower of them). NaN when nothing is left."""
    v = values.detach().flatten()
    v = v[~torch.isnan(v)].sort().values
    n = v.numel()
    if n == 0:
        return math.nan
    mid = n // 2
    if n % 2:
        return float(v[mid])
    low, high = float(v[mid - 1]), float(v[mid])
    return low if low == high else low / 2 + high / 2


__all__ = [
    "Factors",
    "LayerFactors",
    "MetricSpectrum",
    "carry_trajectory",
    "data_factors",
    "factors",
    "input_spectrum",
    "layer_factors",
    "log_volumes",
    "median",
    "metric_spectrum",
    "one_step_factors",
    "trajectory_factors",
]
