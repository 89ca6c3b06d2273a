"""The plots step of a run (`plots_step`, the last analysis step of `riemexp train`) and its re-draw
(`redraw_run`, `riemexp plot-metric`): every figure in <run>/plots/, drawn from the run's files.

    layers.{png,pdf,svg}           the layer row (`riemexp.plotting.layers`)
    input_space.{png,pdf,svg}      decision regions, g_0 glyphs, log volume element
    training_curves.{png,pdf,svg}  loss and accuracy per epoch (history.csv)
    trajectories.{png,pdf,svg}     chosen points through the layers, with the ODE flow of ode.npz
                                   (with ode.enabled; kinds without an ODE: the layers only)
    ode_convergence.{png,pdf,svg}  tables/ode.csv: error against sub-step (kinds with an ODE)
    layers.gif                     with plot.animation=true
    snapshots.{png,pdf,svg}, snapshots.gif, boundary_curves.{png,pdf,svg}
                                   the geometry through training, from snapshots.npz when the run
                                   has one (`riemexp.plotting.snapshots`; in a training run the
                                   boundary step submits them, first, `riemexp.analyses.snapshots`)

drawn from geometry.npz (recomputed from the model when it is missing or coarser than the figures
ask for), the head's weights, history.csv, ode.npz, tables/ode.csv and metrics.json. `riemexp
plot-metric` calls the same functions, so it re-draws identical files from a saved run.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from riemexp import lock, phases, signals
from riemexp.analyses import RunContext
from riemexp.analyses.geometry import compute_geometry, load_geometry
from riemexp.analyses.ode import ODE_TABLE, choose_points, load_flow, points_per_class
from riemexp.budget import fitting_density, lattice_fits
from riemexp.config import GeometryConfig, PlotConfig, RunConfig, config_to_dict, load_config
from riemexp.data.csv import CsvConfig, read_csv
from riemexp.data.dataset import Dataset
from riemexp.errors import ConfigError, RiemexpError, RunFolderError
from riemexp.figures import MAX_WORKERS, FigurePool
from riemexp.geometry import input_log_volume, input_metric, layer_coordinates
from riemexp.geometry.boundary import boundary_segments, network_classifier
from riemexp.geometry.folds import layer_determinants
from riemexp.layout import GEOMETRY_FILE, HISTORY_FILE, PLOTS_DIR, SNAPSHOTS_FILE, STAGING_PREFIX
from riemexp.nets.network import LayeredNetwork
from riemexp.nets.registry import get_kind
from riemexp.notebook import read_records
from riemexp.plotting.animation import write_animation
from riemexp.plotting.curves import read_history, training_curves_figure
from riemexp.plotting.data import FigureData
from riemexp.plotting.input_space import input_space_figure
from riemexp.plotting.layers import layer_row_figure
from riemexp.plotting.style import choose_layers, figure_files, save_figure
from riemexp.plotting.trajectories import convergence_figure, trajectory_figure
from riemexp.threads import run_cpus, run_threads, using_threads
from riemexp.verdict import title_line

log = logging.getLogger("riemexp")


@dataclass(frozen=True)
class OdeFigureData:
    """What the trajectories and ODE convergence figures are drawn from (numpy, float64).

    coords (L+1, n, w): layer coordinates of the n chosen points; labels (n,); flow (M, n, w): their
    ODE flow from ode.npz (None: no ODE, or not converged); rows: tables/ode.csv (None: none);
    network, order, gap: what the titles say about the network and its ODE.
    """

    coords: np.ndarray
    labels: np.ndarray
    flow: np.ndarray | None
    rows: list[dict[str, Any]] | None
    network: str
    order: str
    gap: float | None


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


def dataset_title(cfg: RunConfig) -> str:
    """The dataset as figure titles name it: its name, or a CSV's file name."""
    if isinstance(cfg.dataset, CsvConfig) and cfg.dataset.path:
        return Path(cfg.dataset.path).name
    return cfg.dataset.name


def run_title(cfg: RunConfig) -> str:
    """A one-line description of a run for figure titles."""
    n = cfg.network
    step = f", h = {n.step_size:g}" if get_kind(n.kind).uses_step_size else ""
    return (
        f"{dataset_title(cfg)} · {n.kind} network, depth {n.depth}, width {n.width}{step}, "
        f"{n.activation.value} · seed {cfg.seed}"
    )


def coordinate_names(cfg: RunConfig) -> tuple[str, str]:
    """Axis labels of the input plane: a CSV's coordinate column names, else input x_1, x_2."""
    data = cfg.dataset
    if isinstance(data, CsvConfig) and data.path:
        try:
            first, second = read_csv(data).coordinate_names
            return str(first), str(second)
        except (RiemexpError, OSError):  # the file has gone: its columns as configured
            columns = data.coordinate_columns
            return f"column {columns[0]}", f"column {columns[1]}"
    return "input $x_1$", "input $x_2$"


def figure_data(
    model: LayeredNetwork,
    cfg: RunConfig,
    class_names: tuple[str, ...],
    geometry: Mapping[str, np.ndarray],
    metrics: Mapping[str, Any] | None = None,
) -> FigureData:
    """Collect the arrays the geometry figures need from a trained model and its geometry arrays.

    metrics: the run's metrics.json contents (test_accuracy, chance_accuracy, near_chance), for
    the titles; None: titles without an accuracy.
    """
    points = torch.as_tensor(np.asarray(geometry["grid_points"]), dtype=torch.float64)
    g_input = input_metric(model, points)  # (G, 2, 2)
    log_volume = input_log_volume(model, points).cpu().numpy()  # (G,)
    dets = layer_determinants(model, points)  # (L, G): the folds det J_l = 0
    ny, nx = (int(v) for v in np.asarray(geometry["grid_shape"]))
    segments = boundary_segments(network_classifier(model), points.numpy(), (ny, nx))  # (B, 2, 2)
    return FigureData(
        geometry={k: np.asarray(v) for k, v in geometry.items()},
        grid_input_metric=g_input.cpu().numpy().astype(np.float64),
        grid_input_log_volume=log_volume.astype(np.float64),
        head_weight=model.head.weight.detach().double().cpu().numpy(),
        head_bias=model.head.bias.detach().double().cpu().numpy(),
        class_names=tuple(class_names),
        title=run_title(cfg),
        kind=model.kind.name,
        two_step=model.kind.two_step,
        accuracy_line=title_line(metrics),
        near_chance=bool(metrics and metrics.get("near_chance")),
        coordinate_names=coordinate_names(cfg),
        grid_layer_det=dets,
        boundary_segments=segments,
    )


def ode_figure_data(
    run_dir: Path, model: LayeredNetwork, data: Dataset, metrics: Mapping[str, Any]
) -> OdeFigureData:
    """The trajectories' and convergence figure's arrays: the chosen points' layer coordinates (from
    the model), their flow (ode.npz), tables/ode.csv and the gap and order of metrics.json."""
    labels = data.y.cpu().numpy()
    flow_arrays = load_flow(run_dir)
    pick = (
        flow_arrays["point_index"]
        if flow_arrays is not None
        else choose_points(labels, points_per_class(model.depth))
    )
    if len(pick) and (pick.min() < 0 or pick.max() >= len(labels)):
        raise RunFolderError(f"{run_dir / 'ode.npz'} does not match the run's data: point_index out of range")
    coords = layer_coordinates(model, data.x[torch.as_tensor(pick)]).cpu().numpy()  # (L+1, n, w)
    table = run_dir / f"{ODE_TABLE}.csv"
    rows = read_records(table) if table.is_file() and flow_arrays is not None else None
    kind, L, h = model.kind, model.depth, model.h
    network = f"{kind.name} network, L = {L}" + (f", h = {h:g}, T = {L * h:g}" if kind.uses_step_size else "")
    order = metrics.get("ode_order")
    return OdeFigureData(
        coords=coords,
        labels=labels[pick],
        flow=None if flow_arrays is None else flow_arrays["flow"],
        rows=rows,
        network=network,
        order="n/a" if order is None else f"{order:.2f}",
        gap=metrics.get("ode_gap"),
    )


def draw_run_figures(
    fd: FigureData,
    plot_cfg: PlotConfig,
    out_dir: Path,
    history: Mapping[str, np.ndarray] | None,
    ode: OdeFigureData | None = None,
    pool: FigurePool | None = None,
    snapshots: Mapping[str, np.ndarray] | None = None,
) -> list[Path]:
    """Draw every figure of a run into out_dir; return the files written.

    snapshots: the arrays of snapshots.npz (`riemexp.analyses.snapshots`), whose figures are drawn too.

    fd: the geometry figures' arrays; ode: the trajectories' (None: none drawn). pool: draws the
    figures (`riemexp.figures`; in parallel when it may); the files exist once `pool.wait()` has
    returned. Without one they are drawn here, one after another.
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
        save_figure(
            training_curves_figure(dict(history), fd.title, fd.accuracy_line if fd.near_chance else ""),
            out_dir / "training_curves",
            formats,
        )

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
    if ode is not None:
        written += _submit_ode_figures(ode, fd, formats, out_dir, pool)
    if snapshots is not None:
        from riemexp.plotting.snapshots import submit_snapshot_figures

        written += submit_snapshot_figures(snapshots, fd.title, formats, out_dir, pool)
    if own:
        pool.wait()
    return written


def _submit_ode_figures(
    ode: OdeFigureData, fd: FigureData, formats: Any, out_dir: Path, pool: FigurePool
) -> list[Path]:
    """Submit plots/trajectories.* and, with a convergence table, plots/ode_convergence.* to `pool`
    (fd: the run's class names, and its test accuracy for the titles)."""
    class_names, headline = fd.class_names, (f"\n{fd.accuracy_line}" if fd.accuracy_line else "")
    n = ode.coords.shape[1]
    if ode.flow is None:
        title = f"{ode.network}: layer coordinates of {n} points (no ODE flow)"
    else:
        title = (
            f"{ode.network}: {n} points\n"
            f"ODE gap {ode.gap:.3g} of the data spread, refinement order {ode.order}"
        )

    title += headline

    def trajectories() -> None:
        fig = trajectory_figure(
            ode.coords, ode.labels, class_names, title, flow=ode.flow, warning=fd.near_chance
        )
        save_figure(fig, out_dir / "trajectories", formats)

    def convergence() -> None:
        caption = f"{ode.network}, every layer in k sub-steps\nfitted order {ode.order}{headline}"
        save_figure(convergence_figure(ode.rows or [], caption), out_dir / "ode_convergence", formats)

    written = pool.submit(
        "figure:trajectories", figure_files(out_dir / "trajectories", formats), trajectories
    )
    if ode.rows:
        written += pool.submit(
            "figure:ode_convergence", figure_files(out_dir / "ode_convergence", formats), convergence
        )
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
    from riemexp.runner.load import load_run

    if grid_density is not None and grid_density < 2:
        raise ConfigError(f"grid_density must be >= 2, got {grid_density}")
    loaded = load_run(run_dir)
    cfg = with_plot_options(loaded.config, plot_options)
    history = read_history(loaded.path / HISTORY_FILE)
    with using_threads(run_threads(cfg, n_data=len(loaded.data.x), saved=True)):
        geometry = geometry_for_plots(
            loaded.path, loaded.model, loaded.data, cfg.geometry, cfg.plot, grid_density
        )
        fd = figure_data(loaded.model, cfg, loaded.data.class_names, geometry, loaded.metrics)
        ode = (
            ode_figure_data(loaded.path, loaded.model, loaded.data, loaded.metrics)
            if cfg.ode.enabled
            else None
        )
    snapshots = read_snapshots(loaded.path)
    workers = min(MAX_WORKERS, run_cpus(cfg))  # the figures are drawn in parallel where it may
    if out_dir is not None:
        return _draw_staged(fd, cfg.plot, Path(out_dir), history, ode, workers, snapshots)
    # into the run's own plots/: not while a run works in the folder (it would swap its own in)
    with lock.hold(loaded.path):
        return _draw_staged(fd, cfg.plot, loaded.path / PLOTS_DIR, history, ode, workers, snapshots)


def read_snapshots(run_dir: Path) -> dict[str, np.ndarray] | None:
    """The run's snapshots.npz, checked (RunFolderError when corrupt); None when it has none."""
    if not (run_dir / SNAPSHOTS_FILE).is_file():
        return None
    from riemexp.analyses.snapshots import load_snapshots

    return load_snapshots(run_dir / SNAPSHOTS_FILE)


def _draw_staged(
    fd: FigureData,
    plot_cfg: PlotConfig,
    out: Path,
    history: Mapping[str, np.ndarray] | None,
    ode: OdeFigureData | None,
    workers: int = 1,
    snapshots: Mapping[str, np.ndarray] | None = None,
) -> list[Path]:
    """draw_run_figures into a hidden folder inside `out`, then move every file into `out` at once,
    so that an interrupted re-draw leaves the old figures, never a mix of old and new."""
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out))
    pool = FigurePool(workers)
    try:
        drawn = draw_run_figures(fd, plot_cfg, staging, history, ode, pool, snapshots)
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
    """Analysis step of `riemexp train`: the figures in <run>/plots/, from the files the run saved.

    Adds to ctx.metrics: plots (the files, relative to the run folder) and plots_seconds.
    """
    start = time.perf_counter()
    geometry = geometry_for_plots(ctx.out_dir, ctx.model, ctx.data, ctx.cfg.geometry, ctx.cfg.plot)
    fd = figure_data(ctx.model, ctx.cfg, ctx.data.class_names, geometry, ctx.metrics)
    ode = ode_figure_data(ctx.out_dir, ctx.model, ctx.data, ctx.metrics) if ctx.cfg.ode.enabled else None
    history = read_history(ctx.out_dir / HISTORY_FILE)
    written = draw_run_figures(fd, ctx.cfg.plot, ctx.out_dir / PLOTS_DIR, history, ode, ctx.figures)
    # after these: the snapshot figures, submitted by the first analysis step (boundary)
    ctx.metrics["plots"] = [p.relative_to(ctx.out_dir).as_posix() for p in written] + ctx.metrics.get(
        "plots", []
    )
    ctx.metrics["plots_seconds"] = round(time.perf_counter() - start, 4)


__all__ = [
    "OdeFigureData",
    "coarser_than_asked",
    "draw_run_figures",
    "figure_data",
    "geometry_for_plots",
    "ode_figure_data",
    "plots_step",
    "redraw_run",
    "run_title",
    "with_plot_options",
]
