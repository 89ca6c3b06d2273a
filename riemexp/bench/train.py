"""Benchmark: riemexp's training step against a minimal hand-written PyTorch loop.

Same network (residual, width 2, depth 50, tanh), same data (2,000 spiral points), full-batch
Adam, same initial weights, one process, the same torch threads (`--threads`, default auto: one
for this size). The two are timed in alternating blocks so that a busy machine slows both alike;
each side's time is the median over blocks.

    riemexp bench train [--depth 50] [--points 2000] [--steps 30] [--blocks 15] [--threads auto] [--quick]

--quick: 5 blocks of 10 steps.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from riemexp.bench import add_threads_option, machine, option_parser, parse_options, progress, use_threads
from riemexp.config import NetworkConfig
from riemexp.data.dataset import make_dataset
from riemexp.data.toy import SpiralsConfig
from riemexp.nets.network import build_network
from riemexp.train import train_step


class HandWritten(nn.Module):
    """The loop a person would write: a list of nn.Linear layers, x + h tanh(W x + b)."""

    def __init__(self, depth: int, width: int, h: float, n_classes: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.head = nn.Linear(width, n_classes)
        self.h = h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = x + self.h * torch.tanh(layer(x))
        return self.head(x)


def hand_written_step(model, optimizer, x, y):
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


def _time(step, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def main(args: list[str]) -> int:
    parser = option_parser("riemexp bench train", __doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=30, help="steps per timed block")
    parser.add_argument("--blocks", type=int, default=15, help="alternating blocks per side")
    add_threads_option(parser)
    parser.add_argument("--quick", action="store_true", help="a first look: 5 blocks of 10 steps")
    opts = parse_options(parser, args, {"depth": 1, "points": 20, "steps": 1, "blocks": 1})
    if opts.quick:
        opts.blocks, opts.steps = min(opts.blocks, 5), min(opts.steps, 10)
    threads = use_threads(parser.prog, opts.threads, opts.points, 2)
    print(machine(threads), flush=True)

    data = make_dataset(SpiralsConfig(n_samples=opts.points, test_fraction=0.1), seed=0)
    x = torch.cat([data.x_train, data.x_test]).float()
    y = torch.cat([data.y_train, data.y_test])
    torch.manual_seed(0)
    ours = build_network(NetworkConfig(depth=opts.depth, width=2, step_size=0.5), data.n_classes)
    theirs = HandWritten(opts.depth, 2, 0.5, data.n_classes)
    with torch.no_grad():  # same starting point
        for i, layer in enumerate(theirs.layers):
            assert isinstance(layer, nn.Linear)
            layer.weight.copy_(ours.weight[i])
            layer.bias.copy_(ours.bias[i])
        theirs.head.load_state_dict(ours.head.state_dict())
    opt_ours = torch.optim.Adam(ours.parameters(), lr=0.01)
    opt_theirs = torch.optim.Adam(theirs.parameters(), lr=0.01)

    def step_ours():
        train_step(ours, opt_ours, x, y)

    def step_theirs():
        hand_written_step(theirs, opt_theirs, x, y)

    for step in (step_ours, step_theirs):  # warm up
        _time(step, 5)
    t_ours, t_theirs = [], []
    with progress("alternating blocks", opts.blocks) as advance:
        for _ in range(opts.blocks):
            t_ours.append(_time(step_ours, opts.steps))
            t_theirs.append(_time(step_theirs, opts.steps))
            advance(f"riemexp {t_ours[-1] * 1e3:.2f} ms, hand {t_theirs[-1] * 1e3:.2f} ms per step")
    a, b = statistics.median(t_ours), statistics.median(t_theirs)
    print(
        f"training step, residual width 2 depth {opts.depth}, {len(x)} points, full-batch Adam "
        f"(torch {torch.__version__}, {threads} thread{'s' if threads > 1 else ''} on both sides; median of "
        f"{opts.blocks} alternating blocks of {opts.steps} steps)"
    )
    print(f"  riemexp train_step     {a * 1e3:8.3f} ms/step")
    print(f"  hand-written loop      {b * 1e3:8.3f} ms/step")
    print(f"  ratio riemexp / hand   {a / b:8.3f}   (target <= 1.15)")
    return 0
