"""Run identity: a hash of the resolved config and the dataset file's contents."""

from __future__ import annotations

from riemexp.config import NetworkConfig, RunConfig, config_to_dict
from riemexp.data.toy import MoonsConfig
from riemexp.identity import identity_of, run_identity


def test_identity_is_stable_and_tells_configs_apart():
    a = RunConfig(network=NetworkConfig(depth=4))
    assert run_identity(a) == run_identity(RunConfig(network=NetworkConfig(depth=4)))
    assert run_identity(a) != run_identity(RunConfig(network=NetworkConfig(depth=5)))
    assert run_identity(a) != run_identity(RunConfig(network=NetworkConfig(depth=4), seed=1))
    assert len(run_identity(a)) == 16


def test_identity_ignores_key_order_but_not_the_dataset_file():
    cfg = RunConfig(dataset=MoonsConfig())
    values = config_to_dict(cfg)
    reordered = dict(reversed(list(values.items())))
    assert identity_of(reordered, None) == run_identity(cfg)
    assert run_identity(cfg, "ab" * 32) != run_identity(cfg, "cd" * 32)
    assert run_identity(cfg, "ab" * 32) != run_identity(cfg)


def test_a_run_stores_its_identity_in_model_and_metrics(tmp_path, tiny):
    import json

    import torch

    from riemexp import run
    from riemexp.config import GeometryConfig, OdeConfig, PlotConfig

    cfg = tiny(
        geometry=GeometryConfig(enabled=False), plot=PlotConfig(enabled=False), ode=OdeConfig(enabled=False)
    )
    run(cfg, tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    model = torch.load(tmp_path / "model.pt", weights_only=True)
    assert metrics["run_identity"] == model["run_identity"] == run_identity(cfg)
