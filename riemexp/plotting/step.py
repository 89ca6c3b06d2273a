"""The figures of a run folder: `plots_step` (the last analysis step of `riemexp train`) and `draw_figures`.

A run's `plots/` folder holds

    layers.{png,pdf,svg}           the layer row (`riemexp.plotting.layers`)
    input_space.{png,pdf,svg}      decision regions, g_0 glyphs, log volume element
    training_curves.{png,pdf,svg}  loss and accuracy per epoch (from history.csv)
    layers.gif                     with plot.animation=true

drawn from geometry.npz (recomputed from the model when it is missing or coarser than
the figures ask for), the head's weights and history.csv. `riemexp plot-metric` calls the
same functions, so it re-draws identical files from a saved run.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from riemexp import lock, phases, signals
from riemexp.config import GeometryConfig, PlotConfig, RunConfig, config_to_dict, load_config
from riemexp.datasets import Dataset
from riemexp.errors import ConfigError
from riemexp.figures import MAX_WORKERS, FigurePool
from riemexp.geometry import compute_geometry, load_geometry
from riemexp.layout import GEOMETRY_FILE, HISTORY_FILE, PLOTS_DIR, STAGING_PREFIX
from riemexp.networks import LayeredNetwork
from riemexp.plotting.animation import write_animation
from riemexp.plotting.curves import read_history, training_curves_figure
from riemexp.plotting.data import FigureData, figure_data
from riemexp.plotting.glyphs import fitting_density, lattice_fits
from riemexp.plotting.input_space import input_space_figure
from riemexp.plotting.layers import layer_row_figure
from riemexp.plotting.style import choose_layers, figure_files, save_figure
from riemexp.threads import run_cpus, run_threads, using_threads

if TYPE_CHECKING:
    from riemexp.run import RunContext

log = logging.getLogger("riemexp")


def coarser_than_asked(
    arrays: Mapping[str, np.ndarray], glyph_density: int, grid_density: int | None
) -> str | None:
    """Why saved geometry arrays cannot draw the figures asked for, or None when they can.

    They cannot when grid_density is given and differs from the saved grid, or when the
    saved grid cannot hold glyph_density evenly spaced glyphs per axis spanning most of it.
    """
    ny, nx = (int(v) for v in arrays["grid_shape"])
    if grid_density is not None and (ny, nx) != (grid_density, grid_density):
        return f"the saved grid is {ny} x {nx}, {grid_density} x {grid_density} was asked for"
    if not (lattice_fits(ny, glyph_density) and lattice_fits(nx, glyph_density)):
        return f"the saved {ny} x {nx} grid cannot hold {glyph_density} evenly spaced glyphs per axis"
    return None


def geometry_for_plots(
    run_dir: Path,
    model: LayeredNetwork,
    data: Dataset,
    geometry_cfg: GeometryConfig,
    plot_cfg: PlotConfig,
    grid_density: int | None = None,
) -> dict[str, np.ndarray]:
    """The geometry arrays to draw: run_dir/geometry.npz if fine enough, else recomputed from the model.

    A corrupt geometry.npz raises RunFolderError; a missing one is recomputed (the file is
    derived from model.pt). Recomputed arrays are not saved.
    """
    path = run_dir / GEOMETRY_FILE
    saved_density = geometry_cfg.grid_density
    if path.exists():
        arrays = load_geometry(path)
        reason = coarser_than_asked(arrays, plot_cfg.glyph_density, grid_density)
        if reason is None:
            return arrays
        saved_density = int(min(arrays["grid_shape"]))
        log.info("recomputing the geometry from the model: %s", reason)
    else:
        log.info("%s is missing: computing the geometry from the model", path)
    base, glyphs = grid_density or saved_density, plot_cfg.glyph_density
    density = base if lattice_fits(base, glyphs) else fitting_density(base, glyphs)
    return compute_geometry(model, data, dataclasses.replace(geometry_cfg, grid_density=density))


def draw_figures(
    fd: FigureData,
    plot_cfg: PlotConfig,
    out_dir: Path,
    history: Mapping[str, np.ndarray] | None,
    pool: FigurePool | None = None,
) -> list[Path]:
    """Draw every figure of a run into out_dir; return the files written.

    pool: draws the figures (`riemexp.figures`; in parallel when it may); the files exist once
    `pool.wait()` has returned. Without one they are drawn here, one after another.
    """
    own = pool is None
    pool = FigurePool() if pool is None else pool
    layers = choose_layers(fd.depth, plot_cfg.layers, plot_cfg.n_layers)
    formats = plot_cfg.formats

    def layer_row() -> None:
        save_figure(
            layer_row_figure(fd, layers, plot_cfg.glyph_density, plot_cfg.glyph), out_dir / "layers", formats
        )

    def input_space() -> None:
        save_figure(
            input_space_figure(fd, plot_cfg.glyph_density, plot_cfg.glyph), out_dir / "input_space", formats
        )

    def curves() -> None:
        assert history is not None
        save_figure(training_curves_figure(dict(history), fd.title), out_dir / "training_curves", formats)

    def animation() -> None:
        write_animation(fd, out_dir / "layers.gif")

    written = pool.submit("figure:layers", figure_files(out_dir / "layers", formats), layer_row)
    written += pool.submit("figure:input_space", figure_files(out_dir / "input_space", formats), input_space)
    if history is not None:
        written += pool.submit(
            "figure:training_curves", figure_files(out_dir / "training_curves", formats), curves
        )
    if plot_cfg.animation:
        written += pool.submit("figure:layers_gif", [out_dir / "layers.gif"], animation)
    if own:
        pool.wait()
    return written


def with_plot_options(cfg: RunConfig, options: Mapping[str, Any] | None) -> RunConfig:
    """cfg with the plot options that are not None replaced, checked as a whole (ConfigError)."""
    values = config_to_dict(cfg)
    values["plot"].update({k: v for k, v in (options or {}).items() if v is not None})
    return load_config(values)


def redraw_run(
    run_dir: str | Path,
    plot_options: Mapping[str, Any] | None = None,
    grid_density: int | None = None,
    out_dir: str | Path | None = None,
) -> list[Path]:
    """Re-draw the figures of a completed run folder without retraining; return the files written.

    plot_options: PlotConfig fields to change (None values keep the run's own); with none,
    the files are those `riemexp train` wrote. grid_density: the grid to draw (None: as saved).
    out_dir: default <run>/plots (then the run folder's lock is held: FolderBusyError while a run
    works in it). The files are drawn into a hidden staging folder and moved into place at the
    end, so an interrupted re-draw never leaves a mix of old and new figures. Raises
    RunFolderError naming a missing, incomplete or corrupt file, ConfigError for a bad option.
    """
    from riemexp.run import load_run

    if grid_density is not None and grid_density < 2:
        raise ConfigError(f"grid_density must be >= 2, got {grid_density}")
    loaded = load_run(run_dir)
    cfg = with_plot_options(loaded.config, plot_options)
    history = read_history(loaded.path / HISTORY_FILE)
    with using_threads(run_threads(cfg, n_data=len(loaded.data.x), saved=True)):
        geometry = geometry_for_plots(
            loaded.path, loaded.model, loaded.data, cfg.geometry, cfg.plot, grid_density
        )
        fd = figure_data(loaded.model, cfg, loaded.data.class_names, geometry)
    workers = min(MAX_WORKERS, run_cpus(cfg))  # the figures are drawn in parallel where it may
    if out_dir is not None:
        return _draw_staged(fd, cfg.plot, Path(out_dir), history, workers)
    # into the run's own plots/: not while a run works in the folder (it would swap its own in)
    with lock.hold(loaded.path):
        return _draw_staged(fd, cfg.plot, loaded.path / PLOTS_DIR, history, workers)


def _draw_staged(
    fd: FigureData,
    plot_cfg: PlotConfig,
    out: Path,
    history: Mapping[str, np.ndarray] | None,
    workers: int = 1,
) -> list[Path]:
    """draw_figures into a hidden folder inside `out`, then move every file into `out` at once,
    so that an interrupted re-draw leaves the old figures, never a mix of old and new."""
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out))
    pool = FigurePool(workers)
    try:
        drawn = draw_figures(fd, plot_cfg, staging, history, pool)
        pool.wait()
        phases.reached("drawn")
        with signals.deferred():
            for path in drawn:
                os.replace(path, out / path.name)
    finally:
        pool.close()
        shutil.rmtree(staging, ignore_errors=True)
    return [out / path.name for path in drawn]


def plots_step(ctx: RunContext) -> None:
    """Analysis step of `riemexp train`: the figures in <run>/plots/.

    Adds to ctx.metrics: plots (the files, relative to the run folder; the ODE step's figures, drawn
    before, come after these) and plots_seconds.
    """
    start = time.perf_counter()
    geometry = geometry_for_plots(ctx.out_dir, ctx.model, ctx.data, ctx.cfg.geometry, ctx.cfg.plot)
    fd = figure_data(ctx.model, ctx.cfg, ctx.data.class_names, geometry)
    history = read_history(ctx.out_dir / HISTORY_FILE)
    written = draw_figures(fd, ctx.cfg.plot, ctx.out_dir / PLOTS_DIR, history, ctx.figures)
    ctx.metrics["plots"] = [p.relative_to(ctx.out_dir).as_posix() for p in written] + ctx.metrics.get(
        "plots", []
    )
    ctx.metrics["plots_seconds"] = round(time.perf_counter() - start, 4)
