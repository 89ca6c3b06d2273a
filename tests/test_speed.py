"""Threads chosen for the work, every stage of a run timed, and commands that import only what they need."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from riemexp import timing
from riemexp.commands.hydra_app import launcher_share
from riemexp.config import GeometryConfig, OdeConfig, PlotConfig, RunConfig, load_config
from riemexp.errors import ConfigError
from riemexp.threads import (
    PAYING_WORK,
    auto_threads,
    available_cpus,
    check_threads,
    resolve_threads,
    run_threads,
)
from tests.conftest import REPO, TINY_OVERRIDES, run_cli, tiny_config

NO_ANALYSIS = ["geometry.enabled=false", "plot.enabled=false", "ode.enabled=false"]

# --------------------------------------------------------------------------- threads


def test_auto_is_one_thread_for_riemexps_sizes_and_more_only_for_large_work() -> None:
    assert run_threads(RunConfig()) == 1  # the default run: 1000 points, an 80 x 80 grid, width 2
    assert auto_threads(points=200 * 200, width=2, cpus=64) == 1  # bench geometry's grid
    points = -(-5 * PAYING_WORK // 64**2)  # five times the work where a second thread pays
    assert auto_threads(points=points, width=64, cpus=64) == 6
    assert auto_threads(points=points, width=64, cpus=2) == 2  # never more than the CPUs
    assert auto_threads(points=points, width=64, cpus=1) == 1


def test_threads_setting_is_checked(tmp_path: Path) -> None:
    assert load_config({"threads": 1}).threads == 1 and load_config({}).threads == "auto"
    for bad in (0, -1, "many", True):
        with pytest.raises(ConfigError, match="threads must be auto or an integer >= 1"):
            load_config({"threads": bad})
    cpus = available_cpus()
    with pytest.raises(
        ConfigError, match=f"from 1 to {cpus} \\(the CPUs this process may use\\), got 100000"
    ):
        check_threads(100000)
    with pytest.raises(ConfigError, match="got 100000"):
        resolve_threads(100000, 10, 2)
    assert resolve_threads(cpus, 10, 2) == cpus and resolve_threads("auto", 10, 2) == 1
    # a saved run trained on a bigger machine is re-drawn on this one's CPUs
    assert run_threads(RunConfig(threads=cpus + 7), saved=True) == cpus
    with pytest.raises(ConfigError):
        run_threads(RunConfig(threads=cpus + 7))


def test_joblib_jobs_share_the_cpus() -> None:
    joblib = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    assert launcher_share(joblib, -1, 16) == 1  # one worker per CPU
    assert launcher_share(joblib, 4, 16) == 4
    assert launcher_share(joblib, -2, 16) == 1  # 15 workers
    assert launcher_share(joblib, 32, 16) == 1
    assert launcher_share("hydra._internal.core_plugins.basic_launcher.BasicLauncher", None, 16) == 16


def test_auto_and_one_thread_give_identical_history(tmp_path: Path) -> None:
    """The default-size run (1000 spiral points, depth 10, 300 epochs): auto is today's single thread."""
    from riemexp import run

    histories = []
    for threads in (1, "auto"):
        cfg = RunConfig(
            threads=threads,
            geometry=GeometryConfig(enabled=False),
            plot=PlotConfig(enabled=False),
            ode=OdeConfig(enabled=False),
        )
        metrics = run(cfg, tmp_path / str(threads))
        assert metrics["threads"] == 1
        histories.append((tmp_path / str(threads) / "history.csv").read_bytes())
    assert histories[0] == histories[1]


def test_absurd_thread_counts_are_refused_in_one_line(tmp_path: Path) -> None:
    out = run_cli("train", *TINY_OVERRIDES, "threads=100000", f"hydra.run.dir={tmp_path / 'run'}")
    assert out.returncode == 2
    assert (
        out.stderr.strip().count("\n") == 0 and "threads must be auto or an integer from 1 to" in out.stderr
    )
    assert not (tmp_path / "run").exists()
    out = run_cli("bench", "train", "--threads", "100000")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "riemexp bench train: --threads must be auto or an integer from 1 to" in out.stderr


# --------------------------------------------------------------------------- timings


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_nested_stages_count_each_second_once(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    watch = timing.Stopwatch()
    with timing.recording(watch):
        with timing.stage("ode"):
            clock.now += 1.0
            with timing.stage("writing"):
                clock.now += 0.25
            with timing.stage("figure:trajectories"):
                clock.now += 2.0
            clock.now += 0.5
        clock.now += 0.125  # in no stage
        with timing.stage("writing"):
            clock.now += 0.25
    assert watch.report() == {
        "ode": 1.5,
        "writing": 0.5,
        "figure:trajectories": 2.0,
        "other": 0.125,
        "wall": 4.125,
    }
    with timing.stage("nothing records this"):  # no current stopwatch: a no-op
        pass


def test_process_start_is_before_now() -> None:
    import time

    started = timing.process_start()
    if sys.platform.startswith("linux"):
        assert started is not None
    assert started is None or started <= time.perf_counter()


def _check_cover(timings: dict[str, float]) -> None:
    assert timings["wall"] > 0
    covered = sum(v for k, v in timings.items() if k != "wall")
    assert abs(covered - timings["wall"]) < 1e-3 * len(timings)  # rounding of each entry to 0.1 ms


def test_a_run_times_every_stage_and_the_stages_cover_its_wall(tmp_path: Path) -> None:
    from riemexp import run

    expected = {"writing", "data", "imports", "training", "geometry", "ode", "lie", "plots", "other", "wall"}
    figures = {f"figure:{name}" for name in ("trajectories", "ode_convergence", "layers", "input_space")}
    figures.add("figure:training_curves")
    # one figure after another: each figure is a stage
    metrics = run(dataclasses.replace(tiny_config(), threads=1), tmp_path / "serial")
    timings = json.loads((tmp_path / "serial" / "metrics.json").read_text())["timings"]
    assert timings == metrics["timings"]
    assert expected | figures <= set(timings) and "figures" not in timings
    _check_cover(timings)
    # figures in parallel (where this machine has 2 CPUs): the stage is the wait for them, and
    # each figure's own seconds are in figure_seconds
    metrics = run(tiny_config(), tmp_path / "parallel", cpus=2)
    timings = metrics["timings"]
    if "figure_seconds" in metrics:
        assert expected | {"figures"} <= set(timings) and set(metrics["figure_seconds"]) == figures
        assert not figures & set(timings)
    _check_cover(timings)


def test_the_train_command_times_its_start_config_and_hydra(tmp_path: Path) -> None:
    out = run_cli("train", *TINY_OVERRIDES, *NO_ANALYSIS, f"hydra.run.dir={tmp_path}")
    assert out.returncode == 0, out.stderr
    timings = json.loads((tmp_path / "metrics.json").read_text())["timings"]
    assert {"startup", "imports", "config", "hydra", "data", "training", "writing"} <= set(timings)
    _check_cover(timings)


# --------------------------------------------------------------------------- imports


def _imports_after(code: str) -> set[str]:
    """Which of torch, matplotlib, scipy a fresh interpreter has loaded after running `code`."""
    probe = (
        f"{code}\nimport sys\n"
        "print(sorted(m for m in ('torch', 'matplotlib', 'scipy', 'numpy') if m in sys.modules))"
    )
    env = {"CI": "true", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, env=env)
    assert done.returncode == 0, done.stderr
    return set(eval(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["train", "--help"],
        ["train", "network.depth=abc"],
        ["train", "network.depth=0"],
        ["train", "dataset=nope"],
        ["train", "threads=100000"],
        ["train", "--cfg", "job"],
        ["train", "dataset=csv", "dataset.path=/nonexistent.csv"],
        ["sweep", "--help"],
        ["plot-metric", "--help"],
        ["plot-metric", "grid_density=1"],
        ["bench", "--help"],
    ],
)
def test_help_and_bad_input_load_neither_torch_nor_matplotlib(args: list[str]) -> None:
    code = f"from riemexp.cli import main\ntry:\n    main({args!r})\nexcept SystemExit:\n    pass"
    assert _imports_after(code) & {"torch", "matplotlib", "scipy"} == set()


def test_import_riemexp_is_light_and_its_names_still_resolve() -> None:
    assert _imports_after("import riemexp") == set()
    assert "torch" in _imports_after("from riemexp import run")
    code = "import riemexp.runner\nfrom riemexp import run\nassert callable(run) and riemexp.run is run"
    _imports_after(code)


def test_torchdiffeq_loads_without_scipy_integrate_which_still_works_when_asked_for() -> None:
    code = (
        "import sys, torch\n"
        "import riemexp.ode\n"
        "assert 'scipy.integrate' not in sys.modules\n"
        "from torchdiffeq import odeint\n"
        "y = odeint(lambda t, y: -y, torch.ones(1, dtype=torch.float64), torch.tensor([0.0, 1.0], "
        "dtype=torch.float64), method='scipy_solver', options={'solver': 'RK45'}, rtol=1e-10, atol=1e-10)\n"
        "assert abs(float(y[-1]) - 0.36787944117144233) < 1e-8\n"
        "import scipy.integrate\n"
        "assert scipy.integrate.solve_ivp.__module__.startswith('scipy')"
    )
    _imports_after(code)


# --------------------------------------------------------------------------- figures in parallel


def _write(path: Path, text: str) -> None:
    path.write_text(text)


def test_figure_pool_runs_jobs_in_children_and_waits_for_every_file(tmp_path: Path) -> None:
    from riemexp.figures import FigurePool, can_fork

    pool = FigurePool(workers=2)
    watch = timing.Stopwatch()
    with timing.recording(watch):
        files = []
        for i in range(5):
            path = tmp_path / f"f{i}.txt"
            files += pool.submit(f"figure:f{i}", [path], lambda path=path, i=i: _write(path, str(i)))
        pool.wait()
    assert files == [tmp_path / f"f{i}.txt" for i in range(5)]
    assert [p.read_text() for p in files] == [str(i) for i in range(5)]
    assert set(pool.seconds) == {f"figure:f{i}" for i in range(5)}
    report = watch.report()
    if can_fork():  # drawn in children: this process only waited for them
        assert pool.parallel and "figures" in report and not any(k.startswith("figure:") for k in report)
    else:
        assert not pool.parallel and all(f"figure:f{i}" in report for i in range(5))


def test_figure_pool_raises_a_childs_error_here(tmp_path: Path) -> None:
    from riemexp.errors import OutputError
    from riemexp.figures import FigurePool

    def fails() -> None:
        raise OutputError("cannot write plots/layers.png: No space left on device")

    def crashes() -> None:
        raise ValueError("a bug")

    pool = FigurePool(workers=2)
    pool.submit("figure:a", [tmp_path / "a"], fails)
    with pytest.raises(OutputError, match="No space left on device"):
        pool.wait()
    pool = FigurePool(workers=2)
    pool.submit("figure:b", [tmp_path / "b"], crashes)
    with pytest.raises(ValueError, match="a bug"):
        pool.wait()


def test_figures_drawn_in_parallel_are_the_files_drawn_one_after_another(tmp_path: Path) -> None:
    from riemexp import run
    from riemexp.config import DatasetConfig, NetworkConfig, OptimConfig

    sections = dict(
        dataset=DatasetConfig(name="moons", n_samples=120),
        network=NetworkConfig(depth=3),
        optim=OptimConfig(epochs=5),
        plot=PlotConfig(formats=("png", "svg"), animation=True),
    )
    serial = run(RunConfig(threads=1, **sections), tmp_path / "serial")
    parallel = run(RunConfig(**sections), tmp_path / "parallel", cpus=2)
    assert serial["plots"] == parallel["plots"] and len(serial["plots"]) == 16  # with the snapshot figures
    for name in serial["plots"]:
        assert (tmp_path / "serial" / name).read_bytes() == (tmp_path / "parallel" / name).read_bytes(), name
    assert "figure:layers" in serial["timings"] and "figure_seconds" not in serial
    _check_cover(parallel["timings"])


def test_sweep_aggregate_loads_no_torch_for_runs_without_geometry(tmp_path: Path) -> None:
    from tests.test_sweep import fake_job

    for num, depth in enumerate((2, 4)):
        fake_job(tmp_path, num, depth, seed=0)
    code = f"from riemexp.cli import main\nassert main(['sweep', 'aggregate={tmp_path}']) == 0"
    assert "torch" not in _imports_after(code)
    assert (tmp_path / "summary.csv").is_file() and (tmp_path / "plots").is_dir()


def test_sweep_aggregate_draws_the_saved_log_volume_without_torch(tmp_path: Path) -> None:
    """geometry.npz of today's runs holds the grid's input log volume: the sweep's map of it is drawn
    from the file alone (torch only for files of earlier versions, for their model.pt's input scale)."""
    import numpy as np

    from tests.test_sweep import fake_geometry, fake_job

    ys, xs = np.meshgrid(np.linspace(-1, 1, 5), np.linspace(-2, 2, 6), indexing="ij")
    points = np.stack([xs.ravel(), ys.ravel()], axis=1)  # (30, 2)
    for num, depth in enumerate((2, 4)):
        volume = points[:, 0] * depth
        fake_geometry(
            fake_job(tmp_path, num, depth, seed=0),
            points,
            (5, 6),
            depth,
            np.exp(volume)[:, None, None] * np.eye(2),
            grid_input_log_volume=volume,
            data_input_log_volume=volume,
        )
    code = f"from riemexp.cli import main\nassert main(['sweep', 'aggregate={tmp_path}']) == 0"
    assert "torch" not in _imports_after(code)
    assert (tmp_path / "plots" / "input_log_volume.png").stat().st_size > 5000
