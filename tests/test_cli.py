"""The `riemexp` command in a subprocess: help, train, bad input, determinism, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from riemexp.lock import PROCESS_KEYS
from tests.conftest import REPO, TINY_OVERRIDES, run_cli, wait_for_phase

NO_ANALYSIS = ["geometry.enabled=false", "plot.enabled=false", "ode.enabled=false"]


def test_help_lists_subcommands() -> None:
    out = run_cli("--help")
    assert out.returncode == 0
    for command in ("train", "bench"):
        assert command in out.stdout


def test_train_help_shows_groups_and_options() -> None:
    out = run_cli("train", "--help")
    assert out.returncode == 0, out.stderr
    for text in ("dataset: circles, ", "network: c2, plain, residual", "optim: adam, sgd", "step_size"):
        assert text in out.stdout


def test_unknown_command() -> None:
    out = run_cli("trian")
    assert out.returncode == 2
    assert "unknown command 'trian'; expected one of: train" in out.stderr


def test_train_writes_run_folder(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    out = run_cli("train", *TINY_OVERRIDES, *NO_ANALYSIS, f"hydra.run.dir={run_dir}")
    assert out.returncode == 0, out.stderr
    for name in (
        "model.pt",
        "metrics.json",
        "history.csv",
        "config.yaml",
        "train.log",
        ".hydra/config.yaml",
        ".hydra/overrides.yaml",
    ):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs"] == 5
    # not on a terminal: no progress bar, no rich table
    assert "━" not in out.stderr + out.stdout and "┏" not in out.stdout


def test_default_output_folder_is_under_the_current_folder(tmp_path: Path) -> None:
    out = run_cli("train", *TINY_OVERRIDES, *NO_ANALYSIS, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    runs = list((tmp_path / "outputs").glob("*/*/metrics.json"))
    assert len(runs) == 1


def test_same_config_gives_identical_files(tmp_path: Path) -> None:
    dirs = [tmp_path / "a", tmp_path / "b"]
    for d in dirs:
        out = run_cli("train", *TINY_OVERRIDES, *NO_ANALYSIS, f"hydra.run.dir={d}")
        assert out.returncode == 0, out.stderr
    a, b = dirs
    assert (a / "history.csv").read_bytes() == (b / "history.csv").read_bytes()
    assert (a / "config.yaml").read_bytes() == (b / "config.yaml").read_bytes()
    sa = torch.load(a / "model.pt", weights_only=True)["state_dict"]
    sb = torch.load(b / "model.pt", weights_only=True)["state_dict"]
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in dirs)
    for key in ("train_seconds", "timings", *PROCESS_KEYS):  # when, how long and by which process, not what
        ma.pop(key), mb.pop(key)
    assert ma == mb


@pytest.mark.parametrize(
    "override, expected",
    [
        ("dataset=spiral", "unknown dataset 'spiral'; expected one of: circles"),
        ("network=resnet", "unknown network 'resnet'; expected one of: c2, plain, residual"),
        ("network.activation=gelu", "network.activation must be one of {tanh, sigmoid, relu"),
        ("network.depth=0", "network.depth must be >= 1, got 0"),
        ("network.width=1", "network.width must be >= 2"),
        ("network.step_size=0", "network.step_size must be > 0"),
        ("network.lipschitz=1", "network.lipschitz must lie in (0, 1)"),
        ("dataset.n_samples=2", "dataset.n_samples must be >= 10"),
        ("dataset.test_fraction=1", "dataset.test_fraction must lie in (0, 1)"),
        ("optim.lr=-1", "optim.lr must be > 0, got -1.0"),
        ("optim.epochs=0", "optim.epochs must be >= 1, got 0"),
    ],
)
def test_bad_input_gets_one_clear_message(tmp_path: Path, override: str, expected: str) -> None:
    run_dir = tmp_path / "run"
    out = run_cli("train", override, f"hydra.run.dir={run_dir}")
    assert out.returncode == 2
    assert expected in out.stderr
    assert "Traceback" not in out.stderr and out.stderr.count("error:") == 1
    assert not run_dir.exists(), "a refused config must not leave a run folder"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_cuda_without_a_gpu_is_refused_before_a_run_folder(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    out = run_cli("train", "device=cuda", f"hydra.run.dir={run_dir}")
    assert out.returncode == 2 and "no CUDA device is available" in out.stderr
    assert not run_dir.exists()


def test_divergence_exits_non_zero_and_marks_the_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    out = run_cli(
        "train",
        "dataset=moons",
        "dataset.n_samples=100",
        "network.activation=identity",
        "network.step_size=1.0",
        "optim=sgd",
        "optim.lr=1e6",
        "optim.epochs=50",
        *NO_ANALYSIS,
        f"hydra.run.dir={run_dir}",
    )
    assert out.returncode == 3
    assert "training diverged at epoch" in out.stderr and "Traceback" not in out.stderr
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "diverged"
    assert not (run_dir / "model.pt").exists()


def test_train_multirun_exits_non_zero_when_a_run_fails(tmp_path: Path) -> None:
    diverging = ["network.activation=identity", "network.step_size=1.0", "optim=sgd", "optim.epochs=20"]
    common = ["dataset=moons", "dataset.n_samples=100", *diverging, *NO_ANALYSIS]
    out = run_cli("train", "-m", *common, "optim.lr=0.01,1e6", f"hydra.sweep.dir={tmp_path / 'm'}")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "2 runs, 1 failed" in out.stdout and "diverged" in out.stderr and "Traceback" not in out.stderr
    statuses = sorted(json.loads(m.read_text())["status"] for m in (tmp_path / "m").glob("*/metrics.json"))
    assert statuses == ["completed", "diverged"]
    ok = run_cli("train", "-m", *common, "optim.lr=0.01,0.02", f"hydra.sweep.dir={tmp_path / 'ok'}")
    assert ok.returncode == 0 and "2 runs, 0 failed" in ok.stdout, ok.stdout + ok.stderr


def test_unwritable_output_folders_get_one_message(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for args in (
        ["train", *TINY_OVERRIDES, f"hydra.run.dir={blocker / 'run'}"],
        ["train", "-m", *TINY_OVERRIDES, f"hydra.sweep.dir={blocker / 'multi'}"],
        ["sweep", "grid=none", *TINY_OVERRIDES, f"hydra.sweep.dir={blocker / 'sweep'}"],
    ):
        out = run_cli(*args)
        assert out.returncode == 2, (args, out.stderr)
        err = out.stderr.strip()
        assert f"cannot write {blocker}" in err and "Traceback" not in err and err.count("\n") == 0, err


def test_ctrl_c_marks_the_run_interrupted(tmp_path: Path) -> None:
    run_dir, phase_log = tmp_path / "run", tmp_path / "phases"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "riemexp",
            "train",
            "dataset.n_samples=200",
            "optim.epochs=1000000",
            *NO_ANALYSIS,
            f"hydra.run.dir={run_dir}",
        ],
        cwd=REPO,
        env={**os.environ, "CI": "true", "RIEMEXP_PHASE_LOG": str(phase_log)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_phase(proc, phase_log, "epoch")  # the first epoch has finished: an event, not a time
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # a failed wait must not leave a million-epoch run behind
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130
    assert "interrupted (SIGINT)" in stderr and "Traceback" not in stderr
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["status"] == "interrupted" and saved["signal"] == "SIGINT" and saved["epochs"] > 0
    assert len((run_dir / "history.csv").read_text().splitlines()) == saved["epochs"] + 1


def test_python_dash_m_and_version() -> None:
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.strip()
