"""Shared look of riemexp's figures: class colours and markers, layer choice, atomic saving.

Figures are built on `matplotlib.figure.Figure` directly (no pyplot, no global state), so
drawing is headless (Agg for PNG, matplotlib's own PDF and SVG backends) and thread-safe.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import matplotlib
import numpy as np
from matplotlib.artist import Artist
from matplotlib.colors import Colormap, Normalize, SymLogNorm, TwoSlopeNorm
from matplotlib.figure import Figure

from riemexp.io import atomic_save

#: Okabe & Ito (2008), safe for the common colour-vision deficiencies; yellow and black
#: last because yellow is faint on white and black is kept for decision boundaries.
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
GRID_COLOUR = "#8c8c8c"
BOUNDARY_COLOUR = "#000000"
#: a sequential, perceptually uniform, colour-blind-safe map for scalar fields
SCALAR_CMAP = "viridis"
#: the log volume element's map (zero-centred): red = area stretched, blue = shrunk, white = kept
DIVERGING_CMAP = "RdBu_r"
LEGEND_FONTSIZE = 8
DATA_EDGE = "#202020"  # a thin rim around data points, so they show on a region of their colour
WARNING_COLOUR = "#B2182B"  # titles of a model that did not learn
SINGULAR_COLOUR = "#d9d9d9"  # heat-map cells where the metric is singular (log volume -inf)
PNG_DPI = 110
FORMATS = ("png", "pdf", "svg")


def class_colours(n: int) -> list[str]:
    """n distinguishable colour-blind-safe colours: Okabe-Ito up to 7, then samples of cividis."""
    if n <= len(OKABE_ITO) - 1:
        return list(OKABE_ITO[:n])
    cmap = matplotlib.colormaps["cividis"]
    return [matplotlib.colors.to_hex(cmap(t)) for t in np.linspace(0.0, 1.0, n)]


def class_markers(n: int) -> list[str]:
    """One marker per class (cycling), so classes stay apart in grey print too."""
    return [MARKERS[i % len(MARKERS)] for i in range(n)]


def choose_layers(depth: int, layers: Sequence[int] | None, n_layers: int) -> list[int]:
    """The layers to draw: `layers` sorted and deduplicated, or at most `n_layers` evenly spaced over
    0 .. depth, always including the input (0) and the last hidden layer (depth).

    Evenly spaced means one step between all of them: the largest count up to n_layers whose
    step divides the depth (depth 10, 8 asked: 0, 2, 4, .., 10; depth 50: 0, 10, .., 50), as long
    as that keeps at least half the layers asked for; otherwise (a prime depth) the smallest
    whole step that fits, with the last hidden layer after the last step (depth 13: 0, 2, .., 12, 13).
    """
    if layers is not None:
        return sorted(set(int(layer) for layer in layers))
    count = min(max(n_layers, 2), depth + 1)
    if count >= depth + 1:
        return list(range(depth + 1))
    for steps in range(count - 1, 0, -1):
        if depth % steps == 0 and steps + 1 >= (count + 1) // 2:
            return list(range(0, depth + 1, depth // steps))
    step = -(-depth // (count - 1))  # ceil
    return sorted(set(range(0, depth, step)) | {depth})


def layer_title(layer: int, depth: int) -> str:
    if layer == 0:
        return "layer 0 (input)"
    if layer == depth:
        return f"layer {layer} (last hidden)"
    return f"layer {layer}"


def add_title(fig: Figure, fd: Any) -> None:
    """The figure's title: the run (fd.title) and its test accuracy (fd.accuracy_line); in the
    warning colour, with the warning, when the model is near chance (`riemexp.verdict`)."""
    lines = [fd.title] + ([fd.accuracy_line] if fd.accuracy_line else [])
    fig.suptitle(
        "\n".join(lines),
        fontsize=11 if not fd.near_chance else 10.5,
        color=WARNING_COLOUR if fd.near_chance else "black",
    )


def new_figure(width: float, height: float) -> Figure:
    """A headless figure (inches); not registered with pyplot, so it is freed with its last reference."""
    return Figure(figsize=(width, height), layout="constrained")


def add_legend(
    fig: Figure,
    handles: Sequence[Artist],
    caption: str,
    ncol: int,
    loc: Literal["outside lower center", "lower center"] = "outside lower center",
) -> None:
    """A legend under the panels, with the figure's caption (one or more lines) as its title.

    It is fitted to the figure: caption lines are wrapped to the figure's width, and the number
    of columns is reduced until the legend is no wider than the figure (nothing clipped). loc:
    "outside lower center" (a constrained layout makes room for it) or "lower center" (at the
    figure's bottom edge, in a margin the figure leaves).
    """
    width_chars = max(40, int(fig.get_figwidth() * 72 / (0.56 * LEGEND_FONTSIZE)))
    caption = "\n".join(textwrap.fill(line, width_chars) if line else line for line in caption.split("\n"))
    ncol = max(1, min(len(handles), ncol))
    while True:
        legend = fig.legend(
            handles=handles,
            loc=loc,
            ncol=ncol,
            fontsize=LEGEND_FONTSIZE,
            frameon=False,
            title=caption,
            title_fontsize=LEGEND_FONTSIZE,
        )
        legend.get_title().set_multialignment("center")
        if ncol == 1 or legend_width(fig, legend) <= fig.bbox.width * 0.98:
            return
        legend.remove()
        ncol -= 1


def legend_width(fig: Figure, legend: Artist) -> float:
    """The legend's drawn width in pixels (the figure's renderer; drawing nothing to a file)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    return float(legend.get_window_extent(canvas.get_renderer()).width)


def log_volume_scale(values: np.ndarray) -> tuple[Colormap, Normalize, str]:
    """The one colour scale of the log volume element 1/2 log det g, in the run's and the sweep's maps.

    Diverging around 0 (no change of area): red where the network stretches area, blue where it
    shrinks it, white where it keeps it; symmetric limits at the 98th percentile of |values|
    (finite ones). Past |v| = 10 the scale turns logarithmic outside [-1, 1] (deep plain networks
    shrink area by e^-50) so that small values keep their structure. Returns the colour map
    (non-finite values: SINGULAR_COLOUR), the norm and a note for the colour bar's label.
    """
    finite = np.abs(np.asarray(values, dtype=np.float64))
    finite = finite[np.isfinite(finite)]
    limit = max(float(np.percentile(finite, 98)) if finite.size else 1.0, 1e-6)
    cmap = matplotlib.colormaps[DIVERGING_CMAP].with_extremes(bad=SINGULAR_COLOUR)
    if limit > 10.0:
        return (
            cmap,
            SymLogNorm(linthresh=1.0, vmin=-limit, vmax=limit),
            " (symmetric log scale, linear in [-1, 1])",
        )
    return cmap, TwoSlopeNorm(0.0, -limit, limit), ""


def square_view(points: np.ndarray, pad: float = 0.12) -> tuple[float, float, float, float]:
    """A square window (x0, x1, y0, y1) around points (N, 2) with `pad` of its side on each edge."""
    finite = points[np.all(np.isfinite(points), axis=1)]
    if len(finite) == 0:
        return -1.0, 1.0, -1.0, 1.0
    lo, hi = finite.min(axis=0), finite.max(axis=0)
    centre = (lo + hi) / 2
    side = float(np.max(hi - lo))
    side = max(side, 1e-6 * (1.0 + float(np.max(np.abs(centre)))))
    half = side * (0.5 + pad)
    return centre[0] - half, centre[0] + half, centre[1] - half, centre[1] + half


def figure_files(stem: Path, formats: Sequence[str]) -> list[Path]:
    """The files `save_figure(fig, stem, formats)` writes: STEM.FORMAT for each format."""
    for fmt in formats:
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")  # validated in config
    return [stem.with_name(f"{stem.name}.{fmt}") for fmt in formats]


def save_figure(fig: Figure, stem: Path, formats: Sequence[str], dpi: int = PNG_DPI) -> list[Path]:
    """Write fig as STEM.png / STEM.pdf / STEM.svg (each atomically); return the paths.

    Metadata dates are left out and the SVG id salt is fixed, so the same arrays give
    byte-identical PDF and SVG files and pixel-identical PNGs.
    """
    written = []
    for fmt, path in zip(formats, figure_files(stem, formats)):
        metadata = {"png": {}, "pdf": {"CreationDate": None, "ModDate": None}, "svg": {"Date": None}}[fmt]

        def save(tmp: Path, fmt: str = fmt, metadata: dict = metadata) -> None:
            with matplotlib.rc_context({"svg.hashsalt": "riemexp"}):
                fig.savefig(tmp, format=fmt, dpi=dpi, metadata=metadata)

        atomic_save(path, save)
        written.append(path)
    return written
