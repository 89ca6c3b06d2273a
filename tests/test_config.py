"""Config composition for every group, and the typed schema's checks."""

from __future__ import annotations

import dataclasses

import pytest

from riemexp.commands.hydra_app import compose_config, group_options, to_run_config
from riemexp.config import (
    Activation,
    NetworkConfig,
    OptimizerName,
    RunConfig,
    config_to_dict,
    load_config,
)
from riemexp.errors import ConfigError


@pytest.mark.parametrize("group", ["dataset", "network", "optim"])
def test_every_group_option_composes_and_validates(group: str) -> None:
    options = group_options(group)
    assert options, f"conf/{group}/ has no options"
    for option in options:
        overrides = [f"{group}={option}"]
        if option == "csv":
            overrides.append("dataset.path=/dev/null")  # composition only: the file is read later
        dcfg = compose_config("train", overrides)
        if option == "csv":
            continue
        cfg = to_run_config(dcfg)
        assert isinstance(cfg, RunConfig)
        section = getattr(cfg, group)
        name = section.kind if group == "network" else section.name
        name = name.value if hasattr(name, "value") else name
        assert name == option


def test_defaults_are_residual_spirals_adam() -> None:
    cfg = to_run_config(compose_config("train", []))
    assert cfg.dataset.name == "spirals"
    assert cfg.network.kind == "residual" and cfg.network.width == 2
    assert cfg.network.activation is Activation.TANH
    assert cfg.optim.name is OptimizerName.ADAM and cfg.optim.batch_size is None
    assert cfg.device.value == "auto"


def test_config_round_trips_through_plain_values() -> None:
    cfg = to_run_config(compose_config("train", ["network=c2", "optim=sgd", "plot.layers=[0,2]"]))
    assert load_config(config_to_dict(cfg)) == cfg


def test_python_callers_may_pass_strings_for_choices() -> None:
    net = NetworkConfig(kind="plain", activation="relu")
    assert net.kind == "plain" and net.activation is Activation.RELU


@pytest.mark.parametrize(
    "override, expected",
    [
        ("network.depth=0", "network.depth must be >= 1, got 0"),
        ("network.width=1", "network.width must be >= 2"),
        ("network.step_size=0", "network.step_size must be > 0, got 0.0"),
        ("network.step_size=-1", "network.step_size must be > 0, got -1.0"),
        ("network.lipschitz=1.5", "network.lipschitz must lie in (0, 1) (the bound on h ||W_l||_2"),
        ("network.lipschitz=0", "network.lipschitz must lie in (0, 1)"),
        ("dataset.n_samples=3", "dataset.n_samples must be >= 10"),
        ("dataset.test_fraction=0", "dataset.test_fraction must lie in (0, 1), got 0.0"),
        ("dataset.test_fraction=1.5", "dataset.test_fraction must lie in (0, 1), got 1.5"),
        ("optim.lr=0", "optim.lr must be > 0, got 0.0"),
        ("optim.epochs=0", "optim.epochs must be >= 1, got 0"),
        (
            "network.activation=swish",
            "network.activation must be one of {tanh, sigmoid, relu, softplus, identity}",
        ),
        ("network.depth=three", "network.depth must be an integer, got 'three'"),
        ("device=tpu", "device must be one of {auto, cpu, cuda}, got 'tpu'"),
        ("plot.layers=[]", "plot.layers must list at least one layer"),
        (
            "network.nope=1",
            "unknown key 'network.nope': 'network' has no 'nope'; expected one of: kind, width",
        ),
        ("nope=1", "unknown key 'nope': the config has no 'nope'; expected one of: dataset, network"),
        ("dataset.delimiter=;", "need quotes around the value"),
        ("seed=99999999999999999999", "seed must lie in [-2**63, 2**63 - 1)"),
        ("dataset.seed=18446744073709551616", "dataset.seed must lie in [-2**63, 2**63 - 1)"),
        ("network.step_size=inf", "network.step_size must be a finite number, got inf"),
        ("optim.lr=1e400", "optim.lr must be a finite number, got inf"),
        ("plot.layers=[0,11]", "plot.layers must lie in [0, network.depth=10], got [0, 11]"),
        ("plot.formats=[]", "plot.formats must be one or more of {png, pdf, svg}, got []"),
        ("plot.formats=[png,jpg]", "plot.formats must be one or more of {png, pdf, svg}, got ['png', 'jpg']"),
    ],
)
def test_out_of_range_values_are_refused_with_expected_and_given(override: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        to_run_config(compose_config("train", [override]))
    assert expected in str(err.value)


@pytest.mark.parametrize("group", ["dataset", "network", "optim"])
def test_unknown_group_option_names_the_choices(group: str) -> None:
    with pytest.raises(ConfigError) as err:
        compose_config("train", [f"{group}=nonsense"])
    message = str(err.value)
    assert f"unknown {group} 'nonsense'" in message
    for option in group_options(group):
        assert option in message


def test_unknown_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="network.dept"):
        compose_config("train", ["network.dept=3"])
    with pytest.raises(ConfigError, match="unknown option network.colour"):
        load_config({"network": {"colour": "red"}})


def test_config_is_frozen() -> None:
    cfg = RunConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 3  # type: ignore[misc]


def test_a_launcher_whose_plugin_is_missing_names_the_extra(monkeypatch):
    import importlib.util

    from riemexp.commands.hydra_app import check_launcher
    from riemexp.errors import ConfigError

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "hydra_plugins.hydra_submitit_launcher" else real(name, *a),
    )
    with pytest.raises(ConfigError, match=r"pip install 'riemexp\[slurm\]'"):
        check_launcher(["--multirun", "hydra/launcher=slurm"])
    check_launcher(["--multirun", "hydra/launcher=basic"])  # built into Hydra: nothing to install
