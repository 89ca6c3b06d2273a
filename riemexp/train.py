"""Training: seeded, full-batch by default, with a per-epoch history.

`train` fits a network to a dataset and returns the trained model, its history and its final
scores; it writes nothing. `riemexp.runner.run` wraps it with the run folder.

History rows follow the usual convention: train_loss and train_accuracy are the means over the
epoch's steps, each taken on its batch just before that step's update (free: the step computes
them anyway); test_loss and test_accuracy are evaluated after the epoch's last update. The final
scores (`TrainResult.final`, the run's metrics.json) evaluate the trained model on both sets.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from riemexp.certify import constrain
from riemexp.config import AdamConfig, Device, OptimConfig, RunConfig, SgdConfig
from riemexp.data.dataset import Dataset
from riemexp.errors import ConfigError, DivergedError
from riemexp.nets.network import LayeredNetwork, build_network

HISTORY_COLUMNS = ("epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy")

#: training has diverged when the train loss exceeds this many times its reference: the larger of
#: the first step's loss (before any update) and log(C), the loss of a uniform guess over C classes
EXPLOSION_FACTOR = 1e4


def explosion_threshold(first_loss: float, n_classes: int) -> float:
    """The train loss above which training counts as diverged (see EXPLOSION_FACTOR).

    first_loss: the loss of the first step, before any update.

    Cross-entropy starts near log(C) (0.69 for two classes) and falls as a network learns; a
    learning rate too large overshoots and can push it up for a while, but the loss of a useful
    network stays within a few units. Ten thousand times the start (6931 for two classes) means
    logits of thousands on wrong classes: the weights have blown up and every later analysis
    (geometry, ODE solves on a stiff field) would measure the blow-up, not the network.
    """
    return EXPLOSION_FACTOR * max(first_loss, math.log(max(n_classes, 2)))


def resolve_device(device: Device | str) -> torch.device:
    """`auto` -> cuda when available, else cpu."""
    device = Device(device)
    if device is Device.AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device is Device.CUDA and not torch.cuda.is_available():
        raise ConfigError(
            "device=cuda was asked for, but no CUDA device is available; use device=auto or cpu"
        )
    return torch.device(device.value)


def make_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    if isinstance(cfg, AdamConfig):
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if isinstance(cfg, SgdConfig):
        return torch.optim.SGD(
            model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    raise TypeError(f"no optimizer for {type(cfg).__name__}")


def train_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step on a batch; returns (loss, logits) before the update."""
    optimizer.zero_grad(set_to_none=True)
    logits = model(x)
    loss = nn.functional.cross_entropy(logits, y)
    loss.backward()
    optimizer.step()
    if getattr(getattr(model, "cfg", None), "lipschitz", None) is not None:
        constrain(model)  # network.lipschitz: back onto c_l <= c (riemexp.certify)
    return loss.detach(), logits.detach()


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of the model on points x (N, 2) with labels y (N,)."""
    logits = model(x)
    loss = nn.functional.cross_entropy(logits, y).item()
    return loss, (logits.argmax(1) == y).double().mean().item()


def diverged_error(cfg: RunConfig, epoch: int, train_loss: float, test_loss: float) -> DivergedError:
    """The error of a run whose train or test loss became non-finite at `epoch`."""
    return DivergedError(
        f"training diverged at epoch {epoch}: the loss became "
        f"{train_loss if not math.isfinite(train_loss) else test_loss}. "
        f"Likely cause: a learning rate (optim.lr={cfg.optim.lr}) or step size "
        f"(network.step_size={cfg.network.step_size}) too large for depth "
        f"{cfg.network.depth}. Try a smaller optim.lr or network.step_size."
    )


def divergence(
    cfg: RunConfig, epoch: int, train_loss: float, test_loss: float, threshold: float
) -> DivergedError | None:
    """The DivergedError of epoch `epoch`, or None: a non-finite train or test loss, or a train
    loss above `threshold` (`explosion_threshold` of the run's first step)."""
    if not (math.isfinite(train_loss) and math.isfinite(test_loss)):
        return diverged_error(cfg, epoch, train_loss, test_loss)
    if train_loss > threshold:
        return DivergedError(
            f"training diverged at epoch {epoch}: the train loss exploded to {train_loss:.4g}, more "
            f"than {EXPLOSION_FACTOR:g} x its start ({threshold / EXPLOSION_FACTOR:.4g}). Likely "
            f"cause: a learning rate (optim.lr={cfg.optim.lr}) or step size (network.step_size="
            f"{cfg.network.step_size}) too large for depth {cfg.network.depth}. Try a smaller optim.lr "
            "or network.step_size."
        )
    return None


@dataclass
class TrainResult:
    model: LayeredNetwork
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    #: train_loss, train_accuracy, test_loss, test_accuracy of the trained model (eval mode);
    #: empty until training has finished
    final: dict[str, float] = field(default_factory=dict)


EpochCallback = Callable[[dict[str, float]], None]
#: called with the freshly initialised network (on its device) before the first update
StartCallback = Callable[[LayeredNetwork], None]


def train(
    cfg: RunConfig,
    data: Dataset,
    on_epoch: EpochCallback | None = None,
    result: TrainResult | None = None,
    init: dict[str, torch.Tensor] | None = None,
    epochs: int | None = None,
    on_start: StartCallback | None = None,
) -> TrainResult:
    """Fit a fresh network (seeded by cfg.seed) to data.train; evaluate on data.test.

    `result`, if given, is filled in as training goes, so a caller still holds the
    history when training stops early (divergence, Ctrl-C); its history continues (epochs
    numbered on from its last row). `init`: a state dict to start from instead of the seeded
    initialisation; `epochs`: instead of cfg.optim.epochs (0: evaluate only). A config with
    refine.from_depth set trains its refinement path (`riemexp.refine.train_refined`).
    `on_start(model)` sees the network as initialised, before any update (not counted in the
    training seconds; on the refinement path, the first stage's network).
    Raises DivergedError when a loss turns NaN or infinite, or when the train loss explodes
    beyond `explosion_threshold` of the first epoch's.
    """
    if cfg.refine.from_depth is not None and init is None:
        from riemexp.refine import train_refined

        return train_refined(cfg, data, on_epoch, result, on_start)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = build_network(cfg.network, data.n_classes)
    if init is not None:
        model.load_state_dict(init)
    if cfg.network.lipschitz is not None:
        constrain(model)  # network.lipschitz: the initial weights satisfy the bound too
    # the network standardises its input with the dataset's statistics (identity for toy sets)
    model.input_shift.copy_(data.input_shift)
    model.input_scale.copy_(data.input_scale)
    model = model.to(device)
    optimizer = make_optimizer(model, cfg.optim)
    shuffle = torch.Generator().manual_seed(cfg.seed + 1)
    x_train = data.x_train.to(device, torch.float32)
    y_train = data.y_train.to(device)
    x_test = data.x_test.to(device, torch.float32)
    y_test = data.y_test.to(device)
    n = len(x_train)
    batch = n if cfg.optim.batch_size is None else min(cfg.optim.batch_size, n)
    result = result if result is not None else TrainResult(model)
    result.model = model
    if on_start is not None:
        on_start(model)

    start = time.perf_counter() - result.seconds
    threshold = math.inf
    first = len(result.history) + 1
    for epoch in range(first, first + (cfg.optim.epochs if epochs is None else epochs)):
        # one pass over the training set (a single step when full batch)
        model.train()
        if batch == n:
            loss, logits = train_step(model, optimizer, x_train, y_train)
            train_loss = loss.item()
            if epoch == first:
                threshold = explosion_threshold(train_loss, data.n_classes)
            train_acc = (logits.argmax(1) == y_train).double().mean().item()
        else:
            order = torch.randperm(n, generator=shuffle).to(device)
            total_loss, correct = 0.0, 0
            for i in range(0, n, batch):
                idx = order[i : i + batch]
                loss, logits = train_step(model, optimizer, x_train[idx], y_train[idx])
                if epoch == first and i == 0:
                    threshold = explosion_threshold(loss.item(), data.n_classes)
                total_loss += loss.item() * len(idx)
                correct += int((logits.argmax(1) == y_train[idx]).sum())
            train_loss, train_acc = total_loss / n, correct / n
        # held-out evaluation and the divergence check
        model.eval()
        test_loss, test_acc = evaluate(model, x_test, y_test)
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_accuracy": train_acc,
            "test_loss": test_loss,
            "test_accuracy": test_acc,
        }
        result.history.append(row)
        result.seconds = time.perf_counter() - start
        error = divergence(cfg, epoch, train_loss, test_loss, threshold)
        if error is not None:
            raise error
        if on_epoch is not None:
            on_epoch(row)
    model.eval()
    train_loss, train_acc = evaluate(model, x_train, y_train)
    if len(result.history) >= first:  # the last epoch's evaluation is the trained model's
        test_loss, test_acc = result.history[-1]["test_loss"], result.history[-1]["test_accuracy"]
    else:
        test_loss, test_acc = evaluate(model, x_test, y_test)
    result.final = {
        "train_loss": train_loss,
        "train_accuracy": train_acc,
        "test_loss": test_loss,
        "test_accuracy": test_acc,
    }
    return result
