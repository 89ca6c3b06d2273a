"""Folds: where a layer reverses orientation, located in the input plane.

A layer x_{l+1} = F_l(x_l) keeps orientation where det J_l > 0 and reverses it where det J_l < 0;
where det J_l changes sign inside the plane the layer folds it (two nearby points on either side
of the fold land on the same side of its image), and the curve det J_l(x_l(x)) = 0, pulled back to
input points x, is the fold's trace in the input. For a plain width-2 tanh layer
det J_l = det(W_l) prod sigma'(z) has the sign of det W_l everywhere: a reflection, never a
fold; residual layers det(I + h D W_l) fold where h D W_l has an eigenvalue below -1.

J_l is the layer Jacobian dx_{l+1}/dx_l of `riemexp.geometry.layer_jacobians` evaluated at x_l
(for c2 the trajectory Jacobian dx_{l+1}/dx_l on the data manifold, as in the layers table; NaN
where it is undefined).
"""

from __future__ import annotations

import numpy as np
import torch

from riemexp.nets.network import LayeredNetwork


@torch.no_grad()
def layer_determinants(model: LayeredNetwork, points: np.ndarray | torch.Tensor) -> np.ndarray:
    """det J_l at the images x_l of input points (M, 2), for l = 0 .. L-1: (L, M) float64."""
    from riemexp.geometry.coordinates import layer_coordinates

    return determinants_at(model, layer_coordinates(model, points))


@torch.no_grad()
def determinants_at(model: LayeredNetwork, coords: torch.Tensor | np.ndarray) -> np.ndarray:
    """det J_l at layer coordinates coords (L+1, M, w) already computed, l = 0 .. L-1: (L, M) float64."""
    from riemexp.geometry.coordinates import trajectory_jacobians

    jac = trajectory_jacobians(model, torch.as_tensor(coords))  # (L, M, w, w)
    return torch.linalg.det(jac).cpu().numpy()


def negative_fraction(determinants: np.ndarray) -> np.ndarray:
    """The fraction of points where det J_l < 0, per layer: determinants (..., L, M) -> (..., L)."""
    return (np.asarray(determinants) < 0).mean(axis=-1)


def folding_layers(determinants: np.ndarray) -> list[int]:
    """The layers l whose det J_l (L, M) takes both signs over the points: those that fold the plane there."""
    dets = np.asarray(determinants)
    return [int(layer) for layer in np.flatnonzero((dets < 0).any(axis=1) & (dets > 0).any(axis=1))]
