"""Decision regions and decision boundaries of any number of classes, from scores on a mesh.

Scores are class probabilities, log-probabilities or logits on a regular (ny, nx) mesh. The
decision boundary is where the predicted class changes: the zero set of each class's margin
s_c - max_{k != c} s_k, a continuous function, so boundaries of three or more classes meet at
their junctions instead of stopping short of them.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgb

from riemexp.plotting.style import BOUNDARY_COLOUR

#: the strongest mix of a class colour into the white background of a region: light enough that
#: points of the same colour (with their dark rim) stand out on their own region
REGION_TINT = 0.35


def region_image(scores: np.ndarray, colours: list[str], confidence: np.ndarray | None = None) -> np.ndarray:
    """An RGB image (ny, nx, 3) of the winning class at each mesh point.

    scores (ny, nx, C). confidence (ny, nx) in [0, 1] mixes the class colour with white
    (0: white, 1: the full class colour); None gives a flat tint of 25 % colour.
    """
    winner = np.argmax(scores, axis=-1)
    palette = np.array([to_rgb(c) for c in colours])  # (C, 3)
    rgb = palette[winner]
    mix = np.full(winner.shape, 0.25) if confidence is None else np.clip(confidence, 0.0, 1.0)
    return 1.0 - mix[..., None] * (1.0 - rgb)


def probability_confidence(proba: np.ndarray) -> np.ndarray:
    """(max_c p_c - 1/C) / (1 - 1/C) in [0, 1]: 0 where the classes tie, 1 where one is certain."""
    n_classes = proba.shape[-1]
    return (proba.max(axis=-1) - 1.0 / n_classes) / (1.0 - 1.0 / n_classes)


def class_margins(scores: np.ndarray) -> np.ndarray:
    """s_c - max_{k != c} s_k for every class c: (ny, nx, C) from scores (ny, nx, C).

    Positive exactly where c is the predicted class; its zero set is the boundary of class c's
    region. It is continuous (a difference of continuous functions), also where three or more
    classes meet, so contouring it draws the boundary without gaps at junctions.
    """
    n_classes = scores.shape[-1]
    margins = np.empty_like(scores, dtype=np.float64)
    for c in range(n_classes):
        others = np.delete(scores, c, axis=-1)
        margins[..., c] = scores[..., c] - others.max(axis=-1)
    return margins


def boundary_lines(
    xs: np.ndarray, ys: np.ndarray, scores: np.ndarray, once: bool = False
) -> list[np.ndarray]:
    """The decision boundary of scores (ny, nx, C) on the mesh xs (nx,), ys (ny,) as polylines (P, 2).

    The zero set of each class's margin (`class_margins`): with two classes, of s_0 - s_1; with
    three or more, the edge of every class's region, so that boundaries meet at junctions. Each
    boundary between classes i and j is then the edge of both regions; once=True keeps it once
    (the part of class c's edge whose other side is a class above c), for dashed lines whose
    dashes would otherwise not line up.
    """
    import contourpy

    margins = class_margins(scores)
    n_classes = scores.shape[-1]
    lines: list[np.ndarray] = []
    for c in [0] if n_classes == 2 else range(n_classes):
        margin = margins[..., c]
        if not (margin.min() < 0 < margin.max()):
            continue
        found = contourpy.contour_generator(xs, ys, margin, line_type="Separate").lines(0.0)
        if not once or n_classes == 2:
            lines += [np.asarray(line) for line in found]
            continue
        others = np.delete(np.arange(n_classes), c)
        runner_up = others[np.argmax(np.delete(scores, c, axis=-1), axis=-1)]  # (ny, nx)
        for line in found:
            line = np.asarray(line)
            mid = (line[1:] + line[:-1]) / 2
            ix = np.clip(np.searchsorted(xs, mid[:, 0]), 0, len(xs) - 1)
            iy = np.clip(np.searchsorted(ys, mid[:, 1]), 0, len(ys) - 1)
            keep = runner_up[iy, ix] > c  # (P - 1,) segments to keep
            cuts = np.flatnonzero(np.diff(keep.astype(int))) + 1
            start = 0
            for stop in [*cuts, len(keep)]:
                if keep[start]:
                    lines.append(line[start : stop + 1])
                start = stop
    return lines


def draw_boundary_segments(
    ax: Axes, segments: np.ndarray, colour: str = BOUNDARY_COLOUR, linewidth: float = 1.6, zorder: float = 4
) -> LineCollection | None:
    """Draw a decision boundary located on the classifier itself, segments (S, 2, 2)
    (`riemexp.geometry.boundary.boundary_segments`), as one line collection; None when there are none.

    Unlike a contour of the grid's scores, it does not turn into a staircase where the network's class
    changes within a small part of a grid cell (deep plain networks: a steep step in the logits).
    """
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2, 2)
    if len(segments) == 0:
        return None
    lines = LineCollection(list(segments), colors=colour, linewidths=linewidth, zorder=zorder)
    lines.set_capstyle("round")
    ax.add_collection(lines)
    return lines


def draw_boundaries(
    ax: Axes,
    xs: np.ndarray,
    ys: np.ndarray,
    scores: np.ndarray,
    colour: str = BOUNDARY_COLOUR,
    linewidth: float = 1.6,
    linestyle: str = "-",
    zorder: float = 4,
) -> bool:
    """Draw the decision boundary of scores (ny, nx, C) on the mesh xs (nx,), ys (ny,): the curves
    where the predicted class changes (`boundary_lines`; each drawn once when dashed).

    Returns True when some boundary lies inside the mesh.
    """
    lines = boundary_lines(xs, ys, scores, once=linestyle != "-")
    if not lines:
        return False
    ax.add_collection(
        LineCollection(lines, colors=colour, linewidths=linewidth, linestyles=linestyle, zorder=zorder)
    )
    return True
