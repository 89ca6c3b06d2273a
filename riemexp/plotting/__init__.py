"""Figures, drawn headlessly from arrays: layer row, input space, training curves, trajectories, GIF.

Plotting takes numpy arrays (`FigureData`, built by the plots step from geometry.npz and the head;
the ODE flow of ode.npz; tables) and returns matplotlib figures; it never trains, never computes
geometry and imports no torch. The plots step that reads a run folder and writes its figures is
`riemexp.analyses.plots` (`riemexp plot-metric` re-draws a saved run with it).

The names below are imported on first use, so that a module that needs only the shared style
(`riemexp.plotting.style`, e.g. the sweep's figures) loads none of the run's figures.
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
    "Glyphs": "riemexp.plotting.glyphs",
    "glyph_axes": "riemexp.plotting.glyphs",
    "make_glyphs": "riemexp.plotting.glyphs",
    "input_space_figure": "riemexp.plotting.input_space",
    "layer_row_figure": "riemexp.plotting.layers",
    "choose_layers": "riemexp.plotting.style",
    "class_colours": "riemexp.plotting.style",
    "save_figure": "riemexp.plotting.style",
    "convergence_figure": "riemexp.plotting.trajectories",
    "trajectory_figure": "riemexp.plotting.trajectories",
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
