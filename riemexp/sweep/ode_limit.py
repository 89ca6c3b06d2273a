"""The depth-limit study of `riemexp sweep grid=ode_limit`: networks at fixed T = L h as L grows.

`riemexp sweep` calls it after its own summary and figures (riemexp.commands.sweep.aggregate).
`applies(summary)` recognises such a sweep from its jobs (all of one kind with an ODE, residual in
the preset; two or more depths; one total time T = L h); `write_ode_limit(summary)` then writes
into the sweep folder:

    ode_limit.csv|md          one row per depth L (columns below), mean and sample std over seeds
    plots/ode_limit.png       accuracy, ODE gap and the change of g_0 between consecutive depths vs L
    plots/ode_limit_log_volume.png
                              the input log-volume element on the geometry grid (input units,
                              `riemexp.analyses.geometry.saved_input_log_volume`),
                              one heatmap per depth side by side (first completed seed), one colour scale

Columns of ode_limit.csv: depth, step_size, total_time, runs, completed, test_accuracy_mean/_std,
ode_gap_mean/_std, ode_order_mean, input_log_volume_mean (mean over the grid of the input log-volume
element 1/2 log det g_in, in input units, then over seeds), g0_relative_change_mean/_std and
log_volume_change_mean (against the next smaller depth of the same seed, on the same grid:

    g0_relative_change = median over grid points of |g_0^(L) - g_0^(L')|_F / |g_0^(L')|_F,
    log_volume_change  = mean over grid points of |1/2 log det g_in^(L) - 1/2 log det g_in^(L')|,

L' the previous depth; empty for the smallest depth, or when either run has no geometry.npz or the
two grids differ). g_0 is the 2 x 2 data-plane block of the metric in layer-0 coordinates
(`grid_metric[0]` of geometry.npz); the log volumes are in input units, which differ from layer-0
units by a constant that cancels in the change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from riemexp.errors import RunFolderError
from riemexp.sweep.summary import Job, Summary, mean, sample_std
from riemexp.tables import write_table

STEM = "ode_limit"
COLUMNS = [
    "depth",
    "step_size",
    "total_time",
    "runs",
    "completed",
    "test_accuracy_mean",
    "test_accuracy_std",
    "ode_gap_mean",
    "ode_gap_std",
    "ode_order_mean",
    "input_log_volume_mean",
    "g0_relative_change_mean",
    "g0_relative_change_std",
    "log_volume_change_mean",
]


def _depth(job: Job) -> int | None:
    value = job.config.get("network.depth")
    return int(value) if isinstance(value, (int, float)) else None


def _total_time(job: Job) -> float | None:
    depth, h = _depth(job), job.config.get("network.step_size")
    return depth * float(h) if depth is not None and isinstance(h, (int, float)) else None


def one_total_time(summary: Summary) -> bool:
    """True for a sweep of one network kind with an ODE (e.g. residual), all at one total time T = L h."""
    jobs = [j for j in summary.jobs if j.config]
    if _kind(summary) is None:
        return False
    times = [t for t in (_total_time(j) for j in jobs) if t is not None]
    if len(times) < len(jobs):
        return False
    return max(times) - min(times) <= 1e-9 * max(abs(t) for t in times)


def _kind(summary: Summary) -> str | None:
    """The one network kind of the sweep's jobs when it has an ODE, else None."""
    from riemexp.nets.registry import KINDS

    kinds = {j.config.get("network.kind") for j in summary.jobs if j.config}
    kind = KINDS.get(str(kinds.pop())) if len(kinds) == 1 else None
    return kind.name if kind is not None and kind.ode_order is not None else None


def applies(summary: Summary) -> bool:
    """True for a sweep of one network kind with an ODE at one total time T = L h, with two or more
    depths trained from scratch (refined jobs, refine.from_depth set, are riemexp.sweep.refine's)."""
    scratch = {_depth(j) for j in summary.jobs if j.config and j.config.get("refine.from_depth") is None}
    return one_total_time(summary) and len(scratch) >= 2


def _finite(values: Sequence[Any]) -> list[float]:
    """The finite numbers among values (None, bools, nan and inf left out)."""
    nums = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return [v for v in nums if math.isfinite(v)]


def _mean(values: Sequence[Any]) -> float | None:
    return mean(_finite(values))


def _std(values: Sequence[Any]) -> float | None:
    return sample_std(_finite(values))


def _grid_metric(job: Job) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(grid_points (G, 2), grid_shape (2,), g_0 block (G, 2, 2), input log volume (G,)) of a job, or None.

    g_0 in layer-0 coordinates; the log volume in input units, as saved by the run
    (`saved_input_log_volume`: -inf only where a layer is singular).
    """
    from riemexp.analyses.geometry_file import load_geometry
    from riemexp.sweep.figures import run_input_log_volume

    try:
        arrays = load_geometry(job.path)
        logvol = run_input_log_volume(job.path, arrays)
    except RunFolderError:
        return None
    g0 = arrays["grid_metric"][0][:, :2, :2]
    return arrays["grid_points"], arrays["grid_shape"], g0, logvol


def _changes(new: tuple, old: tuple) -> tuple[float, float] | None:
    """(g0 relative change, log-volume change) between two runs' grid metrics; None if grids differ."""
    if new[0].shape != old[0].shape or not np.allclose(new[0], old[0], rtol=1e-12, atol=1e-12):
        return None
    diff = np.linalg.norm(new[2] - old[2], axis=(1, 2)) / np.linalg.norm(old[2], axis=(1, 2))
    dvol = np.abs(new[3] - old[3])
    dvol = dvol[np.isfinite(dvol)]  # a folding layer gives log vol = -inf: left out
    return float(np.median(diff)), float(np.mean(dvol)) if len(dvol) else math.nan


def depth_rows(summary: Summary) -> tuple[list[dict[str, Any]], dict[int, tuple]]:
    """Rows of ode_limit.csv (sorted by depth) and {depth: grid metric of the first completed seed}."""
    # the from-scratch path (refined jobs, refine.from_depth set, are riemexp.sweep.refine's)
    jobs = [j for j in summary.jobs if j.config.get("refine.from_depth") is None]
    depths = sorted({d for d in map(_depth, jobs) if d is not None})
    by_seed: dict[Any, dict[int, Job]] = {}
    for job in jobs:
        depth = _depth(job)
        if job.status == "completed" and depth is not None:
            by_seed.setdefault(job.config.get("seed"), {})[depth] = job
    metrics_cache: dict[str, tuple | None] = {}

    def metric_of(job: Job) -> tuple | None:
        if str(job.path) not in metrics_cache:
            metrics_cache[str(job.path)] = _grid_metric(job)
        return metrics_cache[str(job.path)]

    rows: list[dict[str, Any]] = []
    shown: dict[int, tuple] = {}
    for i, depth in enumerate(depths):
        members = [j for j in jobs if _depth(j) == depth]
        ok = [j for j in members if j.status == "completed"]
        first = members[0]
        row: dict[str, Any] = {
            "depth": depth,
            "step_size": first.config.get("network.step_size"),
            "total_time": _total_time(first),
            "runs": len(members),
            "completed": len(ok),
            "test_accuracy_mean": _mean([j.metrics.get("test_accuracy") for j in ok]),
            "test_accuracy_std": _std([j.metrics.get("test_accuracy") for j in ok]),
            "ode_gap_mean": _mean([j.metrics.get("ode_gap") for j in ok]),
            "ode_gap_std": _std([j.metrics.get("ode_gap") for j in ok]),
            "ode_order_mean": _mean([j.metrics.get("ode_order") for j in ok]),
        }
        grids = [g for g in (metric_of(j) for j in ok) if g is not None]
        row["input_log_volume_mean"] = _mean([float(np.mean(g[3][np.isfinite(g[3])])) for g in grids])
        if grids:
            shown[depth] = grids[0]
        changes = []
        if i > 0:
            for seed_jobs in by_seed.values():
                new, old = seed_jobs.get(depth), seed_jobs.get(depths[i - 1])
                new_metric = None if new is None else metric_of(new)
                old_metric = None if old is None else metric_of(old)
                if new_metric is None or old_metric is None:
                    continue
                change = _changes(new_metric, old_metric)
                if change is not None:
                    changes.append(change)
        row["g0_relative_change_mean"] = _mean([c[0] for c in changes])
        row["g0_relative_change_std"] = _std([c[0] for c in changes])
        row["log_volume_change_mean"] = _mean([c[1] for c in changes])
        rows.append(row)
    return rows, shown


def write_ode_limit(summary: Summary, formats: Sequence[str] = ("png",)) -> list[Path]:
    """Write ode_limit.csv|md and the two figures into the sweep folder; return the paths."""
    from riemexp.plotting.style import save_figure
    from riemexp.plotting.trajectories import depth_limit_figure, log_volume_panels

    rows, shown = depth_rows(summary)
    stem = summary.sweep_dir / STEM
    files = write_table(stem, rows, COLUMNS)
    fig = depth_limit_figure(rows, _kind(summary) or "residual")
    files += save_figure(fig, summary.sweep_dir / "plots" / STEM, formats)
    if shown:
        steps = {r["depth"]: r["step_size"] for r in rows}
        panels = {f"L = {d}, h = {steps[d]:g}": (g[0], g[1], g[3]) for d, g in shown.items()}
        title = "input log-volume element 1/2 log det g_0 (first completed seed of each depth)"
        fig = log_volume_panels(panels, title)
        files += save_figure(fig, summary.sweep_dir / "plots" / f"{STEM}_log_volume", formats)
    return files


__all__ = ["COLUMNS", "applies", "depth_rows", "write_ode_limit"]
