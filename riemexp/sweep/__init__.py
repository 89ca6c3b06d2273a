"""Sweeps: grids of `riemexp train` jobs run as a Hydra multirun, aggregated into tables and figures.

    grid      presets (conf/grid/NAME.yaml) -> Hydra multirun overrides
    jobs      one job: skip when done, run, record any failure (never raise)
    summary   a sweep folder -> summary.{csv,md,tex}, summary_grouped.{csv,md,tex}
    figures   a sweep folder -> plots/ (accuracy vs depth, heatmaps, input log-volume maps)

The command is `riemexp sweep` (riemexp.commands.sweep).
"""

from riemexp.sweep.grid import Grid, load_grid, preset_names
from riemexp.sweep.summary import Summary, summarize, write_summary

__all__ = ["Grid", "Summary", "load_grid", "preset_names", "summarize", "write_summary"]
