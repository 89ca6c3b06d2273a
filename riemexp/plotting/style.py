"""Shared look of riemexp's figures: class colours and markers, layer choice, atomic saving.

Figures are built on `matplotlib.figure.Figure` directly (no pyplot, no global state), so
drawing is headless (Agg for PNG, matplotlib's own PDF and SVG backends) and thread-safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.artist import Artist
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
    """The layers to draw: `layers` sorted and deduplicated, or about `n_layers` evenly spaced
    over 0 .. depth, always including the input (0) and the last hidden layer (depth)."""
    if layers is not None:
        return sorted(set(int(layer) for layer in layers))
    count = min(max(n_layers, 2), depth + 1)
    return sorted(set(np.rint(np.linspace(0, depth, count)).astype(int).tolist()))


def layer_title(layer: int, depth: int) -> str:
    if layer == 0:
        return "layer 0 (input)"
    if layer == depth:
        return f"layer {layer} (last hidden)"
    return f"layer {layer}"


def new_figure(width: float, height: float) -> Figure:
    """A headless figure (inches); not registered with pyplot, so it is freed with its last reference."""
    return Figure(figsize=(width, height), layout="constrained")


def add_legend(fig: Figure, handles: Sequence[Artist], caption: str, ncol: int) -> None:
    """A legend under the panels, with the figure's caption (one or more lines) as its title."""
    legend = fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=max(1, min(len(handles), ncol)),
        fontsize=8,
        frameon=False,
        title=caption,
        title_fontsize=8,
    )
    legend.get_title().set_multialignment("center")


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
