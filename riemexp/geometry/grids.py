"""The evaluation grid over the data, and the coordinates and metrics of grid and data in every layer.

`make_grid` spans the data's bounding box; `geometry_arrays` computes, for the grid and for the data
points, the layer coordinates and pulled-back metrics and the head's class probabilities on the
grid: the arrays a run saves as geometry.npz (riemexp.analyses.geometry names and checks them).
"""

from __future__ import annotations

import numpy as np
import torch

from riemexp.config import INPUT_DIM
from riemexp.errors import GeometryError
from riemexp.geometry.coordinates import F64
from riemexp.geometry.pullback import coordinates_and_metrics
from riemexp.geometry.scalars import input_log_volume_at
from riemexp.nets.network import LayeredNetwork


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


def check_finite(name: str, array: torch.Tensor, what: str) -> None:
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
def geometry_arrays(
    model: LayeredNetwork, points: torch.Tensor, labels: torch.Tensor, density: int, margin: float
) -> dict[str, np.ndarray]:
    """Coordinates and metrics of a grid and of the data points in every layer, float64 numpy.

    points (N, 2), labels (N,); the grid covers their bounding box (`make_grid`). Returns
    grid_points (G, 2), grid_shape (2,) int64, grid_coords (L+1, G, w), grid_metric
    (L+1, G, w, w), data_points (N, 2), data_labels (N,) int64, data_coords (L+1, N, w),
    data_metric (L+1, N, w, w), grid_proba (G, C), the head's softmax on the grid, and
    grid_input_log_volume (G,) and data_input_log_volume (N,), `input_log_volume` of grid and
    data (-inf only where a layer is singular). Raises GeometryError when coordinates or metrics
    overflow float64.
    """
    points = points.detach().cpu().to(F64)
    labels = labels.detach().cpu().to(torch.int64)
    grid, shape = make_grid(points, density, margin)
    grid_coords, grid_metric = coordinates_and_metrics(model, grid)
    check_finite("grid coordinates", grid_coords, "grid points")
    check_finite("the grid metric", grid_metric, "grid points")
    data_coords, data_metric = coordinates_and_metrics(model, points)
    check_finite("data coordinates", data_coords, "data points")
    check_finite("the data metric", data_metric, "data points")
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
        "grid_input_log_volume": input_log_volume_at(model, grid_coords).cpu().numpy(),
        "data_input_log_volume": input_log_volume_at(model, data_coords).cpu().numpy(),
    }


__all__ = ["check_finite", "geometry_arrays", "make_grid"]
