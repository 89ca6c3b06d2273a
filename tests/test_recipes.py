"""Every `riemexp train` command that the README and docs/ show trains a model worth looking at.

A recipe is a `riemexp train ...` line (or `./dev.sh train ...`, `python -m riemexp train ...`) in
a ```bash block of README.md or of any page under docs/. Each is composed exactly as the command
line composes it (Hydra overrides on conf/train.yaml, presets included), and trained at its
documented settings; `-m` lists are expanded into their runs. What does not change training is
left out: hydra.* (the folder), logger choices, and the analyses after training (geometry, ODE,
figures). A recipe whose dataset.path names a file that is not in the repository stands for the
reader's own file and is not run. Every other recipe must end above near chance
(`riemexp.verdict`); the test's failure message lists every recipe with its test accuracy.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from pathlib import Path

import pytest

from riemexp import verdict
from riemexp.commands.hydra_app import compose_config, to_run_config
from riemexp.config import RunConfig
from riemexp.data.dataset import make_dataset
from riemexp.identity import run_identity
from riemexp.train import train
from tests.conftest import REPO

COMMAND = re.compile(r"^(?:\./dev\.sh|riemexp|python -m riemexp)\s+train\b(.*)$")
BLOCK = re.compile(r"```(?:bash|sh)\n(.*?)```", re.S)
NOT_TRAINING = ("hydra.", "logger")  # overrides that do not change what is trained


def documentation() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def shown_commands(paths: list[Path] | None = None) -> list[tuple[str, list[str]]]:
    """(where, arguments) of every `riemexp train` line in a bash block of the documentation."""
    found = []
    for path in paths or documentation():
        for block in BLOCK.findall(path.read_text()):
            for line in block.replace("\\\n", " ").splitlines():
                match = COMMAND.match(line.split(" #")[0].strip())
                if match:
                    found.append((path.relative_to(REPO).as_posix(), match.group(1).split()))
    return found


def split_config_dir(args: list[str]) -> tuple[list[str], str | None]:
    """(the arguments without `--config-dir FOLDER` / `-cd FOLDER`, that folder in the repository)."""
    rest, folder = [], None
    words = iter(args)
    for word in words:
        if word in ("--config-dir", "-cd"):
            folder = str(REPO / next(words))
        elif word.startswith("--config-dir="):
            folder = str(REPO / word.split("=", 1)[1])
        else:
            rest.append(word)
    return rest, folder


def runs_of(args: list[str]) -> list[list[str]] | None:
    """The overrides of each run a shown command trains; None for a command that trains nothing
    (--help, --cfg) or whose data file is the reader's own (not in the repository)."""
    if any(a in ("--help", "-h", "--cfg", "--info") for a in args):
        return None
    multirun = "-m" in args or "--multirun" in args
    overrides = [a for a in args if not a.startswith("-") and not a.lstrip("+~").startswith(NOT_TRAINING)]
    for a in overrides:
        if a.startswith("dataset.path=") and not (REPO / a.split("=", 1)[1]).is_file():
            return None
    if not multirun:
        return [overrides]
    choices = [[f"{a.split('=', 1)[0]}={v}" for v in a.split("=", 1)[1].split(",")] for a in overrides]
    return [list(combo) for combo in itertools.product(*choices)]


def recipe_configs() -> dict[str, tuple[RunConfig, list[str]]]:
    """run identity -> (config, where it is shown and how), one entry per distinct training run."""
    configs: dict[str, tuple[RunConfig, list[str]]] = {}
    for where, shown in shown_commands():
        args, config_dir = split_config_dir(shown)
        for overrides in runs_of(args) or []:
            cfg = to_run_config(compose_config("train", overrides, config_dir))
            key = run_identity(dataclasses.replace(cfg, geometry=RunConfig().geometry, plot=RunConfig().plot))
            configs.setdefault(key, (cfg, []))[1].append(f"{where}: riemexp train {' '.join(overrides)}")
    return configs


def test_recipes_are_found_and_placeholders_are_only_the_readers_own_files():
    shown = shown_commands()
    assert len(shown) >= 5, shown
    skipped = [args for _, args in shown if runs_of(args) is None]
    for args in skipped:
        assert any(a in ("--help", "-h", "--cfg", "--info") for a in args) or any(
            a.startswith("dataset.path=") for a in args
        ), args
    assert runs_of(["-m", "network.depth=2,4"]) == [["network.depth=2"], ["network.depth=4"]]
    assert runs_of(["dataset=moons", "logger=tensorboard", "hydra.run.dir=x"]) == [["dataset=moons"]]


@pytest.mark.slow
def test_every_shown_command_trains_a_model_worth_looking_at():
    results = []
    for cfg, shown in recipe_configs().values():
        data = make_dataset(cfg.dataset, cfg.data_seed)
        result = train(cfg, data)
        accuracy = result.history[-1]["test_accuracy"]
        assessed = verdict.assess(accuracy, data.y_test.numpy())
        results.append((accuracy, assessed["chance_accuracy"], assessed["near_chance"], shown))
    table = "\n".join(
        f"{acc:.3f} (chance {chance:.2f}) {'NEAR CHANCE ' if near else ''}{shown}"
        for acc, chance, near, shown in results
    )
    assert not any(near for _, _, near, _ in results), table
