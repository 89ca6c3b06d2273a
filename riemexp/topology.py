"""The topological test of width 2 on circles: does the network separate the disc from the ring?

If every layer of a width-2 network is a homeomorphism of the plane (certified: riemexp.certify),
the region the head assigns to the disc is the preimage of an open half-plane, so it is
connected and unbounded: starting inside the ring it must cross the ring. Such a network
cannot separate a disc from the ring around it; width 3 can. A finite sample hides this, since
a thin channel through the ring misclassifies almost no sampled point. So, besides test accuracy,
the `topology` analysis step of a run on `dataset=circles` measures, on the noise-free sets

    disc  D = {|x| <= factor}  (a square lattice of spacing `spacing` inside it)
    ring  R = {|x| = 1}         (`n_ring` equally spaced angles),

in the data's own coordinates:

    disc_error, ring_error            misclassified fraction of D and of R
    boundary_distance_disc, _ring     smallest distance from the decision boundary to D and to R
                                      (0 when the boundary crosses the set); the boundary is
                                      located on a `boundary_grid` x `boundary_grid` lattice over
                                      [-1.6, 1.6]^2, by linear interpolation of the logit
                                      difference on every lattice edge whose ends disagree
    folded_fraction                   fraction of the data points at which some layer reverses
                                      orientation (det J_l <= 0)

A channel thinner than the lattices (about 3e-4 rad on the ring, 0.008 for the boundary) can
escape these numbers; the certificate is what proves it exists.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from riemexp.nets.network import LayeredNetwork

F64 = torch.float64
#: the circles dataset's labels (riemexp.data.toy.make_circles)
RING, DISC = 0, 1
BOX = 1.6  # the boundary lattice covers [-BOX, BOX]^2 (the ring has radius 1)


def disc_points(radius: float, spacing: float) -> np.ndarray:
    """A square lattice of spacing `spacing` inside the closed disc |x| <= radius: (N, 2)."""
    ticks = np.arange(-radius, radius + spacing / 2, spacing)
    gx, gy = np.meshgrid(ticks, ticks)
    points = np.stack([gx.ravel(), gy.ravel()], 1)
    return points[np.hypot(points[:, 0], points[:, 1]) <= radius]


def ring_points(n: int) -> np.ndarray:
    """n equally spaced points of the unit circle: (n, 2)."""
    angle = 2 * math.pi * np.arange(n) / n
    return np.stack([np.cos(angle), np.sin(angle)], 1)


@torch.no_grad()
def logit_difference(model: LayeredNetwork, x: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """logit_disc - logit_ring of points x (N, 2) in float64: (N,); > 0 where the disc wins."""
    from riemexp.geometry import layer_coordinates

    head_w = model.head.weight.detach().to(F64)
    head_b = model.head.bias.detach().to(F64)
    out = []
    for start in range(0, len(x), chunk):
        hidden = layer_coordinates(model, torch.as_tensor(x[start : start + chunk], dtype=F64))[-1]
        logits = hidden @ head_w.T + head_b  # (n, 2)
        out.append((logits[:, DISC] - logits[:, RING]).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def boundary_points(model: LayeredNetwork, n: int) -> np.ndarray:
    """Points of the decision boundary {logit difference = 0} on an n x n lattice over [-BOX, BOX]^2:
    one per lattice edge whose two ends are classified differently, by linear interpolation: (M, 2)."""
    ticks = np.linspace(-BOX, BOX, n)
    gx, gy = np.meshgrid(ticks, ticks)  # (n, n), x along axis 1
    d = logit_difference(model, np.stack([gx.ravel(), gy.ravel()], 1)).reshape(n, n)
    found = []
    for axis in (0, 1):
        a = d[:-1, :] if axis == 0 else d[:, :-1]
        b = d[1:, :] if axis == 0 else d[:, 1:]
        cross = (a > 0) != (b > 0)
        t = np.clip(a[cross] / np.where(a[cross] == b[cross], 1.0, a[cross] - b[cross]), 0.0, 1.0)
        px = gx[:-1, :] if axis == 0 else gx[:, :-1]
        py = gy[:-1, :] if axis == 0 else gy[:, :-1]
        qx = gx[1:, :] if axis == 0 else gx[:, 1:]
        qy = gy[1:, :] if axis == 0 else gy[:, 1:]
        found.append(
            np.stack([px[cross] + t * (qx[cross] - px[cross]), py[cross] + t * (qy[cross] - py[cross])], 1)
        )
    return np.concatenate(found)


def measure(
    model: LayeredNetwork,
    factor: float,
    data_x: Any | None = None,
    spacing: float = 0.005,
    n_ring: int = 20_000,
    boundary_grid: int = 400,
) -> dict[str, Any]:
    """The topology metrics of a trained circles network (module docstring); factor = disc radius."""
    disc = disc_points(factor, spacing)
    ring = ring_points(n_ring)
    disc_error = float((logit_difference(model, disc) <= 0).mean())
    ring_error = float((logit_difference(model, ring) > 0).mean())
    edge = boundary_points(model, boundary_grid)
    to_disc: float | None
    to_ring: float | None
    if len(edge):
        radius = np.hypot(edge[:, 0], edge[:, 1])
        to_disc = float(np.maximum(radius - factor, 0.0).min())
        to_ring = float(np.abs(radius - 1.0).min())
    else:
        to_disc = to_ring = None  # no boundary in the box: one class everywhere there
    if disc_error > 0:
        to_disc = 0.0
    if ring_error > 0:
        to_ring = 0.0
    out: dict[str, Any] = {
        "disc_error": disc_error,
        "ring_error": ring_error,
        "boundary_distance_disc": to_disc,
        "boundary_distance_ring": to_ring,
    }
    if data_x is not None:
        out["folded_fraction"] = folded_fraction(model, data_x)
    return out


@torch.no_grad()
def folded_fraction(model: LayeredNetwork, x: Any) -> float | None:
    """Fraction of points x (N, 2) at which some layer has det J_l <= 0 (it reverses orientation);
    None for two-step kinds (c2), whose state Jacobians have det 1 (see tables/layers.csv instead)."""
    from riemexp.geometry import layer_coordinates, layer_jacobians

    if model.kind.two_step:
        return None
    coords = layer_coordinates(model, x)
    det = torch.linalg.det(layer_jacobians(model, coords))  # (L, N)
    return float((det <= 0).any(dim=0).to(F64).mean())


__all__ = ["boundary_points", "disc_points", "folded_fraction", "logit_difference", "measure", "ring_points"]
