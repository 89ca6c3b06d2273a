"""The experiment presets (conf/experiment/) and the README's recipes: each composes, runs, and gives
the result the README and docs/configuration.md quote.

The presets run in this process at their full settings (training is about a second each); only the
figures are off, which changes no number. One preset also runs through the command line, as users
run it, and so do the recipes that are commands (the CSV file, the ode_limit sweep).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import yaml

from riemexp.cli import conf_dir
from riemexp.commands.hydra_app import compose_config, to_run_config
from riemexp.commands.train import help_text
from riemexp.errors import ConfigError
from riemexp.runner import run
from tests.conftest import REPO, run_cli

PRESETS = sorted(p.stem for p in (conf_dir() / "experiment").glob("*.yaml"))

#: what each preset must show (seed 0, CPU): the README's and docs/configuration.md's numbers, with
#: the margin a claim of that precision allows
EXPECTED: dict[str, dict[str, Any]] = {
    "spirals_residual": {"test_accuracy": 1.0, "ode_gap": 0.58, "ode_order": 0.97},
    "spirals_plain": {"test_accuracy": 0.992},
    "spirals_c2": {"test_accuracy": 0.992, "ode_gap": 0.19, "ode_order": 1.01},
    "circles_width2": {"test_accuracy": 1.0, "folds": (0, 1)},
    "circles_width3": {"test_accuracy": 1.0, "folds": ()},
}


def test_every_preset_is_listed_with_its_result() -> None:
    assert PRESETS == sorted(EXPECTED)
    readme = (REPO / "README.md").read_text()
    configuration = (REPO / "docs" / "configuration.md").read_text()
    for name in PRESETS:
        assert f"+experiment={name}" in readme, name
        assert f"`{name}`" in configuration, name


@pytest.mark.parametrize("name", PRESETS)
def test_preset_composes_into_a_checked_config(name: str) -> None:
    """A preset is global (`# @package _global_`), pins the experiment, and leaves the overrides
    after it in force."""
    text = (conf_dir() / "experiment" / f"{name}.yaml").read_text()
    assert text.startswith("# @package _global_\n"), name
    preset = yaml.safe_load(text)
    cfg = to_run_config(compose_config("train", [f"+experiment={name}"]))
    for group in ("dataset", "network", "optim"):
        override = next(d for d in preset["defaults"] if f"override /{group}" in d)
        assert (
            override[f"override /{group}"]
            == {
                "dataset": cfg.dataset.name,
                "network": cfg.network.kind,
                "optim": cfg.optim.name.value,
            }[group]
        )
    assert cfg.seed == preset["seed"] == 0
    assert cfg.network.depth == preset["network"]["depth"]
    later = to_run_config(compose_config("train", [f"+experiment={name}", "network.depth=3", "seed=7"]))
    assert later.network.depth == 3 and later.seed == 7


def _layers_table(folder: Path) -> list[dict[str, str]]:
    with open(folder / "tables" / "layers.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
@pytest.mark.parametrize("name", PRESETS)
def test_preset_gives_its_quoted_result(name: str, tmp_path: Path) -> None:
    cfg = to_run_config(compose_config("train", [f"+experiment={name}", "plot.enabled=false"]))
    metrics = run(cfg, tmp_path)
    expected = EXPECTED[name]
    assert metrics["status"] == "completed"
    assert metrics["test_accuracy"] >= expected["test_accuracy"] - 0.005
    if "ode_gap" in expected:  # quoted to two digits
        assert metrics["ode_gap"] == pytest.approx(expected["ode_gap"], abs=0.01)
        assert metrics["ode_order"] == pytest.approx(expected["ode_order"], abs=0.01)
    if "folds" in expected:
        rows = _layers_table(tmp_path)[:-1]  # the last row (layer L) has no map to the next layer
        fractions = [float(r["det_positive_fraction"]) for r in rows]
        folding = [layer for layer, fraction in enumerate(fractions) if fraction < 0.8]
        if expected["folds"]:  # width 2: the first two layers fold the plane at about 30 % of the points
            assert set(expected["folds"]) <= set(folding), fractions
        else:  # width 3: orientation kept at every point of every layer
            assert fractions == [1.0] * len(rows), fractions


def test_a_preset_through_the_command_line(tmp_path: Path) -> None:
    """+experiment=NAME as users type it; a later override wins."""
    run_dir = tmp_path / "run"
    out = run_cli(
        "train",
        "+experiment=circles_width3",
        "optim.epochs=5",
        "geometry.enabled=false",
        "plot.enabled=false",
        "ode.enabled=false",
        f"hydra.run.dir={run_dir}",
    )
    assert out.returncode == 0, out.stderr
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["dataset"]["name"] == "circles" and saved["network"]["width"] == 3
    assert saved["optim"]["epochs"] == 5
    assert "experiment" not in saved  # a global preset leaves no key of its own
    assert "+experiment=circles_width3" in (run_dir / ".hydra" / "overrides.yaml").read_text()


def test_preset_mistakes_are_explained() -> None:
    """`experiment=` without the plus, and an unknown preset: one line with what was expected;
    `riemexp train --help` lists the presets."""
    with pytest.raises(ConfigError, match=r"\+experiment=NAME; expected one of: " + ", ".join(PRESETS)):
        compose_config("train", ["experiment=circles_width3"])
    with pytest.raises(ConfigError, match="unknown experiment 'nope'"):
        compose_config("train", ["+experiment=nope"])
    assert "+experiment: " + ", ".join(PRESETS) in help_text([])


@pytest.mark.slow
def test_recipe_your_own_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's CSV recipe, its path relative to the repository root as written (figures,
    geometry and the ODE study off: they are tested elsewhere)."""
    monkeypatch.chdir(REPO)
    overrides = ["dataset=csv", "dataset.path=docs/examples/penguins.csv"]
    off = ["plot.enabled=false", "geometry.enabled=false", "ode.enabled=false"]
    metrics = run(to_run_config(compose_config("train", overrides + off)), tmp_path)
    assert metrics["status"] == "completed" and metrics["test_accuracy"] > 0.8


@pytest.mark.slow
def test_recipe_the_depth_limit(tmp_path: Path) -> None:
    """`riemexp sweep grid=ode_limit` at one seed and fewer epochs (and no training snapshots): every
    depth of the preset runs, ode_limit.md is written, and the gap to the ODE falls with h at order 1,
    as the README says."""
    sweep_dir = tmp_path / "sweep"
    out = run_cli(
        "sweep",
        "grid=ode_limit",
        "seed=0",
        "optim.epochs=30",
        "refine.epochs=10",
        "geometry.grid_density=8",
        "geometry.snapshots=0",
        "ode.max_refinement=4",
        "ode.rtol=1e-6",
        "ode.atol=1e-6",
        "hydra/launcher=basic",
        f"hydra.sweep.dir={sweep_dir}",
    )
    assert out.returncode == 0, out.stderr
    assert (sweep_dir / "ode_limit.md").is_file()
    assert (sweep_dir / "plots" / "ode_limit_log_volume.png").is_file()
    with open(sweep_dir / "ode_limit.csv", newline="") as f:
        rows = {int(r["depth"]): r for r in csv.DictReader(f)}
    assert sorted(rows) == [4, 8, 16, 32, 64, 128]
    assert all(float(r["total_time"]) == 4.0 for r in rows.values())
    gaps = [float(rows[depth]["ode_gap_mean"]) for depth in (8, 16, 32, 64, 128)]
    assert gaps[-1] < gaps[0] / 10, gaps
    assert all(abs(float(rows[d]["ode_order_mean"]) - 1) < 0.15 for d in (8, 16, 32, 64, 128))
