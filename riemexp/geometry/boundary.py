"""Magnification near the decision boundary, as numbers: the pulled-back metric against the distance
to the decision boundary.

The geometric picture of a trained classifier is that g_0 = J^T J (J the Jacobian of the whole map
x_0 -> x_L) is large near the decision boundary, where the network pulls the classes apart, and
small inside each class, where it contracts them. This module measures it. Everything is in the
user's input units: points x (M, 2), the log volume element v(x) = 1/2 log det g_in(x) of the input
metric (`riemexp.geometry.input_log_volume`), and Euclidean distances.

1. The decision boundary, finer than the grid. On a regular grid (ny, nx) over the input box, every
   grid edge whose two end points are predicted different classes holds a boundary point. It is
   located along that edge on the classifier itself by multisection (bisection with 4 parts a
   round, keeping one end in the first end's class and the other out of it; `LOCATE_ROUNDS` rounds):
   to 4^-10 ~ 1e-6 of a grid spacing, far finer than the grid. The crossings on the four edges of
   each grid cell are joined (marching squares): two crossings by a segment; three (a junction of
   three classes) or four (a saddle) each to their mean. The boundary is the union of these
   segments, a polyline within O(spacing^2 x curvature) of the true curve. Boundaries inside the
   box only; a sliver of one class that passes between grid points without covering any is not seen.
2. d(x): the Euclidean distance from x to the nearest boundary segment (input units).
3. Over a set of points (the grid, or the data points):

   - spearman: Spearman's rank correlation of v and d (Pearson's correlation of their ranks, tied
     values sharing their mean rank). Negative when the volume element grows towards the boundary:
     -1 when v falls strictly with the distance.
   - band_ratio: the median volume element sqrt(det g_in) of the points within the band d <= beta
     divided by that of the points outside it, computed as exp(median_in v - median_out v) (for an
     odd count exactly the ratio of the medians of sqrt(det g_in); for an even count the middle pair
     of each side is averaged in log, i.e. geometrically). > 1: space is magnified near the boundary.
     The band's half-width beta = band_fraction x the shorter side of the grid box (default
     `BAND_FRACTION` = 0.05: 5 % of the box), and at least one grid spacing (the larger of the
     two axes'), so that the band holds grid points in a long, narrow box.

   Both are NaN where undefined: no boundary inside the box (every grid point one class), a constant
   v or d (spearman), an empty band or nothing outside it (band_ratio). v may be -inf where g_in is
   singular (a relu layer switched off); ranks and medians take -inf as the smallest value.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from riemexp.errors import GeometryError

if TYPE_CHECKING:
    from riemexp.nets.network import LayeredNetwork

#: a grid edge is cut into SECTIONS parts per round, LOCATE_ROUNDS rounds: the boundary point is
#: located to 4^-10 ~ 1e-6 of a grid spacing with ten calls of the classifier on 3 points per edge
#: (30 evaluations per edge; 16 parts in 5 rounds, the same precision, took 75)
SECTIONS = 4
LOCATE_ROUNDS = 10
#: the band around the boundary: half-width = BAND_FRACTION x the shorter side of the grid box
BAND_FRACTION = 0.05
#: points x segments handled at once when measuring distances (arrays that stay in the CPU's cache)
DISTANCE_CHUNK = 32_768

#: predicted class of points (M, 2) in input units -> (M,) integers
Classifier = Callable[[np.ndarray], np.ndarray]


# --------------------------------------------------------------------------- the boundary


def locate(
    classify: Classifier,
    start: np.ndarray,
    end: np.ndarray,
    rounds: int = LOCATE_ROUNDS,
    first: np.ndarray | None = None,
) -> np.ndarray:
    """Boundary points on the segments start (..., K, 2) -> end (..., K, 2) whose end points differ in class.

    Multisection: each round classifies SECTIONS - 1 points spread inside [lo, hi] in one call and
    keeps the first sub-interval whose far end leaves class(start), shrinking the interval SECTIONS
    times; invariant class(lo) == class(start) != class(hi). Returns the midpoints (lo + hi) / 2
    (..., K, 2). Leading axes (an ensemble's members, `riemexp.analyses.ensemble_snapshots`) are carried
    through: classify then maps points (..., P, 2) to classes (..., P), and every segment is
    located by the same arithmetic as alone. first (..., K): classify(start), where already known.
    """
    first = classify(start) if first is None else first  # (..., K)
    lo, hi = start.copy(), end.copy()
    lead, k = start.shape[:-2], start.shape[-2]
    frac = np.arange(1, SECTIONS) / SECTIONS  # (m,)
    for _ in range(rounds):
        inner = lo[..., None, :] + frac[:, None] * (hi - lo)[..., None, :]  # (..., K, m, 2)
        changed = classify(inner.reshape(*lead, -1, 2)).reshape(*lead, k, -1) != first[..., None]
        changed = np.concatenate([changed, np.ones((*lead, k, 1), dtype=bool)], axis=-1)  # hi has changed
        j = changed.argmax(axis=-1)[..., None, None]  # the first sample out of class(start): 0 .. m (m: hi)
        ends = np.concatenate([lo[..., None, :], inner, hi[..., None, :]], axis=-2)  # (..., K, m + 2, 2)
        lo = np.take_along_axis(ends, j, axis=-2)[..., 0, :]
        hi = np.take_along_axis(ends, j + 1, axis=-2)[..., 0, :]
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class GridCrossings:
    """The grid edges whose two end points are predicted different classes (`grid_crossings`).

    starts, ends (E, 2): the cut edges' end points, horizontal edges first (row by row), then
    vertical ones; classes (E,): the predicted class at each start; h_cut (ny, nx-1) and
    v_cut (ny-1, nx): which edges are cut.
    """

    starts: np.ndarray
    ends: np.ndarray
    classes: np.ndarray
    h_cut: np.ndarray
    v_cut: np.ndarray


def grid_crossings(
    grid_points: np.ndarray, grid_shape: tuple[int, int], grid_classes: np.ndarray
) -> GridCrossings:
    """The cut edges of a grid (G, 2) of grid_shape (ny, nx), x fastest, whose points have classes (G,)."""
    ny, nx = grid_shape
    points = np.asarray(grid_points, dtype=np.float64)
    if points.shape != (ny * nx, 2) or ny < 2 or nx < 2:
        raise GeometryError(
            f"grid_points must have shape ({ny} * {nx}, 2) with ny, nx >= 2, got {points.shape}"
        )
    mesh = points.reshape(ny, nx, 2)
    cls = np.asarray(grid_classes).reshape(ny, nx)
    h_cut = cls[:, :-1] != cls[:, 1:]
    v_cut = cls[:-1, :] != cls[1:, :]
    starts = np.concatenate([mesh[:, :-1][h_cut], mesh[:-1, :][v_cut]])
    ends = np.concatenate([mesh[:, 1:][h_cut], mesh[1:, :][v_cut]])
    classes = np.concatenate([cls[:, :-1][h_cut], cls[:-1, :][v_cut]])
    return GridCrossings(starts, ends, classes, h_cut, v_cut)


def boundary_segments(
    classify: Classifier,
    grid_points: np.ndarray,
    grid_shape: tuple[int, int],
    rounds: int = LOCATE_ROUNDS,
    grid_classes: np.ndarray | None = None,
) -> np.ndarray:
    """The decision boundary inside the grid box as segments (S, 2, 2): [s, 0] and [s, 1] the ends.

    grid_points (G, 2) with G = ny * nx, x fastest (`riemexp.geometry.make_grid`); classify maps
    points (M, 2) to classes (M,); grid_classes (G,): classify(grid_points) where already known.
    Crossings are located by multisection along the grid edges whose end points differ in class and
    joined cell by cell (module docstring). (0, 2, 2) when every grid point is predicted the same class.
    """
    crossings = grid_crossings(
        grid_points,
        grid_shape,
        classify(np.asarray(grid_points, dtype=np.float64)) if grid_classes is None else grid_classes,
    )
    if len(crossings.starts) == 0:
        return np.zeros((0, 2, 2))
    found = locate(classify, crossings.starts, crossings.ends, rounds, first=crossings.classes)
    return join_crossings(crossings, found)


def join_crossings(crossings: GridCrossings, found: np.ndarray) -> np.ndarray:
    """The boundary segments (S, 2, 2) through the located crossings `found` (E, 2) of the cut edges
    (`grid_crossings`, in their order), joined cell by cell (marching squares, module docstring)."""
    h_cut, v_cut = crossings.h_cut, crossings.v_cut
    if len(found) == 0:
        return np.zeros((0, 2, 2))
    # crossings on horizontal edges (ny, nx-1) and vertical edges (ny-1, nx); NaN where none
    h_pts = np.full((*h_cut.shape, 2), np.nan)
    v_pts = np.full((*v_cut.shape, 2), np.nan)
    n_h = int(h_cut.sum())
    h_pts[h_cut], v_pts[v_cut] = found[:n_h], found[n_h:]
    # each cell (ny-1, nx-1): its bottom, right, top and left edges, in order around the cell
    cell = np.stack([h_pts[:-1, :], v_pts[:, 1:], h_pts[1:, :], v_pts[:, :-1]], axis=2)  # (ny-1, nx-1, 4, 2)
    cell = cell.reshape(-1, 4, 2)
    valid = ~np.isnan(cell[..., 0])  # (cells, 4)
    count = valid.sum(axis=1)
    segments = []
    pairs = cell[count == 2][valid[count == 2]].reshape(-1, 2, 2)  # the two crossings, in edge order
    segments.append(pairs)
    many = count >= 3
    if many.any():
        centre = np.nanmean(cell[many], axis=1)  # (K, 2)
        for k in range(4):
            has = valid[many, k]
            segments.append(np.stack([cell[many][has, k], centre[has]], axis=1))
    return np.concatenate(segments, axis=0)


def distance_to_segments(points: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Euclidean distance from each point (M, 2) to the nearest segment of (S, 2, 2): (M,).

    inf for every point when there are no segments.
    """
    points = np.asarray(points, dtype=np.float64)
    if len(segments) == 0:
        return np.full(len(points), math.inf)
    ax, ay = segments[:, 0, 0], segments[:, 0, 1]  # (S,)
    abx, aby = segments[:, 1, 0] - ax, segments[:, 1, 1] - ay
    inv = 1.0 / np.maximum(abx * abx + aby * aby, np.finfo(np.float64).tiny)
    out = np.empty(len(points))
    chunk = max(1, DISTANCE_CHUNK // len(segments))
    for i in range(0, len(points), chunk):
        px = points[i : i + chunk, 0:1] - ax  # (m, S)
        py = points[i : i + chunk, 1:2] - ay
        t = px * abx
        t += py * aby
        t *= inv
        np.clip(t, 0.0, 1.0, out=t)  # the nearest point of each segment: a + t (b - a)
        px -= t * abx
        py -= t * aby
        px *= px
        py *= py
        px += py
        out[i : i + chunk] = np.sqrt(px.min(axis=1))
    return out


# --------------------------------------------------------------------------- the numbers


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..M of values (M,), tied values sharing their mean rank (as scipy's rankdata)."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    new = np.r_[True, ordered[1:] != ordered[:-1]]  # start of each group of ties
    group = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    sizes = np.diff(np.r_[starts, len(values)])
    mean_rank = starts + (sizes + 1) / 2.0  # ranks start + 1 .. start + size, averaged
    ranks = np.empty(len(values))
    ranks[order] = mean_rank[group]
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of a (M,) and b (M,); NaN if M < 2 or either is constant.

    Pairs where either value is NaN are left out; -inf and inf rank as the extremes.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    if len(a) < 2:
        return math.nan
    ra, rb = average_ranks(a), average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    norm = math.sqrt(float((ra * ra).sum()) * float((rb * rb).sum()))
    return float((ra * rb).sum() / norm) if norm > 0 else math.nan


def band_ratio(log_volume: np.ndarray, distance: np.ndarray, width: float) -> float:
    """exp(median v over {d <= width} - median v over {d > width}): the ratio of median volume elements.

    log_volume v (M,) = 1/2 log det g, distance d (M,); NaN when either side is empty.
    """
    v, d = np.asarray(log_volume, dtype=np.float64), np.asarray(distance, dtype=np.float64)
    keep = ~(np.isnan(v) | np.isnan(d))
    v, d = v[keep], d[keep]
    inside = d <= width
    if not inside.any() or inside.all():
        return math.nan
    with np.errstate(invalid="ignore", over="ignore"):
        return float(np.exp(np.median(v[inside]) - np.median(v[~inside])))


def band_width(
    grid_points: np.ndarray, grid_shape: tuple[int, int], band_fraction: float = BAND_FRACTION
) -> float:
    """The band's half-width: band_fraction x the shorter side of the grid's box, and at least the
    larger grid spacing (so that the band holds grid points in a long, narrow box)."""
    points = np.asarray(grid_points, dtype=np.float64)
    sides = points.max(axis=0) - points.min(axis=0)  # (x, y)
    ny, nx = grid_shape
    spacing = max(sides[0] / max(nx - 1, 1), sides[1] / max(ny - 1, 1))
    return float(max(band_fraction * sides.min(), spacing))


@dataclass(frozen=True)
class BoundaryNumbers:
    """The boundary numbers of one classifier (module docstring), on the grid and on the data.

    band_width: the band's half-width (input units); n_band_*: points within it; boundary_length:
    the total length of the located boundary inside the box (input units; 0 when there is none).
    """

    spearman_grid: float
    band_ratio_grid: float
    spearman_data: float
    band_ratio_data: float
    band_width: float
    n_band_grid: int
    n_band_data: int
    boundary_length: float

    def as_metrics(self, prefix: str = "boundary_") -> dict[str, Any]:
        """{prefix + name: value}, non-finite floats as None (JSON has no NaN)."""
        return {
            prefix + k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in asdict(self).items()
        }


#: BoundaryNumbers' fields in order (the columns of the boundary tables)
NUMBER_NAMES = (
    "spearman_grid",
    "band_ratio_grid",
    "spearman_data",
    "band_ratio_data",
    "band_width",
    "n_band_grid",
    "n_band_data",
    "boundary_length",
)


def measure(
    segments: np.ndarray,
    grid_points: np.ndarray,
    grid_shape: tuple[int, int],
    grid_log_volume: np.ndarray,
    data_points: np.ndarray,
    data_log_volume: np.ndarray,
    band_fraction: float = BAND_FRACTION,
) -> BoundaryNumbers:
    """The boundary numbers from located boundary segments (S, 2, 2) and log volume elements.

    grid_points (G, 2) on a grid of grid_shape (ny, nx), with grid_log_volume (G,); data_points (N, 2)
    with data_log_volume (N,); all in input units.
    """
    width = band_width(grid_points, grid_shape, band_fraction)
    d_grid = distance_to_segments(grid_points, segments)
    d_data = distance_to_segments(data_points, segments)
    if len(segments) == 0:
        nan = math.nan
        return BoundaryNumbers(nan, nan, nan, nan, width, 0, 0, 0.0)
    length = float(np.linalg.norm(segments[:, 1] - segments[:, 0], axis=1).sum())
    return BoundaryNumbers(
        spearman_grid=spearman(grid_log_volume, d_grid),
        band_ratio_grid=band_ratio(grid_log_volume, d_grid, width),
        spearman_data=spearman(data_log_volume, d_data),
        band_ratio_data=band_ratio(data_log_volume, d_data, width),
        band_width=width,
        n_band_grid=int((d_grid <= width).sum()),
        n_band_data=int((d_data <= width).sum()),
        boundary_length=length,
    )


# --------------------------------------------------------------------------- a network's numbers


def network_classifier(model: LayeredNetwork) -> Classifier:
    """The predicted class (argmax of the logits, float64) of points (M, 2) in input units."""
    import torch

    from riemexp.geometry.coordinates import layer_coordinates

    V = model.head.weight.detach().to(torch.float64)  # (C, w)
    c = model.head.bias.detach().to(torch.float64)  # (C,)

    def classify(points: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x_last = layer_coordinates(model, points)[-1]  # (M, w)
            logits = torch.addmm(c.to(x_last.device), x_last, V.to(x_last.device).T)  # (M, C)
            return logits.argmax(dim=1).cpu().numpy()

    return classify


def network_boundary_numbers(
    model: LayeredNetwork,
    grid_points: np.ndarray,
    grid_shape: tuple[int, int],
    data_points: np.ndarray,
    band_fraction: float = BAND_FRACTION,
    grid_log_volume: np.ndarray | None = None,
    grid_classes: np.ndarray | None = None,
    data_log_volume: np.ndarray | None = None,
) -> tuple[BoundaryNumbers, np.ndarray]:
    """The boundary numbers of a network (and its boundary segments (S, 2, 2)), in input units.

    grid_log_volume (G,): 1/2 log det g_in at the grid points, grid_classes (G,): their predicted
    classes (argmax of the float64 logits), data_log_volume (N,): 1/2 log det g_in at the data points,
    when already computed.
    """
    from riemexp.geometry.scalars import input_log_volume

    segments = boundary_segments(
        network_classifier(model), grid_points, grid_shape, grid_classes=grid_classes
    )
    if grid_log_volume is None:
        grid_log_volume = input_log_volume(model, grid_points).cpu().numpy()
    if data_log_volume is None:
        data_log_volume = input_log_volume(model, data_points).cpu().numpy()
    numbers = measure(
        segments, grid_points, grid_shape, grid_log_volume, data_points, data_log_volume, band_fraction
    )
    return numbers, segments
