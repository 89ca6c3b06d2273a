"""riemexp sweep: grid presets, job records, summaries, figures, and the CLI end to end."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from riemexp.analyses.geometry import save_geometry
from riemexp.cli import conf_dir
from riemexp.cli import main as cli_main
from riemexp.commands.sweep import aggregate
from riemexp.data.csv import CsvConfig
from riemexp.errors import ConfigError, RunFolderError
from riemexp.identity import identity_of
from riemexp.sweep.figures import draw_sweep_figures
from riemexp.sweep.grid import SET_DIR, SET_GROUP, load_grid, parse_grid, preset_names, sweep_overrides
from riemexp.sweep.plan import expand
from riemexp.sweep.summary import GROUPED, METRIC_COLUMNS, SUMMARY, summarize, write_summary

GROUPS = ["dataset", "network", "optim"]
TINY = [
    "dataset=moons",
    "dataset.n_samples=120",
    "optim.epochs=5",
    "plot.enabled=false",
    "geometry.grid_density=8",
    "ode.max_refinement=2",
]
DIVERGING = ["network.activation=identity", "optim=sgd"]  # with optim.lr=1e6: NaN loss at epoch 2


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------- presets


def test_presets_parse_and_default_is_the_issue_grid(tmp_path: Path) -> None:
    assert "default" in preset_names(conf_dir())
    for name in preset_names(conf_dir()):
        load_grid(name, conf_dir())
    grid = load_grid("default", conf_dir())
    assert grid.params == {"network.depth": "2,4,8,16,32", "seed": "0,1,2"}
    assert [s.get("network") for s in grid.paired] == ["plain", "residual", "residual", "residual"]
    assert len(expand(sweep_overrides(grid, [], GROUPS, tmp_path))) == 4 * 5 * 3


def test_unknown_preset_lists_the_presets(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["sweep", "grid=nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown grid preset 'nope'; expected one of: default" in err
    assert "none" in err


def test_a_preset_that_is_not_yaml_gets_one_line(tmp_path: Path) -> None:
    for text in (": : [\n", 'network.depth: "2,\n'):
        (tmp_path / "broken.yaml").write_text(text)
        with pytest.raises(ConfigError, match="is not valid YAML: .*line 1") as err:
            load_grid(str(tmp_path / "broken.yaml"), conf_dir())
        assert "\n" not in str(err.value)


def test_preset_errors_say_what_was_expected() -> None:
    with pytest.raises(ConfigError, match="unknown section 'parms'"):
        parse_grid("g", {"parms": {}}, "g.yaml")
    with pytest.raises(ConfigError, match="'network.depth' is both in params and in paired"):
        parse_grid("g", {"params": {"network.depth": [2]}, "paired": [{"network.depth": 4}]}, "g.yaml")
    with pytest.raises(ConfigError, match=r"paired\[0\] must be a non-empty mapping"):
        parse_grid("g", {"paired": [[1, 2]]}, "g.yaml")


def test_paired_sets_become_a_generated_config_group(tmp_path: Path) -> None:
    grid = parse_grid(
        "ode",
        {
            "params": {"seed": [0, 1]},
            "paired": [
                {"network.depth": 4, "network.step_size": 0.25},
                {"network": "plain", "network.depth": 8},
            ],
            "fixed": {"dataset": "moons", "plot.enabled": False},
        },
        "ode.yaml",
    )
    overrides = sweep_overrides(grid, ["seed=5", "optim.lr=0.1"], GROUPS, tmp_path)
    # the user's seed replaces the preset's axis; the user's overrides come last
    assert overrides == [
        "dataset=moons",
        "plot.enabled=false",
        f"+{SET_GROUP}=depth-4_step_size-0.25,plain_depth-8",
        "seed=5",
        "optim.lr=0.1",
    ]
    folder = tmp_path / SET_DIR / SET_GROUP
    first = OmegaConf.load(folder / "depth-4_step_size-0.25.yaml")
    assert OmegaConf.to_container(first) == {"network": {"depth": 4, "step_size": 0.25}}
    second = (folder / "plain_depth-8.yaml").read_text()
    assert "# @package _global_" in second and "- override /network: plain" in second
    assert [job[2] for job in expand(overrides)] == [
        f"+{SET_GROUP}=depth-4_step_size-0.25",
        f"+{SET_GROUP}=plain_depth-8",
    ]


def test_expand_crosses_the_axes_last_fastest() -> None:
    jobs = expand(["network.depth=2,4,8", "seed=0,1", "dataset=moons"])
    assert len(jobs) == 6
    assert jobs[0] == ["network.depth=2", "seed=0", "dataset=moons"]
    assert jobs[1] == ["network.depth=2", "seed=1", "dataset=moons"]
    assert jobs[-1] == ["network.depth=8", "seed=1", "dataset=moons"]
    with pytest.raises(ConfigError, match="bad override"):
        expand(["network.depth=2,,"])


# --------------------------------------------------------------------------- summaries and figures


def fake_job(
    sweep: Path,
    num: int | str,
    depth: int,
    seed: int,
    kind: str = "residual",
    status: str = "completed",
    acc=0.9,
    input_scale=(1.0, 1.0),
) -> Path:
    """A job folder as a sweep leaves it (config.yaml, metrics.json, model.pt naming one run
    identity, .hydra/), without training."""
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    config = {
        "seed": seed,
        "network": {"kind": kind, "depth": depth, "step_size": 0.5},
        "optim": {"lr": 0.05},
    }
    identity = identity_of(config, None)
    (job / "config.yaml").write_text(OmegaConf.to_yaml(config))
    (job / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(config))
    metrics = {
        "status": status,
        "test_accuracy": acc,
        "train_accuracy": acc,
        "train_seconds": 1.0,
        "run_identity": identity,
    }
    if status != "completed":
        metrics["error"] = "training diverged at epoch 2"
    (job / "metrics.json").write_text(json.dumps(metrics))
    state = {"input_scale": torch.tensor(input_scale, dtype=torch.float32)}
    torch.save({"state_dict": state, "run_identity": identity, "dataset_sha256": None}, job / "model.pt")
    return job


def test_summary_rows_columns_and_grouped_mean_std(tmp_path: Path) -> None:
    fake_job(tmp_path, 0, 2, 0, acc=0.8)
    fake_job(tmp_path, 1, 2, 1, acc=0.9)
    fake_job(tmp_path, 2, 4, 0, acc=0.7)
    fake_job(tmp_path, 3, 4, 1, status="diverged", acc=None)
    summary = summarize(tmp_path)
    assert summary.keys == ["network.depth", "seed"]  # what differs between jobs; seed last
    write_summary(summary)
    rows = read_csv(tmp_path / f"{SUMMARY}.csv")
    assert list(rows[0]) == ["job", "network.depth", "seed", "status", *METRIC_COLUMNS, "error"]
    assert [(r["job"], r["status"]) for r in rows] == [
        ("0", "completed"),
        ("1", "completed"),
        ("2", "completed"),
        ("3", "diverged"),
    ]
    assert rows[3]["error"] == "training diverged at epoch 2" and rows[0]["ode_gap"] == ""
    for ext in ("md", "tex"):
        assert (tmp_path / f"{SUMMARY}.{ext}").is_file() and (tmp_path / f"{GROUPED}.{ext}").is_file()
    grouped = read_csv(tmp_path / f"{GROUPED}.csv")
    assert [(g["network.depth"], g["runs"], g["completed"]) for g in grouped] == [
        ("2", "2", "2"),
        ("4", "2", "1"),
    ]
    assert float(grouped[0]["test_accuracy_mean"]) == pytest.approx(0.85)
    assert float(grouped[0]["test_accuracy_std"]) == pytest.approx(np.std([0.8, 0.9], ddof=1))
    assert float(grouped[1]["test_accuracy_mean"]) == pytest.approx(0.7)
    assert grouped[1]["test_accuracy_std"] == ""  # one completed seed: no spread


def test_grouped_stats_survive_an_infinite_value(tmp_path: Path) -> None:
    for num, value in enumerate([2.0, math.inf]):  # a singular metric: infinite anisotropy
        job = fake_job(tmp_path, num, 2, num)
        metrics = json.loads((job / "metrics.json").read_text())
        (job / "metrics.json").write_text(json.dumps({**metrics, "input_anisotropy_median": value}))
    (row,) = summarize(tmp_path).grouped
    assert row["input_anisotropy_median_mean"] == math.inf
    assert math.isnan(row["input_anisotropy_median_std"])
    assert row["test_accuracy_std"] == 0.0


def test_aggregate_a_partial_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake_job(tmp_path, 0, 2, 0)
    fake_job(tmp_path, 1, 4, 0)
    (tmp_path / "1" / "metrics.json").unlink()  # never started (or killed before training)
    assert aggregate(tmp_path) == 0  # nothing failed; one job unfinished
    out = capsys.readouterr().out
    assert "1 completed, 0 failed, 1 unfinished" in out and "not started" in out
    statuses = [r["status"] for r in read_csv(tmp_path / f"{SUMMARY}.csv")]
    assert statuses == ["completed", "not started"]
    fake_job(tmp_path, 2, 8, 0, status="diverged")
    assert aggregate(tmp_path) == 1
    assert "job 2 (network.depth=8) diverged: training diverged at epoch 2" in capsys.readouterr().err


def test_aggregate_refuses_a_folder_without_jobs(tmp_path: Path) -> None:
    with pytest.raises(RunFolderError, match="not a sweep folder"):
        summarize(tmp_path)
    with pytest.raises(RunFolderError, match="does not exist"):
        summarize(tmp_path / "missing")


def fake_geometry(
    job: Path, points: np.ndarray, shape: tuple[int, int], depth: int, g0: np.ndarray, **more
) -> None:
    """geometry.npz in a job folder: grid and data at `points` (G, 2) on a grid of `shape`, coordinates
    unchanged by the layers, g_0 = g0 (G, 2, 2), g_l = I after it; `more`: further arrays (log volumes)."""
    coords = np.broadcast_to(points, (depth + 1, len(points), 2))
    metric = np.broadcast_to(np.eye(2), (depth + 1, len(points), 2, 2)).copy()
    metric[0] = g0
    arrays = dict(
        grid_points=points,
        grid_shape=np.array(shape),
        grid_coords=coords,
        grid_metric=metric,
        data_points=points,
        data_labels=np.zeros(len(points), dtype=np.int64),
        data_coords=coords,
        data_metric=metric,
        grid_proba=np.full((len(points), 2), 0.5),
        **more,
    )
    save_geometry(job / "geometry.npz", arrays)


def test_figures_from_job_folders(tmp_path: Path) -> None:
    ys, xs = np.meshgrid(np.linspace(-1, 1, 5), np.linspace(-2, 2, 6), indexing="ij")  # (5, 6)
    points = np.stack([xs.ravel(), ys.ravel()], axis=1)  # (30, 2), x fastest
    for num, (kind, depth, seed) in enumerate([("plain", 2, 0), ("residual", 2, 0), ("residual", 4, 1)]):
        # inputs standardised by 2 along x_1: in input units 1/2 log det g_in = log s - log 2
        job = fake_job(tmp_path, num, depth, seed, kind=kind, acc=0.6 + 0.1 * num, input_scale=(2.0, 1.0))
        scale = np.exp(points[:, 0] * (num + 1))  # g_0 = diag(s, s): 1/2 log det g_0 = log s
        fake_geometry(job, points, (5, 6), depth, scale[:, None, None] * np.eye(2))
    files = draw_sweep_figures(summarize(tmp_path))
    names = sorted(p.name for p in files)
    assert names == ["accuracy_heatmap.png", "accuracy_vs_depth.png", "input_log_volume.png"]
    assert all(p.stat().st_size > 5000 for p in files)

    from riemexp.sweep.figures import read_log_volume

    field = read_log_volume(tmp_path / "1")
    assert field is not None and field.logvol.shape == (5, 6)
    np.testing.assert_allclose(field.logvol, 2 * field.x - math.log(2.0))  # log s = 2 x for job 1
    assert read_log_volume(tmp_path / "missing") is None


# --------------------------------------------------------------------------- the CLI end to end


def sweep_dirs(sweep: Path) -> list[str]:
    return sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))


@pytest.mark.slow
def test_sweep_cli_joblib_summary_resume(tmp_path: Path, cli) -> None:
    sweep = tmp_path / "sweep"
    args = [
        "sweep",
        "grid=none",
        *TINY,
        "network.depth=2,3",
        "network=plain,residual",
        f"hydra.sweep.dir={sweep}",
    ]
    done = cli(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "4 jobs: 4 ran, 0 skipped" in done.stdout
    # layout: one folder per job, named by its run identity; the tables, the figures, the record
    jobs = [name for name in sweep_dirs(sweep) if name != "plots"]
    assert len(jobs) == 4 and sweep_dirs(sweep) == sorted([*jobs, "plots"])
    for job in jobs:
        assert json.loads((sweep / job / "metrics.json").read_text())["run_identity"] == job
    for name in (
        "summary.csv",
        "summary.md",
        "summary.tex",
        "summary_grouped.csv",
        "sweep.yaml",
        "multirun.yaml",
    ):
        assert (sweep / name).is_file(), name
    for job in jobs:
        assert (sweep / job / ".hydra" / "overrides.yaml").is_file()
        assert json.loads((sweep / job / "job.json").read_text())["action"] == "ran"
    assert sorted(p.name for p in (sweep / "plots").iterdir()) == [
        "accuracy_heatmap.png",
        "accuracy_vs_depth.png",
        "input_log_volume.png",
    ]
    rows = read_csv(sweep / "summary.csv")
    assert len(rows) == 4
    assert list(rows[0])[:4] == ["job", "network.kind", "network.depth", "status"]
    assert {(r["network.kind"], r["network.depth"]) for r in rows} == {
        ("plain", "2"),
        ("plain", "3"),
        ("residual", "2"),
        ("residual", "3"),
    }
    assert all(r["status"] == "completed" and float(r["test_accuracy"]) > 0 for r in rows)
    assert all(r["input_log_volume_median"] != "" for r in rows)
    assert {r["ode_gap"] == "" for r in rows if r["network.kind"] == "plain"} == {True}

    # the same sweep again: nothing runs; the summary is rebuilt
    mtime = (sweep / jobs[0] / "model.pt").stat().st_mtime_ns
    args.append("hydra/launcher=basic")  # resuming does not depend on the launcher; this one starts faster
    again = cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "4 jobs: 0 ran, 4 skipped" in again.stdout
    assert (sweep / jobs[0] / "model.pt").stat().st_mtime_ns == mtime

    # a job folder whose config.yaml no longer matches its model and metrics: that job runs again
    (sweep / jobs[1] / "config.yaml").write_text(
        (sweep / jobs[1] / "config.yaml").read_text().replace("seed: 0", "seed: 9")
    )
    third = cli(*args, cwd=tmp_path)
    assert "4 jobs: 1 ran, 3 skipped" in third.stdout, third.stdout


@pytest.mark.slow
def test_sweep_cli_submitit_local_records_a_diverged_job(tmp_path: Path, cli) -> None:
    sweep = tmp_path / "sweep"
    done = cli(
        "sweep",
        "grid=none",
        *TINY,
        *DIVERGING,
        "network.depth=2",
        "optim.lr=0.05,1e6",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=5",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "2 jobs: 2 ran, 0 skipped" in done.stdout and "1 failed" in done.stdout
    assert "(optim.lr=1000000.0) diverged: training diverged at epoch" in done.stderr
    assert (sweep / ".submitit").is_dir()  # submitit's own logs
    rows = {r["optim.lr"]: r for r in read_csv(sweep / "summary.csv")}
    assert rows["0.05"]["status"] == "completed" and rows["0.05"]["error"] == ""
    assert rows["1000000.0"]["status"] == "diverged" and "diverged" in rows["1000000.0"]["error"]
    metrics = json.loads((sweep / rows["1000000.0"]["job"] / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and metrics["error"].startswith("training diverged")


def test_sweep_cli_refuses_a_bad_value_before_running(tmp_path: Path, cli) -> None:
    sweep = tmp_path / "sweep"
    done = cli("sweep", "grid=none", *TINY, "network.depth=2,0", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert done.returncode == 2
    assert "network.depth must be >= 1, got 0" in done.stderr and "Traceback" not in done.stderr
    assert not sweep.exists()


def test_resume_runs_a_csv_job_again_when_its_file_changed(tmp_path: Path) -> None:
    from riemexp import run
    from riemexp.config import GeometryConfig, OdeConfig, PlotConfig
    from riemexp.sweep.jobs import finished
    from tests.conftest import tiny_config
    from tests.test_datasets import write_csv

    data = write_csv(tmp_path / "blobs.csv")
    off = dict(geometry=GeometryConfig(enabled=False), plot=PlotConfig(enabled=False))
    cfg = tiny_config(dataset=CsvConfig(path=str(data)), ode=OdeConfig(enabled=False), **off)
    run(cfg, tmp_path / "job")
    assert finished(tmp_path / "job", cfg)
    assert not finished(tmp_path / "job", tiny_config(**off))  # another config
    write_csv(data, seed=1)  # same name, same options, other points
    assert not finished(tmp_path / "job", cfg)
    (tmp_path / "job" / "model.pt").unlink()
    write_csv(data)
    assert not finished(tmp_path / "job", cfg)


def test_resume_runs_a_job_again_when_its_geometry_was_removed(tmp_path: Path) -> None:
    from riemexp import run
    from riemexp.config import GeometryConfig, OdeConfig, PlotConfig
    from riemexp.sweep.jobs import finished
    from tests.conftest import tiny_config

    cfg = tiny_config(
        geometry=GeometryConfig(grid_density=6), plot=PlotConfig(enabled=False), ode=OdeConfig(enabled=False)
    )
    run(cfg, tmp_path / "job")
    assert finished(tmp_path / "job", cfg)
    (tmp_path / "job" / "geometry.npz").unlink()
    assert not finished(tmp_path / "job", cfg)


def test_a_sweep_id_that_reads_as_a_number_still_names_its_jobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The sweep's id (12 hex digits) is handed to every job through Hydra: 595343e45369 must stay
    a string there (unquoted, Hydra reads it as the float inf), or no job counts as this sweep's."""
    import uuid

    from riemexp.commands import sweep as sweep_command

    monkeypatch.setattr(sweep_command.uuid, "uuid4", lambda: uuid.UUID("595343e45369" + "0" * 20))
    monkeypatch.setenv("RIEMEXP_SWEEP_ID", "")  # the job sets it in this process: restored afterwards
    sweep = tmp_path / "sweep"
    args = ["sweep", "grid=none", *TINY, "geometry.snapshots=0", "network.depth=2", "hydra/launcher=basic"]
    assert cli_main([*args, f"hydra.sweep.dir={sweep}"]) == 0
    assert "1 jobs: 1 ran" in capsys.readouterr().out
    (job,) = sweep.glob("*/job.json")
    assert json.loads(job.read_text())["invocation"] == "595343e45369"
