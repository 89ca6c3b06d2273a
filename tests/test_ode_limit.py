"""riemexp.sweep.ode_limit: the depth-limit aggregation on a tiny sweep folder of real runs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from riemexp.analyses.geometry import load_geometry, save_geometry
from riemexp.config import GeometryConfig, NetworkConfig, OdeConfig, PlotConfig
from riemexp.runner import run
from riemexp.sweep import ode_limit
from riemexp.sweep.summary import summarize
from tests.conftest import tiny_config


def tiny_sweep(root, depths=(2, 4), seeds=(0, 1), kind="residual", total_time=2.0):
    n = 0
    for seed in seeds:
        for depth in depths:
            cfg = tiny_config(
                seed=seed,
                network=NetworkConfig(kind=kind, depth=depth, step_size=total_time / depth),
                geometry=GeometryConfig(grid_density=6),
                plot=PlotConfig(enabled=False),
                ode=OdeConfig(max_refinement=4),
            )
            run(cfg, root / str(n))
            n += 1
    return summarize(root)


@pytest.mark.slow
def test_ode_limit_rows_and_files(tmp_path):
    summary = tiny_sweep(tmp_path)
    assert ode_limit.applies(summary)
    rows, shown = ode_limit.depth_rows(summary)
    assert [r["depth"] for r in rows] == [2, 4]
    assert [r["step_size"] for r in rows] == [1.0, 0.5]
    assert all(r["total_time"] == 2.0 and r["completed"] == 2 for r in rows)
    assert rows[0]["g0_relative_change_mean"] is None
    gaps = [job.metrics["ode_gap"] for job in summary.jobs if job.config["network.depth"] == 4]
    assert rows[1]["ode_gap_mean"] == pytest.approx(np.mean(gaps), rel=1e-12)
    assert sorted(shown) == [2, 4]
    files = ode_limit.write_ode_limit(summary)
    names = sorted(str(p.relative_to(tmp_path)) for p in files)
    assert names == ["ode_limit.csv", "ode_limit.md", "plots/ode_limit.png", "plots/ode_limit_log_volume.png"]
    assert (tmp_path / "ode_limit.csv").read_text().splitlines()[0] == ",".join(ode_limit.COLUMNS)


@pytest.mark.slow
def test_ode_limit_changes_of_known_metrics(tmp_path):
    """g_0 = c I on the whole grid, c chosen per job: the changes are known in closed form."""
    summary = tiny_sweep(tmp_path)
    # seed 0: jobs 0 (L = 2) and 1 (L = 4); seed 1: jobs 2 and 3
    for job, c in (("0", 1.0), ("1", 1.21), ("2", 2.0), ("3", 2.2)):
        arrays = load_geometry(tmp_path / job)
        metric = arrays["grid_metric"].copy()
        metric[0] = c * np.eye(2)
        logvol = np.full(len(metric[0]), math.log(c))  # 1/2 log det (c I), input scale 1 (moons)
        arrays = {**arrays, "grid_metric": metric, "grid_input_log_volume": logvol}
        save_geometry(tmp_path / job / "geometry.npz", arrays)
    rows, _ = ode_limit.depth_rows(summary)
    # |c' I - c I|_F / |c I|_F = c'/c - 1: 0.21 (seed 0) and 0.1 (seed 1)
    assert rows[1]["g0_relative_change_mean"] == pytest.approx(0.155, rel=1e-12)
    assert rows[1]["g0_relative_change_std"] == pytest.approx(np.std([0.21, 0.1], ddof=1), rel=1e-12)
    # 1/2 log det (c I) = log c (moons: input scale 1): changes log 1.21 and log 1.1
    assert rows[1]["log_volume_change_mean"] == pytest.approx((math.log(1.21) + math.log(1.1)) / 2, rel=1e-12)
    assert rows[0]["input_log_volume_mean"] == pytest.approx(math.log(2.0) / 2, rel=1e-12)


def test_ode_limit_does_not_apply_to_other_sweeps(tmp_path):
    assert not ode_limit.applies(tiny_sweep(tmp_path / "a", depths=(2,), seeds=(0,)))  # one depth
    assert not ode_limit.applies(tiny_sweep(tmp_path / "b", kind="plain", seeds=(0,)))
