"""The figures of training snapshots (snapshots.npz, `riemexp.analyses.snapshots`): how the geometry forms.

    snapshots.{png,pdf,svg}        a strip of input-space heat maps of 1/2 log det g_0 at a few
                                   snapshots (initialisation .. end), one colour scale for all,
                                   with the decision boundary and the folds (det J_l = 0)
    snapshots.gif                  the same heat map at every snapshot
    boundary_curves.{png,pdf,svg}  the boundary numbers (Spearman correlation, band ratio, on the
                                   grid and on the data) and the fraction of grid points each layer
                                   reverses (det J_l < 0), against epoch

Arrays in, files out: nothing here touches a model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib import patheffects
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.patheffects import AbstractPathEffect
from matplotlib.ticker import MaxNLocator
from PIL import Image

from riemexp.figures import FigurePool
from riemexp.io import atomic_save
from riemexp.plotting.folds import FOLD_COLOUR, class_boundary_segments, draw_folds, fold_field, zero_segments
from riemexp.plotting.input_space import MAX_ASPECT  # the input-space figure's rule
from riemexp.plotting.regions import draw_boundaries
from riemexp.plotting.style import (
    BOUNDARY_COLOUR,
    OKABE_ITO,
    SINGULAR_COLOUR,
    add_legend,
    figure_files,
    log_volume_scale,
    save_figure,
)

#: snapshots shown side by side in the strip (evenly spread, always the first and the last)
STRIP_PANELS = 5
GIF_FPS = 3
GIF_DPI = 80
STRIP = "snapshots"
GIF = "snapshots.gif"
CURVES = "boundary_curves"


def snapshot_segments(arrays: Mapping[str, np.ndarray], s: int) -> np.ndarray | None:
    """Snapshot s's decision boundary as located on the network (B_s, 2, 2), from snapshots.npz's
    arrays (`riemexp.analyses.snapshots.SEGMENT_ARRAYS`); None in a file written before they were kept."""
    if "boundary_segments" not in arrays:
        return None
    offsets = np.asarray(arrays["boundary_offsets"])
    return np.asarray(arrays["boundary_segments"])[int(offsets[s]) : int(offsets[s + 1])]


def _axes(
    arrays: Mapping[str, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float, float]]:
    """The grid's x values (nx,), y values (ny,) and imshow extent (half a cell beyond the points)."""
    ny, nx = (int(v) for v in arrays["grid_shape"])
    mesh = np.asarray(arrays["grid_points"]).reshape(ny, nx, 2)
    xs, ys = mesh[0, :, 0], mesh[:, 0, 1]
    dx, dy = (xs[-1] - xs[0]) / max(nx - 1, 1), (ys[-1] - ys[0]) / max(ny - 1, 1)
    return xs, ys, (xs[0] - dx / 2, xs[-1] + dx / 2, ys[0] - dy / 2, ys[-1] + dy / 2)


def strip_indices(n_snapshots: int, panels: int = STRIP_PANELS) -> list[int]:
    """The snapshots of the strip: about `panels` evenly spread, always the first and the last."""
    return sorted({int(round(i)) for i in np.linspace(0, n_snapshots - 1, min(panels, n_snapshots))})


def _panel(
    ax: Axes,
    arrays: Mapping[str, np.ndarray],
    s: int,
    scale: tuple[Colormap, Normalize, str],
) -> tuple[AxesImage, list[int], bool]:
    """One heat map of snapshot s (log volume, boundary, folds, data): (image, folding layers, singular)."""
    ny, nx = (int(v) for v in arrays["grid_shape"])
    xs, ys, extent = _axes(arrays)
    lv = np.asarray(arrays["grid_log_volume"][s]).reshape(ny, nx)
    singular = ~np.isfinite(lv)
    image = ax.imshow(
        np.ma.masked_where(singular, lv),
        extent=extent,
        origin="lower",
        interpolation="nearest",
        cmap=scale[0],
        norm=scale[1],
        zorder=0,
    )
    points = np.asarray(arrays["data_points"])
    ax.scatter(points[:, 0], points[:, 1], s=1.5, c="black", linewidths=0, alpha=0.35, zorder=3)
    drawn_before = len(ax.collections)
    white_edge: list[AbstractPathEffect] = [patheffects.withStroke(linewidth=3.0, foreground="white")]
    segments = snapshot_segments(arrays, s)
    if segments is not None:  # located on the network itself: one path, its white edge under all of it
        (line,) = ax.plot(*_broken_line(segments), color=BOUNDARY_COLOUR, linewidth=1.3, zorder=4)
        line.set_path_effects(white_edge)
    else:  # a file from before they were kept: the contour of the grid's log-probabilities
        proba = np.asarray(arrays["grid_proba"][s]).reshape(ny, nx, -1)
        draw_boundaries(
            ax, xs, ys, np.log(np.clip(proba, 1e-300, None)), colour=BOUNDARY_COLOUR, linewidth=1.3
        )
        for artist in ax.collections[drawn_before:]:
            artist.set_path_effects(white_edge)
    dets = np.asarray(arrays["grid_layer_det"][s]).reshape(-1, ny, nx)
    folding = draw_folds(ax, xs, ys, dets)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    box_ratio = (extent[1] - extent[0]) / (extent[3] - extent[2])
    ax.set_aspect("equal" if 1 / MAX_ASPECT <= box_ratio <= MAX_ASPECT else "auto")  # not to scale otherwise
    ax.tick_params(labelsize=7)
    return image, folding, bool(singular.any())


def _colour_label(scale: tuple[Colormap, Normalize, str], short: bool = False) -> str:
    """The colour bar's label; short: for a panel too low for the whole note of a logarithmic scale."""
    name = r"$\frac{1}{2}\log\det g_0$" + ("" if short else ": red stretched, blue shrunk")
    if short and scale[2]:
        return name + "\n(symmetric log scale)"
    return name + scale[2].replace(" (", "\n(")


def _panel_title(arrays: Mapping[str, np.ndarray], s: int) -> str:
    epoch = int(arrays["epoch"][s])
    when = "initialisation" if epoch == 0 else f"epoch {epoch}"
    # a refined run (refine.from_depth) grows during training: its snapshots' depths differ (the
    # layers a shallower stage lacks are NaN in det_negative_fraction)
    depths = np.isfinite(np.asarray(arrays["det_negative_fraction"])).sum(axis=1)
    if len(set(depths.tolist())) > 1:
        when += f" · depth {int(depths[s])}"
    rho, ratio = float(arrays["boundary_spearman_grid"][s]), float(arrays["boundary_band_ratio_grid"][s])
    numbers = f"ρ = {rho:.2f}" if np.isfinite(rho) else "no boundary"
    if np.isfinite(ratio):
        numbers += f", band ratio {ratio:.3g}"
    return f"{when} · test acc {float(arrays['test_accuracy'][s]):.2f}\n{numbers}"


def _legend_handles(folded: bool, singular: bool) -> list[Artist]:
    handles: list[Artist] = [Line2D([], [], color=BOUNDARY_COLOUR, label="decision boundary")]
    if folded:
        handles.append(
            Line2D([], [], color=FOLD_COLOUR, linestyle="--", label="fold: det $J_l$ = 0 (layer l)")
        )
    handles.append(
        Line2D([], [], linestyle="", marker="o", color="#555555", markersize=3, label="data points")
    )
    if singular:
        handles.append(Patch(facecolor=SINGULAR_COLOUR, label="$g_0$ singular (log volume -inf)"))
    return handles


CAPTION = (
    r"Heat map: $\frac{1}{2}\log\det g_0$ in input units (red: space stretched, blue: shrunk, white: kept), "
    "one colour scale for all panels (as input_space.png). "
    "ρ: Spearman correlation of the log volume element with the distance to the decision boundary "
    "over the grid;\nband ratio: median volume element within the band around the boundary / outside it."
)


#: the strip's fixed layout, inches: margins around the row of panels (titles and suptitle above;
#: tick labels, axis label, legend and caption below; colour bar right) and the gap between panels
STRIP_MARGINS = {"left": 0.65, "right": 1.35, "top": 1.05, "bottom": 1.2}
STRIP_GAP = 0.2
STRIP_PANEL = 2.75
GIF_PANEL = 3.35


def _panel_size(extent: tuple[float, float, float, float], side: float) -> tuple[float, float]:
    """A panel's width and height (inches) shaped like the box `extent` (to scale up to 3 : 1), `side`
    along its longer side."""
    ratio = min(max((extent[1] - extent[0]) / (extent[3] - extent[2]), 1 / MAX_ASPECT), MAX_ASPECT)
    return side * min(1.0, ratio), side * min(1.0, 1 / ratio)


def snapshot_strip_figure(arrays: Mapping[str, np.ndarray], title: str, panels: int = STRIP_PANELS) -> Figure:
    """A strip of input-space heat maps at about `panels` snapshots spread over training.

    Laid out by hand (`STRIP_MARGINS`, no layout engine): the panels' sizes do not depend on the
    data, and a run draws this figure beside its other work, where a layout pass would double its cost.
    """
    shown = strip_indices(len(arrays["epoch"]), panels)
    # one colour scale for every panel, the run's own (input_space.png): colours compare across epochs
    scale = log_volume_scale(np.asarray(arrays["grid_log_volume"])[shown])
    n = len(shown)
    m = STRIP_MARGINS
    # panels shaped like the grid's box (to scale up to 3 : 1), STRIP_PANEL along the longer side
    panel_w, panel_h = _panel_size(_axes(arrays)[2], STRIP_PANEL)
    width = m["left"] + n * panel_w + (n - 1) * STRIP_GAP + m["right"]
    height = m["bottom"] + panel_h + m["top"]
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(
        left=m["left"] / width,
        right=1 - m["right"] / width,
        bottom=m["bottom"] / height,
        top=1 - m["top"] / height,
        wspace=STRIP_GAP / panel_w,
    )
    axes = np.atleast_1d(fig.subplots(1, n, sharex=True, sharey=True))
    folded = singular = False
    image: AxesImage | None = None
    for ax, s in zip(axes, shown):
        image, folding, sing = _panel(ax, arrays, s, scale)
        folded, singular = folded or bool(folding), singular or sing
        ax.set_title(_panel_title(arrays, s), fontsize=8.5)
        ax.set_xlabel("input $x_1$", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.yaxis.set_major_locator(MaxNLocator(5))
    axes[0].set_ylabel("input $x_2$", fontsize=8)
    assert image is not None
    cax = fig.add_axes(
        (
            1 - (m["right"] - 0.25) / width,
            (m["bottom"] + 0.05 * panel_h) / height,
            0.14 / width,
            0.9 * panel_h / height,
        )
    )
    fig.colorbar(image, cax=cax, label=_colour_label(scale, short=True))
    cax.tick_params(labelsize=8)
    add_legend(fig, _legend_handles(folded, singular), CAPTION, ncol=4, loc="lower center")
    fig.suptitle(f"{title}\nthe input metric through training", fontsize=10, y=1 - 0.08 / height, va="top")
    return fig


def _broken_line(segments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Segments (S, 2, 2) as one line's x and y (3 S,), NaN between segments."""
    pts = np.concatenate([segments, np.full((len(segments), 1, 2), np.nan)], axis=1).reshape(-1, 2)
    return pts[:, 0], pts[:, 1]


def write_snapshot_gif(arrays: Mapping[str, np.ndarray], title: str, path: Path) -> Path:
    """The heat map of every snapshot as one GIF frame (one colour scale for all); written atomically.

    The axes, the colour bar and the data are drawn once; each frame replaces the heat map's values,
    the boundary and fold contours and the title.
    """
    n = len(arrays["epoch"])
    ny, nx = (int(v) for v in arrays["grid_shape"])
    xs, ys, extent = _axes(arrays)
    scale = log_volume_scale(np.asarray(arrays["grid_log_volume"]))
    # laid out by hand (inches: title lines above, tick and axis labels below, colour bar right), the
    # panel shaped like the grid's box as in the strip
    panel_w, panel_h = _panel_size(extent, GIF_PANEL)
    width, height = 0.7 + panel_w + 1.25, 0.6 + panel_h + 0.85
    fig = Figure(figsize=(width, height), dpi=GIF_DPI)
    fig.subplots_adjust(left=0.7 / width, right=1 - 1.25 / width, bottom=0.6 / height, top=1 - 0.85 / height)
    canvas = FigureCanvasAgg(fig)
    ax = fig.subplots()
    image, _, _ = _panel(ax, arrays, 0, scale)
    ax.set_xlabel("input $x_1$", fontsize=8)
    ax.set_ylabel("input $x_2$", fontsize=8)
    cax = fig.add_axes(
        (1 - 1.0 / width, (0.6 + 0.05 * panel_h) / height, 0.15 / width, 0.9 * panel_h / height)
    )
    fig.colorbar(image, cax=cax, label=_colour_label(scale, short=True))
    cax.tick_params(labelsize=8)
    fig.suptitle(title, fontsize=7, y=1 - 0.06 / height, va="top")
    ax.set_title(_panel_title(arrays, 0), fontsize=9)
    # one full draw makes the background (colour bar, ticks, labels: the text
    # that is slow to draw); each frame restores it and draws the heat map, the data, the boundary and
    # the folds (lines whose data are replaced), the spines and the title. The title is in the layout
    # but drawn transparent, so that the background holds none
    points = ax.collections[0]
    for artist in [*ax.collections[1:], *ax.lines]:
        artist.remove()
    # one line each, broken at NaN between segments: one path to draw, not one per segment
    (boundary,) = ax.plot([], [], color=BOUNDARY_COLOUR, linewidth=1.3, zorder=4)
    boundary.set_path_effects([patheffects.withStroke(linewidth=3.0, foreground="white")])
    (folds,) = ax.plot([], [], color=FOLD_COLOUR, linewidth=1.1, linestyle="--", zorder=5)
    folds.set_path_effects([patheffects.withStroke(linewidth=2.3, foreground="#333333")])
    image.set_visible(False)
    points.set_visible(False)
    title_text = ax.title.get_text()
    ax.title.set_color("none")
    canvas.draw()
    background = canvas.copy_from_bbox(fig.bbox)
    image.set_visible(True)
    points.set_visible(True)
    ax.title.set_color("black")
    frames = []
    for s in range(n):
        lv = np.asarray(arrays["grid_log_volume"][s]).reshape(ny, nx)
        image.set_data(np.ma.masked_where(~np.isfinite(lv), lv))
        segments = snapshot_segments(arrays, s)
        if segments is None:  # a file from before they were kept
            log_proba = np.log(np.clip(np.asarray(arrays["grid_proba"][s]).reshape(ny, nx, -1), 1e-300, None))
            segments = class_boundary_segments(xs, ys, log_proba)
        boundary.set_data(*_broken_line(segments))
        field, _ = fold_field(np.asarray(arrays["grid_layer_det"][s]).reshape(-1, ny, nx))
        folds.set_data(*_broken_line(zero_segments(xs, ys, field)))
        ax.title.set_text(title_text if s == 0 else _panel_title(arrays, s))
        canvas.restore_region(background)
        drawn: list[Artist] = [image, points, boundary, folds, *ax.spines.values(), ax.title]
        for each in drawn:
            ax.draw_artist(each)
        rgba = np.asarray(canvas.buffer_rgba())
        frames.append(Image.fromarray(rgba[..., :3]).quantize(method=Image.Quantize.FASTOCTREE))

    def save(tmp: Path) -> None:
        # the last frame held three times as long
        durations = [int(1000 / GIF_FPS)] * (n - 1) + [int(3000 / GIF_FPS)]
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)

    atomic_save(path, save)
    return path


def boundary_curves_figure(arrays: Mapping[str, np.ndarray], title: str) -> Figure:
    """Three panels against epoch: Spearman correlation, band ratio, grid fraction each layer reverses."""
    epoch = np.asarray(arrays["epoch"])
    # laid out by hand, as the strip (margins in inches: titles above, tick and axis labels below)
    width, height = 13.0, 4.2
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(
        left=0.75 / width, right=1 - 0.2 / width, bottom=0.6 / height, top=1 - 1.05 / height, wspace=0.28
    )
    ax_rho, ax_ratio, ax_fold = fig.subplots(1, 3, sharex=True)
    styles = {
        "grid": dict(color=OKABE_ITO[0], linestyle="-", marker="o"),
        "data": dict(color=OKABE_ITO[1], linestyle="--", marker="s"),
    }
    for where, style in styles.items():
        label = "grid points" if where == "grid" else "data points"
        ax_rho.plot(
            epoch, arrays[f"boundary_spearman_{where}"], label=label, markersize=3, linewidth=1.3, **style
        )
        ax_ratio.plot(
            epoch, arrays[f"boundary_band_ratio_{where}"], label=label, markersize=3, linewidth=1.3, **style
        )
    ax_rho.axhline(0.0, color="#888888", linewidth=0.8)
    ax_rho.set_ylim(-1.05, 1.05)
    ax_rho.set_ylabel("Spearman ρ(log volume, distance)")
    ax_rho.set_title(
        "rank correlation with the distance to the boundary\n(< 0: larger near the boundary)", fontsize=9
    )
    ratios = np.concatenate([arrays["boundary_band_ratio_grid"], arrays["boundary_band_ratio_data"]])
    finite = ratios[np.isfinite(ratios)]
    if finite.size and np.all(finite > 0):
        ax_ratio.set_yscale("log")
    ax_ratio.axhline(1.0, color="#888888", linewidth=0.8)
    ax_ratio.set_ylabel("median volume element, band / outside")
    band = (
        float(np.nanmax(arrays["boundary_band_width"]))
        if np.isfinite(arrays["boundary_band_width"]).any()
        else 0
    )
    ax_ratio.set_title(
        f"band ratio (band: distance ≤ {band:.3g})\n(> 1: space magnified near the boundary)", fontsize=9
    )

    fractions = np.asarray(arrays["det_negative_fraction"])  # (S, L)
    shown = [
        layer
        for layer in range(fractions.shape[1])
        if np.any((fractions[:, layer] > 0) & (fractions[:, layer] < 1))
    ]
    colours = matplotlib.colormaps["cividis"](np.linspace(0.0, 0.9, max(len(shown), 1)))
    for colour, layer in zip(colours, shown):
        ax_fold.plot(
            epoch, fractions[:, layer], color=colour, linewidth=1.3, marker=".", label=f"layer {layer}"
        )
    if shown:
        ax_fold.legend(fontsize=7, frameon=False, ncol=2, loc="best")
    else:
        ax_fold.text(
            0.5,
            0.5,
            "no layer folds the grid\n(det $J_l$ keeps its sign)",
            ha="center",
            va="center",
            transform=ax_fold.transAxes,
            fontsize=9,
            color="#555555",
        )
    top = float(np.nanmax(fractions[:, shown])) if shown else 1.0
    ax_fold.set_ylim(-0.02 * top, min(1.0, 1.15 * top) + 0.02 * top)
    ax_fold.set_ylabel("fraction of grid with det $J_l$ < 0")
    ax_fold.set_title("folds: where each layer reverses orientation", fontsize=9)

    for ax in (ax_rho, ax_ratio):
        ax.legend(fontsize=8, frameon=False)
    for ax in (ax_rho, ax_ratio, ax_fold):
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=8)
        ax.set_xlabel("epoch (0: initialisation)")
    fig.suptitle(f"{title}\nthe geometry through training", fontsize=10, y=1 - 0.08 / height, va="top")
    return fig


def snapshot_figure_files(out_dir: Path, formats: Sequence[str]) -> dict[str, list[Path]]:
    """The files of the three snapshot figures, by figure name (`figure:snapshots`, ...)."""
    return {
        "figure:snapshots": figure_files(out_dir / STRIP, formats),
        "figure:snapshots_gif": [out_dir / GIF],
        "figure:boundary_curves": figure_files(out_dir / CURVES, formats),
    }


def snapshot_figure_jobs(
    arrays: Mapping[str, np.ndarray], title: str, formats: Sequence[str], out_dir: Path
) -> dict[str, Callable[[], object]]:
    """The three snapshot figures as jobs that draw them into out_dir, by figure name."""
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    return {
        "figure:snapshots": lambda: save_figure(
            snapshot_strip_figure(arrays, title), out_dir / STRIP, formats
        ),
        "figure:snapshots_gif": lambda: write_snapshot_gif(arrays, title, out_dir / GIF),
        "figure:boundary_curves": lambda: save_figure(
            boundary_curves_figure(arrays, title), out_dir / CURVES, formats
        ),
    }


def submit_snapshot_figures(
    arrays: Mapping[str, np.ndarray], title: str, formats: Sequence[str], out_dir: Path, pool: FigurePool
) -> list[Path]:
    """Submit the three snapshot figures to `pool` (files in out_dir exist once pool.wait() returns;
    a figure the pool already has, drawn by the run's snapshot worker, is not drawn twice)."""
    files = snapshot_figure_files(out_dir, formats)
    written: list[Path] = []
    for name, draw in snapshot_figure_jobs(arrays, title, formats, out_dir).items():
        written += pool.submit(name, files[name], draw)
    return written
