"""Sweeps under faults: killed sweeps, changed grids, folders that lie, untrusted configs, two sweeps at once.

Every test runs the CLI in a subprocess as a user (or a scheduler) would, and waits for events
(a file, a status, a process gone) with generous deadlines, never for a fixed time.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from riemexp.cli import main as cli_main
from riemexp.config import AdamConfig
from riemexp.identity import identity_of, run_identity
from tests.conftest import REPO, run_cli, wait_for_phase

TINY = [
    "grid=none",
    "dataset=moons",
    "dataset.n_samples=120",
    "optim.epochs=5",
    "plot.enabled=false",
    "geometry.grid_density=8",
    "ode.max_refinement=2",
    "network.depth=2",
]
# jobs that train until stopped (each epoch a few ms; nothing to analyse afterwards)
ENDLESS = [
    "grid=none",
    "dataset=moons",
    "dataset.n_samples=120",
    "optim.epochs=100000000",
    "geometry.enabled=false",
    "ode.enabled=false",
    "plot.enabled=false",
    "network.depth=2",
]
BASIC = "hydra/launcher=basic"  # jobs one after another in the sweep's own process (fast to start)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 180.0) -> None:
    """Wait for an event (checked ten times a second); fail naming it after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def start(
    *args: str, cwd: Path, session: bool = False, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """`python -m riemexp ARGS` in the background, output to files in cwd; session: in a process
    group of its own (as a terminal's foreground job is), which os.killpg can signal as a whole;
    env: variables to add (RIEMEXP_PHASE_LOG, RIEMEXP_PHASE_HOLD)."""
    env = {**os.environ, "CI": "true", **(env or {})}
    out = open(cwd / f"out-{time.monotonic_ns()}.log", "w")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(
        [sys.executable, "-m", "riemexp", *args],
        cwd=REPO,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=session,
    )


def descendants(pid: int) -> set[int]:
    """Every living process started (directly or not) by pid, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        children = {p for p, parent in parents.items() if parent in frontier} - found
        found |= children
        frontier = children
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def stop_sweep(main: subprocess.Popen[str], sig: int, group: bool = False) -> None:
    """Send `sig` to the sweep (to its whole process group when `group`), then wait for it and for
    every process it had started to end."""
    workers = descendants(main.pid)
    if group:
        os.killpg(main.pid, sig)
    else:
        main.send_signal(sig)
    main.wait(timeout=60)
    wait_until(lambda: not any(alive(p) for p in workers), "every worker of the sweep to end", timeout=90)


def metrics_of(sweep: Path) -> dict[str, dict]:
    out = {}
    for path in sweep.glob("*/metrics.json"):
        try:
            out[path.parent.name] = json.loads(path.read_text())
        except ValueError:  # being replaced right now: read it next time
            continue
    return out


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def job_folders(sweep: Path) -> list[str]:
    return sorted(
        p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != "plots"
    )


# ------------------------------------------------------------------ case 1: workers end with the sweep


@pytest.mark.slow
@pytest.mark.parametrize(
    "launcher, sig, group",
    [
        ("joblib", signal.SIGKILL, False),  # kill -9
        ("joblib", signal.SIGTERM, False),  # kill, a scheduler's time limit
        ("joblib", signal.SIGHUP, True),  # a closed terminal: its whole foreground process group
        ("joblib", signal.SIGINT, True),  # Ctrl-C: the same
        ("submitit_local", signal.SIGKILL, False),
    ],
)
def test_killed_sweep_leaves_no_worker_behind(
    tmp_path: Path, launcher: str, sig: signal.Signals, group: bool
) -> None:
    sweep = tmp_path / "sweep"
    extra = ["hydra.launcher.n_jobs=2"] if launcher == "joblib" else []
    main = start(
        "sweep",
        *ENDLESS,
        "seed=0,1,2",
        f"hydra/launcher={launcher}",
        *extra,
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        session=True,
    )
    try:
        running = 2 if launcher == "joblib" else 3  # joblib: two workers, one job queued
        wait_until(
            lambda: sum(m.get("status") == "running" for m in metrics_of(sweep).values()) >= running,
            f"{running} jobs running",
        )
        before = set(job_folders(sweep))
        stop_sweep(main, sig, group)
    finally:
        if main.poll() is None:
            main.kill()
    assert set(job_folders(sweep)) == before  # no job started after the sweep ended
    for name, metrics in metrics_of(sweep).items():
        # each running job stopped and said why; none went on to complete
        log = "".join(p.read_text() for p in tmp_path.glob("out-*.log"))[-3000:]
        assert metrics["status"] == "interrupted", (name, metrics, log)
        if sig == signal.SIGKILL:  # the workers saw their sweep die
            assert "sweep's main process" in metrics["error"], metrics
        else:  # the sweep passed the signal on and waited for the jobs to record it
            assert metrics["signal"] == sig.name, metrics
    if sig != signal.SIGKILL:  # then it wrote the tables of what was done, and stopped like riemexp
        assert main.returncode == 128 + sig
        statuses = {r["status"] for r in read_csv(sweep / "summary.csv")}
        assert statuses == {"interrupted", "not started"} if launcher == "joblib" else {"interrupted"}


# --------------------------------------------------------------------------- resume after a kill


@pytest.mark.slow
@pytest.mark.parametrize("launcher", [BASIC, "hydra/launcher=ensemble"])
def test_a_sweep_killed_mid_way_and_resumed_matches_an_uninterrupted_one(
    tmp_path: Path, launcher: str
) -> None:
    """kill -9 after the first completed job, then the same command: the table of an uninterrupted
    sweep (with the ensemble launcher, members re-trained alone or together give the same numbers)."""
    grid = [*TINY, "seed=0,1,2", launcher]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    done = run_cli("sweep", *grid, f"hydra.sweep.dir={whole}")
    assert done.returncode == 0, done.stdout + done.stderr
    if launcher != BASIC:
        assert "3 in 1 ensembles" in done.stdout + done.stderr

    main = start("sweep", *grid, f"hydra.sweep.dir={broken}", cwd=tmp_path)
    try:
        wait_until(lambda: any(m.get("status") == "completed" for m in metrics_of(broken).values()), "a job")
        main.kill()
        main.wait(timeout=60)
    finally:
        if main.poll() is None:
            main.kill()
    resumed = run_cli("sweep", *grid, f"hydra.sweep.dir={broken}")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    if launcher == BASIC:
        assert "3 jobs:" in resumed.stdout and "skipped" in resumed.stdout

    def table(sweep: Path) -> list[dict[str, str]]:
        return [{k: v for k, v in r.items() if k != "train_seconds"} for r in read_csv(sweep / "summary.csv")]

    assert table(broken) == table(whole)  # the same folders (named by identity), the same numbers
    assert job_folders(broken) == job_folders(whole)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_sweep_killed_while_its_ensemble_trains_leaves_no_worker_and_no_false_record(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """hydra/launcher=ensemble, two ensembles of two one after another: killed (kill -9, or a
    scheduler's SIGTERM) while the first trains, the sweep ends with its workers and no job claims
    to be complete. SIGTERM ends it as riemexp ends (128 + signal), the training ensemble's members
    record "interrupted" with the signal, the epochs they reached, and the other ensemble's jobs
    are "not started"."""
    sweep = tmp_path / "sweep"
    main = start(
        "sweep",
        *ENDLESS,
        "seed=0,1,2,3",
        "hydra/launcher=ensemble",
        "hydra.launcher.n_jobs=1",
        "hydra.launcher.max_members=2",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )

    def output() -> str:
        return "".join(p.read_text() for p in tmp_path.glob("out-*.log"))

    try:  # the first ensemble's members hold their folders: "running", phase "training"
        wait_until(
            lambda: [m.get("phase") for m in metrics_of(sweep).values()] == ["training"] * 2, "the ensemble"
        )
        stop_sweep(main, sig)
    finally:
        if main.poll() is None:
            main.kill()
    records = metrics_of(sweep)
    assert all(m.get("status") != "completed" for m in records.values()), output()[-3000:]
    if sig == signal.SIGKILL:  # nothing could write: the members' records stay as they were, "running"
        assert [m["status"] for m in records.values()] == ["running"] * 2, records
    if sig == signal.SIGTERM:
        assert main.returncode == 128 + sig, output()[-3000:]
        assert len(records) == 2, records  # the second ensemble never started
        for metrics in records.values():
            assert (metrics["status"], metrics["signal"], metrics["phase"]) == (
                "interrupted",
                "SIGTERM",
                "training",
            )
            assert metrics["ensemble_members"] == 2 and metrics["epochs"] >= 0, metrics
        rows = {r["job"]: r["status"] for r in read_csv(sweep / "summary.csv")}
        assert sorted(rows.values()) == ["interrupted"] * 2 + ["not started"] * 2, rows
        assert {job for job, status in rows.items() if status == "interrupted"} == set(records)
        # the interrupted and the kept-back jobs are named as such, not as jobs that left no record
        assert (
            "sweep stopped (SIGTERM): 2 interrupted, 2 not started; re-run the same command to resume"
            in output()
        )
        assert "left no record" not in output()


@pytest.mark.slow
def test_a_stop_while_an_ensemble_measures_its_members_ode_records_them_trained_and_interrupted(
    tmp_path: Path,
) -> None:
    """SIGTERM once an ensemble of residual networks has trained and measures its members' ODE
    tables together: every member records "interrupted" with the signal and phase "trained", no
    job claims to be complete, the sweep exits 143, and the same command then completes."""
    sweep, phase_log = tmp_path / "sweep", tmp_path / "phases"
    args = [
        "sweep",
        *[a for a in ENDLESS if a not in ("optim.epochs=100000000", "ode.enabled=false")],
        "optim.epochs=3",
        "network=residual",
        "seed=0,1",
        "hydra/launcher=ensemble",
        "hydra.launcher.n_jobs=1",
        f"hydra.sweep.dir={sweep}",
    ]
    hold = {"RIEMEXP_PHASE_LOG": str(phase_log), "RIEMEXP_PHASE_HOLD": "measuring"}
    main = start(*args, cwd=tmp_path, env=hold)
    try:
        wait_for_phase(main, phase_log, "measuring")
        stop_sweep(main, signal.SIGTERM)
    finally:
        if main.poll() is None:
            main.kill()
    assert main.returncode == 128 + signal.SIGTERM
    records = metrics_of(sweep)
    assert len(records) == 2, records
    for metrics in records.values():
        assert (metrics["status"], metrics["signal"], metrics["phase"]) == (
            "interrupted",
            "SIGTERM",
            "trained",
        )
    resumed = subprocess.run(
        [sys.executable, "-m", "riemexp", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "CI": "true"},
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert [m["status"] for m in metrics_of(sweep).values()] == ["completed"] * 2
    assert all(m["ode_applicable"] and m["ensemble_members"] == 2 for m in metrics_of(sweep).values())


# a sweep that completes when left alone: two ensembles of two, each member a few seconds' training
ENSEMBLES = [
    *[a for a in ENDLESS if not a.startswith("optim.epochs=")],
    "optim.epochs=300",
    "seed=0,1,2,3",
    "hydra/launcher=ensemble",
    "hydra.launcher.max_members=2",
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "sig, workers",
    [
        # Ctrl-C: the terminal signals the whole foreground process group
        pytest.param(signal.SIGINT, 1, id="ctrl-c"),
        # a closed terminal: the same; each ensemble in a worker process of its own
        pytest.param(signal.SIGHUP, 2, id="sighup-workers"),
    ],
)
def test_ctrl_c_or_a_closed_terminal_while_ensembles_train_records_them_and_the_same_command_resumes(
    tmp_path: Path, sig: signal.Signals, workers: int
) -> None:
    """The signal reaches the sweep's every process while its ensembles train (each held after its
    first epoch): no worker survives, every member of a training ensemble records "interrupted"
    with the signal, phase "training" and its epochs, the sweep exits 128 + signal and says how to
    resume; the same command then trains the interrupted jobs again and completes."""
    sweep, phase_log = tmp_path / "sweep", tmp_path / "phases"
    args = ["sweep", *ENSEMBLES, f"hydra.launcher.n_jobs={workers}", f"hydra.sweep.dir={sweep}"]
    hold = {"RIEMEXP_PHASE_LOG": str(phase_log), "RIEMEXP_PHASE_HOLD": "epoch"}
    main = start(*args, cwd=tmp_path, session=True, env=hold)

    def output() -> str:
        return "".join(p.read_text() for p in tmp_path.glob("out-*.log"))

    try:
        wait_until(
            lambda: phase_log.is_file() and phase_log.read_text().split().count("epoch") == workers,
            f"{workers} ensembles past their first epoch",
        )
        stop_sweep(main, sig, group=True)
    finally:
        if main.poll() is None:
            os.killpg(main.pid, signal.SIGKILL)
    assert main.returncode == 128 + sig, output()[-3000:]
    assert f"sweep stopped ({sig.name}): " in output() and "re-run the same command to resume" in output()
    assert "left no record" not in output()
    records = metrics_of(sweep)
    assert len(records) == 2 * workers, records  # the members of each ensemble that trained
    for metrics in records.values():
        stopped = (metrics["status"], metrics.get("signal"), metrics["phase"], metrics["epochs"])
        assert stopped == ("interrupted", sig.name, "training", 1), (metrics, output()[-3000:])
    rows = {r["job"]: r["status"] for r in read_csv(sweep / "summary.csv")}
    assert sorted(rows.values()) == ["interrupted"] * 2 * workers + ["not started"] * (4 - 2 * workers)

    resumed = run_cli(*args)  # the same command, left alone
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "4 jobs: 4 to run, 0 already completed" in resumed.stdout
    assert [r["status"] for r in read_csv(sweep / "summary.csv")] == ["completed"] * 4
    assert all("ensemble_members" in m for m in metrics_of(sweep).values())  # trained as ensembles again


# ------------------------------------------------------------------ case 4: a changed grid, same folder


@pytest.mark.slow
def test_a_changed_grid_neither_overwrites_nor_counts_the_earlier_one(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    first = run_cli("sweep", *TINY, "seed=0,1,2", BASIC, f"hydra.sweep.dir={sweep}")
    assert first.returncode == 0 and "3 jobs: 3 ran, 0 skipped" in first.stdout, first.stdout + first.stderr
    old = {name: (sweep / name / "model.pt").stat().st_mtime_ns for name in job_folders(sweep)}

    # fewer seeds: both still completed, nothing re-trained, the third seed is not counted
    fewer = run_cli("sweep", *TINY, "seed=0,1", BASIC, f"hydra.sweep.dir={sweep}")
    assert fewer.returncode == 0, fewer.stdout + fewer.stderr
    assert "2 jobs: 0 ran, 2 skipped" in fewer.stdout
    assert "not in this sweep (not counted): 1 folder, a run of another configuration" in fewer.stdout
    assert [r["seed"] for r in read_csv(sweep / "summary.csv")] == ["0", "1"]

    # another depth: new folders; the earlier grid's are neither overwritten nor counted
    deeper = run_cli("sweep", *TINY, "network.depth=3", "seed=0,1", BASIC, f"hydra.sweep.dir={sweep}")
    assert deeper.returncode == 0 and "2 jobs: 2 ran, 0 skipped" in deeper.stdout, (
        deeper.stdout + deeper.stderr
    )
    assert "not in this sweep (not counted): 3 folders" in deeper.stdout
    assert {name: (sweep / name / "model.pt").stat().st_mtime_ns for name in old} == old
    rows = read_csv(sweep / "summary.csv")
    assert len(rows) == 2 and {r["job"] for r in rows}.isdisjoint(old)
    (grouped,) = read_csv(sweep / "summary_grouped.csv")  # one configuration, over its two seeds
    assert (grouped["runs"], grouped["completed"]) == ("2", "2")
    accuracies = [float(r["test_accuracy"]) for r in rows]
    assert float(grouped["test_accuracy_mean"]) == pytest.approx(sum(accuracies) / 2)

    # the same overrides in another order: the same jobs, nothing re-trained
    reordered = run_cli("sweep", *TINY, "seed=1,0", "network.depth=3", BASIC, f"hydra.sweep.dir={sweep}")
    assert reordered.returncode == 0 and "2 jobs: 0 ran, 2 skipped" in reordered.stdout, reordered.stdout


def test_train_multirun_with_another_grid_keeps_the_earlier_runs(tmp_path: Path) -> None:
    sweep = tmp_path / "multi"
    common = [a for a in TINY if a != "grid=none"] + ["geometry.enabled=false", "ode.enabled=false"]
    first = run_cli("train", "-m", *common, "seed=0,1", f"hydra.sweep.dir={sweep}")
    assert first.returncode == 0 and "2 runs, 0 failed" in first.stdout, first.stdout + first.stderr
    old = {name: (sweep / name / "model.pt").stat().st_mtime_ns for name in job_folders(sweep)}
    second = run_cli("train", "-m", *common, "seed=1,2", f"hydra.sweep.dir={sweep}")
    assert second.returncode == 0 and "(1 ran, 1 skipped" in second.stdout, second.stdout + second.stderr
    assert {name: (sweep / name / "model.pt").stat().st_mtime_ns for name in old} == old
    assert len(job_folders(sweep)) == 3


# --------------------------------------------------------------------------- identity: folders that lie


def _tiny_run(tmp_path: Path, name: str, **changes: object) -> Path:
    from riemexp import run
    from riemexp.config import GeometryConfig, OdeConfig, PlotConfig
    from tests.conftest import tiny_config

    sections = dict(
        geometry=GeometryConfig(enabled=False), plot=PlotConfig(enabled=False), ode=OdeConfig(enabled=False)
    )
    sections.update(changes)  # type: ignore[arg-type]
    sections.setdefault("optim", AdamConfig(epochs=5))
    out = tmp_path / name
    run(tiny_config(**sections), out)
    return out


def test_a_folder_whose_files_name_different_runs_is_untrusted(tmp_path: Path, capsys) -> None:
    from riemexp.commands.sweep import aggregate
    from riemexp.sweep.folders import read_job_folder
    from riemexp.sweep.jobs import finished
    from tests.conftest import tiny_config

    sweep = tmp_path / "sweep"
    short = _tiny_run(sweep, "short", optim=AdamConfig(epochs=3))
    long = _tiny_run(sweep, "long", optim=AdamConfig(epochs=7))
    assert read_job_folder(short).trusted and read_job_folder(long).trusted
    # the orphan of the fault review: config.yaml of one config, model and metrics of another
    shutil.copy(long / "config.yaml", short / "config.yaml")
    folder = read_job_folder(short)
    assert not folder.trusted and "config.yaml is the config of run" in (folder.problem or "")
    cfg = tiny_config(optim=AdamConfig(epochs=7))
    assert not finished(short, cfg)  # resume would train it again
    # model.pt from another run
    shutil.copy(long / "model.pt", tmp_path / "model.pt")
    _tiny_run(sweep, "other", optim=AdamConfig(epochs=4))
    shutil.copy(tmp_path / "model.pt", sweep / "other" / "model.pt")
    assert "model.pt is of run" in (read_job_folder(sweep / "other").problem or "")

    assert aggregate(sweep) == 1  # an untrusted folder is no completed job
    captured = capsys.readouterr()
    assert "untrusted" in captured.err and "config.yaml is the config of run" in captured.err
    rows = {r["job"]: r for r in read_csv(sweep / "summary.csv")}
    assert rows["long"]["status"] == "completed"
    assert rows["short"]["status"] == rows["other"]["status"] == "untrusted"
    assert rows["short"]["test_accuracy"] != "" and "disagree" not in rows["long"]["error"]


def test_model_fields_are_read_without_running_code_from_the_file(tmp_path: Path) -> None:
    from riemexp.errors import RunFolderError
    from riemexp.sweep.folders import model_fields

    out = _tiny_run(tmp_path, "run")
    fields = model_fields(out / "model.pt")
    full = torch.load(out / "model.pt", weights_only=True)
    assert fields == {k: v for k, v in full.items() if k != "state_dict"}
    assert fields["run_identity"] == json.loads((out / "metrics.json").read_text())["run_identity"]

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    torch.save({"state_dict": {}, "run_identity": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(RunFolderError):
        model_fields(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()


# --------------------------------------------------------------------------- case 10: untrusted sweep folders


def test_aggregate_never_resolves_interpolations_in_saved_configs(tmp_path: Path) -> None:
    sweep = tmp_path / "downloaded"
    for seed in (0, 1):
        job = sweep / f"job{seed}"
        (job / ".hydra").mkdir(parents=True)
        config = {"seed": seed, "network": {"kind": "residual", "depth": 2}, "dataset": {"path": "x.csv"}}
        identity = identity_of(config, None)
        if seed == 1:  # planted: would copy an environment variable into the tables
            config["dataset"]["path"] = "${oc.env:RIEMEXP_TEST_SECRET}"
        text = OmegaConf.to_yaml(config)
        (job / "config.yaml").write_text(text)
        (job / ".hydra" / "config.yaml").write_text(text)
        metrics = {"status": "completed", "test_accuracy": 0.5, "run_identity": identity}
        (job / "metrics.json").write_text(json.dumps(metrics))
        torch.save({"state_dict": {}, "run_identity": identity, "dataset_sha256": None}, job / "model.pt")
    secret = "s3cr3t-value-42"
    done = run_cli("sweep", f"aggregate={sweep}", env={"RIEMEXP_TEST_SECRET": secret})
    assert done.returncode == 1, done.stdout + done.stderr  # job1's config no longer matches its run
    assert secret not in done.stdout + done.stderr and "Traceback" not in done.stderr
    for path in sweep.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    rows = {r["job"]: r for r in read_csv(sweep / "summary.csv")}
    assert rows["job1"]["dataset.path"] == "${oc.env:RIEMEXP_TEST_SECRET}"  # shown as written
    assert rows["job1"]["status"] == "untrusted" and rows["job0"]["status"] == "completed"


# --------------------------------------------------------------------------- case 11: bad input, two sweeps


def test_bad_launcher_settings_are_one_line_and_write_nothing(tmp_path: Path, capsys) -> None:
    sweep = tmp_path / "sweep"
    cases = [
        (["hydra/launcher=nope"], "unknown hydra/launcher 'nope'; expected one of: basic, ensemble, joblib"),
        (["hydra.launcher.n_jobs=0"], "hydra.launcher.n_jobs must be a number of parallel jobs >= 1"),
        (["hydra/sweeper=basic"], "hydra/sweeper cannot be set"),
        (["hydra.sweep.subdir=x"], "hydra.sweep.subdir cannot be set"),
    ]
    for args, message in cases:
        assert cli_main(["sweep", *TINY, *args, f"hydra.sweep.dir={sweep}"]) == 2, args
        err = capsys.readouterr().err.strip()
        assert message in err and err.count("\n") == 0, err
        assert not sweep.exists()
    assert cli_main(["train", "-m", "network.depth=2,0", "dataset=moons", f"hydra.sweep.dir={sweep}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "network.depth must be >= 1, got 0 (in the sweep job network.depth=0 dataset=moons)" in err
    assert cli_main(["train", "-m", "dataset=moons,nope", f"hydra.sweep.dir={sweep}"]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err
    assert not sweep.exists()


def test_unknown_option_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    done = run_cli("sweep", "--bogus", *TINY, f"hydra.sweep.dir={sweep}")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "riemexp: error: riemexp sweep: unknown option '--bogus'; expected overrides KEY=VALUE or "
        "GROUP=OPTION, grid=NAME, aggregate=PATH or --help"
    )
    assert done.stdout == "" and not sweep.exists()


@pytest.mark.slow
def test_a_second_sweep_into_a_busy_folder_is_refused(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    args = ["sweep", *ENDLESS, "seed=0,1", BASIC, f"hydra.sweep.dir={sweep}"]
    first = start(*args, cwd=tmp_path)
    try:
        wait_until(lambda: any(m.get("status") == "running" for m in metrics_of(sweep).values()), "a job")
        second = run_cli(*args)
    finally:
        first.kill()
        first.wait(timeout=60)
    assert second.returncode == 2, second.stdout + second.stderr
    err = second.stderr.strip()
    assert f"sweep folder {sweep} is in use by another sweep (pid {first.pid} on host " in err
    assert err.count("\n") == 0 and "left no record" not in second.stdout + second.stderr


# --------------------------------------------------------------------------- planning


def test_fast_composition_equals_hydra_composition() -> None:
    from omegaconf import OmegaConf

    from riemexp.commands.hydra_app import compose_config, groups
    from riemexp.errors import ConfigError
    from riemexp.sweep.plan import Composer

    composer = Composer(groups())
    for job in (
        ["network=plain", "network.depth=4", "seed=3"],
        ["network=residual", "network.step_size=0.25", "optim=sgd", "optim.momentum=0.5"],
        ["dataset=circles", "dataset.factor=0.3", "plot.layers=[0,1,2]", "plot.formats=[png,pdf]"],
        ["network.depth=4", "network=c2"],  # a value before its group: Hydra applies groups first
        ["seed=7", "dataset.seed=null", "geometry.enabled=false", "optim.lr=1e-3"],
        ["seed=5", "dataset.seed=${seed}", "dataset=csv", "dataset.delimiter=';'"],  # an interpolation
        ["~plot.glyph", "+extra=1"],  # deletion and addition: Hydra's own override application
    ):
        hydra = OmegaConf.to_container(compose_config("train", job), resolve=True)
        assert composer.values(job) == hydra, job
    assert composer.values(["dataset.seed=${seed}", "seed=5"])["dataset"]["seed"] == 5
    assert len(composer._base) == 6  # one Hydra composition per choice of groups
    with pytest.raises(ConfigError, match="unknown key 'network.dept'"):
        composer.values(["network.dept=3"])


def test_jobs_are_planned_by_identity(tmp_path: Path) -> None:
    from riemexp.commands.hydra_app import compose_config, groups, to_run_config
    from riemexp.sweep.plan import Composer, dedupe, expand, plan_jobs

    jobs = plan_jobs(expand(["network.depth=2,3", "seed=0,0"]), Composer(groups()))
    assert len(jobs) == 4
    unique, repeats = dedupe(jobs)
    assert repeats == 2 and [j.values["network.depth"] for j in unique] == [2, 3]
    cfg = to_run_config(compose_config("train", ["network.depth=3", "seed=0"]))
    assert unique[1].identity == run_identity(cfg)


# --------------------------------------------------------------------------- live and dead "running" jobs


def test_a_running_job_without_a_live_process_is_dead(tmp_path: Path, capsys) -> None:
    import socket

    from riemexp.commands.sweep import aggregate

    sweep = tmp_path / "sweep"
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    for name, status in (("a", "completed"), ("b", "running")):
        job = sweep / name
        job.mkdir(parents=True)
        config = {"seed": 0 if name == "a" else 1, "network": {"depth": 2}}
        identity = identity_of(config, None)
        (job / "config.yaml").write_text(OmegaConf.to_yaml(config))
        metrics = {"status": status, "run_identity": identity, "test_accuracy": 0.5}
        if status == "running":  # killed: its process is gone, its lock file free
            metrics.update(
                pid=int(gone.stdout), host=socket.gethostname(), heartbeat="2020-01-01T00:00:00+00:00"
            )
        (job / "metrics.json").write_text(json.dumps(metrics))
        torch.save({"state_dict": {}, "run_identity": identity, "dataset_sha256": None}, job / "model.pt")
    assert aggregate(sweep) == 0  # a dead job is unfinished, not failed: a resume runs it again
    out = capsys.readouterr().out
    assert "1 jobs are not finished (dead): b" in out
    rows = {r["job"]: r for r in read_csv(sweep / "summary.csv")}
    assert rows["b"]["status"] == "dead" and "no live process works on it" in rows["b"]["error"]


@pytest.mark.slow
def test_a_job_whose_folder_another_live_run_holds_is_not_launched(tmp_path: Path) -> None:
    from riemexp import lock
    from riemexp.commands.hydra_app import groups
    from riemexp.sweep.plan import Composer, expand, plan_jobs

    sweep = tmp_path / "sweep"
    overrides = [a for a in TINY if a != "grid=none"]
    jobs = plan_jobs(expand([*overrides, "seed=0,1"]), Composer(groups()))
    held = sweep / jobs[1].identity
    with lock.hold(held):  # as a `riemexp train hydra.run.dir=...` into the job's folder would
        done = run_cli("sweep", *TINY, "seed=0,1", BASIC, f"hydra.sweep.dir={sweep}")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "2 jobs: 1 to run, 0 already completed, 1 being run by another process" in done.stdout
    assert f"job {jobs[1].identity} was not launched: its folder is being written by another live run" in (
        done.stderr
    )
    assert sorted(p.name for p in held.iterdir()) == []  # left alone (the lock file went with its holder)
    assert json.loads((sweep / jobs[0].identity / "metrics.json").read_text())["status"] == "completed"
