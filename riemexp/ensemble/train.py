"""Train K runs as one ensemble; each member ends exactly where `riemexp.train.train` would take it.

Per member, as a single run: torch.manual_seed(seed) then the network's initialisation, the
run's own dataset (`member_datasets`), its own shuffling generator (seed + 1) for mini-batches,
its own lr, weight decay, momentum, step size h and number of epochs. Per epoch, as a single
run: one step per batch (train loss and accuracy taken on the batch before its update), then
the test loss and accuracy after the epoch's last update, then the divergence check.

A member whose train or test loss is not finite, or whose train loss explodes (the rule of
`riemexp.train.divergence`), is marked diverged (with the message a single
run raises) and leaves the ensemble: its weights stay as they were at that epoch, and the
other members go on unchanged, since no operation mixes members. A member that has done its
epochs is scored on the training set (`final`) and leaves too.

Geometry snapshots (`recorders`): each member may have a recorder of snapshots (one
`riemexp.analyses.snapshots.SnapshotRecorder` per member, made by the caller:
`riemexp.sweep.ensemble.snapshot_recorders`), which is handed the member's network
(`StackedNetwork.network`, the member's weights as an ordinary LayeredNetwork) at
initialisation and after each of its `epochs`, as its single run's recorder is after that
epoch: the same weights, hence the same snapshots.npz. Recorders of one shape measure their
members together, in one batched pass to the same bits (`SnapshotRecorder.record_many`). The time
spent recording is not counted in the members' training seconds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import torch

from riemexp.config import RunConfig
from riemexp.data.dataset import Dataset
from riemexp.ensemble.loss import (
    accuracy,
    mean_nll,
    mean_nll_backward,
    planar_nll,
    planar_targets,
    predictions,
)
from riemexp.ensemble.members import check_members, member_datasets
from riemexp.ensemble.network import StackedNetwork, Tape
from riemexp.ensemble.optim import StackedOptimizer
from riemexp.errors import ConfigError, DivergedError
from riemexp.nets.network import build_network
from riemexp.train import TrainResult, divergence, explosion_threshold, resolve_device


class SnapshotHook(Protocol):
    """What the trainer needs of a member's snapshot recorder (a riemexp.analyses.snapshots
    SnapshotRecorder). Its class may also offer `record_many(pairs, epoch)`, taking every
    (recorder, model) pair of the epoch at once (`_snapshot`)."""

    epochs: list[int]  # the epochs recorded, 0 = initialisation

    def record(self, model: Any, epoch: int) -> None: ...


#: on_epoch(epoch, rows): rows maps member position -> its history row, for the members that trained
EnsembleEpochCallback = Callable[[int, Mapping[int, dict[str, float]]], None]


@dataclass
class TrainedEnsemble:
    """K trained members: their final weights stacked, and per member its history, scores and fate.

    network: the members' final weights (a diverged member's as at its divergence), on the cpu;
    None until training ends. histories[k], finals[k], seconds[k], errors[k] as a single run's
    TrainResult.history, .final ({} when diverged), .seconds (the ensemble's wall time when the
    member left) and the DivergedError it would have raised (None when it completed).
    """

    configs: tuple[RunConfig, ...] = ()
    network: StackedNetwork | None = None
    histories: list[list[dict[str, float]]] = field(default_factory=list)
    finals: list[dict[str, float]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    errors: list[DivergedError | None] = field(default_factory=list)
    device: str = "cpu"  # where the members trained
    #: per member its SnapshotRecorder (riemexp.analyses.snapshots), None where none was recorded
    recorders: list[Any] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.configs)


@dataclass
class MemberResult(TrainResult):
    """One member as an ordinary TrainResult, with its config and its divergence (None: completed).

    members: the size of the ensemble it was trained in; device: where that ensemble trained;
    snapshots: its geometry snapshots recorded during the ensemble's training (a SnapshotRecorder of
    riemexp.analyses.snapshots), None when none were recorded.
    analyses: its analysis results computed with the other members', by analysis name (the run's
    step uses them instead of computing its own: `RunContext.precomputed`), e.g. "ode": its OdeReport.
    """

    cfg: RunConfig | None = None
    error: DivergedError | None = None
    members: int = 1
    device: str = "cpu"
    snapshots: Any = None
    analyses: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return "completed" if self.error is None else "diverged"

    def replay(
        self,
        cfg: RunConfig,
        result: TrainResult | None = None,
        on_epoch: Callable[[dict[str, float]], None] | None = None,
    ) -> TrainResult:
        """Stand in for `riemexp.train.train(cfg, data, on_epoch, result)`: the member's training, done.

        Fills `result` (as train does: model on the device it trained on, history row by row,
        seconds, final scores), calls on_epoch with every row train would have passed it, and
        raises the member's DivergedError as train raises it (after the diverging epoch's row,
        which on_epoch does not see). This is how `riemexp.run.run` writes a member trained in
        an ensemble into its own run folder with the single run's pipeline.

        ValueError when cfg is not the member's config (its run would record another run).
        """
        if cfg != self.cfg:
            raise ValueError("this ensemble member was trained with another config than the run's")
        result = result if result is not None else TrainResult(model=self.model)
        result.model = self.model.to(self.device)
        for row in self.history:
            result.history.append(dict(row))
            result.seconds = self.seconds
            if self.error is not None and row is self.history[-1]:
                raise self.error
            if on_epoch is not None:
                on_epoch(dict(row))
        result.seconds = self.seconds
        result.final = dict(self.final)
        return result


def split_ensemble(ensemble: TrainedEnsemble) -> list[MemberResult]:
    """The members as K ordinary results: a LayeredNetwork each (cpu, eval mode), its history and scores."""
    if ensemble.network is None:
        raise ValueError("the ensemble has not finished training: it has no final weights to split")
    return [
        MemberResult(
            model=ensemble.network.network(k),
            history=ensemble.histories[k],
            seconds=ensemble.seconds[k],
            final=ensemble.finals[k],
            cfg=cfg,
            error=ensemble.errors[k],
            members=len(ensemble.configs),
            device=ensemble.device,
            snapshots=ensemble.recorders[k] if ensemble.recorders else None,
        )
        for k, cfg in enumerate(ensemble.configs)
    ]


def _initial_network(
    cfgs: Sequence[RunConfig], datasets: Sequence[Dataset], exact: bool | None
) -> StackedNetwork:
    """Each member initialised exactly as a single run: torch.manual_seed(seed), then build_network."""
    models = []
    for cfg, data in zip(cfgs, datasets):
        torch.manual_seed(cfg.seed)
        model = build_network(cfg.network, data.n_classes)
        model.get_buffer("input_shift").copy_(data.input_shift)
        model.get_buffer("input_scale").copy_(data.input_scale)
        models.append(model)
    return StackedNetwork.from_networks(models, exact)


class Targets(NamedTuple):
    """Fast mode's labels, made once per label tensor: planar one-hot (K, C, N) and, for two
    classes, label == 1 (K, N) bool (for the accuracy)."""

    onehot: torch.Tensor
    is_one: torch.Tensor | None

    def select(self, keep: torch.Tensor) -> Targets:
        is_one = None if self.is_one is None else self.is_one.index_select(0, keep)
        return Targets(self.onehot.index_select(0, keep), is_one)


def _targets(net: StackedNetwork, y: torch.Tensor) -> Targets | None:
    """Fast mode's `Targets` of labels y (K, N); None in exact mode (it takes y itself)."""
    if net.exact:
        return None
    return Targets(planar_targets(y, net.n_classes, net.params.dtype), y == 1 if net.n_classes == 2 else None)


def _loss(
    net: StackedNetwork, logits: torch.Tensor, y: torch.Tensor, targets: Targets | None, grad: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Each member's mean cross-entropy (K,) and (when grad) dL/dlogits (K, N, C), in the net's mode."""
    if net.exact:
        log_probs = torch.log_softmax(logits, -1)
        return mean_nll(log_probs, y), mean_nll_backward(log_probs, y) if grad else None
    if targets is None:
        targets = _targets(net, y)
        assert targets is not None
    return planar_nll(logits, targets.onehot, grad)


def _scores(
    net: StackedNetwork, logits: torch.Tensor, loss: torch.Tensor, y: torch.Tensor, targets: Targets | None
) -> tuple[list[float], list[float]]:
    """(loss, accuracy) of every member as lists; fast mode skips the NaN care when every loss is finite."""
    losses = loss.tolist()
    finite = not net.exact and all(math.isfinite(v) for v in losses)
    is_one = None if targets is None else targets.is_one
    return losses, accuracy(logits, y, finite, is_one).tolist()


def _step(
    net: StackedNetwork,
    optimizer: StackedOptimizer,
    x0: torch.Tensor,
    y: torch.Tensor,
    targets: Targets | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step of every member on its batch; (loss (K,), logits (K, N, C)) before the update."""
    tape = Tape([], [], [])
    logits = net.forward(x0, tape)
    loss, grad_logits = _loss(net, logits, y, targets, grad=True)
    assert grad_logits is not None
    optimizer.step(net.params, net.backward(tape, grad_logits))
    return loss, logits


def _evaluate(
    net: StackedNetwork, x0: torch.Tensor, y: torch.Tensor, targets: Targets | None = None
) -> tuple[list[float], list[float]]:
    """Each member's (mean cross-entropy, accuracy): layer-0 coordinates x0 (K, w, N), labels y (K, N)."""
    logits = net.forward(x0)
    return _scores(net, logits, _loss(net, logits, y, targets, grad=False)[0], y, targets)


def _snapshot(
    net: StackedNetwork,
    active: torch.Tensor,
    epoch: int,
    recorders: Sequence[SnapshotHook | None],
    wanted: Sequence[set[int]],
    skip: Collection[int] = (),
) -> None:
    """Hand each active member that records this epoch its network (row i of `net` is member active[i]).

    Recorders of one class that offers `record_many(pairs, epoch)` measure their members together
    (the SnapshotRecorder's: `riemexp.analyses.ensemble_snapshots`); others record one by one."""
    pairs = [
        (recorders[m], net.network(i))
        for i, m in enumerate(active.tolist())
        if epoch in wanted[m] and m not in skip
    ]
    kinds = {type(recorder) for recorder, _ in pairs}
    record_many = getattr(next(iter(kinds)), "record_many", None) if len(kinds) == 1 else None
    if record_many is not None:
        record_many(pairs, epoch)
        return
    for recorder, model in pairs:
        recorder.record(model, epoch)  # type: ignore[union-attr]


def train_ensemble(
    cfgs: Sequence[RunConfig],
    datasets: Sequence[Dataset] | None = None,
    on_epoch: EnsembleEpochCallback | None = None,
    result: TrainedEnsemble | None = None,
    exact: bool | None = None,
    recorders: Sequence[SnapshotHook | None] | None = None,
) -> TrainedEnsemble:
    """Train the runs `cfgs` together; member k ends as `riemexp.train.train(cfgs[k], datasets[k])` would.

    datasets: one per member (default: each run's own, `member_datasets`). The members must share
    an `EnsembleKey` (ConfigError otherwise). `result`, if given, is filled in as training goes,
    so a caller still holds the histories when training stops early (Ctrl-C). exact: see
    `StackedNetwork` (default: bit-identical to single runs wherever that is possible: on the
    cpu, width and classes up to 3); exact=False is fast mode (about 3x faster for 100 seeds of
    the default run; members agree with single runs to float32 rounding per step only).
    recorders: per member its snapshot recorder or None (module docstring;
    `TrainedEnsemble.recorders`, `MemberResult.snapshots`).
    Never raises DivergedError: a diverging member is recorded in `errors` and leaves.
    """
    cfgs = tuple(cfgs)
    datasets = member_datasets(cfgs) if datasets is None else list(datasets)
    key = check_members(cfgs, datasets)
    device = resolve_device(cfgs[0].device)
    k_all = len(cfgs)
    result = result if result is not None else TrainedEnsemble()
    result.configs = cfgs
    result.histories = [[] for _ in cfgs]
    result.finals = [{} for _ in cfgs]
    result.seconds = [0.0] * k_all
    result.errors = [None] * k_all
    result.device = str(device)
    result.recorders = list(recorders) if recorders is not None else [None] * k_all
    if len(result.recorders) != k_all:
        raise ConfigError(
            f"expected one snapshot recorder (or None) per member ({k_all}), got {len(result.recorders)}"
        )
    wanted = [set(r.epochs) if r is not None else set() for r in result.recorders]

    if exact is None and device.type != "cpu":
        exact = False  # bit-identity with single runs is a property of torch's cpu kernels
    initial = _initial_network(cfgs, datasets, exact)
    final_params = initial.params.clone()  # rows are overwritten as members leave
    net = initial.to(device)
    optimizer = StackedOptimizer([c.optim for c in cfgs], net.params)
    x_train = torch.stack([d.x_train for d in datasets]).to(device, torch.float32)  # (K, n, 2)
    y_train = torch.stack([d.y_train for d in datasets]).to(device)  # (K, n)
    x_test = torch.stack([d.x_test for d in datasets]).to(device, torch.float32)
    y_test = torch.stack([d.y_test for d in datasets]).to(device)
    n, batch = key.n_train, key.batch_size
    full_batch = batch == n
    shuffles = [torch.Generator().manual_seed(cfg.seed + 1) for cfg in cfgs]
    epochs = [cfg.optim.epochs for cfg in cfgs]
    active = torch.arange(k_all)  # the member behind each row of the working tensors
    x0_train = net.pad(x_train) if full_batch else None  # the same every epoch
    x0_test = net.pad(x_test)
    t_train = _targets(net, y_train) if full_batch else None  # fast mode's one-hot labels
    t_test = _targets(net, y_test)

    thresholds = [math.inf] * k_all  # `riemexp.train.explosion_threshold` of each member
    _snapshot(net, active, 0, result.recorders, wanted)  # initialisation: before the clock starts
    start = time.perf_counter()
    with torch.no_grad():
        for epoch in range(1, max(epochs) + 1):
            # one pass over every member's training set (a single step when full batch)
            if x0_train is not None:
                loss, logits = _step(net, optimizer, x0_train, y_train, t_train)
                train_loss, train_acc = _scores(net, logits, loss, y_train, t_train)
                if epoch == 1:  # the first step's loss: each member's explosion threshold
                    thresholds = [explosion_threshold(v, d.n_classes) for v, d in zip(train_loss, datasets)]
            else:
                orders = torch.stack([torch.randperm(n, generator=shuffles[m]) for m in active.tolist()])
                orders = orders.to(device)
                total = torch.zeros(len(active), dtype=torch.float64, device=device)
                correct = torch.zeros(len(active), dtype=torch.int64, device=device)
                for i in range(0, n, batch):
                    idx = orders[:, i : i + batch]  # (K, B)
                    xb = torch.gather(x_train, 1, idx.unsqueeze(-1).expand(-1, -1, x_train.shape[-1]))
                    yb = torch.gather(y_train, 1, idx)
                    loss, logits = _step(net, optimizer, net.pad(xb), yb)
                    if epoch == 1 and i == 0:
                        thresholds = [
                            explosion_threshold(v, d.n_classes) for v, d in zip(loss.tolist(), datasets)
                        ]
                    total += loss.double() * idx.shape[1]  # as a single run: loss.item() * len(idx)
                    correct += (predictions(logits) == yb).sum(1)
                train_loss, train_acc = (total / n).tolist(), (correct.double() / n).tolist()
            # held-out evaluation, the history rows and the divergence check
            test_loss, test_acc = _evaluate(net, x0_test, y_test, t_test)
            elapsed = time.perf_counter() - start
            rows, leaving, finishing = {}, [], []
            for i, m in enumerate(active.tolist()):
                row = {
                    "epoch": epoch,
                    "train_loss": train_loss[i],
                    "train_accuracy": train_acc[i],
                    "test_loss": test_loss[i],
                    "test_accuracy": test_acc[i],
                }
                result.histories[m].append(row)
                result.seconds[m] = elapsed
                rows[m] = row
                error = divergence(cfgs[m], epoch, train_loss[i], test_loss[i], thresholds[m])
                if error is not None:
                    result.errors[m] = error
                    leaving.append(i)
                elif epoch == epochs[m]:
                    finishing.append(i)
                    leaving.append(i)
            # snapshots of the members that did not diverge in this epoch (a diverged run keeps none),
            # off the clock
            paused = time.perf_counter()
            diverged = {int(active[i]) for i in leaving if i not in finishing}
            _snapshot(net, active, epoch, result.recorders, wanted, skip=diverged)
            start += time.perf_counter() - paused
            if finishing:  # scores of the trained members on their training sets
                done = torch.tensor(finishing, device=device)
                scored = net.select(done)
                loss_f, acc_f = _evaluate(
                    scored, scored.pad(x_train.index_select(0, done)), y_train.index_select(0, done)
                )
                for j, i in enumerate(finishing):
                    m = int(active[i])
                    last = result.histories[m][-1]
                    result.finals[m] = {
                        "train_loss": loss_f[j],
                        "train_accuracy": acc_f[j],
                        "test_loss": last["test_loss"],
                        "test_accuracy": last["test_accuracy"],
                    }
            if leaving:  # members that diverged or are done leave the working tensors
                gone = torch.tensor(leaving, device=device)
                final_params[active[gone.cpu()]] = net.params.index_select(0, gone).cpu()
                keep = torch.tensor(
                    [i for i in range(len(active)) if i not in set(leaving)], dtype=torch.long
                )
                active = active[keep]
                if len(active) == 0:
                    if on_epoch is not None:
                        on_epoch(epoch, rows)
                    break
                keep = keep.to(device)
                net = net.select(keep)
                optimizer.select(keep)
                x_train, y_train = x_train.index_select(0, keep), y_train.index_select(0, keep)
                x_test, y_test = x_test.index_select(0, keep), y_test.index_select(0, keep)
                x0_test = x0_test.index_select(0, keep)
                if t_test is not None:
                    t_test = t_test.select(keep)
                if t_train is not None:
                    t_train = t_train.select(keep)
                if x0_train is not None:
                    x0_train = x0_train.index_select(0, keep)
            if on_epoch is not None:
                on_epoch(epoch, rows)
    result.network = StackedNetwork(
        [c.network for c in cfgs],
        initial.n_classes,
        final_params,
        initial.input_shift,
        initial.input_scale,
        initial.exact,
    )
    return result
