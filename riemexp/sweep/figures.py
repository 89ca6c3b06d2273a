"""A sweep's figures in SWEEP_DIR/plots/: accuracy against depth, accuracy heatmaps, input log-volume maps.

    accuracy_vs_depth   test accuracy against depth L, one line per network kind and step
                        size h (plain: one line, it has no h): mean over seeds with a +-1 std
                        bar, every seed as a faint dot
    accuracy_heatmap    depth x step size, mean test accuracy over seeds, one panel per kind
    input_log_volume    1/2 log det g_in, the input metric in the data's units, on the input
                        grid of each configuration (its first completed seed), read from
                        the run's geometry.npz and model.pt; rows: kind and
                        step size, columns: depth; one shared, zero-centred colour scale

Keys swept besides kind, depth, step size and seed (e.g. dataset) split every figure into
panels. The figures read the summary rows and the run folders (files only), never rebuild a model.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from riemexp.nets.registry import uses_step_size
from riemexp.plotting.style import (
    MARKERS,
    OKABE_ITO,
    SCALAR_CMAP,
    SINGULAR_COLOUR,
    log_volume_scale,
    new_figure,
    save_figure,
)
from riemexp.sweep.summary import SEED_KEY, Summary

log = logging.getLogger("riemexp")

PLOTS = "plots"
KIND, DEPTH, STEP = "network.kind", "network.depth", "network.step_size"
OWN_AXES = (KIND, DEPTH, STEP, SEED_KEY)


@dataclass(frozen=True)
class Point:
    """One job as the figures see it."""

    job: str
    path: Path
    panel: tuple[Any, ...]  # values of the other swept keys
    kind: str
    depth: int
    step: float | None  # None for kinds without a step size (plain)
    seed: Any
    completed: bool
    accuracy: float | None


def _points(summary: Summary) -> tuple[list[Point], list[str]]:
    panel_keys = [k for k in summary.keys if k not in OWN_AXES]
    by_job = {j.name: j for j in summary.jobs}
    points = []
    for row in summary.rows:
        job = by_job[row["job"]]
        kind = str(job.config.get(KIND, "?"))
        depth = job.config.get(DEPTH)
        if not isinstance(depth, int):
            continue
        step = job.config.get(STEP) if uses_step_size(kind) else None
        acc = row.get("test_accuracy")
        points.append(
            Point(
                job=job.name,
                path=job.path,
                panel=tuple(row.get(k) for k in panel_keys),
                kind=kind,
                depth=depth,
                step=float(step) if isinstance(step, (int, float)) else None,
                seed=job.config.get(SEED_KEY),
                completed=row["status"] == "completed",
                accuracy=float(acc) if isinstance(acc, (int, float)) and math.isfinite(acc) else None,
            )
        )
    return points, panel_keys


def _panel_title(keys: Sequence[str], values: tuple[Any, ...]) -> str:
    return ", ".join(f"{k}={v}" for k, v in zip(keys, values)) or "all runs"


def _line_label(kind: str, step: float | None) -> str:
    return kind if step is None else f"{kind}, h={step:g}"


def _order(values: Sequence[Any]) -> list[Any]:
    return sorted(set(values), key=lambda v: (v is not None, v if isinstance(v, (int, float)) else str(v)))


def _lines(points: Sequence[Point]) -> list[tuple[str, float | None]]:
    return sorted(
        {(p.kind, p.step) for p in points}, key=lambda ks: (ks[0], -1.0 if ks[1] is None else ks[1])
    )


def accuracy_vs_depth(points: Sequence[Point], panel_keys: Sequence[str]):  # -> Figure
    """Test accuracy (completed runs) against depth; mean +- std over seeds, seeds as dots."""
    panels = _order([p.panel for p in points])
    lines = _lines(points)
    style = {line: (OKABE_ITO[i % 7], MARKERS[i % len(MARKERS)]) for i, line in enumerate(lines)}
    fig = new_figure(4.6 * len(panels) + 1.8, 3.6)
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    depths = _order([p.depth for p in points])
    for ax, panel in zip(axes, panels):
        for line in lines:
            colour, marker = style[line]
            xs, means, stds = [], [], []
            for depth in depths:
                acc = [
                    p.accuracy
                    for p in points
                    if p.panel == panel
                    and (p.kind, p.step) == line
                    and p.depth == depth
                    and p.completed
                    and p.accuracy is not None
                ]
                if not acc:
                    continue
                ax.scatter([depth] * len(acc), acc, s=12, color=colour, alpha=0.35, linewidths=0)
                xs.append(depth)
                means.append(float(np.mean(acc)))
                stds.append(float(np.std(acc, ddof=1)) if len(acc) > 1 else 0.0)
            if xs:
                dashed = "-" if uses_step_size(line[0]) else "--"  # a kind without h (plain): dashed
                ax.errorbar(
                    xs,
                    means,
                    yerr=stds,
                    color=colour,
                    marker=marker,
                    linestyle=dashed,
                    capsize=3,
                    markersize=5,
                    label=_line_label(*line),
                )
        ax.set_xscale("log", base=2)
        ax.set_xticks(depths, [str(d) for d in depths])
        ax.minorticks_off()
        ax.axhline(0.5, color="#8c8c8c", linewidth=0.8, linestyle=":")
        ax.set_xlabel("depth L (hidden layers)")
        if panel_keys:
            ax.set_title(_panel_title(panel_keys, panel), fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (mean ± std over seeds)")
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:
        for h, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    if handles:
        fig.legend(handles, labels, loc="outside right center", fontsize=8, title="network", title_fontsize=8)
    fig.suptitle(
        "test accuracy against depth\n(dots: single seeds; dotted line: chance, 2 classes)", fontsize=10
    )
    return fig


def accuracy_heatmap(points: Sequence[Point], panel_keys: Sequence[str]):  # -> Figure
    """Mean test accuracy over seeds on a depth x step-size grid, one panel per (panel, kind)."""
    panels = _order([p.panel for p in points])
    kinds = sorted({p.kind for p in points})
    depths = _order([p.depth for p in points])
    done = [p.accuracy for p in points if p.completed and p.accuracy is not None]
    vmin = min([0.5, *done]) if done else 0.5
    fig = new_figure(1.0 + 3.2 * len(kinds), 0.8 + 0.45 * len(depths) * len(panels) + 0.8 * len(panels))
    axes = fig.subplots(len(panels), len(kinds), squeeze=False)
    image = None
    for r, panel in enumerate(panels):
        for c, kind in enumerate(kinds):
            ax = axes[r][c]
            steps = _order([p.step for p in points if p.kind == kind])
            grid = np.full((len(depths), len(steps)), np.nan)
            spread = np.full_like(grid, np.nan)
            for i, depth in enumerate(depths):
                for j, step in enumerate(steps):
                    acc = [
                        p.accuracy
                        for p in points
                        if (p.panel, p.kind, p.depth, p.step) == (panel, kind, depth, step)
                        and p.completed
                        and p.accuracy is not None
                    ]
                    if acc:
                        grid[i, j] = np.mean(acc)
                        spread[i, j] = np.std(acc, ddof=1) if len(acc) > 1 else 0.0
            ax.set_facecolor("#d9d9d9")  # no completed run: grey
            image = ax.imshow(grid, cmap=SCALAR_CMAP, vmin=vmin, vmax=1.0, aspect="auto", origin="lower")
            for i in range(len(depths)):
                for j in range(len(steps)):
                    if np.isnan(grid[i, j]):
                        text, colour = "no run\ncompleted", "black"
                    else:
                        text = f"{grid[i, j]:.3f}\n±{spread[i, j]:.3f}"
                        colour = "white" if grid[i, j] < vmin + 0.6 * (1.0 - vmin) else "black"
                    ax.text(j, i, text, ha="center", va="center", fontsize=7, color=colour)
            ax.set_xticks(range(len(steps)), ["none" if s is None else f"{s:g}" for s in steps])
            ax.set_yticks(range(len(depths)), [str(d) for d in depths])
            ax.set_xlabel("step size h" if uses_step_size(kind) else f"step size ({kind}: none)")
            ax.set_ylabel("depth L")
            title = kind if not panel_keys else f"{kind}\n{_panel_title(panel_keys, panel)}"
            ax.set_title(title, fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=axes, label="test accuracy (mean over seeds)", shrink=0.8)
    fig.suptitle("mean test accuracy (± std over seeds)", fontsize=10)
    return fig


@dataclass(frozen=True)
class LogVolumeMap:
    """The input log-volume element of one run on its input grid."""

    x: np.ndarray  # (ny, nx) first input coordinate of the grid points
    y: np.ndarray  # (ny, nx) second input coordinate
    logvol: np.ndarray  # (ny, nx) 1/2 log det g_in (input units); -inf where singular
    data: np.ndarray  # (N, 2) the dataset's points
    seed: Any


def read_log_volume(path: Path, seed: Any = None) -> LogVolumeMap | None:
    """The input log-volume element on the input grid of the run in `path`; None when absent.

    The saved `grid_input_log_volume` of geometry.npz
    (`riemexp.analyses.geometry_file.saved_input_log_volume`): the same quantity as the run's own
    input-space heat map, -inf only where a layer is singular.
    Read without torch (files of earlier versions load it, for their model.pt's input scale).
    """
    from riemexp.analyses.geometry_file import load_geometry
    from riemexp.errors import RunFolderError

    try:
        arrays = load_geometry(path)
        logvol = run_input_log_volume(path, arrays)  # (G,)
    except RunFolderError as err:  # missing or unreadable: leave the panel empty, say why
        log.warning("%s", err)
        return None
    ny, nx = (int(v) for v in arrays["grid_shape"])
    grid = arrays["grid_points"].reshape(ny, nx, 2)
    return LogVolumeMap(grid[..., 0], grid[..., 1], logvol.reshape(ny, nx), arrays["data_points"], seed)


def run_input_log_volume(path: Path, arrays: Any) -> np.ndarray:
    """`saved_input_log_volume` of the geometry arrays of the run folder `path` (G,): its model.pt's
    input scale (torch) is read only for files of earlier versions."""
    from riemexp.analyses.geometry_file import saved_input_log_volume

    def input_scale() -> Any:
        from riemexp.runner import read_input_scale

        return read_input_scale(path)

    return saved_input_log_volume(arrays, input_scale)


def input_log_volume_figure(points: Sequence[Point], panel_keys: Sequence[str]):  # -> Figure | None
    """1/2 log det g_0 (input units) on the input grid: one panel per configuration, by swept values."""
    rows = sorted({(p.panel, p.kind, p.step) for p in points}, key=lambda r: (repr(r[0]), r[1], r[2] or -1.0))
    depths = _order([p.depth for p in points])
    maps: dict[tuple[Any, ...], LogVolumeMap] = {}
    for p in sorted(points, key=lambda p: (p.seed is None, p.seed if isinstance(p.seed, int) else 0)):
        key = (p.panel, p.kind, p.step, p.depth)
        if p.completed and key not in maps:
            found = read_log_volume(p.path, p.seed)
            if found is not None:
                maps[key] = found
    if not maps:
        return None
    values = np.concatenate([m.logvol[np.isfinite(m.logvol)] for m in maps.values()])
    # the run's own input-space heat map uses the same scale (riemexp.plotting.style.log_volume_scale)
    cmap, norm, scale = log_volume_scale(values)
    first = next(iter(maps.values()))
    aspect = float(np.ptp(first.y)) / max(float(np.ptp(first.x)), 1e-12)  # panel height / width
    side = 2.2
    # at least 7 in wide, so that the title and the row labels fit beside a few columns
    fig = new_figure(max(1.6 + side * len(depths), 7.0), 1.2 + side * min(max(aspect, 0.3), 3.0) * len(rows))
    axes = fig.subplots(len(rows), len(depths), squeeze=False)
    mesh = None
    for r, (panel, kind, step) in enumerate(rows):
        for c, depth in enumerate(depths):
            ax = axes[r][c]
            entry = maps.get((panel, kind, step, depth))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_facecolor(SINGULAR_COLOUR)  # grid points with a singular metric (-inf) show this grey
            if entry is None:
                ax.text(0.5, 0.5, "no geometry", ha="center", va="center", transform=ax.transAxes, fontsize=8)
            else:
                shown = np.ma.masked_invalid(entry.logvol)
                mesh = ax.pcolormesh(entry.x, entry.y, shown, cmap=cmap, norm=norm, shading="nearest")
                ax.scatter(entry.data[:, 0], entry.data[:, 1], s=0.6, color="black", alpha=0.35, linewidths=0)
                ax.set_aspect("equal")
                ax.text(0.02, 0.02, f"seed {entry.seed}", transform=ax.transAxes, fontsize=6, color="#404040")
            if r == 0:
                ax.set_title(f"L = {depth}", fontsize=9)
            if c == 0:
                label = _line_label(kind, step)
                if panel_keys:
                    label += "\n" + _panel_title(panel_keys, panel)
                ax.set_ylabel(label, fontsize=8)
    if mesh is not None:
        fig.colorbar(mesh, ax=axes, label=f"½ log det g₀ (input units){scale}", shrink=0.8)
    fig.suptitle(
        "input-space log-volume element ½ log det g₀ (input units)\n"
        "first completed seed per configuration; x₁ across, x₂ up, equal aspect\n"
        "dots: data; grey: singular metric",
        fontsize=10,
    )
    return fig


def draw_sweep_figures(summary: Summary, formats: Sequence[str] = ("png",)) -> list[Path]:
    """Write the sweep's figures into SWEEP_DIR/plots/; return the files (none without depth data)."""
    points, panel_keys = _points(summary)
    if not points:
        return []
    out = summary.sweep_dir / PLOTS
    files: list[Path] = []
    for name, make in (
        ("accuracy_vs_depth", accuracy_vs_depth),
        ("accuracy_heatmap", accuracy_heatmap),
        ("input_log_volume", input_log_volume_figure),
    ):
        fig = make(points, panel_keys)
        if fig is not None:
            files += save_figure(fig, out / name, formats)
    return files
