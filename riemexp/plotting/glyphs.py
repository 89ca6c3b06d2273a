"""Metric-tensor glyphs: ellipses drawn from 2 x 2 metrics, sized per panel (docs/science.md §3).

Convention (stated in every figure's caption and in docs/figures.md, "Glyph convention"):
eigen-decompose each metric with a symmetric solver, g = Q diag(lambda) Q^T (`numpy.linalg.eigh`),
draw an ellipse whose axes lie along the eigenvectors (orientation arctan2(q_y, q_x)) with
semi-axes proportional to

    sqrt(lambda)      "stretch" (default): the image of a unit displacement, |v|_g = sqrt(v^T g v)
    1 / sqrt(lambda)  "unit_ball": the set {v : v^T g v <= 1}

Sizes on a square-root scale, one scale per panel: a glyph whose true long axis is a is drawn
with long axis A a^SIZE_POWER (SIZE_POWER = 1/2), both axes scaled alike so the shape (the
anisotropy) is true; A puts the panel's largest glyph at `FILL` of the glyph spacing and keeps
neighbouring glyphs apart (see `make_glyphs`). So a glyph half as long as another stands for a
quarter of its length, and the legend's key (KEY_LENGTHS: x1, x1/4, x1/16 of the largest)
says so. Glyphs truly smaller than SMALLEST_SHOWN (1/56) of the largest are drawn at
`MIN_FRACTION` of the spacing, hollow. A metric with lambda_min <= DEGENERATE_RTOL * lambda_max
(one axis under 1e-6 of the other: a saturated tanh, a relu dead zone) is drawn as what it is:
a line (stretch: along the surviving direction, on the panel's scale; unit ball: along the
unbounded direction), and g = 0 as a cross; never dropped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.collections import EllipseCollection, LineCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse

from riemexp.config import GlyphConvention
from riemexp.numerics import SINGULAR_RTOL

FILL = 0.9  # the largest glyph's long axis, as a fraction of the glyph spacing
SIZE_POWER = 0.5  # drawn length = (true length)^SIZE_POWER, one scale per panel: a square-root scale
MIN_FRACTION = 0.12  # smallest long axis drawn, as a fraction of the spacing
#: true lengths below this fraction of the panel's largest are drawn at MIN_FRACTION (hollow)
SMALLEST_SHOWN = (MIN_FRACTION / FILL) ** (1 / SIZE_POWER)
CLUSTER = 0.5  # neighbours closer than this (x spacing) are exempt from the no-overlap rule
DEGENERATE_RTOL = SINGULAR_RTOL  # lambda_min / lambda_max at or below this: degenerate (rank lost)
ZERO_MARK = 0.3  # the cross of a zero metric, as a fraction of the spacing
#: the size key: true lengths relative to the panel's largest glyph, drawn on the panel's scale
KEY_LENGTHS = (1.0, 1 / 4, 1 / 16)
FACE = "#4d4d4d"
EDGE = "#1a1a1a"
DEGENERATE_EDGE = "#000000"


@dataclass(frozen=True)
class Glyphs:
    """Glyphs ready to draw, in the panel's data units.

    centres (M, 2); widths, heights (M,) full drawn lengths along the first and second
    eigenvector (0 along a collapsed direction); angles (M,) degrees counter-clockwise of
    the first eigenvector; enlarged (M,) truly smaller than drawn (below SMALLEST_SHOWN of the
    panel's largest); degenerate (M,) rank lost; rank (M,) 2, 1 (drawn as a line) or 0 (g = 0,
    drawn as a cross); true_long (M,) the unscaled long axis (sqrt(lambda_max) or
    1/sqrt(lambda_min); inf where unbounded), which the drawn long axis follows on a
    square-root scale.
    """

    centres: np.ndarray
    widths: np.ndarray
    heights: np.ndarray
    angles: np.ndarray
    enlarged: np.ndarray
    degenerate: np.ndarray
    rank: np.ndarray
    true_long: np.ndarray

    @property
    def long_axis(self) -> np.ndarray:
        """The drawn long axis (M,) in data units."""
        return np.maximum(self.widths, self.heights)


def glyph_axes(metric: np.ndarray, convention: GlyphConvention) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unnormalised glyph axes of 2 x 2 metrics.

    metric (M, 2, 2) symmetric positive semi-definite. Returns axes (M, 2) proportional
    to sqrt(lambda_i) (stretch) or 1/sqrt(lambda_i) (unit_ball) along eigenvector i
    (inf where lambda_i = 0), angles (M,) in degrees of eigenvector 0 = atan2(q_y, q_x),
    and degenerate (M,) where lambda_min <= DEGENERATE_RTOL * lambda_max.
    """
    axes, angles, degenerate, _ = _eigen_axes(metric, convention)
    return axes, angles, degenerate


def _eigen_axes(
    metric: np.ndarray, convention: GlyphConvention
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """glyph_axes, and the rank (M,) of each metric (eigenvalues at the rounding level count as 0)."""
    metric = np.asarray(metric, dtype=np.float64)
    sym = (metric + np.swapaxes(metric, -1, -2)) / 2
    lam, vec = np.linalg.eigh(sym)  # ascending eigenvalues (M, 2), eigenvectors in columns
    lam = np.clip(lam, 0.0, None)  # round-off can leave -1e-17 on a singular metric
    lam_max = lam[:, 1]
    degenerate = lam[:, 0] <= DEGENERATE_RTOL * lam_max
    degenerate |= lam_max == 0
    # below the rounding level an eigenvalue is zero: its stretch axis vanishes and its
    # unit-ball axis is infinite (drawn at a fixed visible size), never 1/sqrt(noise)
    lam = np.where(lam <= DEGENERATE_RTOL * lam_max[:, None], 0.0, lam)
    rank = np.count_nonzero(lam > 0, axis=1)
    if GlyphConvention(convention) is GlyphConvention.STRETCH:
        axes = np.sqrt(lam)
    else:
        with np.errstate(divide="ignore"):
            axes = 1.0 / np.sqrt(lam)
    angles = np.degrees(np.arctan2(vec[:, 1, 0], vec[:, 0, 0]))
    return axes, angles, degenerate, rank


def make_glyphs(
    centres: np.ndarray,
    metric: np.ndarray,
    convention: GlyphConvention,
    spacing: float,
    visible: np.ndarray | None = None,
    pairs: np.ndarray | None = None,
) -> Glyphs:
    """Glyphs for metrics (M, 2, 2) at centres (M, 2), normalised to a glyph spacing (data units).

    Size on a square-root scale, one scale per panel: a glyph's long axis is drawn at
    A * a^SIZE_POWER for a true long axis a (shape kept: both axes get the same factor), with A
    such that the largest visible glyph's long axis is FILL x spacing and, where glyph centres
    have moved (a deformed grid), no two neighbouring glyphs i, j of `pairs` (P, 2) overlap:
    long_i + long_j <= 2 FILL d_ij. Neighbours closer than CLUSTER x spacing (which would overlap
    even at the minimum size) are left out of that rule (a grid squeezed to a point would
    otherwise shrink every glyph). Glyphs whose long axis would be drawn below MIN_FRACTION x
    spacing (true length under SMALLEST_SHOWN of the largest) are drawn at that size, flagged
    `enlarged`. Degenerate metrics are drawn as what they are: rank 1 as a line (stretch: along
    the surviving direction, on the same scale; unit ball: along the unbounded direction, FILL x
    spacing long), g = 0 as a cross. visible (M,) bool: the glyphs inside the panel, which alone
    set the scale (None: all).
    """
    axes, angles, degenerate, rank = _eigen_axes(metric, convention)
    finite = np.where(np.isfinite(axes), axes, 0.0)
    true_long = np.where(np.isinf(axes).any(axis=1), np.inf, finite.max(axis=1))
    long_axis = finite.max(axis=1)
    compressed = long_axis**SIZE_POWER
    visible = np.ones(len(long_axis), dtype=bool) if visible is None else np.asarray(visible, dtype=bool)
    pool = ~degenerate & visible
    if not np.any(pool):
        pool = visible if np.any(visible) else np.ones(len(long_axis), dtype=bool)
    reference = compressed[pool].max() if len(compressed) else 0.0
    scale = FILL * spacing / reference if reference > 0 else 0.0
    if pairs is not None and len(pairs) and scale > 0:
        i, j = np.asarray(pairs).T
        dist = np.linalg.norm(centres[i] - centres[j], axis=1)
        both = compressed[i] + compressed[j]
        keep = pool[i] & pool[j] & (dist >= CLUSTER * spacing) & (both > 0)
        if np.any(keep):
            scale = min(scale, float(np.min(2 * FILL * dist[keep] / both[keep])))
    # each glyph's axes times one factor: its compressed long axis over its true one
    long_drawn = np.minimum(scale * compressed, FILL * spacing)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(long_axis > 0, long_drawn / long_axis, 0.0)
    with np.errstate(invalid="ignore"):  # inf x 0 where an axis is unbounded: replaced here
        drawn = np.where(np.isinf(axes), FILL * spacing, axes * factor[:, None])  # unbounded: at the fill
    # too small to see: enlarged to the minimum, shape kept (rank-2 glyphs only)
    minimum = MIN_FRACTION * spacing
    long_now = drawn.max(axis=1)
    enlarged = (rank == 2) & (long_now < minimum)
    drawn = np.where(enlarged[:, None], drawn * (minimum / np.maximum(long_now, 1e-300))[:, None], drawn)
    # rank 1 drawn as a line: stretch along the surviving axis (at least the minimum, so it shows)
    line = rank == 1
    drawn = np.where(line[:, None] & np.isfinite(axes) & (axes > 0), np.maximum(drawn, minimum), drawn)
    drawn = np.where(line[:, None] & (axes == 0), 0.0, drawn)  # the collapsed direction: no width
    if GlyphConvention(convention) is GlyphConvention.UNIT_BALL:
        drawn = np.where(line[:, None] & np.isfinite(axes), 0.0, drawn)  # the unbounded line alone
    drawn = np.where((rank == 0)[:, None], ZERO_MARK * spacing, drawn)
    return Glyphs(
        centres=np.asarray(centres, dtype=np.float64),
        widths=drawn[:, 0],
        heights=drawn[:, 1],
        angles=angles,
        enlarged=enlarged & ~degenerate,
        degenerate=degenerate,
        rank=rank,
        true_long=true_long,
    )


def draw_glyphs(ax: Axes, glyphs: Glyphs, zorder: float = 3) -> None:
    """Add the glyphs to ax: ellipses (true size filled, enlarged hollow), lines (rank 1), crosses (g = 0)."""
    full = glyphs.rank == 2
    kinds = (
        (full & ~glyphs.enlarged, dict(facecolors=FACE, edgecolors=EDGE, alpha=0.7)),
        (full & glyphs.enlarged, dict(facecolors="none", edgecolors=EDGE, alpha=0.8)),
    )
    for mask, style in kinds:
        if not np.any(mask):
            continue
        ax.add_collection(
            EllipseCollection(
                glyphs.widths[mask],
                glyphs.heights[mask],
                glyphs.angles[mask],
                units="xy",
                offsets=glyphs.centres[mask],
                offset_transform=ax.transData,
                linewidths=0.7,
                zorder=zorder,
                **style,
            )
        )
    line = glyphs.rank == 1
    if np.any(line):
        ax.add_collection(
            LineCollection(
                list(line_segments(glyphs, line)), colors=DEGENERATE_EDGE, linewidths=1.4, zorder=zorder
            )
        )
    zero = glyphs.rank == 0
    if np.any(zero):
        ax.add_collection(
            LineCollection(
                list(cross_segments(glyphs, zero)), colors=DEGENERATE_EDGE, linewidths=1.0, zorder=zorder
            )
        )


def line_segments(glyphs: Glyphs, mask: np.ndarray) -> np.ndarray:
    """The rank-1 glyphs of `mask` as segments (K, 2, 2): centre -/+ half the drawn length along its axis."""
    theta = np.radians(glyphs.angles[mask])
    first = np.stack([np.cos(theta), np.sin(theta)], axis=1)  # eigenvector 0
    second = np.stack([-np.sin(theta), np.cos(theta)], axis=1)
    half = (glyphs.widths[mask, None] * first + glyphs.heights[mask, None] * second) / 2
    centres = glyphs.centres[mask]
    return np.stack([centres - half, centres + half], axis=1)


def cross_segments(glyphs: Glyphs, mask: np.ndarray) -> np.ndarray:
    """The g = 0 glyphs of `mask` as the two strokes of a cross each: (2K, 2, 2)."""
    centres = glyphs.centres[mask]
    half = glyphs.widths[mask, None] / 2 / np.sqrt(2)
    d1 = np.concatenate([half, half], axis=1)
    d2 = np.concatenate([half, -half], axis=1)
    return np.concatenate(
        [np.stack([centres - d1, centres + d1], 1), np.stack([centres - d2, centres + d2], 1)]
    )


def legend_handles(glyphs: Sequence[Glyphs], convention: GlyphConvention) -> list[Artist]:
    """Legend entries for the glyphs in a figure: the size key, and each kind of glyph present."""
    stretch = GlyphConvention(convention) is GlyphConvention.STRETCH
    what = "stretch" if stretch else "radius"
    handles: list[Artist] = []
    biggest = 15.0  # points: the key's largest disc; the others on the figures' square-root scale
    for length in KEY_LENGTHS:
        label = f"{what} ×1 (the panel's largest)" if length == 1 else f"{what} ×1/{round(1 / length)}"
        handles.append(
            Line2D(
                [],
                [],
                linestyle="",
                marker="o",
                markersize=biggest * length**SIZE_POWER,
                markerfacecolor=FACE,
                markeredgecolor=EDGE,
                alpha=0.7,
                label=label,
            )
        )
    if any(g.enlarged.any() for g in glyphs):
        handles.append(
            Ellipse(
                (0, 0),
                1,
                0.6,
                facecolor="none",
                edgecolor=EDGE,
                label=f"hollow: {what} under ×1/{round(1 / SMALLEST_SHOWN)}, drawn at that size",
            )
        )
    if any((g.rank == 1).any() for g in glyphs):
        text = "" if stretch else ", the unit ball unbounded along it"
        handles.append(
            Line2D(
                [],
                [],
                color=DEGENERATE_EDGE,
                linewidth=1.4,
                label=f"line: one axis under {math.sqrt(DEGENERATE_RTOL):.0e} of the other{text}",
            )
        )
    if any((g.rank == 0).any() for g in glyphs):
        text = "every direction collapses" if stretch else "the unit ball is the whole plane"
        handles.append(
            Line2D(
                [], [], linestyle="", marker="x", color=DEGENERATE_EDGE, markersize=6, label=f"g = 0: {text}"
            )
        )
    return handles


def caption(convention: GlyphConvention) -> str:
    """Two lines stating the glyph convention, for figure captions."""
    if GlyphConvention(convention) is GlyphConvention.STRETCH:
        what = (
            "semi-axes along g's eigenvectors, ∝ √λ: how far a unit step here is stretched by the last layer"
        )
    else:
        what = "the unit ball {v : vᵀgv ≤ 1}: semi-axes along g's eigenvectors, ∝ 1/√λ"
    return (
        f"Glyphs: {what}.\n"
        "Sizes on a square-root scale, one per panel: a glyph half as long stands for a quarter of the "
        "length (key below); shapes are true."
    )


def typical_spacing(centres: np.ndarray, pairs: np.ndarray, visible: np.ndarray | None = None) -> float:
    """The median distance from a glyph to its nearest neighbour among `pairs` (P, 2), over visible glyphs.

    centres (M, 2). On an undeformed grid this is the smaller lattice step; on a deformed
    one it follows the grid. 0.0 when no distance is positive.
    """
    i, j = np.asarray(pairs).T
    dist = np.linalg.norm(centres[i] - centres[j], axis=1)
    dist = np.where(dist > 0, dist, np.inf)  # coincident centres say nothing about spacing
    nearest = np.full(len(centres), np.inf)
    np.minimum.at(nearest, i, dist)
    np.minimum.at(nearest, j, dist)
    if visible is not None:
        nearest = nearest[np.asarray(visible, dtype=bool)]
    nearest = nearest[np.isfinite(nearest)]
    return float(np.median(nearest)) if len(nearest) else 0.0


def subsample_indices(n: int, count: int) -> np.ndarray:
    """`count` evenly spaced indices into 0 .. n-1, centred (min(count, n) of them)."""
    count = min(count, n)
    if count <= 1:
        return np.array([n // 2])
    step = max(1, (n - 1) // (count - 1))
    start = (n - 1 - step * (count - 1)) // 2
    return start + step * np.arange(count)


def grid_glyph_indices(grid_shape: tuple[int, int], density: int) -> tuple[np.ndarray, np.ndarray]:
    """Glyph positions on a (ny, nx) grid (x fastest): about density x density evenly spaced points.

    Returns their flat grid indices (M,) and the pairs (P, 2) of neighbouring glyphs
    (indices into the M glyphs: along x, along y and both diagonals).
    """
    ny, nx = int(grid_shape[0]), int(grid_shape[1])
    iy, ix = subsample_indices(ny, density), subsample_indices(nx, density)
    flat = (iy[:, None] * nx + ix[None, :]).ravel()
    lattice = np.arange(len(iy) * len(ix)).reshape(len(iy), len(ix))
    pairs = [
        np.stack([lattice[:, :-1].ravel(), lattice[:, 1:].ravel()], axis=1),
        np.stack([lattice[:-1, :].ravel(), lattice[1:, :].ravel()], axis=1),
        np.stack([lattice[:-1, :-1].ravel(), lattice[1:, 1:].ravel()], axis=1),
        np.stack([lattice[:-1, 1:].ravel(), lattice[1:, :-1].ravel()], axis=1),
    ]
    return flat, np.concatenate(pairs)
