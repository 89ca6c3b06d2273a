"""Batched ensembles: every member ends exactly where the same run trained alone ends.

"Exactly" means bit for bit: weights, every history row and the final scores are compared with
==, not with a tolerance. That equality rests on measured properties of torch's cpu kernels and
MKL (see riemexp.ensemble.network and .kernels); on a platform without them (no MKL, another
SIMD width) each step agrees to float32 rounding instead, and the short runs here stay close.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch.nn import functional as F

from riemexp.bench.ensemble import grid_configs
from riemexp.config import AdamConfig, DatasetConfig, NetworkConfig, RunConfig, SgdConfig
from riemexp.data.csv import CsvConfig
from riemexp.data.dataset import make_dataset
from riemexp.data.toy import GaussiansConfig, MoonsConfig, SpiralsConfig
from riemexp.ensemble import (
    StackedNetwork,
    TrainedEnsemble,
    check_members,
    ensemble_key,
    group_members,
    member_datasets,
    split_ensemble,
    train_ensemble,
)
from riemexp.ensemble.kernels import as_single_run
from riemexp.ensemble.loss import cascade_mean, planar_nll, planar_targets, predictions
from riemexp.ensemble.network import Tape
from riemexp.errors import ConfigError, DivergedError
from riemexp.nets.network import build_network
from riemexp.train import TrainResult, train

#: where the equalities behind bit-identical members were measured: x86-64 with MKL and AVX2/AVX-512
EXACT_PLATFORM = torch.backends.mkl.is_available() and torch.backends.cpu.get_cpu_capability() in (
    "AVX2",
    "AVX512",
)


def alone(cfg: RunConfig, data=None) -> tuple[TrainResult, str | None]:
    """The run trained by riemexp.train.train: its result and its divergence message (None: completed)."""
    data = data if data is not None else make_dataset(cfg.dataset, cfg.data_seed)
    result = TrainResult(model=None)  # type: ignore[arg-type]
    try:
        train(cfg, data, result=result)
    except DivergedError as err:
        return result, str(err)
    return result, None


def same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit for bit, NaN included."""
    return a.shape == b.shape and torch.equal(a.view(torch.int32), b.view(torch.int32))


def same_rows(a: list[dict[str, float]], b: list[dict[str, float]]) -> bool:
    """Equal history rows, a NaN equal to a NaN (a diverged run's last row holds one)."""

    def key(rows):
        return [
            {k: "nan" if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()} for r in rows
        ]

    return key(a) == key(b)


def assert_member_is_single(
    member, single: TrainResult, error: str | None, exact: bool = EXACT_PLATFORM
) -> None:
    assert (member.error is None) == (error is None)
    if error is not None:
        assert str(member.error) == error
    mine, theirs = member.model.state_dict(), single.model.state_dict()
    assert mine.keys() == theirs.keys()
    if exact:
        for name in mine:
            assert same_tensor(mine[name], theirs[name]), name
        assert same_rows(member.history, single.history)
        assert member.final == single.final
    else:  # float32 rounding, amplified by training: a loose bound, meaningful for a few epochs only
        for name in mine:
            torch.testing.assert_close(mine[name], theirs[name], rtol=1e-3, atol=1e-4, equal_nan=True)
        assert len(member.history) == len(single.history)


def check_against_single_runs(cfgs: list[RunConfig], **kwargs) -> TrainedEnsemble:
    datasets = member_datasets(cfgs)
    trained = train_ensemble(cfgs, datasets, **kwargs)
    for cfg, data, member in zip(cfgs, datasets, split_ensemble(trained)):
        assert_member_is_single(member, *alone(cfg, data))
    return trained


# --------------------------------------------------------------------------- equal to single runs


@pytest.mark.slow
def test_every_job_of_the_default_sweep_grid_matches_its_single_run() -> None:
    """All 60 jobs of conf/grid/default.yaml (plain and residual, h 0.1/0.5/1, depth 2..32, seeds 0-2),
    grouped by shape, at 12 epochs (`riemexp bench ensemble` compares them at the full 300)."""
    cfgs = grid_configs("default", ["optim.epochs=12"])
    assert len(cfgs) == 60
    datasets = member_datasets(cfgs)
    groups = group_members(cfgs, datasets)
    assert sorted(len(g) for g in groups) == [3] * 5 + [9] * 5  # by kind and depth: h and seed vary inside
    for group in groups:
        trained = train_ensemble([cfgs[i] for i in group], [datasets[i] for i in group])
        for i, member in zip(group, split_ensemble(trained)):
            assert_member_is_single(member, *alone(cfgs[i], datasets[i]))


@pytest.mark.parametrize("kind", ["plain", "residual", "c2"])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu", "softplus", "identity"])
def test_every_kind_and_activation_matches_single_runs(kind: str, activation: str) -> None:
    cfgs = [
        RunConfig(
            seed=s,
            dataset=SpiralsConfig(n_samples=150),
            network=NetworkConfig(kind=kind, depth=4, activation=activation, step_size=(0.1, 0.5, 1.0)[s]),
            optim=AdamConfig(epochs=6),
        )
        for s in range(3)
    ]
    check_against_single_runs(cfgs)


def test_per_member_hyperparameters_data_and_optimizers_match_single_runs() -> None:
    """Adam with 30 members (the vectorised loss path), per-member lr and weight decay, each its own data."""
    cfgs = [
        RunConfig(
            seed=s,
            dataset=DatasetConfig.of(
                ("moons", "circles", "xor")[s % 3], n_samples=130, noise=0.05 + 0.01 * s
            ),
            network=NetworkConfig(kind="residual", depth=5, step_size=(0.1, 0.5, 1.0)[s % 3]),
            optim=AdamConfig(epochs=8, lr=(0.05, 0.01)[s % 2], weight_decay=(0.0, 1e-3, 1e-2)[s % 3]),
        )
        for s in range(30)
    ]
    check_against_single_runs(cfgs)


def test_sgd_with_per_member_momentum_and_mini_batches_matches_single_runs() -> None:
    cfgs = [
        RunConfig(
            seed=s,
            dataset=MoonsConfig(n_samples=140),
            network=NetworkConfig(kind="plain", depth=4),
            optim=SgdConfig(
                epochs=5,
                lr=(0.1, 0.05)[s % 2],
                momentum=(0.9, 0.0, 0.5)[s % 3],
                weight_decay=(0.0, 1e-3)[s % 2],
                batch_size=32,  # 105 training points: three batches of 32 and one of 9
            ),
        )
        for s in range(6)
    ]
    check_against_single_runs(cfgs)


@pytest.mark.parametrize("kind", ["residual", "c2"])
@pytest.mark.parametrize("activation, members", [("tanh", 26), ("softplus", 4)])
def test_mini_batch_adam_matches_single_runs(kind: str, activation: str, members: int) -> None:
    """160 points: 120 for training, in batches of 50, 50 and 20; 26 members take the vectorised loss."""
    cfgs = [
        RunConfig(
            seed=s,
            dataset=SpiralsConfig(n_samples=160),
            network=NetworkConfig(kind=kind, depth=5, activation=activation),
            optim=AdamConfig(epochs=3, batch_size=50),
        )
        for s in range(members)
    ]
    check_against_single_runs(cfgs)


def test_width_three_three_classes_and_a_standardised_csv_match_single_runs(tmp_path) -> None:
    gaussians = [
        RunConfig(
            seed=s,
            dataset=GaussiansConfig(n_classes=3, n_samples=150),
            network=NetworkConfig(kind="residual", depth=4, width=3),
            optim=AdamConfig(epochs=6),
        )
        for s in range(4)
    ]
    assert StackedNetwork.from_networks([alone(gaussians[0])[0].model]).exact
    check_against_single_runs(gaussians)
    # a CSV in its own units: the network standardises its input with the training split's statistics
    points = make_dataset(MoonsConfig(n_samples=120), 3)
    lines = ["x,y,label"] + [
        f"{100 + 30 * a:.6f},{-7 + 0.2 * b:.6f},{c}"
        for (a, b), c in zip(points.x.tolist(), points.y.tolist())
    ]
    (tmp_path / "points.csv").write_text("\n".join(lines) + "\n")
    csv = CsvConfig(path=str(tmp_path / "points.csv"), coordinate_columns=("x", "y"), label_column="label")
    assert not torch.equal(make_dataset(csv, 0).input_scale, torch.ones(2, dtype=torch.float64))
    check_against_single_runs(
        [
            RunConfig(seed=s, dataset=csv, network=NetworkConfig(depth=3), optim=AdamConfig(epochs=6))
            for s in range(3)
        ]
    )


def test_members_with_different_epochs_leave_when_done() -> None:
    cfgs = [
        RunConfig(
            seed=s,
            dataset=MoonsConfig(n_samples=120),
            network=NetworkConfig(depth=3),
            optim=AdamConfig(epochs=e),
        )
        for s, e in enumerate((7, 3, 1, 7))
    ]
    trained = check_against_single_runs(cfgs)
    assert [len(h) for h in trained.histories] == [7, 3, 1, 7]
    assert all(
        set(final) == {"train_loss", "train_accuracy", "test_loss", "test_accuracy"}
        for final in trained.finals
    )


# --------------------------------------------------------------------------- reproducible, isolated


@pytest.mark.parametrize("exact", [None, False])
def test_an_ensemble_trained_twice_is_bit_identical(exact: bool | None) -> None:
    """In either mode, at one thread count; exact mode's members also at any thread count."""
    cfgs = [
        RunConfig(
            seed=s,
            dataset=SpiralsConfig(n_samples=150),
            network=NetworkConfig(depth=6, step_size=0.1 * (s + 1)),
            optim=AdamConfig(epochs=5, batch_size=40),
        )
        for s in range(5)
    ]
    first, second = train_ensemble(cfgs, exact=exact), train_ensemble(cfgs, exact=exact)
    assert first.network.exact == (exact is None)
    assert same_tensor(first.network.params, second.network.params)
    assert first.histories == second.histories and first.finals == second.finals
    if exact is not None:
        return  # fast mode's planar sums may split differently over another number of threads
    assert (
        torch.get_num_threads() == 1
    )  # the suite's setting; a different thread count must not change results:
    torch.set_num_threads(2)
    try:
        third = train_ensemble(cfgs)
    finally:
        torch.set_num_threads(1)
    if EXACT_PLATFORM:
        assert same_tensor(first.network.params, third.network.params) and first.histories == third.histories


@pytest.mark.parametrize("batch_size", [None, 16])
def test_a_diverging_member_leaves_its_neighbours_unchanged(batch_size: int | None) -> None:
    """Member 1 diverges (SGD with lr 1000 on an identity residual network); members 0 and 2 are
    bit-identical to the ensemble without it, and it ends as its single run ends."""
    data = MoonsConfig(n_samples=120)

    def config(seed: int, lr: float) -> RunConfig:
        return RunConfig(
            seed=seed,
            dataset=data,
            network=NetworkConfig(kind="residual", depth=6, activation="identity", step_size=1.0),
            optim=SgdConfig(lr=lr, epochs=6, batch_size=batch_size),
        )

    good, bad = [config(0, 0.05), config(2, 0.05)], config(1, 1000.0)
    with_it = train_ensemble([good[0], bad, good[1]])
    without = train_ensemble(good)
    assert with_it.errors[0] is None and with_it.errors[2] is None
    assert isinstance(with_it.errors[1], DivergedError)
    assert "training diverged at epoch" in str(with_it.errors[1])
    assert len(with_it.histories[1]) < 6 and with_it.finals[1] == {}
    for k_with, k_without in ((0, 0), (2, 1)):
        assert same_rows(with_it.histories[k_with], without.histories[k_without])
        assert with_it.finals[k_with] == without.finals[k_without]
        assert same_tensor(with_it.network.params[k_with], without.network.params[k_without])
    member = split_ensemble(with_it)[1]
    assert member.status == "diverged"
    single, error = alone(bad)
    assert_member_is_single(member, single, error)
    if batch_size is not None:  # NaN reached the weights inside the diverging epoch, and stayed in its row
        assert with_it.network.params[1].isnan().any()


@pytest.mark.parametrize("batch_size", [None, 16])
def test_a_member_whose_loss_explodes_diverges_as_its_single_run_does(batch_size: int | None) -> None:
    """SGD with lr 1e30 keeps the loss finite (tanh saturates) but 10^29 x its start: the
    explosion rule of riemexp.train.divergence, applied per member exactly as in a single run."""

    def config(seed: int, lr: float) -> RunConfig:
        return RunConfig(
            seed=seed,
            dataset=MoonsConfig(n_samples=120),
            network=NetworkConfig(depth=4),
            optim=SgdConfig(lr=lr, epochs=6, batch_size=batch_size),
        )

    good, bad = config(0, 0.05), config(1, 1e30)
    with_it = train_ensemble([good, bad])
    assert with_it.errors[0] is None and "the train loss exploded" in str(with_it.errors[1])
    for member, cfg in zip(split_ensemble(with_it), (good, bad)):
        single, error = alone(cfg)
        assert_member_is_single(member, single, error)


# --------------------------------------------------------------------------- pieces


def test_split_ensemble_gives_ordinary_networks_and_keeps_the_global_rng() -> None:
    cfgs = [
        RunConfig(
            seed=s,
            dataset=MoonsConfig(n_samples=120),
            network=NetworkConfig(depth=3, step_size=0.2 * (s + 1)),
            optim=AdamConfig(epochs=2),
        )
        for s in range(3)
    ]
    trained = train_ensemble(cfgs)
    state = torch.random.get_rng_state()
    members = split_ensemble(trained)
    assert torch.equal(state, torch.random.get_rng_state())
    x = torch.randn(20, 2)
    logits = trained.network.forward(trained.network.pad(x.expand(3, -1, -1)))
    for k, member in enumerate(members):
        assert member.model.h == pytest.approx(0.2 * (k + 1)) and not member.model.training
        assert torch.equal(member.model(x), logits[k])
        assert member.cfg is cfgs[k] and member.status == "completed"
        assert member.seconds > 0 and member.history[-1]["epoch"] == 2


def test_cascade_mean_is_torchs_nll_loss_for_any_number_of_points() -> None:
    torch.manual_seed(0)
    for n in [*range(1, 70), 255, 256, 257, 272, 273, 750, 4095, 4096, 4097, 5000]:
        log_probs = torch.log_softmax(3 * torch.randn(3, n, 2), -1)
        y = torch.randint(0, 2, (3, n))
        expected = torch.stack([F.nll_loss(log_probs[k], y[k]) for k in range(3)])
        assert torch.equal(cascade_mean(log_probs.gather(-1, y[..., None]).squeeze(-1)), expected), n


def test_two_class_predictions_are_argmax_with_ties_and_nan() -> None:
    logits = torch.tensor(
        [[[1.0, 2.0], [2.0, 1.0], [1.0, 1.0], [math.nan, 1.0], [1.0, math.nan], [math.nan, math.nan]]]
    )
    assert torch.equal(predictions(logits), logits.argmax(-1))


@pytest.mark.skipif(not EXACT_PLATFORM, reason="kernel paths measured on x86-64 with AVX2/AVX-512")
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n", [7, 150, 20000])
def test_path_dependent_kernels_match_each_members_own_tensor(threads: int, n: int) -> None:
    """sigmoid and softplus on a stacked (K, w, N) tensor, each element as a single run's (N, w) gets it."""
    torch.manual_seed(1)
    z = 4 * torch.randn(3, 2, n)
    torch.set_num_threads(threads)
    try:
        for kernel in (torch.sigmoid, F.softplus):
            stacked = as_single_run(kernel, z)
            for k in range(3):
                assert torch.equal(stacked[k].T, kernel(z[k].T.contiguous()))
    finally:
        torch.set_num_threads(1)


def assert_member_is_close(member, single: TrainResult, error: str | None, n_train: int) -> None:
    """Fast mode's stated tolerance for a few epochs: weights within 1e-4 + 1e-3 relative, every loss
    of the history within 1e-5 relative, every accuracy within one point (1 / N)."""
    assert_member_is_single(member, single, error, exact=False)
    for mine, theirs in zip(member.history, single.history):
        for key in ("train_loss", "test_loss"):
            assert mine[key] == pytest.approx(theirs[key], rel=1e-5), key
        assert abs(mine["train_accuracy"] - theirs["train_accuracy"]) <= 1 / n_train + 1e-12


@pytest.mark.parametrize("width, exact", [(2, False), (4, None)])
def test_fast_mode_agrees_to_float32_rounding(width: int, exact: bool | None) -> None:
    """exact=False (and the default for widths above 3): planar kernels, rounding differs."""
    cfgs = [
        RunConfig(
            seed=s,
            dataset=SpiralsConfig(n_samples=150),
            network=NetworkConfig(depth=4, width=width),
            optim=AdamConfig(epochs=5),
        )
        for s in range(3)
    ]
    datasets = member_datasets(cfgs)
    trained = train_ensemble(cfgs, datasets, exact=exact)
    assert not trained.network.exact
    for cfg, data, member in zip(cfgs, datasets, split_ensemble(trained)):
        assert_member_is_close(member, *alone(cfg, data), len(data.x_train))


@pytest.mark.parametrize("kind", ["plain", "residual", "c2"])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu", "softplus", "identity"])
def test_fast_mode_forward_and_gradient_are_autograds_in_float64(kind: str, activation: str) -> None:
    """Fast mode's logits, losses and hand-written gradient (tanh through the logistic function,
    per-member and shared step sizes, two classes and three) against autograd of each member alone,
    in float64."""
    for data, steps in (
        (make_dataset(SpiralsConfig(n_samples=60), 0), (0.2, 0.5, 1.0)),
        (make_dataset(SpiralsConfig(n_samples=60), 0), (0.5, 0.5, 0.5)),
        (make_dataset(GaussiansConfig(n_classes=3, n_samples=60), 0), (0.3, 0.3, 0.7)),
    ):
        models = []
        for s, h in enumerate(steps):
            torch.manual_seed(s)
            cfg = NetworkConfig(kind=kind, depth=4, width=3, activation=activation, step_size=h)
            models.append(build_network(cfg, data.n_classes).double())
        net = StackedNetwork.from_networks(models, exact=False)
        x = data.x_train.double().expand(len(models), -1, -1)
        y = data.y_train.expand(len(models), -1)
        tape = Tape([], [], [])
        logits = net.forward(net.pad(x), tape)
        loss, grad_logits = planar_nll(logits, planar_targets(y, data.n_classes, torch.float64))
        grad = net.backward(tape, grad_logits)
        for k, model in enumerate(models):
            out = model(x[k])
            single = F.cross_entropy(out, y[k])
            expected = torch.autograd.grad(single, [model.weight, model.bias, *model.head.parameters()])
            torch.testing.assert_close(logits[k], out.detach(), rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(loss[k], single.detach(), rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(
                grad[k], torch.cat([g.flatten() for g in expected]), rtol=1e-9, atol=1e-12
            )


@pytest.mark.parametrize("kind", ["plain", "residual", "c2"])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "softplus", "identity"])
def test_fast_mode_trains_every_kind_within_its_tolerance(kind: str, activation: str) -> None:
    cfgs = [
        RunConfig(
            seed=s,
            dataset=SpiralsConfig(n_samples=150),
            network=NetworkConfig(kind=kind, depth=4, activation=activation, step_size=(0.1, 0.5, 0.5)[s]),
            optim=AdamConfig(epochs=5),
        )
        for s in range(3)
    ]
    datasets = member_datasets(cfgs)
    for cfg, data, member in zip(cfgs, datasets, split_ensemble(train_ensemble(cfgs, datasets, exact=False))):
        assert_member_is_close(member, *alone(cfg, data), len(data.x_train))


def test_on_epoch_sees_each_epoch_and_a_passed_result_keeps_the_history_when_stopped() -> None:
    cfgs = [
        RunConfig(
            seed=s,
            dataset=MoonsConfig(n_samples=120),
            network=NetworkConfig(depth=3),
            optim=AdamConfig(epochs=9),
        )
        for s in range(2)
    ]
    seen = []

    def on_epoch(epoch, rows):
        seen.append((epoch, sorted(rows)))
        if epoch == 4:
            raise KeyboardInterrupt

    result = TrainedEnsemble()
    with pytest.raises(KeyboardInterrupt):
        train_ensemble(cfgs, on_epoch=on_epoch, result=result)
    assert seen == [(e, [0, 1]) for e in range(1, 5)]
    assert [len(h) for h in result.histories] == [4, 4] and result.network is None
    with pytest.raises(ValueError, match="has not finished"):
        split_ensemble(result)


def test_members_that_cannot_share_an_ensemble_are_refused_in_one_line() -> None:
    base = RunConfig(
        dataset=MoonsConfig(n_samples=120),
        network=NetworkConfig(depth=3),
        optim=AdamConfig(epochs=2),
    )
    cases = [
        (
            replace(base, network=replace(base.network, depth=4)),
            "network.depth: member 0 has 3, member 1 has 4",
        ),
        (replace(base, network=replace(base.network, kind="plain")), "network.kind: member 0 has residual"),
        (
            replace(base, optim=SgdConfig(epochs=2)),
            "optim.name: member 0 has adam, member 1 has sgd",
        ),
        (
            replace(base, dataset=replace(base.dataset, n_samples=200)),
            "the number of training points: member 0 has 90",
        ),
        (
            replace(base, optim=replace(base.optim, batch_size=30)),
            "optim.batch_size (effective): member 0 has 90",
        ),
    ]
    for other, expected in cases:
        with pytest.raises(ConfigError) as err:
            train_ensemble([base, other])
        assert expected in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="at least one member"):
        train_ensemble([])
    # a batch size at or above the training set is full batch: the same shape
    full = replace(base, optim=replace(base.optim, batch_size=500))
    datasets = member_datasets([base, full])
    assert check_members([base, full], datasets) == ensemble_key(base, datasets[0])


def test_group_members_keeps_order_and_cuts_large_groups() -> None:
    def cfg(depth: int, seed: int) -> RunConfig:
        return RunConfig(seed=seed, dataset=MoonsConfig(n_samples=120), network=NetworkConfig(depth=depth))

    cfgs = [cfg(2, 0), cfg(3, 0), cfg(2, 1), cfg(2, 2), cfg(3, 1)]
    datasets = member_datasets(cfgs)
    assert group_members(cfgs, datasets) == [[0, 2, 3], [1, 4]]
    assert group_members(cfgs, datasets, max_size=2) == [[0, 2], [3], [1, 4]]
    with pytest.raises(ConfigError, match="max_size must be >= 1"):
        group_members(cfgs, datasets, max_size=0)
