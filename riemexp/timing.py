"""Where a command's wall time goes: one timing per stage, recorded in metrics.json.

A `Stopwatch` adds up the seconds of named stages (imports, config, data, training, geometry,
ode, lie, each figure, writing, ...). Stages nest: a stage's seconds exclude those of the stages
inside it, so the stages never count a second twice and

    wall = sum of the stages + other,

where `other` (the residual) is whatever no stage claimed. For the `riemexp train` command the
stopwatch starts when the process started (read from /proc on Linux; elsewhere when riemexp's
command line was imported), so `wall` is the whole command up to the final write of
metrics.json.

Code anywhere marks a stage with `with stage("name"):`; it records into the stopwatch made
current by `recording(stopwatch)` and does nothing when there is none (a Python caller
without one, or a helper called outside a run). Torch-free, like the CLI.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_CURRENT: ContextVar[Stopwatch | None] = ContextVar("riemexp_stopwatch", default=None)


def process_start() -> float | None:
    """The start of this process on the `time.perf_counter` clock, or None where unknown (non-Linux).

    From /proc/self/stat (field 22, clock ticks since boot) against the boot-time clock.
    """
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of the whole line
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - started
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return time.perf_counter() - age if 0 <= age < 3600 else None


class Stopwatch:
    """Seconds per named stage, from `start` (a `time.perf_counter` value; default now)."""

    def __init__(self, start: float | None = None) -> None:
        self.start = time.perf_counter() if start is None else start
        self.seconds: dict[str, float] = {}
        self._open: list[list[Any]] = []  # [name, began, seconds of the stages nested inside]

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as stage `name` (added to earlier blocks of the same name)."""
        self._open.append([name, time.perf_counter(), 0.0])
        try:
            yield
        finally:
            _, began, nested = self._open.pop()
            elapsed = time.perf_counter() - began
            self.add(name, elapsed - nested)
            if self._open:
                self._open[-1][2] += elapsed

    def report(self) -> dict[str, float]:
        """{stage: seconds, ..., "other": the residual, "wall": the total so far}, rounded to 0.1 ms."""
        wall = time.perf_counter() - self.start
        out = {name: round(seconds, 4) for name, seconds in self.seconds.items()}
        out["other"] = round(wall - sum(self.seconds.values()), 4)
        out["wall"] = round(wall, 4)
        return out


def current() -> Stopwatch | None:
    """The stopwatch stages record into now, if any."""
    return _CURRENT.get()


@contextmanager
def recording(stopwatch: Stopwatch) -> Iterator[Stopwatch]:
    """Make `stopwatch` the one `stage` records into, for the block."""
    token = _CURRENT.set(stopwatch)
    try:
        yield stopwatch
    finally:
        _CURRENT.reset(token)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time the block as stage `name` of the current stopwatch (nothing happens without one)."""
    stopwatch = _CURRENT.get()
    if stopwatch is None:
        yield
        return
    with stopwatch.stage(name):
        yield


__all__ = ["Stopwatch", "current", "process_start", "recording", "stage"]
