"""Geometry through training (riemexp.analyses.snapshots): the snapshot file, its tables and figures, the
boundary numbers of a trained run, and that recording snapshots leaves training as it was."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from riemexp.analyses.snapshots import SEGMENT_ARRAYS, SNAPSHOT_ARRAYS, load_snapshots, snapshot_epochs
from riemexp.config import (
    AdamConfig,
    DatasetConfig,
    GeometryConfig,
    NetworkConfig,
    OdeConfig,
    PlotConfig,
    RefineConfig,
    load_config,
)
from riemexp.errors import ConfigError, MemoryNeedError, RunFolderError
from riemexp.preflight import check_run
from riemexp.runner import load_run, run
from riemexp.sweep.summary import summarize
from tests.conftest import tiny_config
from tests.test_sweep import fake_job

BOUNDARY_KEYS = (
    "boundary_spearman_grid",
    "boundary_band_ratio_grid",
    "boundary_spearman_data",
    "boundary_band_ratio_data",
)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_snapshot_epochs_spread_over_training():
    assert snapshot_epochs(300, 20) == [0, *range(15, 301, 15)]
    assert snapshot_epochs(5, 3) == [0, 2, 3, 5]
    assert snapshot_epochs(4, 20) == [0, 1, 2, 3, 4]  # more snapshots than epochs: every epoch
    assert snapshot_epochs(7, 1) == [0, 7]
    assert snapshot_epochs(300, 0) == []


def test_snapshot_options_are_checked():
    base = {"dataset": {"name": "moons"}}
    with pytest.raises(ConfigError, match="geometry.snapshots must be >= 0"):
        load_config({**base, "geometry": {"snapshots": -1}})
    with pytest.raises(ConfigError, match=r"geometry.boundary_band must lie in \(0, 0.5\)"):
        load_config({**base, "geometry": {"boundary_band": 0.5}})
    with pytest.raises(MemoryNeedError, match="expected fewer snapshots or a coarser snapshot grid"):
        # the memory a run would need is checked before its folder is made (riemexp.preflight)
        huge = {"snapshots": 1000, "snapshot_density": 400, "max_memory_gb": 1.0}
        check_run(load_config({**base, "geometry": huge}))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same tiny residual run (circles, 12 epochs) with 4 snapshots and without any."""
    root = tmp_path_factory.mktemp("snapshots")
    folders = []
    for count in (4, 0):
        cfg = tiny_config(
            dataset=DatasetConfig(name="circles", n_samples=160),
            optim=tiny_config().optim.__class__(epochs=12),
            geometry=GeometryConfig(grid_density=20, snapshot_density=20, snapshots=count),
            plot=PlotConfig(enabled=False),
            ode=OdeConfig(enabled=False),
        )
        folders.append(root / f"snapshots-{count}")
        run(cfg, folders[-1])
    return folders[0], folders[1]


def test_snapshots_leave_training_exactly_as_it_was(runs: tuple[Path, Path]):
    with_snapshots, without = runs
    assert (with_snapshots / "history.csv").read_bytes() == (without / "history.csv").read_bytes()
    a, b = load_run(with_snapshots).model.state_dict(), load_run(without).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    metrics = json.loads((without / "metrics.json").read_text())
    assert not (without / "snapshots.npz").exists() and "snapshot_seconds" not in metrics
    # the boundary numbers do not need snapshots
    assert all(key in metrics for key in BOUNDARY_KEYS)


def test_snapshot_file_tables_and_metrics(runs: tuple[Path, Path]):
    folder = runs[0]
    arrays = load_snapshots(folder)
    assert set(arrays) == set(SNAPSHOT_ARRAYS) | set(SEGMENT_ARRAYS)
    assert arrays["epoch"].tolist() == [0, 3, 6, 9, 12]
    S, G, L = 5, 400, 3
    assert arrays["grid_metric"].shape == (S, G, 2, 2) and arrays["grid_proba"].shape == (S, G, 2)
    assert arrays["grid_layer_det"].shape == (S, L, G) and arrays["det_negative_fraction"].shape == (S, L)
    np.testing.assert_allclose(arrays["grid_proba"].sum(-1), 1.0, rtol=1e-12)
    # g_0 is symmetric positive semi-definite; its log volume element is 1/2 log det
    g = arrays["grid_metric"]
    np.testing.assert_allclose(g, np.swapaxes(g, -1, -2), atol=1e-12)
    lv = arrays["grid_log_volume"]
    finite = np.isfinite(lv)
    np.testing.assert_allclose(lv[finite], 0.5 * np.log(np.linalg.det(g))[finite], rtol=1e-7, atol=1e-9)

    metrics = json.loads((folder / "metrics.json").read_text())
    history = read_csv(folder / "history.csv")
    # the last snapshot is the trained network: its scores are the run's, and its numbers too where
    # the snapshot grid is the geometry grid (geometry.snapshot_density == geometry.grid_density)
    assert arrays["train_loss"][-1] == pytest.approx(metrics["train_loss"], rel=1e-6)
    assert arrays["test_accuracy"][-1] == pytest.approx(float(history[-1]["test_accuracy"]))
    assert arrays["test_loss"][3] == pytest.approx(float(history[8]["test_loss"]), rel=1e-6)  # epoch 9
    for key in BOUNDARY_KEYS:
        value = metrics[key]
        assert value is None or math.isfinite(value)
        last = arrays[key][-1]
        assert (value is None and math.isnan(last)) or last == pytest.approx(value, rel=1e-9, abs=1e-12)
    assert metrics["boundary_band_width"] > 0 and metrics["snapshot_seconds"] > 0
    assert -1 <= metrics["boundary_spearman_grid"] <= 1 and metrics["boundary_band_ratio_grid"] > 0

    table = read_csv(folder / "tables" / "snapshots.csv")
    assert [int(r["epoch"]) for r in table] == [0, 3, 6, 9, 12]
    boundary = read_csv(folder / "tables" / "boundary.csv")
    assert [r["points"] for r in boundary] == ["grid", "data"]
    assert float(boundary[0]["spearman"]) == pytest.approx(metrics["boundary_spearman_grid"], rel=1e-12)
    assert (folder / "tables" / "boundary.md").read_text().startswith("| points |")
    # the layers table counts the grid points each layer reverses
    layers = read_csv(folder / "tables" / "layers.csv")
    fractions = [float(r["grid_det_negative_fraction"]) for r in layers[:-1]]
    np.testing.assert_allclose(fractions, arrays["det_negative_fraction"][-1], rtol=1e-12)
    assert layers[-1]["grid_det_negative_fraction"] == ""


def test_a_corrupt_snapshot_file_is_named(tmp_path: Path, runs: tuple[Path, Path]):
    bad = tmp_path / "snapshots.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(RunFolderError, match="snapshots.npz is corrupt"):
        load_snapshots(bad)
    arrays = dict(load_snapshots(runs[0]))
    arrays.pop("grid_proba")
    np.savez(bad, **arrays)
    with pytest.raises(RunFolderError, match="missing grid_proba"):
        load_snapshots(bad)
    with pytest.raises(RunFolderError, match="is missing"):
        load_snapshots(tmp_path / "nothing")


def test_sweep_summaries_group_the_boundary_numbers(tmp_path: Path):
    for num, (seed, rho) in enumerate([(0, -0.5), (1, -0.3)]):
        job = fake_job(tmp_path, num, 2, seed)
        metrics = json.loads((job / "metrics.json").read_text())
        numbers = dict.fromkeys(BOUNDARY_KEYS, 2.0) | {"boundary_spearman_grid": rho}
        (job / "metrics.json").write_text(json.dumps({**metrics, **numbers}))
    summary = summarize(tmp_path)
    assert [r["boundary_spearman_grid"] for r in summary.rows] == [-0.5, -0.3]
    (row,) = summary.grouped
    assert row["boundary_spearman_grid_mean"] == pytest.approx(-0.4)
    assert row["boundary_spearman_grid_std"] == pytest.approx(np.std([-0.5, -0.3], ddof=1))
    assert row["boundary_band_ratio_data_mean"] == pytest.approx(2.0)


def test_a_refined_run_is_snapshotted_through_every_stage(tmp_path: Path):
    """refine.from_depth: depth 2 for 6 epochs, then 4 and 8 for 3 epochs each. The snapshots span
    the whole training from initialisation; each one is of the network at that moment (the layers
    a shallower stage lacks are NaN); the last is the trained network; the figures say the depth."""
    cfg = tiny_config(
        dataset=DatasetConfig(name="circles", n_samples=160),
        network=NetworkConfig(kind="residual", depth=8),
        optim=AdamConfig(epochs=6),
        refine=RefineConfig(from_depth=2, epochs=3),
        geometry=GeometryConfig(grid_density=16, snapshot_density=16, snapshots=4),
        plot=PlotConfig(enabled=True, glyph_density=4),
        ode=OdeConfig(enabled=False),
    )
    metrics = run(cfg, tmp_path / "run", cpus=1)
    arrays = load_snapshots(tmp_path / "run")
    assert arrays["epoch"].tolist() == [0, 3, 6, 9, 12]  # 12 epochs in all: 6 + 3 + 3
    depths = np.isfinite(arrays["det_negative_fraction"]).sum(axis=1).tolist()
    assert depths == [2, 2, 2, 4, 8] and arrays["grid_layer_det"].shape == (5, 8, 256)
    assert (
        np.isnan(arrays["grid_layer_det"][:3, 2:]).all() and np.isfinite(arrays["grid_layer_det"][-1]).all()
    )
    for key in BOUNDARY_KEYS:
        value, last = metrics[key], arrays[key][-1]
        assert (value is None and math.isnan(last)) or last == pytest.approx(value, rel=1e-9, abs=1e-12)
    assert arrays["test_accuracy"][-1] == pytest.approx(metrics["test_accuracy"])
    table = read_csv(tmp_path / "run" / "tables" / "snapshots.csv")
    assert all(0 <= float(r["det_negative_fraction_max"]) <= 1 for r in table)
    from riemexp.plotting.snapshots import _panel_title

    assert "depth 2" in _panel_title(arrays, 0) and "depth 8" in _panel_title(arrays, 4)
    assert all((tmp_path / "run" / "plots" / f).stat().st_size for f in ("snapshots.png", "snapshots.gif"))


@pytest.mark.parametrize(("kind", "width"), [("plain", 2), ("residual", 2), ("residual", 3), ("c2", 2)])
def test_snapshot_log_volume_and_dets_agree_with_the_geometry(kind: str, width: int):
    """The recorder's shortcuts (det J_l in closed form at width 2, the data's log volume element from
    them) give what riemexp.geometry computes its own way."""
    from riemexp.analyses.snapshots import data_log_volume, grid_state
    from riemexp.config import NetworkConfig
    from riemexp.geometry import input_log_volume
    from riemexp.geometry.folds import layer_determinants
    from riemexp.nets.network import build_network

    torch.manual_seed(3)
    model = build_network(NetworkConfig(kind=kind, depth=4, width=width, step_size=0.7), 3)
    points = np.random.default_rng(0).uniform(-2, 2, size=(50, 2))
    expected = input_log_volume(model, points).numpy()
    np.testing.assert_allclose(data_log_volume(model, points), expected, rtol=1e-10, atol=1e-12)
    _, log_volume, proba, dets, classes = grid_state(model, points)
    np.testing.assert_allclose(log_volume, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dets, layer_determinants(model, points), rtol=1e-10, atol=1e-14)
    assert np.array_equal(classes, proba.argmax(axis=1))


def test_snapshots_keep_the_located_boundary_and_old_files_still_draw(
    tmp_path: Path, runs: tuple[Path, Path]
):
    """snapshots.npz holds each snapshot's boundary as located on the network (the figures draw it);
    a file written before it was kept still loads and draws (contours of the class probabilities)."""
    from riemexp.geometry import make_grid
    from riemexp.geometry.boundary import boundary_segments, network_classifier
    from riemexp.plotting.snapshots import snapshot_segments, snapshot_strip_figure, write_snapshot_gif

    folder = runs[0]
    arrays = load_snapshots(folder)
    offsets = arrays["boundary_offsets"]
    assert offsets.shape == (len(arrays["epoch"]) + 1,) and offsets[-1] == len(arrays["boundary_segments"])
    # the last snapshot is the trained network: its segments are the network's own boundary
    loaded = load_run(folder)
    ny, nx = (int(v) for v in arrays["grid_shape"])
    grid, _ = make_grid(arrays["data_points"], nx, loaded.config.geometry.margin)
    expected = boundary_segments(network_classifier(loaded.model), grid, (ny, nx))
    np.testing.assert_allclose(snapshot_segments(arrays, len(offsets) - 2), expected, atol=1e-12)
    lengths = np.linalg.norm(expected[:, 1] - expected[:, 0], axis=1).sum()
    assert lengths == pytest.approx(float(arrays["boundary_boundary_length"][-1]), rel=1e-9)

    old = {k: v for k, v in arrays.items() if k not in ("boundary_segments", "boundary_offsets")}
    np.savez(tmp_path / "old.npz", **old)
    old_arrays = load_snapshots(tmp_path / "old.npz")
    assert snapshot_segments(old_arrays, 0) is None
    snapshot_strip_figure(old_arrays, "an old run")
    write_snapshot_gif(old_arrays, "an old run", tmp_path / "old.gif")
    assert (tmp_path / "old.gif").stat().st_size > 0

    bad = dict(arrays) | {"boundary_offsets": offsets[::-1].copy()}
    np.savez(tmp_path / "bad.npz", **bad)
    with pytest.raises(RunFolderError, match="boundary_segments .* do not match"):
        load_snapshots(tmp_path / "bad.npz")
