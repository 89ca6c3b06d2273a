"""Figures of a run, drawn headlessly from its arrays: layer row, input space, training curves, GIF.

Plotting takes numpy arrays (`FigureData`, built from geometry.npz and the head) and
returns matplotlib figures; it never trains and never computes geometry itself.
`plots_step` is the last analysis step of `riemexp train`; `riemexp plot-metric` re-draws
a saved run with `draw_figures`.
"""

from riemexp.plotting.animation import write_animation
from riemexp.plotting.curves import read_history, training_curves_figure
from riemexp.plotting.data import FigureData, figure_data
from riemexp.plotting.glyphs import Glyphs, glyph_axes, make_glyphs
from riemexp.plotting.input_space import input_space_figure
from riemexp.plotting.layers import layer_row_figure
from riemexp.plotting.step import PLOTS_DIR, draw_figures, geometry_for_plots, plots_step, redraw_run
from riemexp.plotting.style import choose_layers, class_colours, save_figure

__all__ = [
    "PLOTS_DIR",
    "FigureData",
    "Glyphs",
    "choose_layers",
    "class_colours",
    "draw_figures",
    "figure_data",
    "geometry_for_plots",
    "glyph_axes",
    "input_space_figure",
    "layer_row_figure",
    "make_glyphs",
    "plots_step",
    "read_history",
    "redraw_run",
    "save_figure",
    "training_curves_figure",
    "write_animation",
]
