"""Figures of a run, drawn headlessly from its arrays: layer row, input space, training curves, GIF.

Plotting takes numpy arrays (`FigureData`, built from geometry.npz and the head) and
returns matplotlib figures; it never trains and never computes geometry itself.
`plots_step` is the last analysis step of `riemexp train`; `riemexp plot-metric` re-draws
a saved run with `draw_figures`.

The names below are imported on first use, so that a module that needs only the shared style
(`riemexp.plotting.style`, e.g. the sweep's figures) loads neither torch nor the run's figures.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module that defines it
_EXPORTS = {
    "write_animation": "riemexp.plotting.animation",
    "read_history": "riemexp.plotting.curves",
    "training_curves_figure": "riemexp.plotting.curves",
    "FigureData": "riemexp.plotting.data",
    "figure_data": "riemexp.plotting.data",
    "Glyphs": "riemexp.plotting.glyphs",
    "glyph_axes": "riemexp.plotting.glyphs",
    "make_glyphs": "riemexp.plotting.glyphs",
    "input_space_figure": "riemexp.plotting.input_space",
    "layer_row_figure": "riemexp.plotting.layers",
    "PLOTS_DIR": "riemexp.plotting.step",
    "draw_figures": "riemexp.plotting.step",
    "geometry_for_plots": "riemexp.plotting.step",
    "plots_step": "riemexp.plotting.step",
    "redraw_run": "riemexp.plotting.step",
    "choose_layers": "riemexp.plotting.style",
    "class_colours": "riemexp.plotting.style",
    "save_figure": "riemexp.plotting.style",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'riemexp.plotting' has no attribute '{name}'")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__all__ = sorted(_EXPORTS)
