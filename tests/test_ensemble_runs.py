"""Ensemble members written into run folders, and sweeps trained as ensembles (hydra/launcher=ensemble).

A member's folder must be the folder of the same run trained alone: the same files, the same
bytes where a run is deterministic (history, weights, geometry, tables), the same metrics but for
when and where it ran; and every tool that reads run folders must work on it unchanged.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from riemexp.cli import main as cli_main
from riemexp.commands import ls as ls_command
from riemexp.config import NetworkConfig, OptimConfig
from riemexp.ensemble import member_datasets, split_ensemble, train_ensemble
from riemexp.errors import DivergedError
from riemexp.io import read_npz
from riemexp.runner import load_run, run
from riemexp.sweep import ensemble as sweep_ensemble
from riemexp.sweep.summary import summarize
from riemexp.train import train
from tests.conftest import tiny_config
from tests.test_ensemble import EXACT_PLATFORM

#: metrics.json keys that say when, where and how fast a run ran, not what it found
CIRCUMSTANCES = {
    "pid",
    "host",
    "started",
    "heartbeat",
    "finished",
    "timings",
    "train_seconds",
    "figure_seconds",
    "ensemble_members",
}

needs_exact = pytest.mark.skipif(not EXACT_PLATFORM, reason="bit-identity measured on x86-64 with MKL")


def small(**changes):
    cfg = tiny_config(plot=replace(tiny_config().plot, enabled=False))
    geometry = replace(cfg.geometry, grid_density=8, snapshots=0)
    cfg = replace(cfg, geometry=geometry, ode=replace(cfg.ode, max_refinement=2))
    return replace(cfg, **changes)


def files_of(folder: Path) -> list[str]:
    return sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and ".riemexp" not in p.name
    )


def assert_same_run_folder(mine: Path, theirs: Path) -> None:
    """Same files, same history, weights, geometry and tables, same metrics but the circumstances."""
    assert files_of(mine) == files_of(theirs)
    assert (mine / "history.csv").read_bytes() == (theirs / "history.csv").read_bytes()
    assert (mine / "config.yaml").read_bytes() == (theirs / "config.yaml").read_bytes()
    for name in files_of(mine):
        if name.startswith("tables/"):
            assert (mine / name).read_bytes() == (theirs / name).read_bytes(), name
    if (mine / "ode.npz").is_file():
        ode_a, ode_b = read_npz(mine / "ode.npz"), read_npz(theirs / "ode.npz")
        assert sorted(ode_a) == sorted(ode_b)
        for key, value in ode_a.items():
            np.testing.assert_array_equal(value, ode_b[key], err_msg=f"ode.npz {key}")
    a, b = load_run(mine), load_run(theirs)
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key]), key
    for key, value in a.geometry.items():
        np.testing.assert_array_equal(value, b.geometry[key], err_msg=key)
    ma = {k: v for k, v in a.metrics.items() if k not in CIRCUMSTANCES and not k.endswith("_seconds")}
    mb = {k: v for k, v in b.metrics.items() if k not in CIRCUMSTANCES and not k.endswith("_seconds")}
    assert ma == mb


@needs_exact
def test_a_member_writes_the_run_folder_of_the_run_trained_alone(tmp_path: Path, monkeypatch) -> None:
    """Member 0 records geometry snapshots during the ensemble's training (its snapshots.npz must be
    the single run's, bit for bit); member 1 records none. Both members' ODE is measured together
    (as a sweep's ensemble measures it) and written by their runs: tables/ode.csv, ode.npz and the
    ode_* metrics as the runs trained alone write them."""
    cfgs = [small(seed=s, network=NetworkConfig(depth=3, step_size=h)) for s, h in ((0, 0.5), (1, 0.2))]
    cfgs[0] = replace(cfgs[0], geometry=replace(cfgs[0].geometry, snapshots=3))
    datasets = member_datasets(cfgs)
    recorders = sweep_ensemble.snapshot_recorders(cfgs, datasets)
    members = split_ensemble(train_ensemble(cfgs, datasets, recorders=recorders))
    assert members[0].snapshots is not None and members[1].snapshots is None
    sweep_ensemble.measure_odes(members, datasets, torch.get_num_threads())
    assert all(m.analyses["ode"].converged for m in members)

    def measured_again(*args, **kwargs):
        raise AssertionError("a member's run measured its ODE again")

    for k, (cfg, member) in enumerate(zip(cfgs, members)):
        with monkeypatch.context() as patched:
            patched.setattr("riemexp.analyses.ode.measure", measured_again)
            metrics = run(cfg, tmp_path / f"member{k}", trained=member)
        run(cfg, tmp_path / f"alone{k}")
        assert (tmp_path / f"member{k}" / "ode.npz").is_file() and metrics["ode_order"] is not None
        assert metrics["status"] == "completed" and metrics["ensemble_members"] == 2
        assert "ensemble_members" not in json.loads((tmp_path / f"alone{k}" / "metrics.json").read_text())
        assert_same_run_folder(tmp_path / f"member{k}", tmp_path / f"alone{k}")
        assert (tmp_path / f"member{k}" / "report.md").is_file()
    mine, theirs = (read_npz(tmp_path / f"{side}0" / "snapshots.npz") for side in ("member", "alone"))
    assert sorted(mine) == sorted(theirs) and list(mine["epoch"]) == [0, 2, 3, 5]
    for key, value in mine.items():
        np.testing.assert_array_equal(value, theirs[key], err_msg=key)
    # a member trained without the snapshots its config asks for trains alone (and records them)
    (plain,) = split_ensemble(train_ensemble(cfgs[:1]))
    assert run(cfgs[0], tmp_path / "retrained", trained=plain).get("ensemble_members") is None
    assert (tmp_path / "retrained" / "snapshots.npz").is_file()
    # plot-metric draws a member's figures from its folder like any run's
    assert cli_main(["plot-metric", f"run={tmp_path / 'member1'}", f"out={tmp_path / 'figures'}"]) == 0
    assert {"layers.png", "input_space.png"} <= {p.name for p in (tmp_path / "figures").iterdir()}


def test_a_diverged_member_is_recorded_as_its_single_run_is(tmp_path: Path) -> None:
    diverging = small(
        network=NetworkConfig(depth=2, activation="identity"), optim=OptimConfig(name="sgd", lr=1e6, epochs=5)
    )
    fine = replace(diverging, optim=replace(diverging.optim, lr=0.05))
    members = split_ensemble(train_ensemble([fine, diverging]))
    assert members[1].status == "diverged" and members[0].status == "completed"
    with pytest.raises(DivergedError) as raised:
        run(diverging, tmp_path / "member", trained=members[1])
    with pytest.raises(DivergedError) as alone:
        run(diverging, tmp_path / "alone")
    assert str(raised.value) == str(alone.value)
    recorded = json.loads((tmp_path / "member" / "metrics.json").read_text())
    assert recorded["status"] == "diverged" and recorded["error"] == str(alone.value)
    assert (tmp_path / "member" / "history.csv").read_bytes() == (
        tmp_path / "alone" / "history.csv"
    ).read_bytes()
    assert run(fine, tmp_path / "fine", trained=members[0])["status"] == "completed"


def test_a_member_of_another_config_is_refused(tmp_path: Path) -> None:
    cfg = small()
    (member,) = split_ensemble(train_ensemble([cfg]))
    other = replace(cfg, seed=5)
    with pytest.raises(ValueError, match="another config"):
        member.replay(other)
    # a sweep job never uses it: member_for compares the configs
    sweep_ensemble._members[sweep_ensemble.identity_of(other)] = member
    assert sweep_ensemble.member_for(other) is None


def test_batch_keys_and_units_group_what_can_share_an_ensemble() -> None:
    from hydra_plugins.riemexp_sweeper.ensemble_launcher import plan_units
    from riemexp.ensemble.network import EXACT_MAX_CONTRACTION

    assert sweep_ensemble.EXACT_WIDTH == EXACT_MAX_CONTRACTION
    base = small()
    same = [
        small(seed=1),
        small(network=NetworkConfig(depth=3, step_size=0.1)),
        small(optim=OptimConfig(lr=0.5)),
    ]
    assert {sweep_ensemble.batch_key(c) for c in [base, *same]} == {sweep_ensemble.batch_key(base)}
    for other in (small(network=NetworkConfig(depth=4)), small(optim=OptimConfig(name="sgd"))):
        assert sweep_ensemble.batch_key(other) != sweep_ensemble.batch_key(base)
    assert sweep_ensemble.batch_key(small(network=NetworkConfig(depth=3, width=4))) is None
    # snapshots are recorded by the ensemble's trainer: such jobs batch too
    snapshots = replace(base, geometry=replace(base.geometry, snapshots=5))
    assert sweep_ensemble.batch_key(snapshots) == sweep_ensemble.batch_key(base)
    jobs = [[f"seed={i}", f"hydra.sweep.subdir='job{i}'"] for i in range(7)]
    batches = {"job0": "a", "job1": "b", "job2": "a", "job3": None, "job4": "a", "job5": "b", "job6": "c"}
    assert plan_units(jobs, batches, 256, 2, 1) == [[0, 2, 4], [1, 5], [3], [6]]
    assert plan_units(jobs, batches, 2, 2, 1) == [[0, 2], [1, 5], [3], [4], [6]]
    assert plan_units(jobs, {}, 256, 2, 2) == [[i] for i in range(7)]
    # costliest first: a unit's cost is its jobs' depths; a job without a key counts as the deepest
    deep, shallow = (sweep_ensemble.batch_key(small(network=NetworkConfig(depth=d))) for d in (8, 2))
    costed = {"job0": shallow, "job1": shallow, "job2": shallow, "job3": deep, "job4": deep, "job5": None}
    assert plan_units(jobs[:6], costed, 256, 2, 1) == [[3, 4], [5], [0, 1, 2]]
    # fewer units than workers: the largest ensemble is halved
    assert plan_units(jobs[:3:2] + jobs[4:5], batches, 256, 1, 2) == [[0, 1], [2]]


def test_plan_groups_by_shape_keeps_the_rest_alone_and_cuts_large_groups() -> None:
    cfgs = [
        small(seed=0),
        small(seed=0, network=NetworkConfig(depth=4)),
        small(seed=1),
        small(seed=2, network=NetworkConfig(depth=3, width=4)),  # wider than exact: alone
        small(seed=2),
        None,  # a job whose config does not compose: alone
        small(seed=3),
    ]
    datasets = sweep_ensemble.datasets_of(cfgs)
    jobs = [sweep_ensemble.Job(i, cfg, data=data) for i, (cfg, data) in enumerate(zip(cfgs, datasets))]
    assert sweep_ensemble.plan_groups(jobs) == [[0, 2, 4, 6], [1], [3], [5]]
    assert sweep_ensemble.plan_groups(jobs, max_members=3) == [[0, 2, 4], [1], [3], [5], [6]]
    assert sweep_ensemble.plan_groups(jobs, min_members=5) == [[i] for i in range(7)]


def test_the_memory_cut_counts_the_snapshots_each_member_keeps(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = [small(seed=s) for s in range(4)]
    snapshots = [replace(c, geometry=replace(c.geometry, snapshots=20)) for c in plain]
    data = sweep_ensemble.datasets_of(plain)[0]
    density = snapshots[0].geometry.snapshot_density
    kept = 21 * density**2 * (5 + data.n_classes + 3) * 8  # snapshots x grid points x numbers x float64
    assert (
        sweep_ensemble._member_bytes(snapshots[0], data) - sweep_ensemble._member_bytes(plain[0], data)
        == kept
    )
    # room for two members with snapshots (a quarter of the memory is the ensemble's), four without
    room = 4 * 2 * sweep_ensemble._member_bytes(snapshots[0], data) + 4
    monkeypatch.setattr("riemexp.memory.available_bytes", lambda: room)
    for cfgs, expected in ((plain, [[0, 1, 2, 3]]), (snapshots, [[0, 1], [2, 3]])):
        jobs = [sweep_ensemble.Job(i, cfg, data=data) for i, cfg in enumerate(cfgs)]
        assert sweep_ensemble.plan_groups(jobs) == expected


@needs_exact
@pytest.mark.slow
def test_sweep_with_the_ensemble_launcher_resumes_per_member_and_fails_alone(tmp_path: Path, cli) -> None:
    """One sweep of 4 jobs of one shape (seeds 0, 1 x a fine and a diverging learning rate): two
    ensembles of two on two workers, read back by every tool; then a job folder removed and the
    sweep resumed (three jobs, one ensemble, in the sweep's own process)."""
    sweep = tmp_path / "sweep"
    args = [
        "sweep",
        "grid=none",
        "dataset=moons",
        "dataset.n_samples=120",
        "optim.epochs=5",
        "plot.enabled=false",
        "geometry.grid_density=8",
        "geometry.snapshots=0",
        "ode.max_refinement=2",
        "network.depth=2",
        "network.activation=identity",
        "optim=sgd",
        "seed=0,1",
        "optim.lr=0.05,1e6",
        "hydra/launcher=ensemble",
        "hydra.launcher.n_jobs=2",
        f"hydra.sweep.dir={sweep}",
    ]
    done = cli(*args, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr  # the diverging jobs fail, alone
    assert "4 jobs: 4 ran, 0 skipped" in done.stdout and "2 failed" in done.stdout
    assert "4 jobs on 2 workers: 4 in 2 ensembles, 0 alone" in done.stdout + done.stderr
    summary = summarize(sweep)
    by_status: dict[str, list] = {}
    for job in summary.jobs:
        by_status.setdefault(job.status, []).append(job)
    assert len(by_status["completed"]) == 2 and len(by_status["diverged"]) == 2
    for job in by_status["completed"]:
        loaded = load_run(job.path)
        assert loaded.metrics["ensemble_members"] == 2
        alone = train(loaded.config, loaded.data)  # the same job trained alone, here
        for key, value in alone.model.state_dict().items():
            assert torch.equal(value, loaded.model.state_dict()[key]), key
        assert [r["train_loss"] for r in loaded.history] == pytest.approx(
            [r["train_loss"] for r in alone.history], rel=0, abs=0
        )
        assert math.isclose(loaded.metrics["test_accuracy"], alone.final["test_accuracy"], abs_tol=0)
    for job in by_status["diverged"]:
        assert job.error.startswith("training diverged")
    # riemexp ls reads the folders (and the sweep) like any others
    assert ls_command.main([str(sweep), "--csv"]) == 0

    # resume: a completed member's folder removed; that job and the two diverged ones run again
    # (as an ensemble of three), the others are skipped; the removed job comes back bit for bit
    gone = by_status["completed"][0].path
    earlier = torch.load(gone / "model.pt", weights_only=True)["state_dict"]
    history = (gone / "history.csv").read_bytes()
    shutil.rmtree(gone)
    again = cli(*args, cwd=tmp_path)
    assert "4 jobs: 3 to run, 1 already completed" in again.stdout, again.stdout
    assert "3 jobs on 1 process: 3 in 1 ensembles, 0 alone" in again.stdout + again.stderr
    assert (gone / "history.csv").read_bytes() == history
    assert json.loads((gone / "metrics.json").read_text())["ensemble_members"] == 3
    now = torch.load(gone / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(value, now[key]) for key, value in earlier.items())


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("hydra.launcher.max_members=0", "hydra.launcher.max_members must be a number of jobs >= 1, got 0"),
        ("hydra.launcher.min_members=-1", "hydra.launcher.min_members must be a number of jobs >= 1, got -1"),
        ("hydra.launcher.n_jobs=0", "hydra.launcher.n_jobs must be a number of parallel jobs >= 1"),
    ],
)
def test_bad_ensemble_launcher_settings_are_one_line_and_write_nothing(
    tmp_path: Path, capsys, setting: str, message: str
) -> None:
    sweep = tmp_path / "sweep"
    args = ["sweep", "grid=none", "dataset=moons", "seed=0,1", "hydra/launcher=ensemble", setting]
    assert cli_main([*args, f"hydra.sweep.dir={sweep}"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0, err
    assert not sweep.exists()


def test_an_ensembles_members_hold_their_job_folders_and_record_a_stop(tmp_path: Path, monkeypatch) -> None:
    """hydra/launcher=ensemble's `train_group`: while the ensemble trains, each job folder says
    "running" (phase "training"); stopped (KeyboardInterrupt, as a stop signal raises it) after the
    second epoch, every member records "interrupted" as a stopped run does, and its folder is an
    interrupted job's (a resume trains it again). Trained to the end, each member waits in phase
    "trained" until its job's run takes the folder over and completes it."""
    import riemexp.ensemble
    from riemexp.sweep.jobs import finished
    from riemexp.sweep.summary import read_job

    geometry = replace(small().geometry, enabled=False)
    cfgs = [small(seed=seed, geometry=geometry, ode=replace(small().ode, enabled=False)) for seed in (0, 1)]
    folders = [tmp_path / f"job{seed}" for seed in (0, 1)]
    datasets = sweep_ensemble.datasets_of(cfgs)
    jobs = [
        sweep_ensemble.Job(k, cfg, sweep_ensemble.identity_of(cfg), data, folder)
        for k, (cfg, data, folder) in enumerate(zip(cfgs, datasets, folders))
    ]
    real = riemexp.ensemble.train_ensemble
    while_training: list[dict] = []

    def stopped_after_two_epochs(cfgs, datasets, on_epoch, result, **kwargs):
        def epoch(number, rows):
            on_epoch(number, rows)
            if number == 2:
                while_training.extend(json.loads((f / "metrics.json").read_text()) for f in folders)
                raise KeyboardInterrupt

        return real(cfgs, datasets, epoch, result, **kwargs)

    monkeypatch.setattr(riemexp.ensemble, "train_ensemble", stopped_after_two_epochs)
    with pytest.raises(KeyboardInterrupt):
        sweep_ensemble.train_group(jobs)
    assert [(m["status"], m["phase"]) for m in while_training] == [("running", "training")] * 2
    for cfg, folder in zip(cfgs, folders):
        metrics = json.loads((folder / "metrics.json").read_text())
        stop = (metrics["status"], metrics["signal"], metrics["phase"], metrics["epochs"])
        assert stop == ("interrupted", "SIGINT", "training", 2), metrics
        assert metrics["ensemble_members"] == 2 and metrics["run_identity"] == sweep_ensemble.identity_of(cfg)
        assert len((folder / "history.csv").read_text().splitlines()) == 1 + 2
        assert (folder / "config.yaml").is_file() and (folder / "report.md").is_file()
        assert read_job(folder).status == "interrupted" and not finished(folder, cfg)
    assert sweep_ensemble.waiting() == 0 and not sweep_ensemble._records

    monkeypatch.setattr(riemexp.ensemble, "train_ensemble", real)  # the resume: trained to the end
    sweep_ensemble.train_group(jobs)
    for cfg, folder in zip(cfgs, folders):
        metrics = json.loads((folder / "metrics.json").read_text())
        assert (metrics["status"], metrics["phase"], metrics["epochs"]) == ("running", "trained", 5)
        assert run(cfg, folder, trained=sweep_ensemble.member_for(cfg))["status"] == "completed"
        assert finished(folder, cfg)
    assert sweep_ensemble.waiting() == 0 and not sweep_ensemble._records
