"""The layer row: each chosen layer in its own coordinates, with data, deformed grid and metric glyphs.

Panel l shows x_l (docs/science.md §1): the data coloured by class, the lines of the input grid
as the network has moved them, and glyphs of the metric g_l (docs/science.md §3) at a subsample
of the grid points. The last hidden layer's panel adds the head's linear decision
boundary (where two logits of V x_L + c tie). For width w > 2 a panel shows the first two
of the w coordinates and glyphs of the top-left 2 x 2 block of g_l (the metric restricted
to those two coordinate directions); the other coordinates of the boundary's slice are
fixed at the data's mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.lines import Line2D

from riemexp.config import GlyphConvention
from riemexp.plotting.data import FigureData
from riemexp.plotting.glyphs import (
    Glyphs,
    caption,
    draw_glyphs,
    grid_glyph_indices,
    legend_handles,
    make_glyphs,
    typical_spacing,
)
from riemexp.plotting.regions import draw_boundaries, region_image
from riemexp.plotting.style import (
    BOUNDARY_COLOUR,
    DATA_EDGE,
    GRID_COLOUR,
    add_legend,
    add_title,
    class_colours,
    class_markers,
    layer_title,
    new_figure,
    square_view,
)

PANEL_INCHES = 3.1
GRID_LINES = 21  # grid lines drawn along each axis (every point of each line is kept)
HEAD_MESH = 300  # mesh points per axis for the head's decision regions


#: a grid segment longer than this fraction of the panel's side is not drawn: its two ends are
#: neighbouring grid points whose images landed far apart, and the curve between them is unknown
#: (a straight line there would be an artefact, e.g. across a saturated plain network's square)
MAX_SEGMENT = 0.1


def grid_lines(
    coords: np.ndarray, grid_shape: tuple[int, int], count: int = GRID_LINES, max_length: float = np.inf
) -> list[np.ndarray]:
    """Polylines of the grid in one layer: coords (G, 2) on a (ny, nx) grid, x fastest.

    Returns the rows and columns, about `count` of each, as (P, 2) arrays, each split where a
    segment between neighbouring grid points is longer than max_length (data units) or not finite.
    """
    ny, nx = grid_shape
    mesh = coords.reshape(ny, nx, 2)
    rows = np.unique(np.rint(np.linspace(0, ny - 1, min(count, ny))).astype(int))
    cols = np.unique(np.rint(np.linspace(0, nx - 1, min(count, nx))).astype(int))
    lines = []
    for line in [mesh[i] for i in rows] + [mesh[:, j] for j in cols]:
        length = np.linalg.norm(np.diff(line, axis=0), axis=1)
        cut = np.flatnonzero(~(length <= max_length)) + 1  # NaN lengths cut too
        lines += [piece for piece in np.split(line, cut) if len(piece) >= 2]
    return lines


def draw_data(
    ax: Axes, points: np.ndarray, labels: np.ndarray, colours: list[str], size: float = 7, rim: bool = False
) -> None:
    """Scatter points (N, 2) coloured and shaped by class; rim: with a thin dark edge, so that they
    stand out on a decision region of their own colour."""
    markers = class_markers(len(colours))
    for c, colour in enumerate(colours):
        sel = labels == c
        if np.any(sel):
            ax.scatter(
                points[sel, 0],
                points[sel, 1],
                s=size,
                c=colour,
                marker=markers[c],
                edgecolors=DATA_EDGE if rim else "none",
                linewidths=0.3 if rim else 0,
                zorder=5,
                alpha=0.9,
            )


def head_scores(
    fd: FigureData, view: tuple[float, float, float, float], rest: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits V x + c of the head on a mesh over `view` in the first two coordinates of x_L.

    rest (w - 2,): the other coordinates (the data mean). Returns xs (n,), ys (n,), logits (n, n, C).
    """
    xs = np.linspace(view[0], view[1], HEAD_MESH)
    ys = np.linspace(view[2], view[3], HEAD_MESH)
    mx, my = np.meshgrid(xs, ys)
    weight = fd.head_weight  # (C, w)
    offset = fd.head_bias + weight[:, 2:] @ rest  # (C,)
    logits = mx[..., None] * weight[:, 0] + my[..., None] * weight[:, 1] + offset
    return xs, ys, logits


def layer_glyphs(
    fd: FigureData,
    layer: int,
    glyph_density: int,
    convention: GlyphConvention,
    view: tuple[float, float, float, float] | None = None,
) -> Glyphs:
    """The glyphs of g_l at a subsample of the grid, sized to the panel's glyph spacing (view: the
    panel's window; default the data's square view)."""
    grid = fd.geometry["grid_coords"][layer][:, :2]  # (G, 2)
    view = view or square_view(fd.geometry["data_coords"][layer][:, :2])
    idx, pairs = grid_glyph_indices(fd.grid_shape, glyph_density)
    centres = grid[idx]
    inside = (
        (centres[:, 0] >= view[0])
        & (centres[:, 0] <= view[1])
        & (centres[:, 1] >= view[2])
        & (centres[:, 1] <= view[3])
    )
    # the spacing follows the deformed grid, but not below half the panel's even spacing (a grid
    # squeezed onto a saturated edge would otherwise shrink every glyph to a dot)
    even = (view[1] - view[0]) / glyph_density
    spacing = max(typical_spacing(centres, pairs, inside), 0.5 * even)
    metric = fd.geometry["grid_metric"][layer][idx][:, :2, :2]
    return make_glyphs(centres, metric, convention, spacing, inside, pairs)


def draw_layer_panel(
    ax: Axes, fd: FigureData, layer: int, glyph_density: int, convention: GlyphConvention
) -> Glyphs | None:
    """Draw layer `layer` of a run on ax; return the glyphs drawn (None in the last hidden layer,
    where g_L = I)."""
    geometry = fd.geometry
    colours = class_colours(fd.n_classes)
    grid = geometry["grid_coords"][layer][:, :2]  # (G, 2)
    data = geometry["data_coords"][layer]  # (N, w)
    view = square_view(data[:, :2])
    # the head's decision regions and boundary, in the last hidden layer
    if layer == fd.depth:
        xs, ys, logits = head_scores(fd, view, data[:, 2:].mean(axis=0))
        ax.imshow(
            region_image(logits, colours),
            extent=(view[0], view[1], view[2], view[3]),
            origin="lower",
            interpolation="nearest",
            zorder=0,
        )
        draw_boundaries(ax, xs, ys, logits, linestyle="--")
    # grid lines as the network moved them
    side = view[1] - view[0]
    ax.add_collection(
        LineCollection(
            grid_lines(grid, fd.grid_shape, max_length=MAX_SEGMENT * side),
            colors=GRID_COLOUR,
            linewidths=0.5,
            alpha=0.8,
            zorder=1,
        )
    )
    if layer == fd.depth:
        # g_L = I by definition: every glyph would be the same disc, covering the data
        ax.text(
            0.02,
            0.98,
            f"$g_{{{layer}}} = I$ (no glyphs)",
            transform=ax.transAxes,
            fontsize=7,
            va="top",
            bbox=dict(facecolor="white", edgecolor="none", alpha=0.8, pad=1.5),
        )
        glyphs = None
    else:
        glyphs = layer_glyphs(fd, layer, glyph_density, convention, view)
        draw_glyphs(ax, glyphs)
    draw_data(ax, data[:, :2], geometry["data_labels"], colours, rim=layer == fd.depth)
    ax.set_xlim(view[0], view[1])
    ax.set_ylim(view[2], view[3])
    ax.set_aspect("equal")
    ax.set_title(layer_title(layer, fd.depth), fontsize=10)
    ax.set_xlabel(f"$x^{{({layer})}}_1$", labelpad=1)
    ax.set_ylabel(f"$x^{{({layer})}}_2$", labelpad=1)
    ax.tick_params(labelsize=7)
    ax.set_label(f"layer {layer}")
    return glyphs


def figure_legend(
    fig: Figure,
    fd: FigureData,
    glyphs: Sequence[Glyphs],
    boundary: bool,
    ncol: int,
    caption: str,
    convention: GlyphConvention,
) -> None:
    """Classes, glyph kinds and (if drawn) the decision boundary, below the panels."""
    colours, markers = class_colours(fd.n_classes), class_markers(fd.n_classes)
    handles: list[Artist] = [
        Line2D([], [], linestyle="", marker=m, color=c, markersize=6, label=name)
        for name, c, m in zip(fd.class_names, colours, markers)
    ]
    handles.append(Line2D([], [], color=GRID_COLOUR, linewidth=1, label="input grid, moved by the network"))
    if boundary:
        handles.append(
            Line2D([], [], color=BOUNDARY_COLOUR, linestyle="--", label="head's decision boundary")
        )
    if glyphs:
        handles += legend_handles(glyphs, convention)
    add_legend(fig, handles, caption, ncol)


def notes(fd: FigureData, convention: GlyphConvention) -> str:
    """The caption under a layer figure: glyph convention and what the panels show."""
    lines = [caption(convention)]
    if fd.width > 2:
        lines.append(
            f"Width {fd.width} > 2: panels show the first two of {fd.width} coordinates; glyphs show the "
            "top-left 2×2 block of g_l; the head's boundary is the slice at the data's mean."
        )
    if fd.two_step:
        lines.append(
            f"{fd.kind} network: panels show x_l; glyphs show g_l, the data's metric in x_l coordinates "
            "(x_L as a function of x_l along the data), as for every kind."
        )
    return "\n".join(lines)


def layer_row_figure(
    fd: FigureData, layers: Sequence[int], glyph_density: int, convention: GlyphConvention
) -> Figure:
    """One panel per layer in `layers` (each in [0, depth]): one row up to 5, else rows of max(4, ~sqrt n)."""
    n = len(layers)
    nrows = 1 if n <= 5 else math.ceil(n / max(4, math.ceil(math.sqrt(n))))
    ncols = math.ceil(n / nrows)
    fig = new_figure(max(PANEL_INCHES * ncols, 7.5), PANEL_INCHES * nrows + 1.3)
    layout = fig.get_layout_engine()
    assert isinstance(layout, ConstrainedLayoutEngine)  # new_figure's
    layout.set(h_pad=0.12)  # a row's axis labels clear of the next row's titles
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    drawn = [draw_layer_panel(ax, fd, layer, glyph_density, convention) for ax, layer in zip(axes, layers)]
    glyphs = [g for g in drawn if g is not None]
    for ax in axes[n:]:
        ax.remove()
    add_title(fig, fd)
    figure_legend(fig, fd, glyphs, fd.depth in layers, max(ncols, 4) + 2, notes(fd, convention), convention)
    return fig
