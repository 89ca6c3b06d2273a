"""`riemexp bench`: each benchmark runs at a tiny size and prints both sides and the ratio; bad options."""

from __future__ import annotations

import re

import pytest

from riemexp.cli import main as cli_main
from tests.conftest import TINY_OVERRIDES
from tests.test_ensemble import EXACT_PLATFORM


@pytest.mark.parametrize(
    "args, expected",
    [
        (["train", "--depth", "2", "--points", "40", "--steps", "1", "--blocks", "1"], "ratio"),
        (
            ["geometry", "--depth", "2", "--grid", "6", "--blocks", "1", "--sample", "3"],
            "closed-form 2 x 2 logarithm",
        ),
        (["geometry", "--quick", "--depth", "2", "--grid", "6", "--sample", "3"], "riemexp is"),
        (["train", "--quick", "--depth", "2", "--points", "40"], "ratio"),
        (["run", "--quick", "--parts", "command", *TINY_OVERRIDES, "plot.enabled=false"], "/ floor"),
        (["threads", "--quick", "--blocks", "1"], "speed-up"),
        (["ode", "--depths", "2", "--epochs", "2"], "identical"),
        (
            ["snapshots", "--quick", *TINY_OVERRIDES[:-1], "geometry.snapshots=2", "plot.enabled=false"],
            "with / without",
        ),
    ],
)
def test_benchmarks_run_small_and_print_a_ratio(args, expected, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["bench", *args]) == 0
    out = capsys.readouterr().out
    assert expected in out
    assert "load average at start" in out and "torch threads: 1" in out


def test_bench_run_prints_every_stage_and_training_under_load(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["bench", "run", "--quick", *TINY_OVERRIDES]) == 0
    out = capsys.readouterr().out
    for stage in ("imports", "training", "geometry", "ode", "lie", "writing", "other"):
        assert f"  {stage}" in out, stage
    assert "  figure:layers" in out or "  figures " in out  # one after another, or in parallel
    assert "after metrics.json (exit)" in out and "whole command" in out and "floor (median)" in out
    assert "loaded / idle" in out and "threads auto (1 thread)" in out and "fair share" in out


@pytest.mark.parametrize(
    "args, expected",
    [
        (["train", "--steps", "0"], "--steps must be >= 1, got 0"),
        (["train", "--blocks", "x"], "argument --blocks: invalid int value: 'x'"),
        (["train", "--nope"], "unrecognized arguments: --nope"),
        (["geometry", "--depth", "0"], "--depth must be >= 1, got 0"),
        (["geometry", "--grid", "1"], "--grid must be >= 2, got 1"),
        (
            ["sweep", "--grid", "nope"],
            "unknown grid preset 'nope'; expected one of: default, ode_limit, seeds",
        ),
        (["sweep", "--epochs", "0"], "--epochs must be >= 1, got 0"),
        (["ensemble", "--seeds", "0"], "--seeds must be >= 1, got 0"),
        (
            ["ensemble", "--parts", "seeds,nope"],
            "--parts must list some of seeds, grid, memory, snapshots, got 'seeds,nope'",
        ),
        (
            ["ensemble", "--grid", "nope"],
            "unknown grid preset 'nope'; expected one of: default, ode_limit, seeds",
        ),
        (
            ["nope"],
            "unknown benchmark 'nope'; expected one of: "
            "run, train, threads, sweep, resume, geometry, ensemble, ode, snapshots",
        ),
        (["train", "--threads", "100000"], "--threads must be auto or an integer from 1 to"),
        (["geometry", "--threads", "two"], "--threads must be auto or an integer, got 'two'"),
        (["run", "--repeat", "0"], "--repeat must be >= 1, got 0"),
        (["resume", "--repeat", "0"], "--repeat must be >= 1, got 0"),
        (["run", "--parts", "nope"], "--parts must list command, load or both, got 'nope'"),
        (["snapshots", "--parts", "nope"], "--parts must list command, training or both, got 'nope'"),
    ],
)
def test_bad_benchmark_options_get_one_line(args, expected, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["bench", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and err.count("\n") == 0, err


@pytest.mark.slow
def test_ensemble_benchmark_prints_both_sides_ratios_and_differences(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    preset = tmp_path / "small.yaml"
    preset.write_text(
        "params:\n  network.depth: [2, 3]\n  seed: [0, 1]\n"
        "paired:\n  - {network: plain}\n  - {network: residual, network.step_size: 0.5}\n"
        "fixed:\n  dataset: moons\n  dataset.n_samples: 120\n"
    )
    args = ["--seeds", "3", "--epochs", "2", "--repeat", "1", "--grid", str(preset), "--compare"]
    args += ["--memory-members", "3", "--memory-depth", "2"]
    assert cli_main(["bench", "ensemble", *args]) == 0
    out = capsys.readouterr().out
    assert "threads, load average" in out
    for mode in ("exact", "fast"):  # --mode both, the default: each mode's ratio and differences
        assert re.search(rf"ensemble of 3 +{mode} .*ratio ensemble / one .*\(target <= 5\)", out)
        assert re.search(rf"ensembles by shape +{mode} .*\(target <= 0.25\)", out)
        assert out.count(f"{mode}: largest member-vs-single difference: weights") == 2  # seeds and grid
        assert f"{mode}: over the seeds, final train_loss" in out
    assert "alone: over the seeds, final train_loss" in out
    assert "8 jobs of grid preset" in out and "4 ensembles of sizes 2, 2, 2, 2" in out
    if EXACT_PLATFORM:
        assert out.count("exact: largest member-vs-single difference: weights 0, losses 0, accuracies 0") == 2
        assert "(final 0); bit-identical: yes" in out
    assert "K = 3    peak resident" in out
    # snapshots: the members measured together, as each alone (3 snapshots per job at 2 epochs)
    assert "snapshots: 8 jobs of grid preset" in out and "24 snapshots recorded" in out
    assert re.search(r"ratio batched / member by member: recording [0-9.]+, wall [0-9.]+", out)
    if EXACT_PLATFORM:
        assert "snapshots.npz arrays identical: yes" in out


@pytest.mark.slow
def test_resume_benchmark_times_a_no_op_resume(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    preset = tmp_path / "tiny.yaml"
    preset.write_text(
        "params:\n  seed: [0, 1]\n"
        "fixed:\n  dataset: moons\n  dataset.n_samples: 120\n  network.depth: 2\n"
        "  geometry.enabled: false\n  ode.enabled: false\n  plot.enabled: false\n"
    )
    assert cli_main(["bench", "resume", "--grid", str(preset), "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "(2 jobs)" in out and "ratio resume / floor" in out and "target" in out
