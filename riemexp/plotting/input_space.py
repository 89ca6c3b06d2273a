"""The input-space figure: decision regions under the g_0 glyph field, and the log volume element.

Left: the class of highest probability at each grid point (colour), faded to white where
the classes tie, the decision boundary, the data, and glyphs of the input metric g_0
(docs/science.md §3) in the dataset's own units. Right: the log volume element
1/2 log det g_0 (how much the network magnifies area around each point) as a heat map,
with the decision boundary drawn over it. Expected picture: space is stretched (large
volume element) near the decision boundary and compressed inside each class.

On both panels, where a layer folds the plane (det J_l changes sign over the grid), the folds
det J_l = 0 pulled back to the input are drawn dashed orange (`riemexp.plotting.folds`): on them g_0
is singular and the log volume element falls to -inf.
"""

from __future__ import annotations

import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from riemexp.config import GlyphConvention
from riemexp.plotting.data import FigureData
from riemexp.plotting.folds import FOLD_COLOUR, draw_folds
from riemexp.plotting.glyphs import (
    Glyphs,
    caption,
    draw_glyphs,
    grid_glyph_indices,
    legend_handles,
    make_glyphs,
    typical_spacing,
)
from riemexp.plotting.layers import draw_data
from riemexp.plotting.regions import (
    REGION_TINT,
    draw_boundaries,
    draw_boundary_segments,
    probability_confidence,
    region_image,
)
from riemexp.plotting.style import (
    BOUNDARY_COLOUR,
    DATA_EDGE,
    SINGULAR_COLOUR,
    add_legend,
    add_title,
    class_colours,
    class_markers,
    log_volume_scale,
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


def input_glyphs(
    fd: FigureData, glyph_density: int, convention: GlyphConvention
) -> tuple[Glyphs, np.ndarray]:
    """The g_0 glyphs of the input-space figure and the grid indices (M,) they sit at."""
    idx, pairs = grid_glyph_indices(fd.grid_shape, glyph_density)
    centres = fd.geometry["grid_points"][idx]
    spacing = typical_spacing(centres, pairs) or 1.0
    return make_glyphs(centres, fd.grid_input_metric[idx], convention, spacing, pairs=pairs), idx


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

    def boundary(ax: Axes, linewidth: float) -> None:
        # located on the network itself where the run gave it: a contour of the grid's scores turns
        # into a staircase where the class changes within a small part of a grid cell
        if fd.boundary_segments is not None:
            draw_boundary_segments(ax, fd.boundary_segments, colour=BOUNDARY_COLOUR, linewidth=linewidth)
        else:
            draw_boundaries(ax, xs, ys, log_proba, colour=BOUNDARY_COLOUR, linewidth=linewidth)

    points, labels = geometry["data_points"], geometry["data_labels"]
    box_w, box_h = extent[1] - extent[0], extent[3] - extent[2]
    # panels of constant area, shaped like the data box; equal aspect unless the user's units
    # make one axis over MAX_ASPECT times the other (e.g. mm against kg): then the panels are
    # drawn not to scale, and say so, rather than a figure metres wide
    ratio = box_w / box_h
    to_scale = 1 / MAX_ASPECT <= ratio <= MAX_ASPECT
    shape = ratio**0.5 if to_scale else 1.2
    panel_w, panel_h = 4.4 * shape, 4.4 / shape
    fig = new_figure(2 * panel_w + 1.6, panel_h + 2.0)
    ax_regions, ax_volume = fig.subplots(1, 2)

    # left: decision regions (faded where the classes tie), boundary, data, g_0 glyphs
    ax_regions.imshow(
        region_image(proba, colours, probability_confidence(proba) * REGION_TINT),
        extent=extent,
        origin="lower",
        interpolation="bilinear",
        zorder=0,
    )
    boundary(ax_regions, linewidth=1.6)
    draw_data(ax_regions, points, labels, colours, size=6, rim=True)
    glyphs, _ = input_glyphs(fd, glyph_density, convention)
    draw_glyphs(ax_regions, glyphs, zorder=6)
    ax_regions.set_title("decision regions and the input metric $g_0$", fontsize=10)
    ax_regions.set_label("input regions")

    # right: log volume element with the decision boundary over it
    lv = log_volume_image(fd)
    singular = ~np.isfinite(lv)
    cmap, norm, scale_note = log_volume_scale(lv)
    if singular.all():  # nothing to colour: say what it is, no colour bar that means nothing
        ax_volume.set_facecolor(SINGULAR_COLOUR)
        ax_volume.text(
            0.5,
            0.5,
            "$g_0$ singular everywhere:\nlog volume element $-\\infty$",
            transform=ax_volume.transAxes,
            ha="center",
            va="center",
            fontsize=10,
        )
    else:
        image = ax_volume.imshow(
            np.ma.masked_where(singular, lv),
            extent=extent,
            origin="lower",
            interpolation="nearest",
            cmap=cmap,
            norm=norm,
            zorder=0,
        )
        fig.colorbar(
            image,
            ax=ax_volume,
            shrink=0.85,
            label=r"$\frac{1}{2}\log\det g_0$ (input units)" + scale_note.replace(" (", "\n("),
        )
    boundary(ax_volume, linewidth=1.2)
    ax_volume.scatter(points[:, 0], points[:, 1], s=2, c="black", linewidths=0, alpha=0.35, zorder=3)
    ax_volume.set_title("log volume element: red stretched, blue shrunk", fontsize=10)
    ax_volume.set_label("input log volume")
    folding: list[int] = []
    if fd.grid_layer_det is not None:
        dets = np.asarray(fd.grid_layer_det).reshape(-1, ny, nx)
        for ax in (ax_regions, ax_volume):
            folding = draw_folds(ax, xs, ys, dets)

    for ax in (ax_regions, ax_volume):
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
        ax.set_aspect("equal" if to_scale else "auto")
        first, second = fd.coordinate_names
        ax.set_xlabel(first if to_scale else f"{first} (axes not to scale)")
        ax.set_ylabel(second)
        ax.tick_params(labelsize=8)

    markers = class_markers(fd.n_classes)
    handles: list[Artist] = [
        Line2D([], [], linestyle="", marker=m, color=c, markeredgecolor=DATA_EDGE, markersize=6, label=name)
        for name, c, m in zip(fd.class_names, colours, markers)
    ]
    handles.append(Line2D([], [], color=BOUNDARY_COLOUR, label="decision boundary"))
    if folding:
        shown = ", ".join(str(layer) for layer in folding[:4]) + (", ..." if len(folding) > 4 else "")
        label = f"fold det $J_l$ = 0: {len(folding)} layer{'s' if len(folding) > 1 else ''} (l = {shown})"
        handles.append(Line2D([], [], color=FOLD_COLOUR, linestyle="--", label=label))
    handles += legend_handles([glyphs], convention)
    if singular.any():
        handles.append(Patch(facecolor=SINGULAR_COLOUR, label="$g_0$ singular (log volume $-\\infty$)"))
    tie = "Region colour fades to white where the class probabilities tie."
    add_legend(fig, handles, caption(convention) + "\n" + tie, ncol=5)
    add_title(fig, fd)
    return fig
