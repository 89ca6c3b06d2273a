"""Folds drawn on input-space panels: the curves det J_l = 0 of every layer, pulled back to the input.

Arrays in (det J_l on a grid, `riemexp.geometry.folds`), contours out. One contour draws the folds of every
layer (`fold_field`), dashed orange with a thin dark edge so that it reads on both ends of the
log-volume scale (red, blue) and apart from the black decision boundary.
"""

from __future__ import annotations

import numpy as np
from matplotlib import patheffects
from matplotlib.axes import Axes

FOLD_COLOUR = "#E69F00"  # Okabe-Ito orange


def fold_field(dets: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """One field whose zero set is the union of the folds det J_l = 0 of every layer, and those layers.

    dets (L, ny, nx). f = prod_l sign(det J_l) x min_l |det J_l| / max |det J_l| over the layers that
    fold the grid (det J_l of both signs): f changes sign exactly where one det J_l does, and near
    that fold it is that layer's own (scaled) determinant, so one contour draws every fold.
    """
    folding = []
    sign = np.ones(dets.shape[1:])
    size = np.full(dets.shape[1:], np.inf)
    for layer, det in enumerate(dets):
        finite = det[np.isfinite(det)]
        if finite.size == 0 or not (finite.min() < 0 < finite.max()):
            continue
        folding.append(layer)
        sign *= np.sign(np.nan_to_num(det))
        size = np.minimum(size, np.abs(np.nan_to_num(det)) / np.abs(finite).max())
    return sign * size, folding


def draw_folds(
    ax: Axes, xs: np.ndarray, ys: np.ndarray, dets: np.ndarray, linewidth: float = 1.1
) -> list[int]:
    """Draw det J_l = 0 (dets (L, ny, nx)) of every layer that folds the grid; return those layers.

    Dashed orange with a thin dark edge, so that it reads on both ends of the log-volume scale.
    """
    field, folding = fold_field(dets)
    if folding:
        contour = ax.contour(
            xs, ys, field, levels=[0.0], colors=FOLD_COLOUR, linewidths=linewidth, linestyles="--", zorder=5
        )
        contour.set_path_effects([patheffects.withStroke(linewidth=linewidth + 1.2, foreground="#333333")])
    return folding


def _join_cells(h_pts: np.ndarray, v_pts: np.ndarray) -> np.ndarray:
    """Join crossings on the edges of each cell into segments (S, 2, 2) (as `riemexp.geometry.boundary`).

    h_pts (ny, nx-1, 2) and v_pts (ny-1, nx, 2): the crossing on each horizontal / vertical grid
    edge, NaN where none. Two crossings in a cell make a segment; three or four are each joined
    to their mean.
    """
    cell = np.stack([h_pts[:-1, :], v_pts[:, 1:], h_pts[1:, :], v_pts[:, :-1]], axis=2).reshape(-1, 4, 2)
    valid = ~np.isnan(cell[..., 0])
    count = valid.sum(axis=1)
    segments = [cell[count == 2][valid[count == 2]].reshape(-1, 2, 2)]
    many = count >= 3
    if many.any():
        centre = np.nanmean(cell[many], axis=1)
        for k in range(4):
            has = valid[many, k]
            segments.append(np.stack([cell[many][has, k], centre[has]], axis=1))
    return np.concatenate(segments, axis=0)


def zero_segments(xs: np.ndarray, ys: np.ndarray, field: np.ndarray) -> np.ndarray:
    """The zero set of field (ny, nx) on the mesh xs (nx,), ys (ny,) as segments (S, 2, 2).

    Linear interpolation along every grid edge whose ends have opposite signs, joined cell by cell.
    """
    mesh = np.stack(np.meshgrid(xs, ys, indexing="xy"), axis=-1)  # (ny, nx, 2)

    def crossings(f0: np.ndarray, f1: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
        cut = (np.sign(f0) * np.sign(f1) < 0) & np.isfinite(f0) & np.isfinite(f1)
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.where(cut, f0 / (f0 - f1), np.nan)
        return p0 + t[..., None] * (p1 - p0)

    h_pts = crossings(field[:, :-1], field[:, 1:], mesh[:, :-1], mesh[:, 1:])
    v_pts = crossings(field[:-1, :], field[1:, :], mesh[:-1, :], mesh[1:, :])
    return _join_cells(h_pts, v_pts)


def class_boundary_segments(xs: np.ndarray, ys: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The decision boundary of scores (ny, nx, C) (logits or log-probabilities) as segments (S, 2, 2).

    On every grid edge whose ends are predicted classes a != b the crossing is where s_a - s_b,
    interpolated linearly along the edge, is zero; crossings are joined cell by cell.
    """
    mesh = np.stack(np.meshgrid(xs, ys, indexing="xy"), axis=-1)
    winner = scores.argmax(axis=-1)  # (ny, nx)

    def crossings(sl0: tuple, sl1: tuple) -> np.ndarray:
        a, b = winner[sl0], winner[sl1]
        s0, s1 = scores[sl0], scores[sl1]  # (..., C)
        d0 = (
            np.take_along_axis(s0, a[..., None], -1)[..., 0]
            - np.take_along_axis(s0, b[..., None], -1)[..., 0]
        )
        d1 = (
            np.take_along_axis(s1, a[..., None], -1)[..., 0]
            - np.take_along_axis(s1, b[..., None], -1)[..., 0]
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.where(a != b, np.clip(d0 / (d0 - d1), 0.0, 1.0), np.nan)
        return mesh[sl0] + t[..., None] * (mesh[sl1] - mesh[sl0])

    full = slice(None)
    h_pts = crossings((full, slice(None, -1)), (full, slice(1, None)))
    v_pts = crossings((slice(None, -1), full), (slice(1, None), full))
    return _join_cells(h_pts, v_pts)
