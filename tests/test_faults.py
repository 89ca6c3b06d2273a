"""Faults caused on purpose, as a user or a scheduler would: signals at every phase of a run,
two runs at once, re-runs that fail, full and read-only disks, runaway analyses, stages too
large for memory. Each test asserts what the run folder says afterwards and that nothing
finished was lost. Runs are stopped at a phase by waiting for the phase's marker line
(RIEMEXP_PHASE_LOG) and, where a phase is short, by holding the run there (RIEMEXP_PHASE_HOLD):
events, never sleeps.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from riemexp import load_run, lock, run
from riemexp.analyses.plots import redraw_run
from riemexp.commands.train import resolve_run_dir, unique_folder
from riemexp.config import GeometryConfig, NetworkConfig, OdeConfig, PlotConfig
from riemexp.data.csv import CsvConfig
from riemexp.errors import MemoryNeedError
from riemexp.nets.network import build_network
from riemexp.ode import reference_solve
from tests.conftest import REPO, TINY_OVERRIDES, run_cli, tiny_config, wait_for_phase

#: a run with a model, history, geometry and tables in a few seconds (ODE and figures off)
SMALL = [*TINY_OVERRIDES, "geometry.grid_density=12", "ode.enabled=false", "plot.enabled=false"]
EVERY_STAGE = ["ode.enabled=true", "plot.enabled=true"]
NO_ANALYSIS = ["geometry.enabled=false", "plot.enabled=false", "ode.enabled=false"]
LONG = ["optim.epochs=1000000"]  # training that lasts until a signal ends it
RUN_FILES = ("metrics.json", "config.yaml", "history.csv", "model.pt", "geometry.npz", "tables", "plots")


def start(
    *args: str, cwd: Path = REPO, phase_log: Path | None = None, hold: str | None = None, **env: str
) -> subprocess.Popen[str]:
    """`python -m riemexp ARGS` in the background, not on a terminal."""
    full_env = {**os.environ, "CI": "true", **env}
    full_env.pop("HYDRA_FULL_ERROR", None)
    if phase_log is not None:
        full_env["RIEMEXP_PHASE_LOG"] = str(phase_log)
    if hold is not None:
        full_env["RIEMEXP_PHASE_HOLD"] = hold
    return subprocess.Popen(
        [sys.executable, "-m", "riemexp", *args],
        cwd=cwd,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> str:
    """Wait for the process; its stderr."""
    _, stderr = proc.communicate(timeout=300)
    return stderr


def metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def files(folder: Path) -> dict[str, bytes]:
    """Every file of a run folder by relative path, except Hydra's log (it appends every run)."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "train.log"
    }


def leftovers(folder: Path) -> list[str]:
    """Hidden things a stopped run must not leave: temporary files, staging folders, its lock."""
    hidden = [p for p in folder.rglob(".*") if p.name not in (".hydra",) and ".hydra/" not in p.as_posix()]
    return sorted(p.relative_to(folder).as_posix() for p in hidden)


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if "][riemexp][" not in line]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1 and lines[0].startswith("riemexp: error: "), stderr
    return lines[0]


def completed_run(folder: Path, seed: int = 0, plots: bool = False) -> dict[str, bytes]:
    """A completed run of SMALL made in this process (riemexp.run; faster than the CLI); its files."""
    cfg = tiny_config(
        seed=seed,
        geometry=GeometryConfig(grid_density=12),
        ode=OdeConfig(enabled=False),
        plot=PlotConfig(enabled=plots, glyph_density=4),
    )
    assert run(cfg, folder)["status"] == "completed"
    return files(folder)


# --------------------------------------------------------------------------- signals


@pytest.mark.parametrize(
    "phase, signum",
    [
        ("setup", signal.SIGTERM),
        ("epoch", signal.SIGHUP),
        ("saving", signal.SIGTERM),
        ("geometry", signal.SIGINT),
        ("ode", signal.SIGTERM),
        ("plots", signal.SIGHUP),
    ],
)
def test_a_signal_at_any_phase_marks_the_run_interrupted(tmp_path: Path, phase: str, signum: int) -> None:
    """SIGTERM (a SLURM time limit) and SIGHUP (a closed terminal) act as Ctrl-C does."""
    run_dir, log = tmp_path / "run", tmp_path / "phases"
    training = phase in ("epoch", "training")
    proc = start(
        "train",
        *SMALL,
        *EVERY_STAGE,
        *(LONG if training else []),
        f"hydra.run.dir={run_dir}",
        phase_log=log,
        hold=None if training else phase,
    )
    wait_for_phase(proc, log, phase)
    proc.send_signal(signum)
    stderr = finish(proc)
    name = signal.Signals(signum).name
    assert proc.returncode == 128 + signum
    assert one_error_line(stderr) == f"riemexp: error: interrupted ({name})"
    saved = metrics(run_dir)
    assert saved["status"] == "interrupted" and saved["signal"] == name
    assert saved["phase"] == ("training" if training else phase) and saved["finished"]
    if saved["epochs"]:  # the history so far is written
        assert len((run_dir / "history.csv").read_text().splitlines()) == saved["epochs"] + 1
    assert (saved["epochs"] > 0) == (phase != "setup")
    assert leftovers(run_dir) == []
    assert lock.run_state(run_dir) == "interrupted"


def test_a_burst_of_ctrl_c_cannot_cut_the_clean_up_short(tmp_path: Path) -> None:
    """Two Ctrl-C a millisecond apart (here: a hundred): the first stops the run, the others wait."""
    run_dir, log = tmp_path / "run", tmp_path / "phases"
    proc = start("train", *SMALL, *NO_ANALYSIS, *LONG, f"hydra.run.dir={run_dir}", phase_log=log)
    wait_for_phase(proc, log, "epoch")
    for _ in range(100):
        if proc.poll() is not None:
            break
        os.kill(proc.pid, signal.SIGINT)
    stderr = finish(proc)
    assert proc.returncode == 130 and "Traceback" not in stderr
    assert metrics(run_dir)["status"] == "interrupted" and leftovers(run_dir) == []


def test_ctrl_c_at_start_up_gives_no_traceback(tmp_path: Path) -> None:
    """However early the signal comes (during imports, composing the config), no traceback."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        proc = start("train", *SMALL, f"hydra.run.dir={tmp_path / 'run'}")
        proc.send_signal(signum)
        stderr = finish(proc)
        assert proc.returncode in (128 + signum, -signum), stderr
        assert "Traceback" not in stderr


# --------------------------------------------------------------------------- two runs, one folder


@pytest.mark.slow
def test_a_second_run_into_a_live_runs_folder_is_refused_naming_it(tmp_path: Path) -> None:
    run_dir, log = tmp_path / "run", tmp_path / "phases"
    first = start("train", *SMALL, "seed=1", f"hydra.run.dir={run_dir}", phase_log=log, hold="training")
    wait_for_phase(first, log, "training")
    live = metrics(run_dir)
    assert live["status"] == "running" and live["pid"] == first.pid and live["host"] == lock.host_name()
    assert live["heartbeat"] and live["phase"] == "training"
    assert lock.run_state(run_dir, live) == "live"
    # a second run into the folder, and a re-draw of its figures, are refused
    second = run_cli("train", *SMALL, "seed=2", f"hydra.run.dir={run_dir}")
    assert second.returncode == 2
    line = one_error_line(second.stderr)
    assert f"{run_dir} is in use by a live run (pid {first.pid} on host {lock.host_name()}" in line
    shown = run_cli("plot-metric", f"run={run_dir}")
    assert shown.returncode == 2 and "status 'running', running (training): live (pid" in shown.stderr
    # the folder is still the first run's alone
    assert "seed: 1" in (run_dir / "config.yaml").read_text() and metrics(run_dir)["pid"] == first.pid
    first.send_signal(signal.SIGTERM)
    finish(first)
    assert metrics(run_dir)["status"] == "interrupted" and metrics(run_dir)["seed"] == 1


@pytest.mark.slow
def test_a_killed_run_is_dead_and_its_folder_free(tmp_path: Path) -> None:
    """SIGKILL leaves "running"; run_state and plot-metric say it is dead; a new run may take it."""
    run_dir, log = tmp_path / "run", tmp_path / "phases"
    proc = start("train", *SMALL, *LONG, f"hydra.run.dir={run_dir}", phase_log=log)
    wait_for_phase(proc, log, "epoch")
    proc.send_signal(signal.SIGKILL)
    finish(proc)
    assert metrics(run_dir)["status"] == "running" and lock.run_state(run_dir) == "dead"
    shown = run_cli("plot-metric", f"run={run_dir}")
    assert shown.returncode == 2
    assert "running (training), but dead: no live process works on it" in one_error_line(shown.stderr)
    completed_run(run_dir)
    assert metrics(run_dir)["status"] == "completed" and leftovers(run_dir) == []


@pytest.mark.slow
def test_runs_started_together_get_their_own_default_folders(tmp_path: Path) -> None:
    """A shell loop or a SLURM array starts runs in the same second: each gets its own folder."""
    procs = [start("train", *SMALL, *NO_ANALYSIS, f"seed={seed}", cwd=tmp_path) for seed in range(2)]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, finish(proc)
    folders = sorted(p.parent for p in (tmp_path / "outputs").glob("*/*/metrics.json"))
    assert len(folders) == 2
    for folder in folders:
        saved = metrics(folder)
        assert saved["status"] == "completed"
        assert f"seed: {saved['seed']}\n" in (folder / "config.yaml").read_text()
    assert sorted(metrics(f)["seed"] for f in folders) == [0, 1]


def test_the_default_folder_is_made_before_hydra_starts(tmp_path: Path, monkeypatch) -> None:
    """riemexp makes the default folder itself (Hydra's ${now:...} name, then -2, ...): were it left
    to Hydra, runs started in the same second would share it. Deterministic, unlike the race above."""
    monkeypatch.chdir(tmp_path)
    first, second = resolve_run_dir(["dataset=moons", "seed=0"]), resolve_run_dir(["dataset=moons", "seed=1"])
    assert first is not None and second is not None and first != second
    assert first.is_dir() and second.is_dir() and first.parent.parent == (tmp_path / "outputs").resolve()


def test_default_folder_names_taken_get_a_suffix(tmp_path: Path) -> None:
    name = tmp_path / "outputs" / "day" / "12-00-00_moons_residual"
    made = [unique_folder(name) for _ in range(3)]
    assert [p.name for p in made] == [name.name, f"{name.name}-2", f"{name.name}-3"]


# --------------------------------------------------------------------------- re-runs


def test_a_re_run_that_diverges_keeps_the_completed_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    earlier = completed_run(run_dir)
    out = run_cli(
        "train",
        *SMALL,
        "network.activation=identity",
        "network.step_size=1.0",
        "optim=sgd",
        "optim.lr=1e6",
        "optim.epochs=50",
        f"hydra.run.dir={run_dir}",
    )
    assert out.returncode == 3 and "training diverged" in one_error_line(out.stderr)
    now = files(run_dir)
    assert {k: v for k, v in now.items() if not k.startswith("unfinished-rerun/")} == earlier
    attempt = run_dir / "unfinished-rerun"
    assert (
        metrics(attempt)["status"] == "diverged"
        and "optim.lr=1e6" in (attempt / ".hydra/overrides.yaml").read_text()
    )
    assert metrics(run_dir)["status"] == "completed" and leftovers(run_dir) == []
    assert load_run(run_dir).config.seed == 0, "the earlier run is readable"


def test_a_re_run_stopped_mid_analysis_keeps_the_completed_run(tmp_path: Path) -> None:
    run_dir, log = tmp_path / "run", tmp_path / "phases"
    earlier = completed_run(run_dir)
    proc = start("train", *SMALL, "seed=3", f"hydra.run.dir={run_dir}", phase_log=log, hold="geometry")
    wait_for_phase(proc, log, "geometry")
    assert metrics(run_dir)["status"] == "completed", "the folder still shows the completed run"
    assert lock.holder(run_dir)["pid"] == proc.pid
    proc.send_signal(signal.SIGTERM)
    assert "interrupted (SIGTERM)" in one_error_line(finish(proc))
    assert {k: v for k, v in files(run_dir).items() if not k.startswith("unfinished-rerun/")} == earlier
    assert metrics(run_dir / "unfinished-rerun")["status"] == "interrupted"
    assert leftovers(run_dir) == []


def test_a_completed_re_run_replaces_everything_of_the_earlier_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    completed_run(run_dir)
    (run_dir / "notes.txt").write_text("the user's own file")
    out = run_cli("train", *SMALL, "seed=5", "geometry.enabled=false", f"hydra.run.dir={run_dir}")
    assert out.returncode == 0, out.stderr
    # the earlier run's geometry and layers table are gone; the Lie table (every run has one) is new
    assert not (run_dir / "geometry.npz").exists()
    assert sorted(p.name for p in (run_dir / "tables").iterdir()) == ["lie.csv", "lie.md"]
    assert metrics(run_dir)["seed"] == 5 and "seed=5" in (run_dir / ".hydra/overrides.yaml").read_text()
    assert (run_dir / "notes.txt").exists() and leftovers(run_dir) == []


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make a folder read-only for this test's processes: chmod, or a read-only bind mount as root."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    mounted = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("running as root, and bind mounts are not allowed here")
    try:
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], capture_output=True).returncode:
            pytest.skip("cannot remount read-only here")
        yield
    finally:
        subprocess.run(["umount", str(path)], capture_output=True)


def test_a_re_run_that_cannot_replace_a_read_only_folder_keeps_the_earlier_run(tmp_path: Path) -> None:
    """The earlier run's tables/ (or plots/) cannot be moved away: the new run fails at the end,
    undoes every move, and the earlier run stays whole."""
    run_dir = tmp_path / "run"
    earlier = completed_run(run_dir)
    with read_only(run_dir / "tables"):
        out = run_cli("train", *SMALL, "seed=3", f"hydra.run.dir={run_dir}")
    assert out.returncode == 2
    assert one_error_line(out.stderr).startswith(f"riemexp: error: cannot write {run_dir}/tables: ")
    assert {k: v for k, v in files(run_dir).items() if not k.startswith("unfinished-rerun/")} == earlier
    assert metrics(run_dir / "unfinished-rerun")["status"] == "failed" and leftovers(run_dir) == []


def test_an_existing_read_only_run_folder_gets_one_line(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    earlier = completed_run(run_dir)
    with read_only(run_dir):
        out = run_cli("train", *SMALL, f"hydra.run.dir={run_dir}")
    assert out.returncode == 2
    assert one_error_line(out.stderr).startswith(f"riemexp: error: cannot write {run_dir}/.riemexp.lock: ")
    assert files(run_dir) == earlier


# --------------------------------------------------------------------------- full disks

FAULT_HOOK = """
import contextlib, errno, os
import riemexp.io as rio

_real, _target = rio.atomic_path, os.environ["RIEMEXP_TEST_ENOSPC"]


@contextlib.contextmanager
def _failing(path):
    with _real(path) as tmp:
        yield tmp
        if os.path.basename(str(path)) == _target:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


rio.atomic_path = _failing
"""


@pytest.mark.parametrize("target", ["geometry.npz"])
def test_a_write_that_fails_with_enospc_ends_in_one_line_and_failed(tmp_path: Path, target: str) -> None:
    """ENOSPC injected into riemexp's atomic writer for one file (works on any machine)."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(FAULT_HOOK)
    run_dir = tmp_path / "run"
    env = {
        "PYTHONPATH": f"{hook}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "RIEMEXP_TEST_ENOSPC": target,
    }
    out = run_cli("train", *SMALL, f"hydra.run.dir={run_dir}", env=env)
    assert out.returncode == 2
    line = one_error_line(out.stderr)
    assert line.startswith(f"riemexp: error: cannot write {run_dir}/") and target in line
    assert "No space left on device" in line
    saved = metrics(run_dir)
    assert saved["status"] == "failed" and target in saved["error"]
    assert leftovers(run_dir) == [] and not list(run_dir.rglob(target))


@contextlib.contextmanager
def tiny_disk(folder: Path, free_kib: int) -> Iterator[Path]:
    """A 512 KiB tmpfs at folder with about free_kib KiB left (root only; skipped elsewhere)."""
    folder.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(folder)], capture_output=True
        ).returncode
    ):
        pytest.skip("a tmpfs cannot be mounted here (needs root)")
    try:
        (folder / "filler").write_bytes(bytes((512 - free_kib) * 1024))
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True)


def test_a_disk_full_from_the_start_gives_one_line_and_no_folder(tmp_path: Path) -> None:
    with tiny_disk(tmp_path / "disk", 0) as disk:
        out = run_cli("train", *SMALL, f"hydra.run.dir={disk / 'run'}")
        assert out.returncode == 2
        line = one_error_line(out.stderr)
        assert f"cannot write {disk / 'run'}" in line and "No space left on device" in line
        assert not (disk / "run").exists()


@pytest.mark.parametrize("free_kib", [200])
def test_a_disk_that_fills_during_the_run_names_the_file_and_says_failed(
    tmp_path: Path, free_kib: int
) -> None:
    with tiny_disk(tmp_path / "disk", free_kib) as disk:
        run_dir = disk / "run"
        out = run_cli("train", *SMALL, *EVERY_STAGE, f"hydra.run.dir={run_dir}")
        assert out.returncode == 2
        line = one_error_line(out.stderr)
        assert f"cannot write {run_dir}" in line and "No space left on device" in line
        assert metrics(run_dir)["status"] == "failed", "the run's room for its record was kept"
        assert leftovers(run_dir) == []


# --------------------------------------------------------------------------- runaway analyses


@pytest.mark.slow
def test_a_runaway_learning_rate_is_diverged_within_a_few_epochs(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    out = run_cli("train", "optim=sgd", "optim.lr=1e30", "optim.epochs=50", f"hydra.run.dir={run_dir}")
    assert out.returncode == 3
    assert "the train loss exploded to" in one_error_line(out.stderr)
    saved = metrics(run_dir)
    assert saved["status"] == "diverged" and saved["epochs"] <= 3
    assert not (run_dir / "model.pt").exists() and not (run_dir / "geometry.npz").exists()


def test_a_stiff_ode_stops_at_its_step_budget() -> None:
    """Huge weights make the network's ODE stiff: the reference solve stops at its budget."""
    torch.manual_seed(0)
    model = build_network(NetworkConfig(depth=3, width=2), 2)
    with torch.no_grad():
        model.weight.mul_(1e12)
    x0 = model.pad(torch.randn(50, 2, dtype=torch.float64))
    solution = reference_solve(model, x0, 1e-9, 1e-9, max_steps_per_layer=50)
    assert not solution.converged and solution.stopped_layer is not None
    assert solution.evaluations <= (solution.stopped_layer + 1) * (6 * 50 + 1)
    assert len(solution.layer_index) == solution.stopped_layer + 1  # the path ends where it stopped


def test_an_ode_solve_out_of_budget_is_reported_not_converged(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    out = run_cli(
        "train", *SMALL, "geometry.enabled=false", "ode.enabled=true", "ode.max_steps_per_layer=1",
        f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    saved = metrics(run_dir)
    assert saved["status"] == "completed" and saved["ode_converged"] is False
    assert saved["ode_gap"] is None and saved["ode_order"] is None
    assert "did not converge" in saved["ode_note"] and "ode.max_steps_per_layer=1" in saved["ode_note"]
    table = (run_dir / "tables" / "ode.csv").read_text()
    assert table.startswith("note\n") and "did not converge" in table


# --------------------------------------------------------------------------- memory


def test_a_training_set_too_big_for_memory_is_refused_before_any_folder(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    out = run_cli(
        "train", "dataset.n_samples=10000000", "geometry.enabled=false", "max_memory_gb=1",
        f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    assert out.returncode == 2
    line = one_error_line(out.stderr)
    assert "training would need about" in line and "full-batch 7500000 points per step" in line
    assert "set optim.batch_size" in line and "more than max_memory_gb=1" in line
    assert not run_dir.exists()


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["network.depth=100000"], "training would need about .* through 100001 layers at width 2"),
        (["network.depth=20000", "max_memory_gb=2"], "the ODE analysis would need about .* 20000 layers"),
        (["plot.glyph_density=3000"], r"3000 x 3000 grid \(plot.glyph_density=3000\)"),
        (
            ["dataset.n_samples=3000000", "optim.batch_size=100", "ode.enabled=false"],
            "the geometry would need .* 3000000 data points",
        ),
    ],
)
def test_each_stage_is_checked_against_memory_and_names_its_cause(
    overrides: list[str], expected: str
) -> None:
    from riemexp.commands.hydra_app import compose_config, to_run_config
    from riemexp.errors import GeometryError
    from riemexp.preflight import check_run

    values = ["max_memory_gb=1", *overrides] if not any("max_memory" in o for o in overrides) else overrides
    cfg = to_run_config(compose_config("train", values))
    with pytest.raises((MemoryNeedError, GeometryError), match=expected):
        check_run(cfg)


def test_a_csv_too_big_to_read_is_refused_naming_the_file(tmp_path: Path) -> None:
    from riemexp.config import RunConfig
    from riemexp.preflight import check_run

    path = tmp_path / "big.csv"
    path.write_text("x,y,label\n" + "".join(f"{i % 97},{i % 89},{i % 2}\n" for i in range(60000)))
    cfg = RunConfig(dataset=CsvConfig(path=str(path)), max_memory_gb=0.005)
    with pytest.raises(MemoryNeedError, match=rf"reading {path} would need about .* for a 0.\d+ MB file"):
        check_run(cfg)


MEASURE_CSV = """
import os, sys
import torch  # loaded before the measurement: what is measured is the reading
from riemexp.data.csv import CsvConfig, read_csv


def status(key):
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith(key))


with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak (VmHWM) starts again from the current size
before = status("VmRSS")
read_csv(CsvConfig(path=sys.argv[1]))
print((status("VmHWM") - before) / os.path.getsize(sys.argv[1]))
"""


@pytest.mark.skipif(
    not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux's /proc/self/clear_refs"
)
def test_a_csv_is_read_at_a_small_multiple_of_its_size(tmp_path: Path) -> None:
    """Peak memory growth while reading, in a fresh process: 2.5 x the file's size (was 30 x)."""
    path = tmp_path / "points.csv"
    rows = (
        f"{(i * 7919) % 10007 / 97:.6f},{(i * 104729) % 10009 / 89:.6f},{'ab'[i % 2]}\n"
        for i in range(300_000)
    )
    path.write_text("x1,x2,label\n" + "".join(rows))
    out = subprocess.run(
        [sys.executable, "-c", MEASURE_CSV, str(path)], capture_output=True, text=True, cwd=REPO
    )
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) < 6, f"reading took {float(out.stdout):.1f} x the file's size"


# --------------------------------------------------------------------------- smaller ones


@pytest.mark.slow
def test_a_killed_plot_metric_leaves_the_old_figures(tmp_path: Path) -> None:
    run_dir, log = tmp_path / "run", tmp_path / "phases"
    earlier = completed_run(run_dir, plots=True)
    proc = start("plot-metric", f"run={run_dir}", "plot.glyph=unit_ball", phase_log=log, hold="drawn")
    wait_for_phase(proc, log, "drawn")  # every new figure is drawn, none has replaced an old one
    proc.send_signal(signal.SIGTERM)
    assert "interrupted (SIGTERM)" in one_error_line(finish(proc))
    assert files(run_dir) == earlier and leftovers(run_dir) == []
    redraw_run(run_dir, {"glyph": "unit_ball"})  # not stopped: the new figures replace the old
    assert files(run_dir)["plots/layers.png"] != earlier["plots/layers.png"]


def test_hydra_chdir_reads_a_relative_csv_path_from_the_launch_folder(tmp_path: Path) -> None:
    rows = "".join(f"{i % 7 - 3},{(i * 5) % 11 - 5},{'ab'[i % 2]}\n" for i in range(60))
    (tmp_path / "points.csv").write_text("x1,x2,label\n" + rows)
    out = run_cli(
        "train", "dataset=csv", "dataset.path=points.csv", "hydra.job.chdir=true", "hydra.run.dir=run",
        "network.depth=3", "optim.epochs=5", *NO_ANALYSIS, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"path: {tmp_path / 'points.csv'}" in (tmp_path / "run" / "config.yaml").read_text()
