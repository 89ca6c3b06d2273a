"""Training and the run folder, called from Python: determinism, divergence, load_run."""

from __future__ import annotations

import json

import pytest
import torch

from riemexp import load_run, run
from riemexp.config import (
    AdamConfig,
    DatasetConfig,
    GeometryConfig,
    NetworkConfig,
    OdeConfig,
    PlotConfig,
    RunConfig,
    SgdConfig,
)
from riemexp.data.dataset import make_dataset
from riemexp.data.toy import MoonsConfig
from riemexp.errors import DivergedError, RunFolderError
from riemexp.nets.network import build_network
from riemexp.train import train
from tests.conftest import tiny_config

NO_ANALYSIS = dict(
    geometry=GeometryConfig(enabled=False), plot=PlotConfig(enabled=False), ode=OdeConfig(enabled=False)
)


KINDS = ["plain", "residual", "c2"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("width", [2, 3])
def test_coordinates_shape_and_forward(kind: str, width: int) -> None:
    torch.manual_seed(0)
    net = build_network(NetworkConfig(kind=kind, width=width, depth=4, step_size=0.3), n_classes=3)
    x = torch.randn(7, 2)
    coords = net.coordinates(x)
    assert coords.shape == (5, 7, width)
    assert torch.equal(coords[0, :, :2], x) and torch.all(coords[0, :, 2:] == 0)
    assert torch.allclose(net(x), net.head(coords[-1]))
    assert net(x).shape == (7, 3)


def test_layer_updates_follow_paper_equations() -> None:
    torch.manual_seed(1)
    x = torch.randn(5, 2, dtype=torch.float64)
    for kind in KINDS:
        net = build_network(NetworkConfig(kind=kind, depth=3, step_size=0.4), 2).double()
        c = net.coordinates(x)
        W, b, h = net.weight, net.bias, 0.4
        pre = c[1] @ W[1].T + b[1]
        if kind == "plain":
            expected = torch.tanh(pre)
        elif kind == "residual":
            expected = c[1] + h * torch.tanh(pre)
        else:
            expected = 2 * c[1] - c[0] + h**2 * torch.tanh(pre)
        assert torch.allclose(c[2], expected)
    # c2 starts with zero velocity: x_1 = x_0 + h^2 sigma(W_0 x_0 + b_0)
    net = build_network(NetworkConfig(kind="c2", depth=1, step_size=0.4), 2).double()
    c = net.coordinates(x)
    assert torch.allclose(c[1], c[0] + 0.16 * torch.tanh(c[0] @ net.weight[0].T + net.bias[0]))


def test_residual_layers_start_near_identity() -> None:
    torch.manual_seed(0)
    net = build_network(NetworkConfig(depth=8, step_size=0.05), 2)
    c = net.coordinates(torch.randn(50, 2))
    assert (c[1:] - c[:-1]).norm(dim=-1).max() < 0.1


def test_same_seed_same_weights_and_history() -> None:
    cfg = tiny_config(optim=AdamConfig(epochs=8))
    data = make_dataset(cfg.dataset, cfg.data_seed)
    a, b = train(cfg, data), train(cfg, data)
    assert a.history == b.history
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    c = train(tiny_config(optim=AdamConfig(epochs=8), seed=1), data)
    assert c.history != a.history


def test_minibatches_are_seeded() -> None:
    cfg = tiny_config(optim=AdamConfig(epochs=3, batch_size=16))
    data = make_dataset(cfg.dataset, cfg.data_seed)
    assert train(cfg, data).history == train(cfg, data).history


def test_dataset_generation_is_seeded_and_split() -> None:
    for name in ("spirals", "circles", "moons"):
        cfg = DatasetConfig.of(name, n_samples=200, test_fraction=0.25)
        a, b, c = make_dataset(cfg, 0), make_dataset(cfg, 0), make_dataset(cfg, 1)
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
        assert not torch.equal(a.x, c.x)
        assert len(a.x_test) == 50 and len(a.x_train) == 150
        assert set(a.y.tolist()) == {0, 1}


def test_run_writes_a_complete_run_folder_and_load_run_reads_it(tmp_path) -> None:
    cfg = tiny_config(**NO_ANALYSIS)
    metrics = run(cfg, tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved == metrics and saved["status"] == "completed"
    for key in (
        "train_accuracy",
        "test_accuracy",
        "train_loss",
        "test_loss",
        "epochs",
        "train_seconds",
        "seed",
        "python_version",
        "torch_version",
        "riemexp_version",
    ):
        assert saved[key] is not None, key
    assert saved["epochs"] == cfg.optim.epochs
    history = (tmp_path / "history.csv").read_text().splitlines()
    assert history[0] == "epoch,train_loss,train_accuracy,test_loss,test_accuracy"
    assert len(history) == cfg.optim.epochs + 1
    loaded = load_run(tmp_path)
    assert loaded.config == cfg and not loaded.model.training
    with torch.no_grad():
        pred = loaded.model(loaded.data.x_test.float()).argmax(1)
    assert (pred == loaded.data.y_test).double().mean().item() == pytest.approx(saved["test_accuracy"])
    # the train scores, too, are those of the saved model (not of the weights before the last step)
    with torch.no_grad():
        logits = loaded.model(loaded.data.x_train.float())
    loss = torch.nn.functional.cross_entropy(logits, loaded.data.y_train).item()
    assert loss == pytest.approx(saved["train_loss"], rel=1e-6)
    assert (logits.argmax(1) == loaded.data.y_train).double().mean().item() == saved["train_accuracy"]
    assert saved["train_loss"] != pytest.approx(float(history[-1].split(",")[1]), rel=1e-9)
    assert not list(tmp_path.glob(".*.tmp")), "temporary files left behind"


def test_divergence_is_reported_and_recorded(tmp_path) -> None:
    cfg = RunConfig(
        dataset=MoonsConfig(n_samples=100),
        network=NetworkConfig(depth=10, activation="identity", step_size=1.0),
        optim=SgdConfig(lr=1e6, epochs=50),
        **NO_ANALYSIS,
    )
    with pytest.raises(DivergedError, match="diverged at epoch .*Try a smaller optim.lr"):
        run(cfg, tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "diverged"
    assert not (tmp_path / "model.pt").exists()
    with pytest.raises(RunFolderError, match="status 'diverged'"):
        load_run(tmp_path)


def test_load_run_names_what_is_missing_or_corrupt(tmp_path) -> None:
    with pytest.raises(RunFolderError, match="does not exist"):
        load_run(tmp_path / "nope")
    with pytest.raises(RunFolderError, match="metrics.json is missing"):
        load_run(tmp_path)
    (tmp_path / "metrics.json").write_text("{not json")
    with pytest.raises(RunFolderError, match="corrupt"):
        load_run(tmp_path)
    (tmp_path / "metrics.json").write_text('{"status": "completed"}')
    with pytest.raises(RunFolderError, match="model.pt is missing"):
        load_run(tmp_path)
    (tmp_path / "model.pt").write_bytes(b"garbage")
    with pytest.raises(RunFolderError, match="model.pt is corrupt"):
        load_run(tmp_path)


def _files(folder) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "notes.txt"
    }


def test_a_failed_re_run_keeps_the_earlier_run_and_a_completed_one_replaces_it(tmp_path) -> None:
    run(tiny_config(), tmp_path)
    earlier = _files(tmp_path)
    for name in ("geometry.npz", "tables/layers.csv", "plots/layers.png", "model.pt", "history.csv"):
        assert name in earlier, name
    (tmp_path / "notes.txt").write_text("the user's own file")
    # the second run diverges: the first run stays, byte for byte; the attempt's record beside it
    diverging = RunConfig(
        dataset=MoonsConfig(n_samples=100),
        network=NetworkConfig(depth=10, activation="identity", step_size=1.0),
        optim=SgdConfig(lr=1e6, epochs=50),
    )
    with pytest.raises(DivergedError):
        run(diverging, tmp_path)
    now = _files(tmp_path)
    assert {k: v for k, v in now.items() if not k.startswith("unfinished-rerun/")} == earlier
    assert sorted(k for k in now if k.startswith("unfinished-rerun/")) == [
        "unfinished-rerun/config.yaml",
        "unfinished-rerun/history.csv",
        "unfinished-rerun/metrics.json",
    ]
    attempt = json.loads((tmp_path / "unfinished-rerun" / "metrics.json").read_text())
    assert attempt["status"] == "diverged" and "diverged at epoch" in attempt["error"]
    assert load_run(tmp_path).config == tiny_config(), "the earlier run is still readable"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no staging folder left"
    # a third run completes: nothing of the first run (nor of the failed attempt) remains
    third = tiny_config(geometry=GeometryConfig(enabled=False), plot=PlotConfig(enabled=False))
    run(third, tmp_path)
    for name in ("geometry.npz", "tables/layers.csv", "plots", "unfinished-rerun"):
        assert not (tmp_path / name).exists(), name
    assert (tmp_path / "notes.txt").exists() and load_run(tmp_path).config == third
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "config.yaml",
        "history.csv",
        "metrics.json",
        "model.pt",
        "notes.txt",
        "ode.npz",
        "report.md",
        "tables",
    ]


def test_a_folder_with_files_by_riemexp_names_but_no_run_is_refused_not_emptied(tmp_path) -> None:
    from riemexp.errors import OutputError

    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "figure_from_my_paper.png").write_text("precious")
    with pytest.raises(OutputError, match="holds plots but no riemexp run"):
        run(tiny_config(**NO_ANALYSIS), tmp_path)
    assert (tmp_path / "plots" / "figure_from_my_paper.png").read_text() == "precious"
    assert not (tmp_path / "metrics.json").exists()
