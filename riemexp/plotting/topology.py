"""The topology study's figure (riemexp.sweep.topology): decision regions, noise-free disc and ring."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from riemexp.plotting.style import BOUNDARY_COLOUR, class_colours, class_markers, new_figure


def topology_figure(panels: dict[str, dict[str, Any]], box: float = 1.6) -> Figure:
    """One panel per run: the region each class gets (light fill), the decision boundary (black), the
    noise-free ring |x| = 1 and disc |x| <= factor (class colours), and the data (small markers).

    panels: title -> {"gx", "gy" (n, n) lattice over [-box, box]^2, "d" (n, n) logit difference
    (> 0: the disc), "x" (N, 2), "y" (N,), "class_names", "factor", "metrics" (metrics.json)}; shown
    in order, up to 4 per row.
    """
    cols = min(4, len(panels))
    nrows = -(-len(panels) // cols)
    fig = new_figure(4.0 * cols, 4.3 * nrows + 0.4)
    axes = np.atleast_1d(fig.subplots(nrows, cols, squeeze=False)).ravel()
    angle = np.linspace(0, 2 * np.pi, 721)
    for ax, (title, p) in zip(axes, panels.items()):
        n_classes = len(p["class_names"])
        colours, markers = class_colours(n_classes), class_markers(n_classes)
        gx, gy, d, metrics = p["gx"], p["gy"], p["d"], p["metrics"]
        fills = ListedColormap([_light(colours[0]), _light(colours[1])])
        ax.pcolormesh(
            gx, gy, (d > 0).astype(float), cmap=fills, vmin=0, vmax=1, shading="auto", rasterized=True
        )
        ax.contour(gx, gy, d, levels=[0.0], colors=BOUNDARY_COLOUR, linewidths=1.0)
        for label in range(n_classes):
            pts = p["x"][p["y"] == label]
            ax.plot(pts[:, 0], pts[:, 1], markers[label], color=colours[label], ms=1.6, alpha=0.5)
        factor = p["factor"]
        ax.plot(np.cos(angle), np.sin(angle), "-", color=colours[0], lw=1.6, label="ring |x| = 1")
        ax.plot(
            factor * np.cos(angle), factor * np.sin(angle), "--", color=colours[1], lw=1.4, label="disc edge"
        )
        certified = metrics.get("certified_invertible")
        scores = (
            f"test acc {_num(metrics.get('test_accuracy'))}, ring err {_num(metrics.get('ring_error'))}, "
            f"disc err {_num(metrics.get('disc_error'))}"
        )
        ax.set_title(
            f"{title}\n{scores}\n{'certified homeomorphism' if certified else 'not certified'}",
            fontsize=9,
        )
        ax.set_aspect("equal")
        ax.set_xlim(-box, box)
        ax.set_ylim(-box, box)
        ax.set_xlabel("x_1")
        ax.set_ylabel("x_2")
    for ax in axes[len(panels) :]:
        ax.set_axis_off()
    axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle(
        "circles: decision regions (light fill: the class each point gets; black: the boundary) over the "
        "noise-free disc and ring",
        fontsize=11,
    )
    return fig


def _light(colour: str, amount: float = 0.75) -> tuple[float, float, float]:
    """colour mixed with white: amount 0 keeps it, 1 is white."""
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(colour)
    return (r + (1 - r) * amount, g + (1 - g) * amount, b + (1 - b) * amount)


def _num(value: Any) -> str:
    return "n/a" if not isinstance(value, (int, float)) else f"{value:.3g}"


__all__ = ["topology_figure"]
