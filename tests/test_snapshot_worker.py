"""Snapshots recorded beside training (riemexp.analyses.snapshot_worker): the same arrays as recorded
in the training loop, the figures drawn by the worker, and a worker that dies, fails or outlives
its run (kill -9, SIGTERM) never leaves a run that pretends to be complete or a process behind."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from riemexp import lock
from riemexp.analyses import snapshot_worker
from riemexp.analyses.snapshots import SnapshotRecorder, load_snapshots
from riemexp.config import (
    AdamConfig,
    DatasetConfig,
    GeometryConfig,
    NetworkConfig,
    OdeConfig,
    PlotConfig,
    RefineConfig,
)
from riemexp.errors import RiemexpError
from riemexp.figures import can_fork
from riemexp.runner import run
from riemexp.threads import available_cpus
from tests.conftest import tiny_config, wait_for_phase
from tests.test_faults import LONG, SMALL, finish, leftovers, metrics, start
from tests.test_sweep_faults import alive, descendants, wait_until

pytestmark = pytest.mark.skipif(
    not can_fork() or available_cpus() < 2, reason="the worker needs fork and two CPUs"
)
SNAPSHOT_FIGURES = ("snapshots.png", "snapshots.gif", "boundary_curves.png")


def snapshot_config(plots: bool = True, refined: bool = False):
    """A tiny circles run with 4 snapshots; refined: depth 2 grown to 4 during training (riemexp.refine)."""
    return tiny_config(
        dataset=DatasetConfig(name="circles", n_samples=160),
        network=NetworkConfig(kind="residual", depth=4),
        optim=AdamConfig(epochs=12),
        geometry=GeometryConfig(grid_density=20, snapshot_density=20, snapshots=4),
        plot=PlotConfig(enabled=plots, glyph_density=4),
        ode=OdeConfig(enabled=False),
        refine=RefineConfig(from_depth=2 if refined else None, epochs=6),
    )


@pytest.fixture
def workers(monkeypatch: pytest.MonkeyPatch) -> list[snapshot_worker.SnapshotWorker]:
    """Every SnapshotWorker started while the test runs."""
    started: list[snapshot_worker.SnapshotWorker] = []
    real = snapshot_worker.SnapshotWorker.__init__

    def init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        real(self, *args, **kwargs)
        started.append(self)

    monkeypatch.setattr(snapshot_worker.SnapshotWorker, "__init__", init)
    return started


@pytest.mark.parametrize("refined", [False, True])
def test_the_worker_records_what_the_training_loop_records_and_draws_the_figures(
    tmp_path: Path, workers: list, refined: bool
) -> None:
    cfg = snapshot_config(refined=refined)
    alone = run(cfg, tmp_path / "in-the-loop", cpus=1)  # one CPU: recorded in the training loop
    assert workers == []
    beside = run(cfg, tmp_path / "beside", cpus=2)
    assert len(workers) == 1 and not workers[0].process.is_alive()
    a, b = load_snapshots(tmp_path / "in-the-loop"), load_snapshots(tmp_path / "beside")
    assert set(a) == set(b)
    for name in a:  # bit for bit, NaN where NaN
        assert a[name].dtype == b[name].dtype and np.array_equal(a[name], b[name], equal_nan=True), name
    for name in ("history.csv", "tables/snapshots.csv", "tables/boundary.csv"):
        assert (tmp_path / "in-the-loop" / name).read_bytes() == (tmp_path / "beside" / name).read_bytes()
    assert alone["test_accuracy"] == beside["test_accuracy"]
    # the worker drew the snapshot figures, once, and the run waited for them
    for name in SNAPSHOT_FIGURES:
        assert (tmp_path / "beside" / "plots" / name).stat().st_size > 0
        assert f"plots/{name}" in beside["plots"]
    assert beside["plots"].count("plots/snapshots.gif") == 1
    assert {"figure:snapshots", "figure:snapshots_gif", "figure:boundary_curves"} <= set(
        beside["figure_seconds"]
    )
    assert beside["snapshot_seconds"] > 0  # the worker's own recording time


def test_a_worker_without_figures_records_and_ends(tmp_path: Path, workers: list) -> None:
    done = run(snapshot_config(plots=False), tmp_path / "run", cpus=2)
    assert done["status"] == "completed" and len(workers) == 1
    assert not workers[0].process.is_alive() and len(load_snapshots(tmp_path / "run")["epoch"]) == 5


def _dies(self, model, epoch):  # type: ignore[no-untyped-def]
    os.kill(os.getpid(), signal.SIGKILL)


def _fails(self, model, epoch):  # type: ignore[no-untyped-def]
    raise ValueError("no snapshot today")


@pytest.mark.parametrize(
    "record, error",
    [
        (_dies, r"recording the training snapshots failed: its process ended with exit code -9"),
        (_fails, r"no snapshot today"),
    ],
)
def test_a_worker_that_dies_or_fails_fails_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: list, record, error: str
) -> None:
    """The worker is forked: a recorder that dies (kill -9) or raises there ends the run "failed",
    with the worker's own error or the exit code it ended with; no snapshots.npz, no figures."""
    monkeypatch.setattr(SnapshotRecorder, "record", record)
    with pytest.raises((RiemexpError, ValueError), match=error):
        run(snapshot_config(), tmp_path / "run", cpus=2)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["status"] == "failed"
    assert not (tmp_path / "run" / "snapshots.npz").exists() and not (tmp_path / "run" / "plots").exists()
    assert len(workers) == 1 and not workers[0].process.is_alive()


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the worker in Linux's /proc")
@pytest.mark.parametrize(
    "phase, signum", [("epoch", signal.SIGKILL), ("epoch", signal.SIGTERM), ("geometry", signal.SIGTERM)]
)
def test_a_run_killed_leaves_no_worker(tmp_path: Path, phase: str, signum: int) -> None:
    """kill -9 while training: the worker sees its run gone and ends by itself. SIGTERM while
    training, or while the worker draws the snapshot figures: the run stops it, and no half-written
    file is left."""
    run_dir, log = tmp_path / "run", tmp_path / "phases"
    training = phase == "epoch"
    proc = start(
        "train",
        *SMALL,
        *(LONG if training else ["plot.enabled=true"]),
        "geometry.snapshots=5",
        f"hydra.run.dir={run_dir}",
        phase_log=log,
        hold=None if training else phase,
    )
    wait_for_phase(proc, log, phase)
    (worker,) = descendants(proc.pid)  # the snapshot worker (the run's other figures come later)
    proc.send_signal(signum)
    finish(proc)
    if signum == signal.SIGKILL:  # the worker, alive a moment longer, does not hold the folder
        assert lock.run_state(run_dir) == "dead"
    wait_until(lambda: not alive(worker), "the snapshot worker to end")
    saved = metrics(run_dir)
    assert saved["status"] == ("running" if signum == signal.SIGKILL else "interrupted")
    if signum == signal.SIGTERM:
        assert leftovers(run_dir) == []
    if training:
        assert not (run_dir / "snapshots.npz").exists()
