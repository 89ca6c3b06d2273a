"""Finding and reading results: report.md of runs and sweeps, `riemexp ls`, load_run and load_sweep."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import riemexp
from riemexp.commands.sweep import aggregate
from riemexp.config import AdamConfig, NetworkConfig, OdeConfig, PlotConfig
from riemexp.errors import ConfigError, RunFolderError
from riemexp.runner import run
from tests.conftest import TINY_OVERRIDES, run_cli, tiny_config

NO_ANALYSIS = dict(plot=PlotConfig(enabled=False), ode=OdeConfig(enabled=False))


def embedded_paths(report: str) -> list[str]:
    """The targets of a Markdown file's images and links (relative paths)."""
    return re.findall(r"\]\(([^)]+)\)", report)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny run with every analysis (figures, tables)."""
    folder = tmp_path_factory.mktemp("full") / "run"
    run(tiny_config(plot=PlotConfig(n_layers=2, glyph_density=4)), folder)
    return folder


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder like a user's: outputs/ with two runs, multirun/ with a sweep of four jobs."""
    root = tmp_path_factory.mktemp("results")
    run(tiny_config(**NO_ANALYSIS), root / "outputs/2024-01-01/run-a")
    run(
        tiny_config(network=NetworkConfig(kind="plain", depth=3), **NO_ANALYSIS),
        root / "outputs/2024-01-01/run-b",
    )
    sweep = root / "multirun/2024-01-02/12-00-00"
    for i, (kind, seed) in enumerate([("plain", 0), ("plain", 1), ("residual", 0), ("residual", 1)]):
        run(tiny_config(network=NetworkConfig(kind=kind, depth=2), seed=seed, **NO_ANALYSIS), sweep / str(i))
    (sweep / "multirun.yaml").write_text("{}\n")  # what Hydra leaves in a sweep folder
    return root


# --------------------------------------------------------------------------- report.md


def test_run_report(full_run: Path) -> None:
    report = (full_run / "report.md").read_text()
    metrics = json.loads((full_run / "metrics.json").read_text())
    assert report.startswith("# moons, residual network of depth 3 and width 2\n")
    assert "status **completed**" in report and metrics["run_identity"] in report
    assert f"| test accuracy | {metrics['test_accuracy']:.4g} |" in report
    assert "| network.depth | 3 |" in report and "| optim.epochs | 5 |" in report
    assert "dataset.turns" not in report  # options of other datasets are left out
    for target in embedded_paths(report):  # every embedded figure and linked file exists
        assert (full_run / target).is_file(), target
    assert "![" in report and "(plots/layers.png)" in report and "(plots/input_space.png)" in report
    assert (full_run / "tables/layers.md").read_text().strip() in report  # the tables themselves


def test_plot_metric_rewrites_the_report(full_run: Path) -> None:
    (full_run / "report.md").unlink()
    out = run_cli("plot-metric", f"run={full_run}")
    assert out.returncode == 0, out.stderr
    assert "report.md" in out.stdout
    assert (full_run / "report.md").read_text().startswith("# moons, residual network")


def test_a_diverged_run_says_so_in_its_report(tmp_path: Path) -> None:
    from riemexp.errors import DivergedError

    cfg = tiny_config(optim=AdamConfig(lr=1e6, epochs=30), network=NetworkConfig(depth=3, step_size=5.0))
    with pytest.raises(DivergedError):
        run(cfg, tmp_path / "run")
    report = (tmp_path / "run/report.md").read_text()
    assert "status **diverged**" in report and "> **diverged**: training diverged" in report


def test_sweep_report(results: Path) -> None:
    sweep = results / "multirun/2024-01-02/12-00-00"
    assert aggregate(sweep) == 0
    report = (sweep / "report.md").read_text()
    assert report.startswith("# Sweep 12-00-00: 4 runs")
    assert "| network.kind | plain, residual |" in report and "| seed | 0, 1 |" in report
    assert "Shared by every job:" in report and "| network.depth | 2 |" in report
    assert "Best mean test accuracy:" in report
    assert "[0](0/report.md)" in report  # each job's own report
    for target in embedded_paths(report):
        assert (sweep / target).is_file(), target


# --------------------------------------------------------------------------- riemexp ls


def ls(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    out = run_cli("ls", *args, cwd=cwd)
    assert out.returncode == 0, out.stderr
    return out


def test_ls_lists_runs_and_sweeps(results: Path) -> None:
    out = ls(cwd=results)
    lines = out.stdout.splitlines()
    assert lines[0].split() == [
        "kind",
        "date",
        "status",
        "dataset",
        "network",
        "depth",
        "width",
        "h",
        "seed",
    ] + [
        "test",
        "acc",
        "path",
    ]
    assert len(lines) == 4  # two runs and one sweep (its jobs summed up)
    assert "outputs/2024-01-01/run-a" in out.stdout and "outputs/2024-01-01/run-b" in out.stdout
    sweep = next(line for line in lines if line.startswith("sweep"))
    assert sweep.startswith("sweep (4)") and "4 completed" in sweep and "plain,residual" in sweep
    assert sweep.rstrip().endswith("multirun/2024-01-02/12-00-00")
    assert "┏" not in out.stdout  # not on a terminal: plain text


def test_ls_filters_csv_and_jobs(results: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(ls("network=plain", "--csv", cwd=results).stdout)))
    assert sorted(r["path"] for r in rows) == [
        "multirun/2024-01-02/12-00-00/0",
        "multirun/2024-01-02/12-00-00/1",
        "outputs/2024-01-01/run-b",
    ]
    assert {r["kind"] for r in rows} == {"run", "job"} and {r["h"] for r in rows} == {""}  # plain: no h
    rows = list(csv.DictReader(io.StringIO(ls("network.depth=3", "seed=0", "--csv", cwd=results).stdout)))
    assert sorted(r["path"] for r in rows) == ["outputs/2024-01-01/run-a", "outputs/2024-01-01/run-b"]
    rows = list(csv.DictReader(io.StringIO(ls("multirun", "--jobs", "--csv", cwd=results).stdout)))
    assert [r["kind"] for r in rows] == ["sweep (4)", "job", "job", "job", "job"]
    assert (
        float(rows[1]["test_acc"])
        == json.loads((results / "multirun/2024-01-02/12-00-00/0/metrics.json").read_text())["test_accuracy"]
    )
    assert "no runs matching" in ls("network=c2", cwd=results).stdout


def test_ls_bad_input(results: Path, tmp_path: Path) -> None:
    out = run_cli("ls", "network.dept=3", cwd=results)
    assert out.returncode == 2 and "unknown key 'network.dept' in filter" in out.stderr
    out = run_cli("ls", str(tmp_path / "missing"), cwd=results)
    assert out.returncode == 2 and "does not exist" in out.stderr
    out = run_cli("ls", "--long", cwd=results)
    assert out.returncode == 2 and "unknown option --long" in out.stderr
    assert "no runs or sweeps under" in ls(cwd=tmp_path).stdout


def test_ls_tells_live_from_dead_running_runs(tmp_path: Path) -> None:
    from riemexp.lock import host_name

    for name, pid in (("live", os.getpid()), ("dead", 2**22 + 12345)):
        folder = tmp_path / "outputs" / name
        folder.mkdir(parents=True)
        metrics = {
            "status": "running",
            "pid": pid,
            "host": host_name(),
            "dataset": "moons",
            "network": "plain",
        }
        (folder / "metrics.json").write_text(json.dumps(metrics))
        (folder / "config.yaml").write_text("seed: 3\n")
    rows = {
        Path(r["path"]).name: r["status"]
        for r in csv.DictReader(io.StringIO(ls("--csv", cwd=tmp_path).stdout))
    }
    assert rows == {"live": "running", "dead": "dead"}


def test_ls_imports_no_torch(results: Path) -> None:
    code = (
        "import sys; from riemexp.cli import main; main(['ls']); assert 'torch' not in sys.modules, 'torch'"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=results, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "run-a" in out.stdout


# --------------------------------------------------------------------------- notebook API


def test_load_run_gives_arrays_and_tables(full_run: Path) -> None:
    loaded = riemexp.load_run(full_run)
    assert loaded.geometry["data_metric"].shape == (4, 120, 2, 2)  # (L+1, N, w, w): layers 0..3
    assert loaded.geometry["data_metric"].dtype == np.float64
    assert [row["layer"] for row in loaded.tables["layers"]] == [0, 1, 2, 3]
    assert set(loaded.tables) == {"boundary", "layers", "lie", "ode"}
    assert [row["epoch"] for row in loaded.history] == [1, 2, 3, 4, 5]
    frame = loaded.table("layers")
    assert list(frame["layer"]) == [0, 1, 2, 3]  # a DataFrame: pandas is in the test extra
    assert loaded.table("layers", as_frame=False) == loaded.tables["layers"]
    with pytest.raises(RunFolderError, match="has no table 'nope'; it has: boundary, layers, lie, ode"):
        loaded.table("nope")


def test_load_sweep_records_and_frame(results: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sweep = results / "multirun/2024-01-02/12-00-00"
    records = riemexp.load_sweep(sweep, as_frame=False)
    assert [r["job"] for r in records] == ["0", "1", "2", "3"]
    assert [(r["network.kind"], r["seed"]) for r in records] == [
        ("plain", 0),
        ("plain", 1),
        ("residual", 0),
        ("residual", 1),
    ]
    assert all(r["status"] == "completed" and 0 <= r["test_accuracy"] <= 1 for r in records)
    assert Path(records[0]["path"]) == sweep / "0"
    frame = riemexp.load_sweep(sweep)
    assert list(frame.columns[:5]) == ["job", "path", "network.kind", "seed", "status"]
    assert frame.groupby("network.kind")["test_accuracy"].count().to_dict() == {"plain": 2, "residual": 2}
    monkeypatch.setitem(sys.modules, "pandas", None)  # pandas not installed
    assert riemexp.load_sweep(sweep) == records
    with pytest.raises(ConfigError, match=r"pip install 'riemexp\[pandas\]'"):
        riemexp.load_sweep(sweep, as_frame=True)
    with pytest.raises(RunFolderError, match="is not a sweep folder"):
        riemexp.load_sweep(results / "outputs")


def test_train_then_ls_from_the_cli(tmp_path: Path) -> None:
    out = run_cli("train", *TINY_OVERRIDES, "geometry.enabled=false", "plot.enabled=false", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    listing = ls(cwd=tmp_path).stdout.splitlines()
    fields = listing[1].split()
    assert len(listing) == 2 and fields[0] == "run" and fields[3:5] == ["completed", "moons"]
