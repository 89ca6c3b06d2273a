"""`riemexp bench`: each benchmark runs at a tiny size and prints both sides and the ratio; bad options."""

from __future__ import annotations

import pytest

from riemexp.cli import main as cli_main


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
        (["nope"], "unknown benchmark 'nope'; expected one of: train, sweep, geometry"),
    ],
)
def test_bad_benchmark_options_get_one_line(args, expected, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["bench", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and err.count("\n") == 0, err
