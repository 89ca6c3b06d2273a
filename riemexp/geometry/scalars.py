"""Scalars of the pulled-back metric: eigenvalues, log volume element, anisotropy, per-layer statistics.

Where the network is at hand, every scalar comes from the factors of g = Q^T Q
(riemexp.geometry.spectrum): the log volume from the layers' own determinants, lambda_max and
lambda_min from Q and Q^{-1} carried with a log scale. They are exact for deep and saturated
networks, whose g has entries that under- or overflow float64 or a lambda_min below its rounding
level of lambda_max, and -inf / inf only where a layer's determinant is 0. `log_volume_element`
and `anisotropy` take a matrix g alone; all a matrix can tell is that a lambda_min at or below
SINGULAR_RTOL x lambda_max is rounding noise, so they call such a g singular (-inf, inf).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from riemexp.config import INPUT_DIM
from riemexp.geometry.coordinates import F64, layer_coordinates, trajectory_jacobians
from riemexp.geometry.spectrum import input_spectrum, layer_factors, log_volumes, metric_spectrum
from riemexp.geometry.spectrum import median as _usual_median
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
    level of a computed g. This is all a matrix alone can tell; where the network is at hand,
    `riemexp.geometry.spectrum` gives the true values from the layers' factors instead.
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


def factor_log_volumes(model: LayeredNetwork, coords: torch.Tensor) -> torch.Tensor:
    """log|det Q_l| = 1/2 log det g_l for every layer at layer coordinates coords (L+1, N, w): (L+1, N).

    One-step kinds: the sum over k >= l of each layer's own log|det J_k| (plain layers in log
    space, sum_i log sigma'(z_i) + log|det W_k|), so a layer that is exactly singular (a relu unit
    switched off in a plain layer) gives exactly -inf and a saturated one a finite value. Two-step
    kinds: log|det K_L| - log|det K_l| (`riemexp.geometry.spectrum.factors`).
    """
    return log_volumes(model, coords)


@torch.no_grad()
def log_volume_elements(model: LayeredNetwork, x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """1/2 log det g_l of every layer at input points x (N, 2): (L+1, N), float64.

    log|det Q_l| with Q_l the factor of g_l = Q_l^T Q_l (`factor_log_volumes`): det g is never
    formed, so deep or saturated networks still get finite values; -inf only where a layer is
    exactly singular (e.g. relu switching a unit off).
    """
    return factor_log_volumes(model, layer_coordinates(model, x))


@torch.no_grad()
def input_log_volume(model: LayeredNetwork, x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """1/2 log det g_in at input points x (N, 2): (N,), float64, in the user's input units.

    g_in = S P^T g_0 P S (`input_metric`) is the metric of the data plane, so for width w > 2
    this is the area element of the plane, not the w-volume of the padded space. At w = 2 it is
    log|det Q_0| - sum log input_scale, the sum of the layers' own log-determinants (exactly -inf
    where a layer is singular, finite wherever every layer is invertible); at w > 2 the sum of the
    log singular values of Q_0 P S (`riemexp.geometry.spectrum.input_spectrum`). The one
    definition of "input log volume element" used by the run's metrics, its input-space heat map,
    geometry.npz (`grid_input_log_volume`) and the sweep tables and figures.
    """
    return input_log_volume_at(model, layer_coordinates(model, x))


@torch.no_grad()
def input_log_volume_at(model: LayeredNetwork, coords: torch.Tensor) -> torch.Tensor:
    """`input_log_volume` at points whose layer coordinates coords (L+1, N, w) are already known: (N,).

    At w = 2 only the layers' log-determinants are computed (`riemexp.geometry.spectrum.log_volumes`),
    the same bits as the spectrum's log volume; at w > 2 the spectrum of the data plane.
    """
    if coords.shape[-1] != INPUT_DIM:
        return input_spectrum(model, coords).log_volume
    scale = model.input_scale.detach().to(F64).to(coords.device)  # (2,)
    return log_volumes(model, coords)[0] - float(torch.log(scale).sum())


@torch.no_grad()
def input_anisotropy(model: LayeredNetwork, x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """lambda_max / lambda_min of g_in at input points x (N, 2): (N,), float64, from the factors.

    Finite wherever every layer is invertible (`riemexp.geometry.spectrum.input_spectrum`); inf
    where one is singular.
    """
    return input_spectrum(model, layer_coordinates(model, x)).anisotropy


def input_log_volume_from_metric(metric0: torch.Tensor | np.ndarray, input_scale: Any) -> np.ndarray:
    """1/2 log det g_in from layer-0 metrics g_0 (..., w, w) alone: (...), float64.

    1/2 log det g_0[:2, :2] - sum log input_scale, by `log_volume_element` of the 2 x 2 block:
    -inf where that block is singular to float64 precision, which a saturated network's g_0 is
    although no layer is singular. Only for geometry.npz files written before riemexp saved
    `grid_input_log_volume` (the true values of `input_log_volume`); see
    `riemexp.analyses.geometry.saved_input_log_volume`.
    """
    g = torch.as_tensor(np.asarray(metric0, dtype=np.float64))[..., :INPUT_DIM, :INPUT_DIM]
    log_scale = float(np.log(np.asarray(input_scale, dtype=np.float64)).sum())
    return (log_volume_element(g) - log_scale).numpy()


def _stat(values: torch.Tensor, how: str) -> float:
    """mean, median (the usual one, `median`) or max of a 1-D tensor; NaN when empty."""
    if values.numel() == 0:
        return math.nan
    if how == "mean":
        return float(values.mean())
    if how == "median":
        return _usual_median(values)
    return float(values.max())


@torch.no_grad()
def layer_statistics(model: LayeredNetwork, x: torch.Tensor | np.ndarray) -> list[dict[str, Any]]:
    """Per-layer statistics over input points x (N, 2): one dict per layer l = 0 .. L.

    log_volume_mean/median/max: 1/2 log det g_l (`log_volume_elements`); anisotropy_median/max:
    lambda_max / lambda_min of g_l, from the factors of g_l (`riemexp.geometry.spectrum`), finite
    wherever the log volume is. One convention for every kind and column: g_l is the data's metric
    in x_l coordinates and J_l = dx_{l+1}/dx_l along the data, so that log_volume(l) -
    log_volume(l+1) = log|det J_l| point by point. Medians are the usual ones. For l < L also, about the map
    l -> l+1: step_length_mean, mean |x_{l+1} - x_l|; det_positive_fraction, the fraction of
    points with det J_l > 0 (the layer keeps orientation); identity_distance_mean, the mean
    Frobenius norm |J_l - I| (finite values). For two-step kinds J_l is the trajectory Jacobian
    dx_{l+1}/dx_l (`trajectory_jacobians`), not the state Jacobian, whose determinant is
    (-c)^w (1 for c2).
    At l = L (g_L = I: log volume 0, anisotropy 1) those three are None.
    """
    coords = layer_coordinates(model, x)
    spectrum = metric_spectrum(model, coords)
    logvol, aniso = spectrum.log_volume, spectrum.anisotropy  # (L+1, N) each
    jac = trajectory_jacobians(model, coords)  # (L, N, w, w): the layer Jacobians of one-step kinds
    steps = (coords[1:] - coords[:-1]).norm(dim=-1)  # (L, N)
    if model.kind.two_step:
        sign, _ = torch.linalg.slogdet(jac.nan_to_num(0.0))
    else:  # from the factors: the sign survives a sigma' that underflows
        sign = layer_factors(model, coords).sign
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
    """The usual median of a tensor's values as a float: the mean of the two middle values for an
    even count (torch's own `median` takes the lower one); NaN left out, NaN when empty."""
    return _usual_median(values)


__all__ = [
    "anisotropy",
    "factor_log_volumes",
    "input_anisotropy",
    "input_log_volume",
    "input_log_volume_at",
    "input_log_volume_from_metric",
    "layer_statistics",
    "log_volume_element",
    "log_volume_elements",
    "median",
    "metric_eigh",
]
