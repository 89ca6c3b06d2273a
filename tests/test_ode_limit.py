"""riemexp.sweep.ode_limit: the depth-limit aggregation on a tiny sweep folder of real runs."""

from __future__ import annotations

import numpy as np
import pytest

from riemexp.config import GeometryConfig, NetworkConfig, OdeConfig, PlotConfig
from riemexp.geometry import load_geometry
from riemexp.run import run
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
    # seed 0: jobs 0 (L = 2) and 1 (L = 4); seed 1: jobs 2 and 3
    changes = []
    for old, new in (("0", "1"), ("2", "3")):
        g_old = load_geometry(tmp_path / old)["grid_metric"][0]
        g_new = load_geometry(tmp_path / new)["grid_metric"][0]
        ratio = np.linalg.norm(g_new - g_old, axis=(1, 2)) / np.linalg.norm(g_old, axis=(1, 2))
        changes.append(float(np.median(ratio)))
    assert rows[1]["g0_relative_change_mean"] == pytest.approx(np.mean(changes), rel=1e-12)
    gaps = [job.metrics["ode_gap"] for job in summary.jobs if job.config["network.depth"] == 4]
    assert rows[1]["ode_gap_mean"] == pytest.approx(np.mean(gaps), rel=1e-12)
    assert sorted(shown) == [2, 4]
    files = ode_limit.write_ode_limit(summary)
    names = sorted(str(p.relative_to(tmp_path)) for p in files)
    assert names == ["ode_limit.csv", "ode_limit.md", "plots/ode_limit.png", "plots/ode_limit_log_volume.png"]
    assert (tmp_path / "ode_limit.csv").read_text().splitlines()[0] == ",".join(ode_limit.COLUMNS)


def test_ode_limit_does_not_apply_to_other_sweeps(tmp_path):
    assert not ode_limit.applies(tiny_sweep(tmp_path / "a", depths=(2,), seeds=(0,)))  # one depth
    assert not ode_limit.applies(tiny_sweep(tmp_path / "b", kind="plain", seeds=(0,)))
