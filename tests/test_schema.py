"""One source of truth for the config: the dataclasses are the schema, Hydra's ConfigStore holds
their defaults, Hydra composes (shell completion, a user's own config folder), and run folders
saved before each dataset and optimizer had its own config class still load and resume."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from riemexp.commands.hydra_app import compose_args, compose_config, group_options, groups, to_run_config
from riemexp.config import (
    LEGACY_SECTIONS,
    AdamConfig,
    OptimConfig,
    RunConfig,
    SgdConfig,
    config_to_dict,
    load_config,
    load_saved_config,
)
from riemexp.data import DATASETS, DatasetConfig, GaussiansConfig, MoonsConfig, SpiralsConfig
from riemexp.errors import ConfigError
from riemexp.identity import identity_of, run_identity
from tests.conftest import REPO, run_cli

DATA = Path(__file__).resolve().parent / "data"

# --------------------------------------------------------------------------- one default each


def test_the_composed_defaults_are_the_dataclasses_defaults():
    assert to_run_config(compose_config("train", [])) == RunConfig()
    for name, source in DATASETS.items():
        if name == "csv":  # (its path is the user's to give)
            continue
        assert to_run_config(compose_config("train", [f"dataset={name}"])).dataset == source.config()
    assert to_run_config(compose_config("train", ["optim=sgd"])).optim == SgdConfig()
    assert to_run_config(compose_config("train", ["optim=adam"])).optim == AdamConfig()


def test_the_defaults_that_disagreed_now_exist_once():
    # conf/dataset/gaussians.yaml said noise 0.0 and the dataclass 0.05; sgd's lr/epochs likewise
    assert GaussiansConfig().noise == 0.0 == compose_config("train", ["dataset=gaussians"]).dataset.noise
    sgd = compose_config("train", ["optim=sgd"]).optim
    assert (SgdConfig().lr, SgdConfig().epochs) == (sgd.lr, sgd.epochs) == (0.1, 1000)
    assert OptimConfig.of("sgd") == SgdConfig()
    conf = REPO / "conf"
    for group in ("dataset", "network", "optim"):  # no YAML copy of the schema left to disagree
        assert not list((conf / group).glob("*.yaml")), group
        assert group_options(group)


def test_group_options_are_the_registries():
    assert group_options("dataset") == sorted(DATASETS)
    assert group_options("optim") == ["adam", "sgd"]
    assert group_options("network") == ["c2", "plain", "residual"]
    assert {"dataset", "network", "optim", "logger"} <= set(groups())


# --------------------------------------------------------------------------- one class per dataset


def test_options_of_another_dataset_are_refused_everywhere():
    with pytest.raises(TypeError):
        MoonsConfig(turns=3)  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="unknown option dataset.turns for dataset 'moons'"):
        DatasetConfig.of("moons", turns=3)
    with pytest.raises(ConfigError, match="unknown option dataset.turns for dataset 'moons'"):
        load_config({"dataset": {"name": "moons", "turns": 3}})
    with pytest.raises(ConfigError, match="unknown key 'dataset.turns': dataset 'moons' has no 'turns'"):
        compose_config("train", ["dataset=moons", "dataset.turns=3"])
    with pytest.raises(ConfigError, match="unknown option optim.momentum for optimizer 'adam'"):
        OptimConfig.of("adam", momentum=0.5)
    with pytest.raises(ConfigError, match="dataset.name of a MoonsConfig must be 'moons'"):
        MoonsConfig(name="spirals")
    with pytest.raises(ConfigError, match="unknown option dataset.turns for dataset 'moons'"):
        DatasetConfig(name="moons", turns=3)
    with pytest.raises(ConfigError, match="unknown option optim.momentum for optimizer 'adam'"):
        OptimConfig(name="adam", momentum=0.5)


def test_the_family_classes_make_the_named_class():
    """Python written before per-dataset classes keeps working: DatasetConfig(name=...) and
    OptimConfig(name=...) are the named dataset's and optimizer's own classes, with their defaults."""
    assert DatasetConfig(name="moons", n_samples=500) == MoonsConfig(n_samples=500)
    assert type(DatasetConfig(name="gaussians")) is GaussiansConfig and DatasetConfig() == SpiralsConfig()
    assert OptimConfig(name="sgd", lr=0.05) == SgdConfig(lr=0.05) and OptimConfig(epochs=5) == AdamConfig(
        epochs=5
    )
    assert dataclasses.replace(DatasetConfig(name="moons"), noise=0.1) == MoonsConfig(noise=0.1)


def test_a_saved_config_lists_only_the_options_that_apply():
    saved = config_to_dict(to_run_config(compose_config("train", ["dataset=spirals"])))
    assert set(saved["dataset"]) == {"name", "n_samples", "noise", "test_fraction", "seed", "turns"}
    assert "momentum" not in saved["optim"]
    saved = config_to_dict(RunConfig(dataset=GaussiansConfig(), optim=SgdConfig()))
    assert set(saved["dataset"]) >= {"n_classes", "spread"} and "turns" not in saved["dataset"]
    assert saved["optim"]["momentum"] == 0.9
    assert load_config(saved) == RunConfig(dataset=GaussiansConfig(), optim=SgdConfig())


# --------------------------------------------------------------------------- Hydra composes


@pytest.fixture
def user_conf(tmp_path: Path) -> Path:
    """A user's config folder: a network option built on riemexp's residual one, and a dataset
    option built on moons."""
    conf = tmp_path / "my_conf"
    (conf / "network").mkdir(parents=True)
    (conf / "network" / "shallow.yaml").write_text("defaults: [residual, _self_]\ndepth: 3\nwidth: 3\n")
    (conf / "dataset").mkdir()
    (conf / "dataset" / "small_moons.yaml").write_text("defaults: [moons, _self_]\nn_samples: 60\n")
    return conf


def test_a_user_config_folder_adds_group_options(user_conf):
    for args in (
        ["--config-dir", str(user_conf), "network=shallow", "dataset=small_moons"],
        [f"--config-dir={user_conf}", "network=shallow", "dataset=small_moons"],
        ["-cd", str(user_conf), "network=shallow", "dataset=small_moons"],
        [f"hydra.searchpath=[file://{user_conf}]", "network=shallow", "dataset=small_moons"],
    ):
        cfg = to_run_config(compose_args("train", args))
        assert (cfg.network.kind, cfg.network.depth, cfg.network.width) == ("residual", 3, 3), args
        assert cfg.dataset == MoonsConfig(n_samples=60), args
    assert group_options("network", str(user_conf)) == ["c2", "plain", "residual", "shallow"]
    # an unknown option still gets one line, naming the user's options too
    with pytest.raises(
        ConfigError, match="unknown network 'deep'; expected one of: c2, plain, residual, shallow"
    ):
        compose_args("train", ["--config-dir", str(user_conf), "network=deep"])
    with pytest.raises(ConfigError, match="unknown network 'shallow'; expected one of: c2, plain, residual$"):
        compose_args("train", ["network=shallow"])
    with pytest.raises(ConfigError, match="--config-dir must be a folder of configs, got '/no/such'"):
        compose_args("train", ["--config-dir", "/no/such", "network=shallow"])


def test_train_with_a_user_config_folder(user_conf, tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli(
        "train",
        "--config-dir",
        str(user_conf),
        "network=shallow",
        "dataset=small_moons",
        "optim.epochs=2",
        "geometry.enabled=false",
        "plot.enabled=false",
        "ode.enabled=false",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["network"]["depth"] == 3 and saved["network"]["width"] == 3
    assert saved["dataset"] == config_to_dict(MoonsConfig(n_samples=60))
    refused = run_cli("train", "network=shallow", f"hydra.run.dir={tmp_path / 'no'}", cwd=tmp_path)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines() == [
        "riemexp: error: unknown network 'shallow'; expected one of: c2, plain, residual"
    ]
    assert not (tmp_path / "no").exists()
    # --config-path would replace riemexp's own configs: refused, pointing at --config-dir
    for flag in (["--config-path", str(user_conf)], [f"-cp={user_conf}"]):
        replaced = run_cli("train", *flag, f"hydra.run.dir={tmp_path / 'no'}", cwd=tmp_path)
        assert replaced.returncode == 2 and "Traceback" not in replaced.stderr
        assert replaced.stderr.strip().splitlines() == [
            "riemexp: error: riemexp train: --config-path would replace riemexp's own configs, which "
            "every run needs; expected --config-dir DIR (or hydra.searchpath=[DIR]) to add a folder of "
            f"configs, got --config-path {user_conf}"
        ]
        assert not (tmp_path / "no").exists()


def _riemexp_on_path() -> dict[str, str]:
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "riemexp").exists() or shutil.which("bash") is None:
        pytest.skip("needs bash and the riemexp command installed beside the interpreter")
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "CI": "true"}


def test_shell_completion_installs_and_completes_in_bash(user_conf):
    env = _riemexp_on_path()

    def complete(line: str) -> list[str]:
        script = (
            'eval "$(riemexp --shell-completion install=bash)"\n'
            f'COMP_LINE="{line}"; COMP_POINT=${{#COMP_LINE}}; words=($COMP_LINE)\n'
            'COMP_CWORD=$(( ${#words[@]} - 1 )); [ "${COMP_LINE: -1}" = " " ] && COMP_CWORD=${#words[@]}\n'
            'hydra_bash_completion; printf "%s\\n" "${COMPREPLY[@]}"\n'
        )
        done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        return sorted(w for w in done.stdout.split() if w)

    installed = subprocess.run(
        ["riemexp", "train", "--shell-completion", "install=bash"], env=env, capture_output=True, text=True
    )
    assert installed.returncode == 0, installed.stderr
    assert installed.stdout.rstrip().endswith("-F hydra_bash_completion riemexp")
    assert complete("riemexp tr") == ["train"]
    assert complete("riemexp sweep optim=") == ["optim=adam", "optim=sgd"]
    assert complete("riemexp train dataset=moons dataset.t") == ["dataset.test_fraction="]  # no turns
    assert complete(f"riemexp train --config-dir {user_conf} network=sh") == ["network=shallow"]


# --------------------------------------------------------------------------- older run folders


def test_a_run_folder_saved_before_config_classes_loads_and_redraws(tmp_path):
    """tests/data/legacy_run: config.yaml, metrics.json, model.pt and history.csv of a run saved by
    riemexp before each dataset had its own config class (every dataset option in config.yaml)."""
    from riemexp.runner import load_run

    folder = tmp_path / "old"
    shutil.copytree(DATA / "legacy_run", folder)
    saved = yaml.safe_load((folder / "config.yaml").read_text())
    assert set(saved["dataset"]) == set(LEGACY_SECTIONS["dataset"])  # the old flat form
    run = load_run(folder)
    assert run.config.dataset == MoonsConfig(n_samples=120)
    assert run.config.optim == AdamConfig(epochs=5)
    said = json.loads((folder / "metrics.json").read_text())["run_identity"]
    assert identity_of(saved, None) == said != run_identity(run.config)
    result = run_cli("plot-metric", f"run={folder}", f"out={tmp_path / 'figs'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "figs" / "layers.png").is_file()


def test_an_older_run_folder_is_still_trusted_as_a_completed_run(tmp_path):
    """Its files agree on its identity (the hash of the old flat config); whether a sweep skips it
    depends on the config it plans: runs saved before geometry.snapshots, network.lipschitz and
    refine existed are of another config now, and run again."""
    from riemexp.sweep.folders import read_job_folder

    shutil.copytree(DATA / "legacy_run", tmp_path / "f0f023c328da02ce")
    folder = read_job_folder(tmp_path / "f0f023c328da02ce")
    assert folder.trusted and folder.identity == "f0f023c328da02ce"


def test_saved_configs_of_every_old_dataset_and_optimizer_keep_their_identity():
    """A config.yaml riemexp wrote before config classes (gaussians, sgd: a sweep job named by its
    identity) loads as its own classes, and `legacy_identity` finds the folder."""
    path = DATA / "legacy_configs" / "c4d450d774dc857d.yaml"
    saved = yaml.safe_load(path.read_text())
    cfg = load_saved_config(saved)
    assert type(cfg.dataset) is GaussiansConfig and type(cfg.optim) is SgdConfig
    assert identity_of(saved, None) == path.stem
    # a config saved now round-trips, and an old one of every dataset loads as that dataset's class
    for name, source in DATASETS.items():
        old = {**LEGACY_SECTIONS["dataset"], "name": name}
        assert type(load_saved_config({"dataset": old}).dataset) is source.config
    assert load_saved_config(config_to_dict(RunConfig(dataset=SpiralsConfig(turns=2)))).dataset.turns == 2
    assert dataclasses.asdict(load_saved_config({"optim": dict(LEGACY_SECTIONS["optim"])}).optim) == (
        dataclasses.asdict(AdamConfig())
    )


def test_a_sweep_plans_with_a_user_config_folder(user_conf):
    """riemexp sweep and train -m hand a user's folders to every job as one hydra.searchpath,
    together with a preset's paired sets (here the default preset's network sets)."""
    from riemexp.commands.hydra_app import user_search_path
    from riemexp.commands.sweep import job_search_path, plan
    from riemexp.sweep.grid import load_grid

    args, paths = user_search_path(["--config-dir", str(user_conf), "dataset=small_moons", "seed=0"])
    assert args == ["dataset=small_moons", "seed=0"] and paths == [f"file://{user_conf}"]
    assert user_search_path([f"hydra.searchpath=[file://{user_conf}]"]) == ([], paths)
    assert job_search_path(paths, None) == [f"hydra.searchpath=[file://{user_conf}]"]
    grid = load_grid("default", REPO / "conf")
    _, jobs, _ = plan(grid, args, groups(paths), paths)
    assert len(jobs) == 4 * 5  # paired network sets x depths, one seed
    assert {j.values["dataset.n_samples"] for j in jobs} == {60}
    assert {j.values["network.kind"] for j in jobs} == {"plain", "residual"}
    with pytest.raises(ConfigError, match="unknown dataset 'small_moons'"):
        plan(grid, args, groups(), [])
