"""The input-space figure: decision regions under the g_0 glyph field, and the log volume element.

Left: the class of highest probability at each grid point (colour), faded to white where
the classes tie, the decision boundary, the data, and glyphs of the input metric g_0
(docs/science.md §3) in the dataset's own units. Right: the log volume element
1/2 log det g_0 (how much the network magnifies area around each point) as a heat map,
with the decision boundary drawn over it. Expected picture: space is stretched (large
volume element) near the decision boundary and compressed inside each class.
"""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib import patheffects
from matplotlib.artist import Artist
from matplotlib.colors import Colormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from riemexp.config import GlyphConvention
from riemexp.plotting.data import FigureData
from riemexp.plotting.glyphs import (
    caption,
    draw_glyphs,
    grid_glyph_indices,
    legend_handles,
    make_glyphs,
    typical_spacing,
)
from riemexp.plotting.layers import draw_data
from riemexp.plotting.regions import draw_boundaries, probability_confidence, region_image
from riemexp.plotting.style import (
    BOUNDARY_COLOUR,
    SCALAR_CMAP,
    SINGULAR_COLOUR,
    add_legend,
    class_colours,
    class_markers,
    new_figure,
)


def grid_axes(fd: FigureData) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float, float]]:
    """The grid's x values (nx,), y values (ny,) and imshow extent (half a cell beyond the points)."""
    ny, nx = fd.grid_shape
    mesh = fd.geometry["grid_points"].reshape(ny, nx, 2)
    xs, ys = mesh[0, :, 0], mesh[:, 0, 1]
    dx = (xs[-1] - xs[0]) / max(nx - 1, 1)
    dy = (ys[-1] - ys[0]) / max(ny - 1, 1)
    return xs, ys, (xs[0] - dx / 2, xs[-1] + dx / 2, ys[0] - dy / 2, ys[-1] + dy / 2)


def log_volume_image(fd: FigureData) -> np.ndarray:
    """1/2 log det g_0 at the grid points, in input units, as an image (ny, nx); -inf where singular."""
    return np.asarray(fd.grid_input_log_volume).reshape(fd.grid_shape)


#: widest width/height ratio of the data box drawn to scale
MAX_ASPECT = 3.0


def input_space_figure(fd: FigureData, glyph_density: int, convention: GlyphConvention) -> Figure:
    """Two panels over the input grid: decision regions with g_0 glyphs; the log volume element."""
    geometry = fd.geometry
    colours = class_colours(fd.n_classes)
    ny, nx = fd.grid_shape
    xs, ys, extent = grid_axes(fd)
    proba = geometry["grid_proba"].reshape(ny, nx, -1)
    # boundaries from log-probabilities: log p_i - log p_j = logit_i - logit_j is smooth across
    # the boundary, so the contour is accurate between grid points (p itself jumps from 0 to 1)
    log_proba = np.log(np.clip(proba, 1e-300, None))
    points, labels = geometry["data_points"], geometry["data_labels"]
    box_w, box_h = extent[1] - extent[0], extent[3] - extent[2]
    # panels of constant area, shaped like the data box; equal aspect unless the user's units
    # make one axis over MAX_ASPECT times the other (e.g. mm against kg): then the panels are
    # drawn not to scale, and say so, rather than a figure metres wide
    ratio = box_w / box_h
    to_scale = 1 / MAX_ASPECT <= ratio <= MAX_ASPECT
    shape = ratio**0.5 if to_scale else 1.2
    panel_w, panel_h = 4.4 * shape, 4.4 / shape
    fig = new_figure(2 * panel_w + 1.6, panel_h + 1.5)
    ax_regions, ax_volume = fig.subplots(1, 2)

    # left: decision regions (faded where the classes tie), boundary, data, g_0 glyphs
    ax_regions.imshow(
        region_image(proba, colours, probability_confidence(proba) * 0.6),
        extent=extent,
        origin="lower",
        interpolation="bilinear",
        zorder=0,
    )
    draw_boundaries(ax_regions, xs, ys, log_proba)
    draw_data(ax_regions, points, labels, colours, size=5)
    idx, pairs = grid_glyph_indices(fd.grid_shape, glyph_density)
    centres = geometry["grid_points"][idx]
    glyphs = make_glyphs(
        centres, fd.grid_input_metric[idx], convention, typical_spacing(centres, pairs) or 1.0, pairs=pairs
    )
    draw_glyphs(ax_regions, glyphs, zorder=6)
    ax_regions.set_title("decision regions and the input metric $g_0$", fontsize=10)
    ax_regions.set_label("input regions")

    # right: log volume element with the decision boundary over it
    lv = log_volume_image(fd)
    singular = ~np.isfinite(lv)
    cmap: Colormap = matplotlib.colormaps[SCALAR_CMAP].with_extremes(bad=SINGULAR_COLOUR)
    image = ax_volume.imshow(
        np.ma.masked_where(singular, lv),
        extent=extent,
        origin="lower",
        interpolation="nearest",
        cmap=cmap,
        zorder=0,
    )
    fig.colorbar(
        image, ax=ax_volume, shrink=0.85, label=r"$\frac{1}{2}\log\det g_0$ (input units, natural log)"
    )
    white_edge = [patheffects.withStroke(linewidth=3.2, foreground="white")]
    draw_boundaries(ax_volume, xs, ys, log_proba, colour=BOUNDARY_COLOUR, linewidth=1.4)
    for artist in ax_volume.collections:
        artist.set_path_effects(white_edge)
    ax_volume.scatter(points[:, 0], points[:, 1], s=2, c="white", linewidths=0, alpha=0.5, zorder=3)
    ax_volume.set_title("log volume element of $g_0$ in input units", fontsize=10)
    ax_volume.set_label("input log volume")

    for ax in (ax_regions, ax_volume):
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
        ax.set_aspect("equal" if to_scale else "auto")
        ax.set_xlabel("input $x_1$" if to_scale else "input $x_1$ (axes not to scale)")
        ax.set_ylabel("input $x_2$")
        ax.tick_params(labelsize=8)

    markers = class_markers(fd.n_classes)
    handles: list[Artist] = [
        Line2D([], [], linestyle="", marker=m, color=c, markersize=6, label=name)
        for name, c, m in zip(fd.class_names, colours, markers)
    ]
    handles.append(Line2D([], [], color=BOUNDARY_COLOUR, label="decision boundary"))
    handles += legend_handles(bool(glyphs.enlarged.any()), bool(glyphs.degenerate.any()))
    if singular.any():
        handles.append(Patch(facecolor=SINGULAR_COLOUR, label="g_0 singular (log volume -inf)"))
    tie = "Region colour fades to white where the class probabilities tie."
    add_legend(fig, handles, caption(convention) + "\n" + tie, ncol=6)
    fig.suptitle(fd.title, fontsize=11)
    return fig
