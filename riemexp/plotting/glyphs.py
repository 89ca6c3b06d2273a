"""Metric-tensor glyphs: ellipses drawn from 2 x 2 metrics, sized per panel (docs/science.md §3).

Convention (stated in every figure's caption and in docs/figures.md, "Glyph convention"):
eigen-decompose each metric with a symmetric solver, g = Q diag(lambda) Q^T (`numpy.linalg.eigh`),
draw an ellipse whose axes lie along the eigenvectors (orientation arctan2(q_y, q_x)) with
semi-axes proportional to

    sqrt(lambda)      "stretch" (default): the image of a unit displacement, |v|_g = sqrt(v^T g v)
    1 / sqrt(lambda)  "unit_ball": the set {v : v^T g v <= 1}

Sizes are normalised per panel with one scale (relative sizes kept): the largest glyph's
long axis fills `FILL` of the glyph spacing and neighbouring glyphs do not overlap (see
`make_glyphs`); glyphs whose long axis would be drawn shorter than `MIN_FRACTION` of the
spacing are enlarged (shape kept) and drawn hollow. A metric with
lambda_min <= DEGENERATE_RTOL * lambda_max (rank lost: a relu dead zone, a saturated tanh)
is "degenerate": drawn hatched and hollow, never dropped; its vanishing
(stretch) or infinite (unit_ball) axis is drawn at a fixed visible size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import EllipseCollection
from matplotlib.patches import Ellipse

from riemexp.config import GlyphConvention
from riemexp.numerics import SINGULAR_RTOL

FILL = 0.9  # the largest glyph's long axis, as a fraction of the glyph spacing
MIN_FRACTION = 0.45  # smallest long axis drawn, as a fraction of the spacing
CLUSTER = MIN_FRACTION / FILL  # closer neighbours (x spacing) overlap even at the minimum size
DEGENERATE_RTOL = SINGULAR_RTOL  # lambda_min / lambda_max at or below this: degenerate (rank lost)
DEGENERATE_AXIS = 0.25  # the collapsed axis of a degenerate glyph, as a fraction of its long axis
FACE = "#4d4d4d"
EDGE = "#1a1a1a"
DEGENERATE_EDGE = "#000000"


@dataclass(frozen=True)
class Glyphs:
    """Ellipses ready to draw, in the panel's data units.

    centres (M, 2); widths, heights (M,) full axis lengths along the first and second
    eigenvector; angles (M,) degrees counter-clockwise of the first eigenvector;
    enlarged (M,) drawn bigger than their true relative size; degenerate (M,) rank lost.
    """

    centres: np.ndarray
    widths: np.ndarray
    heights: np.ndarray
    angles: np.ndarray
    enlarged: np.ndarray
    degenerate: np.ndarray


def glyph_axes(metric: np.ndarray, convention: GlyphConvention) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unnormalised glyph axes of 2 x 2 metrics.

    metric (M, 2, 2) symmetric positive semi-definite. Returns axes (M, 2) proportional
    to sqrt(lambda_i) (stretch) or 1/sqrt(lambda_i) (unit_ball) along eigenvector i
    (inf where lambda_i = 0), angles (M,) in degrees of eigenvector 0 = atan2(q_y, q_x),
    and degenerate (M,) where lambda_min <= DEGENERATE_RTOL * lambda_max.
    """
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
    if GlyphConvention(convention) is GlyphConvention.STRETCH:
        axes = np.sqrt(lam)
    else:
        with np.errstate(divide="ignore"):
            axes = 1.0 / np.sqrt(lam)
    angles = np.degrees(np.arctan2(vec[:, 1, 0], vec[:, 0, 0]))
    return axes, angles, degenerate


def make_glyphs(
    centres: np.ndarray,
    metric: np.ndarray,
    convention: GlyphConvention,
    spacing: float,
    visible: np.ndarray | None = None,
    pairs: np.ndarray | None = None,
) -> Glyphs:
    """Glyphs for metrics (M, 2, 2) at centres (M, 2), normalised to a glyph spacing (data units).

    One scale per panel (so relative sizes are kept): the largest visible glyph's long axis
    is FILL x spacing, and, where glyph centres have moved (a deformed grid), no two
    neighbouring glyphs i, j of `pairs` (P, 2) overlap: long_i + long_j <= 2 FILL d_ij.
    Neighbours closer than CLUSTER x spacing (which would overlap even at the minimum size)
    are left out of that rule (a grid squeezed to a
    point would otherwise shrink every glyph). visible (M,) bool: the glyphs inside the panel,
    which alone set the scale (None: all).
    """
    axes, angles, degenerate = glyph_axes(metric, convention)
    finite = np.where(np.isfinite(axes), axes, 0.0)
    long_axis = finite.max(axis=1)
    visible = np.ones(len(long_axis), dtype=bool) if visible is None else np.asarray(visible, dtype=bool)
    pool = ~degenerate & visible
    if not np.any(pool):
        pool = visible if np.any(visible) else np.ones(len(long_axis), dtype=bool)
    reference = long_axis[pool].max() if len(long_axis) else 0.0
    scale = FILL * spacing / reference if reference > 0 else 0.0
    if pairs is not None and len(pairs) and scale > 0:
        i, j = np.asarray(pairs).T
        dist = np.linalg.norm(centres[i] - centres[j], axis=1)
        both = long_axis[i] + long_axis[j]
        keep = pool[i] & pool[j] & (dist >= CLUSTER * spacing) & (both > 0)
        if np.any(keep):
            scale = min(scale, float(np.min(2 * FILL * dist[keep] / both[keep])))
    drawn = axes * scale  # (M, 2), inf where an axis is infinite (degenerate unit ball)
    # degenerate: infinite axes capped at the fill size, vanishing ones at a visible width
    drawn = np.where(np.isinf(drawn), FILL * spacing, drawn)
    # degenerate glyphs do not set the scale, so cap them too: none is drawn beyond the fill
    drawn = np.where(degenerate[:, None], np.minimum(drawn, FILL * spacing), drawn)
    # too small to see: enlarge, keeping the shape
    long_drawn = drawn.max(axis=1)
    minimum = MIN_FRACTION * spacing
    enlarged = long_drawn < minimum
    factor = np.where(enlarged, minimum / np.maximum(long_drawn, 1e-300), 1.0)
    drawn = np.where(long_drawn[:, None] > 0, drawn * factor[:, None], minimum)
    # degenerate: the vanishing axis drawn as a flat (not zero) width, so the hatch shows
    long_drawn = drawn.max(axis=1, keepdims=True)
    collapsed = degenerate[:, None] & (drawn < DEGENERATE_AXIS * long_drawn)
    drawn = np.where(collapsed, DEGENERATE_AXIS * long_drawn, drawn)
    # diameters = 2 x semi-axes; a long axis of FILL * spacing is the diameter here
    return Glyphs(
        centres=np.asarray(centres, dtype=np.float64),
        widths=drawn[:, 0],
        heights=drawn[:, 1],
        angles=angles,
        enlarged=enlarged & ~degenerate,
        degenerate=degenerate,
    )


def draw_glyphs(ax: Axes, glyphs: Glyphs, zorder: float = 3) -> None:
    """Add the glyphs to ax as three EllipseCollections: true size, enlarged, degenerate."""
    kinds = (
        (~glyphs.enlarged & ~glyphs.degenerate, dict(facecolors=FACE, edgecolors=EDGE, alpha=0.55)),
        (glyphs.enlarged, dict(facecolors="none", edgecolors=EDGE, alpha=0.8)),
        (
            glyphs.degenerate,
            dict(facecolors="none", edgecolors=DEGENERATE_EDGE, hatch="/////", alpha=0.9),
        ),
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


def legend_handles(enlarged: bool, degenerate: bool) -> list[Ellipse]:
    """Legend entries for the glyph kinds present in a figure."""
    handles = [Ellipse((0, 0), 1, 0.6, facecolor=FACE, edgecolor=EDGE, alpha=0.55, label="metric glyph")]
    if enlarged:
        handles.append(
            Ellipse(
                (0, 0),
                1,
                0.6,
                facecolor="none",
                edgecolor=EDGE,
                label=f"hollow: enlarged to {MIN_FRACTION:.0%} of spacing (truly smaller)",
            )
        )
    if degenerate:
        handles.append(
            Ellipse(
                (0, 0),
                1,
                0.6,
                facecolor="none",
                edgecolor=DEGENERATE_EDGE,
                hatch="/////",
                label="degenerate (lambda_min ~ 0)",
            )
        )
    return handles


def caption(convention: GlyphConvention) -> str:
    """Two lines stating the glyph convention, for figure captions."""
    if GlyphConvention(convention) is GlyphConvention.STRETCH:
        what = "semi-axes ∝ √λ (the stretch of a unit displacement)"
    else:
        what = "semi-axes ∝ 1/√λ (the unit ball {v : vᵀgv ≤ 1})"
    return (
        f"Glyphs: g = Q diag(λ) Qᵀ (eigh), ellipse axes along the eigenvectors (angle atan2), {what};\n"
        f"one size scale per panel: the largest glyph spans at most {FILL:.0%} of the glyph spacing "
        "and neighbouring glyphs do not overlap."
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
