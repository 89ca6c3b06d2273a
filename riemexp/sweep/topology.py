"""The topology study of `riemexp sweep grid=topology`: disc and ring, width 2 and 3, free and certified.

`applies(summary)` recognises a sweep on dataset=circles whose runs measured the noise-free disc
and ring (riemexp.topology, the `topology` analysis step); `write_topology(summary)` then writes
into the sweep folder:

    topology.csv|md        one row per (width, network.lipschitz): runs, completed, certified (runs
                           whose every layer is a proven homeomorphism), test accuracy (mean, min),
                           disc_error and ring_error (mean, min, max over seeds), the smallest
                           boundary distances (mean and min), folded_fraction (mean)
    topology_runs.csv|md   one row per run: the same measurements, with max_contraction
    plots/topology.png     decision regions of the first completed seed of every group, with the
                           noise-free disc and ring drawn over them

"free" in the lipschitz column means network.lipschitz = null.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from riemexp.sweep.summary import Job, Summary, mean
from riemexp.tables import write_table

STEM = "topology"
MEASURES = ("disc_error", "ring_error", "boundary_distance_disc", "boundary_distance_ring")
COLUMNS = [
    "width",
    "lipschitz",
    "runs",
    "completed",
    "certified",
    "test_accuracy_mean",
    "test_accuracy_min",
    "disc_error_mean",
    "disc_error_max",
    "ring_error_mean",
    "ring_error_min",
    "ring_error_max",
    "boundary_distance_disc_mean",
    "boundary_distance_disc_min",
    "boundary_distance_ring_mean",
    "boundary_distance_ring_min",
    "folded_fraction_mean",
]
RUN_COLUMNS = [
    "width",
    "lipschitz",
    "seed",
    "test_accuracy",
    "certified_invertible",
    "max_contraction",
    *MEASURES,
    "folded_fraction",
]


def applies(summary: Summary) -> bool:
    """True for a sweep on circles with at least one run that measured the disc and ring."""
    jobs = [j for j in summary.jobs if j.config]
    return (
        bool(jobs)
        and all(j.config.get("dataset.name") == "circles" for j in jobs)
        and any("disc_error" in j.metrics for j in jobs)
    )


def _setting(job: Job) -> str:
    value = job.config.get("network.lipschitz")
    return "free" if value is None else f"{float(value):g}"


def _numbers(values: Sequence[Any]) -> list[float]:
    nums = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return [v for v in nums if math.isfinite(v)]


def _min(values: Sequence[Any]) -> float | None:
    nums = _numbers(values)
    return min(nums) if nums else None


def _max(values: Sequence[Any]) -> float | None:
    nums = _numbers(values)
    return max(nums) if nums else None


def groups(summary: Summary) -> dict[tuple[int, str], list[Job]]:
    """{(width, lipschitz setting): jobs}, widths ascending, free before constrained."""
    out: dict[tuple[int, str], list[Job]] = {}
    for job in summary.jobs:
        if job.config:
            out.setdefault((int(job.config.get("network.width", 2)), _setting(job)), []).append(job)
    return dict(sorted(out.items(), key=lambda kv: (kv[0][0], kv[0][1] != "free", kv[0][1])))


def rows(summary: Summary) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(topology.csv rows, topology_runs.csv rows)."""
    table, runs = [], []
    for (width, setting), jobs in groups(summary).items():
        done = [j for j in jobs if j.status == "completed"]
        m = {
            key: [j.metrics.get(key) for j in done] for key in (*MEASURES, "test_accuracy", "folded_fraction")
        }
        row: dict[str, Any] = {
            "width": width,
            "lipschitz": setting,
            "runs": len(jobs),
            "completed": len(done),
            "certified": sum(j.metrics.get("certified_invertible") is True for j in done),
            "test_accuracy_mean": mean(_numbers(m["test_accuracy"])),
            "test_accuracy_min": _min(m["test_accuracy"]),
            "disc_error_mean": mean(_numbers(m["disc_error"])),
            "disc_error_max": _max(m["disc_error"]),
            "ring_error_mean": mean(_numbers(m["ring_error"])),
            "ring_error_min": _min(m["ring_error"]),
            "ring_error_max": _max(m["ring_error"]),
            "folded_fraction_mean": mean(_numbers(m["folded_fraction"])),
        }
        for name in ("boundary_distance_disc", "boundary_distance_ring"):
            row[f"{name}_mean"] = mean(_numbers(m[name]))
            row[f"{name}_min"] = _min(m[name])
        table.append(row)
        for job in sorted(done, key=lambda j: str(j.config.get("seed"))):
            runs.append(
                {
                    "width": width,
                    "lipschitz": setting,
                    "seed": job.config.get("seed"),
                    **{key: job.metrics.get(key) for key in RUN_COLUMNS[3:]},
                }
            )
    return table, runs


def write_topology(summary: Summary, formats: Sequence[str] = ("png",)) -> list[Path]:
    """Write topology.csv|md, topology_runs.csv|md and plots/topology.png; return the paths."""
    from riemexp.plotting.style import save_figure

    table, runs = rows(summary)
    files = write_table(summary.sweep_dir / STEM, table, COLUMNS)
    files += write_table(summary.sweep_dir / f"{STEM}_runs", runs, RUN_COLUMNS)
    fig = _figure(summary)
    if fig is not None:
        files += save_figure(fig, summary.sweep_dir / "plots" / STEM, formats)
    return files


def _figure(summary: Summary) -> Any:
    from riemexp.errors import RunFolderError
    from riemexp.plotting.topology import topology_figure
    from riemexp.runner import load_run
    from riemexp.topology import BOX

    panels = {}
    for (width, setting), jobs in groups(summary).items():
        done = sorted((j for j in jobs if j.status == "completed"), key=lambda j: str(j.config.get("seed")))
        if not done:
            continue
        try:
            run = load_run(done[0].path)
        except RunFolderError:
            continue
        label = "free" if setting == "free" else f"lipschitz {setting}"
        panels[f"width {width}, {label} (seed {done[0].config.get('seed')})"] = _panel(run, done[0].metrics)
    return topology_figure(panels, BOX) if panels else None


def _panel(run: Any, metrics: dict[str, Any], density: int = 500) -> dict[str, Any]:
    """The arrays of one `topology_figure` panel: the logit difference on a lattice over [-BOX, BOX]^2."""
    from riemexp.topology import BOX, logit_difference

    ticks = np.linspace(-BOX, BOX, density)
    gx, gy = np.meshgrid(ticks, ticks)
    d = logit_difference(run.model, np.stack([gx.ravel(), gy.ravel()], 1)).reshape(density, density)
    return {
        "gx": gx,
        "gy": gy,
        "d": d,
        "x": run.data.x.numpy(),
        "y": run.data.y.numpy(),
        "class_names": list(run.data.class_names),
        "factor": run.config.dataset.factor,
        "metrics": metrics,
    }


__all__ = ["COLUMNS", "RUN_COLUMNS", "applies", "groups", "rows", "write_topology"]
