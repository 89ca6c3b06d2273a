"""Decision regions and decision boundaries of any number of classes, from scores on a mesh.

Scores are class probabilities or logits on a regular (ny, nx) mesh. The boundary between
classes i and j is the zero set of s_i - s_j where i and j are the two best classes; it is
drawn with one masked contour per pair, so three or more classes get clean boundaries too.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb

from riemexp.plotting.style import BOUNDARY_COLOUR


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
    """Draw the decision boundary of scores (ny, nx, C) on the mesh xs (nx,), ys (ny,).

    Returns True when some boundary lies inside the mesh.
    """
    n_classes = scores.shape[-1]
    top2 = np.argsort(scores, axis=-1)[..., -2:] if n_classes > 2 else None
    drawn = False
    for i in range(n_classes):
        for j in range(i + 1, n_classes):
            diff = scores[..., i] - scores[..., j]
            if top2 is not None:
                pair = np.sort(top2, axis=-1)
                diff = np.ma.masked_where(~((pair[..., 0] == i) & (pair[..., 1] == j)), diff)
            lo, hi = np.ma.min(diff), np.ma.max(diff)
            if np.ma.is_masked(lo) or not (lo < 0 < hi):
                continue
            ax.contour(
                xs,
                ys,
                diff,
                levels=[0.0],
                colors=colour,
                linewidths=linewidth,
                linestyles=linestyle,
                zorder=zorder,
            )
            drawn = True
    return drawn
