"""Torch threads chosen for the work: one for networks this small, more only where they pay.

riemexp's networks are narrow (width 2 by default) and its batches small, so every tensor op
is tiny. Intra-op threads cannot split such ops usefully, and on a machine that is busy with
other work they are worse than useless: each parallel region waits for its threads to be
scheduled. A default run trained 10-25x slower at torch's default thread count than with one
thread while other processes ran.

`threads: auto` (the default) therefore resolves to

    1                                              when work < PAYING_WORK
    min(cpus, work // PAYING_WORK + 1)             otherwise

where work = points x width^2 is the multiply-adds of one layer's matmul over the largest batch
the run processes (the training batch, the geometry grid or the data), and cpus the CPUs this
process may use (its affinity mask; a sweep job's share of them). PAYING_WORK comes from
`riemexp bench threads` (see its comment below). The rule depends only on the
config and the CPU count, never on the machine's momentary load, so a config gives the same thread
count, and the same bits, every time on a given machine. An integer asks for that many threads:
1 .. cpus (more than the CPUs cannot help, and very large counts crash inside torch).

This module does not import torch until threads are set, so config checks stay fast.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from riemexp.errors import ConfigError

if TYPE_CHECKING:
    from riemexp.config import RunConfig

AUTO = "auto"

#: one layer's matmul work (points x width^2 multiply-adds) per thread from which a further thread
#: pays. `riemexp bench threads` on the shared 2-core development machine: a second thread was
#: 1.5 to 28x slower at every size up to width 256 x 10,000 points (6.6e8), and broke even (1.02x)
#: only at width 256 x 100,000 points (6.6e9) with the load average at 2.5 (slower when it was 5);
#: so a second thread starts just above that, and `auto` is one thread for every size measured
PAYING_WORK = 2**33


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one, else all)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def check_setting(value: int | str, where: str = "threads") -> None:
    """Raise ConfigError unless value is 'auto' or an integer >= 1 (any machine's CPUs aside)."""
    if not (value == AUTO or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)):
        raise ConfigError(f"{where} must be {AUTO} or an integer >= 1, got {value!r}")


def check_threads(value: int | str, cpus: int | None = None, where: str = "threads") -> None:
    """Raise ConfigError unless value is 'auto' or an integer in 1 .. cpus (default: available_cpus())."""
    cpus = available_cpus() if cpus is None else cpus
    ok = value == AUTO or (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= cpus)
    if not ok:
        raise ConfigError(
            f"{where} must be {AUTO} or an integer from 1 to {cpus} (the CPUs this process may use), "
            f"got {value!r}"
        )


def auto_threads(points: int, width: int, cpus: int) -> int:
    """The thread count `auto` picks for ops over `points` points of width `width`, on `cpus` CPUs."""
    work = max(points, 1) * width * width
    return max(1, min(cpus, work // PAYING_WORK + 1))


def resolve_threads(value: int | str, points: int, width: int, share: int | None = None) -> int:
    """The torch thread count for a setting: an integer as given (checked against the CPUs this
    process may use), `auto` by the rule above on `share` CPUs (default: all of them)."""
    cpus = available_cpus()
    check_threads(value, cpus)
    if value != AUTO:
        return int(value)
    return auto_threads(points, width, min(cpus, share) if share else cpus)


def run_threads(
    cfg: RunConfig, n_data: int | None = None, share: int | None = None, saved: bool = False
) -> int:
    """The torch threads of a run of cfg: the largest batch is all n_data points (training and
    evaluation; default the dataset's size) or the geometry grid, whichever is larger.

    saved: cfg is a saved run's (re-drawn by `riemexp plot-metric`, perhaps on a smaller machine
    than it was trained on): an integer above this machine's CPUs is lowered to them.
    """
    if saved and cfg.threads != AUTO and int(cfg.threads) > available_cpus():
        cfg = dataclasses.replace(cfg, threads=available_cpus())
    if n_data is not None:
        n = n_data
    else:  # a CSV file's rows (read and cached by the check before the run), or n_samples
        from riemexp.data.registry import size

        n = size(cfg.dataset)[0]
    grid = cfg.geometry.grid_density**2 if cfg.geometry.enabled else 0
    return resolve_threads(cfg.threads, max(n, grid), cfg.network.width, share)


def run_cpus(cfg: RunConfig, share: int | None = None) -> int:
    """The CPUs a run of cfg may keep busy (its figures are drawn by up to this many processes):
    `threads` when it is an integer, else `share` (default: every CPU this process may use)."""
    cpus = available_cpus()
    if cfg.threads != AUTO:
        return max(1, min(int(cfg.threads), cpus))
    return min(cpus, share) if share else cpus


def set_threads(n: int) -> int:
    """Set torch's intra-op thread count; return the previous count."""
    import torch

    previous = torch.get_num_threads()
    if n != previous:
        torch.set_num_threads(n)
    return previous


@contextmanager
def using_threads(n: int) -> Iterator[int]:
    """Run the block with n torch threads; restore the previous count afterwards."""
    previous = set_threads(n)
    try:
        yield n
    finally:
        set_threads(previous)


__all__ = [
    "AUTO",
    "PAYING_WORK",
    "auto_threads",
    "available_cpus",
    "check_setting",
    "check_threads",
    "resolve_threads",
    "run_cpus",
    "run_threads",
    "set_threads",
    "using_threads",
]
