"""The refinement path of the depth limit: grow a network from a trained shallower one, same ODE.

A residual network of depth L and step h is the forward-Euler scheme, with step h, of

    dx/dt = sigma(W(t) x + b(t)),   W(t) = W_l, b(t) = b_l on [l h, (l+1) h),   t in [0, T = L h].

Splitting every layer into two layers of step h/2 with the same weights (`split_layers`) keeps
W(t) and b(t), hence the ODE, and halves the step: the depth-2L network *is* the ODE step's k = 2
refinement of the depth-L one (the c2 network likewise, for d2x/dt2 = sigma(W(t) x + b(t))).
Trained from there, consecutive depths start as the same function and the weights stay a
discretisation of one W(t), unlike networks trained from scratch at each depth, whose W_l are
independent draws.

`refine.from_depth = D` (riemexp.config.RefineConfig) makes `riemexp.train.train` follow the path
(`train_refined`): depth D with step T / D for optim.epochs, then depth 2D, 4D, ..., network.depth,
each started from the split of the one before and trained refine.epochs epochs (0 allowed) with a
fresh optimiser at learning rate refine.lr (null: optim.lr). One seed fixes every stage; the
history runs on through the stages.
"""

from __future__ import annotations

import dataclasses
import logging

import torch

from riemexp.config import RefineConfig, RunConfig
from riemexp.data.dataset import Dataset
from riemexp.train import EpochCallback, StartCallback, TrainResult, train

log = logging.getLogger("riemexp")


def split_layers(state: dict[str, torch.Tensor], k: int = 2) -> dict[str, torch.Tensor]:
    """A network's state dict with every layer repeated k times: weight (L, w, w) -> (k L, w, w),
    bias (L, w) -> (k L, w), layer l becoming layers k l .. k l + k - 1; head and input buffers kept.

    With the step h / k this is the same piecewise-constant ODE (module docstring).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    out = dict(state)
    out["weight"] = state["weight"].repeat_interleave(k, dim=0)
    out["bias"] = state["bias"].repeat_interleave(k, dim=0)
    return out


def path_depths(cfg: RunConfig) -> list[int]:
    """The depths of the refinement path: from_depth, 2 from_depth, ..., network.depth."""
    depth = cfg.refine.from_depth
    if depth is None:
        return [cfg.network.depth]
    depths = [depth]
    while depths[-1] < cfg.network.depth:
        depths.append(2 * depths[-1])
    return depths


def total_epochs(cfg: RunConfig) -> int:
    """The epochs of the whole training: optim.epochs, plus refine.epochs after each doubling."""
    return cfg.optim.epochs + cfg.refine.epochs * (len(path_depths(cfg)) - 1)


def stage_config(cfg: RunConfig, depth: int) -> RunConfig:
    """The config of the path's stage at `depth`: step T / depth with T = network.depth * step_size,
    computed as step_size * (network.depth / depth), a power of two, so that every halving is exact."""
    network = dataclasses.replace(
        cfg.network, depth=depth, step_size=cfg.network.step_size * (cfg.network.depth / depth)
    )
    return dataclasses.replace(cfg, network=network, refine=RefineConfig())


def train_refined(
    cfg: RunConfig,
    data: Dataset,
    on_epoch: EpochCallback | None = None,
    result: TrainResult | None = None,
    on_start: StartCallback | None = None,
) -> TrainResult:
    """Train cfg's refinement path (module docstring); return the last stage's network and the
    whole history (`result`, when given, is filled in as training goes). `on_start` sees the first
    stage's network as initialised; `on_epoch` every epoch of every stage, numbered on."""
    result = result if result is not None else TrainResult(model=None)  # type: ignore[arg-type]
    depths = path_depths(cfg)
    train(stage_config(cfg, depths[0]), data, on_epoch, result, on_start=on_start)
    for depth in depths[1:]:
        state = split_layers({k: v.detach().cpu() for k, v in result.model.state_dict().items()})
        log.info("refinement: depth %d -> %d, %d epochs", depth // 2, depth, cfg.refine.epochs)
        stage = stage_config(cfg, depth)
        if cfg.refine.lr is not None:
            stage = dataclasses.replace(stage, optim=dataclasses.replace(stage.optim, lr=cfg.refine.lr))
        train(stage, data, on_epoch, result, init=state, epochs=cfg.refine.epochs)
    return result


__all__ = ["path_depths", "split_layers", "stage_config", "total_epochs", "train_refined"]
