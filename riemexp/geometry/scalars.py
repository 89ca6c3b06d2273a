"""Scalars of the pulled-back metric: eigenvalues, log volume element, anisotropy, per-layer statistics.

Every scalar is computed without forming det g: from the eigenvalues of g (symmetric solver) or
from the factor Q of g = Q^T Q (riemexp.geometry.pullback), so that deep networks whose metric
entries under- or overflow float64 still get finite values. A metric whose smallest eigenvalue is
below SINGULAR_RTOL x its largest is singular to float64 precision: its log volume is -inf and its
anisotropy inf.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from riemexp.config import INPUT_DIM
from riemexp.geometry.coordinates import F64, layer_coordinates, layer_jacobians, trajectory_jacobians
from riemexp.geometry.pullback import pullback
from riemexp.nets.network import LayeredNetwork
from riemexp.numerics import SINGULAR_RTOL


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


def factor_log_volumes(
    model: LayeredNetwork, coords: torch.Tensor, q: torch.Tensor | None, jac: torch.Tensor | None = None
) -> torch.Tensor:
    """log|det Q_l| = 1/2 log det g_l for every layer: (L+1, N).

    One-step kinds: sum over k >= l of log|det J_k| (each layer's own determinant, summed from
    the top; `jac` (L, N, w, w) if already computed), so a layer that is exactly singular (a relu
    unit switched off in a plain layer) gives exactly -inf, not a rounding-level finite number.
    Two-step kinds (whose layer Jacobians act on the state): log|det Q_l| of the carried factor q.
    """
    if model.kind.two_step:
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

    Computed as log|det Q_l| with Q_l the factor of g_l = Q_l^T Q_l (for one-step kinds
    Q_l = dx_L/dx_l, so this is the sum over k >= l of log|det J_k|, see `factor_log_volumes`):
    det g is never formed, so deep networks whose metric entries would under- or overflow still
    get finite values. -inf only where a layer is exactly singular (e.g. relu switching a unit off).
    """
    coords = layer_coordinates(model, x)
    q = pullback(model, coords, keep_q=True)[1] if model.kind.two_step else None
    return factor_log_volumes(model, coords, q)


@torch.no_grad()
def input_log_volume(model: LayeredNetwork, x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """1/2 log det g_in at input points x (N, 2): (N,), float64, in the user's input units.

    g_in = S P^T g_0 P S (`input_metric`) is the metric of the data plane, so for width w > 2
    this is the area element of the plane, not the w-volume of the padded space. With
    g_0 = Q_0^T Q_0, P^T g_0 P = (Q_0 P)^T (Q_0 P) and Q_0 P = U R (QR, R 2 x 2), so

        1/2 log det g_in = log|det R| - sum log input_scale,

    without forming det g: finite where the metric's entries under- or overflow. At w = 2 for
    one-step kinds log|det R| = log|det Q_0| is the sum of the layers' own log|det J_k|
    (`factor_log_volumes`: exactly -inf where a layer is singular). The one definition of "input
    log volume element" used by the run's metrics, its input-space heat map and the sweep tables
    and figures (`input_log_volume_from_metric` for saved arrays).
    """
    coords = layer_coordinates(model, x)
    log_scale = torch.log(model.input_scale.detach().to(F64).to(coords.device)).sum()
    if model.width == INPUT_DIM and not model.kind.two_step:
        return factor_log_volumes(model, coords, None)[0] - log_scale
    _, q = pullback(model, coords, keep_q=True)
    assert q is not None  # keep_q=True
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


def _stat(values: torch.Tensor, how: str) -> float:
    """mean, median or max of a 1-D tensor; NaN when empty."""
    if values.numel() == 0:
        return math.nan
    if how == "mean":
        return float(values.mean())
    if how == "median":
        return float(values.median())
    return float(values.max())


@torch.no_grad()
def layer_statistics(model: LayeredNetwork, x: torch.Tensor | np.ndarray) -> list[dict[str, Any]]:
    """Per-layer statistics over input points x (N, 2): one dict per layer l = 0 .. L.

    log_volume_mean/median/max: 1/2 log det g_l (robust, `log_volume_elements`);
    anisotropy_median/max: lambda_max / lambda_min of g_l. For l < L also, about the map
    l -> l+1: step_length_mean, mean |x_{l+1} - x_l|; det_positive_fraction, the fraction of
    points with det J_l > 0 (the layer keeps orientation); identity_distance_mean, the mean
    Frobenius norm |J_l - I| (finite values). For two-step kinds J_l is the trajectory Jacobian
    dx_{l+1}/dx_l (`trajectory_jacobians`), not the state Jacobian, whose determinant is
    (-c)^w (1 for c2).
    At l = L (g_L = I: log volume 0, anisotropy 1) those three are None.
    """
    coords = layer_coordinates(model, x)
    metric, q = pullback(model, coords, keep_q=True)
    jac = trajectory_jacobians(model, coords)  # (L, N, w, w): the layer Jacobians of one-step kinds
    logvol = factor_log_volumes(model, coords, q, jac)  # (L+1, N)
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
            "identity_distance_mean": None,
        }
        if layer < coords.shape[0] - 1:
            finite = dist[layer][torch.isfinite(dist[layer])]
            row.update(
                step_length_mean=_stat(steps[layer], "mean"),
                det_positive_fraction=float((sign[layer] > 0).to(F64).mean()),
                identity_distance_mean=_stat(finite, "mean"),
            )
        rows.append(row)
    return rows


def median(values: torch.Tensor) -> float:
    """The median of a tensor's values as a float (NaN when empty)."""
    return _stat(values.flatten(), "median")


__all__ = [
    "anisotropy",
    "factor_log_volumes",
    "input_log_volume",
    "input_log_volume_from_metric",
    "layer_statistics",
    "log_volume_element",
    "log_volume_elements",
    "median",
    "metric_eigh",
]
