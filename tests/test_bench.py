"""`riemexp bench`: each benchmark runs at a tiny size and prints both sides and the ratio; bad options."""

from __future__ import annotations

import pytest

from riemexp.cli import main as cli_main
from tests.test_ensemble import EXACT_PLATFORM


@pytest.mark.parametrize(
    "args, expected",
    [
        (["train", "--depth", "2", "--points", "40", "--steps", "1", "--blocks", "1"], "ratio"),
        (["geometry", "--depth", "2", "--grid", "6", "--blocks", "1", "--sample", "3"], "riemexp is"),
    ],
)
def test_benchmarks_run_small_and_print_a_ratio(args, expected, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["bench", *args]) == 0
    assert expected in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, expected",
    [
        (["train", "--steps", "0"], "--steps must be >= 1, got 0"),
        (["train", "--blocks", "x"], "argument --blocks: invalid int value: 'x'"),
        (["train", "--nope"], "unrecognized arguments: --nope"),
        (["geometry", "--depth", "0"], "--depth must be >= 1, got 0"),
        (["geometry", "--grid", "1"], "--grid must be >= 2, got 1"),
        (["sweep", "--grid", "nope"], "unknown grid preset 'nope'; expected one of: default, ode_limit"),
        (["sweep", "--epochs", "0"], "--epochs must be >= 1, got 0"),
        (["ensemble", "--seeds", "0"], "--seeds must be >= 1, got 0"),
        (
            ["ensemble", "--parts", "seeds,nope"],
            "--parts must list some of seeds, grid, memory, got 'seeds,nope'",
        ),
        (["ensemble", "--grid", "nope"], "unknown grid preset 'nope'; expected one of: default, ode_limit"),
        (["nope"], "unknown benchmark 'nope'; expected one of: train, sweep, geometry, ensemble"),
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
    args = ["--seeds", "3", "--epochs", "2", "--repeat", "1", "--grid", str(preset)]
    args += ["--memory-members", "3", "--memory-depth", "2"]
    assert cli_main(["bench", "ensemble", *args]) == 0
    out = capsys.readouterr().out
    assert "threads, load average" in out
    assert "ratio ensemble / one" in out and "(target <= 5)" in out
    assert "8 jobs of grid preset" in out and "4 ensembles of sizes 2, 2, 2, 2" in out
    assert "ratio ensembles / one after another" in out and "(target <= 0.25)" in out
    assert "largest member-vs-single difference: weights" in out
    if EXACT_PLATFORM:
        assert "weights 0, losses 0, accuracies 0; bit-identical: yes" in out
    assert "K = 3    peak resident" in out
