"""Figures drawn beside the run's other work: each in a process of its own when the run may use more CPUs.

A figure job is a stage name (`figure:layers`), the files it will write, and a function that
draws it from numpy arrays and writes those files. `FigurePool(workers)` with workers > 1 (and
a `fork` start method: Linux) runs each job in a child process forked from this one, at most
`workers` at a time, while this process goes on (the ODE's measures, the Lie table, the next
figures' arrays); with workers = 1 it draws each job at once, here. `wait()` returns when every
job is done; a job's error is raised there, as if it had been drawn here.

`adopt` makes the pool wait, in the same way, for a process started elsewhere that draws some
figures (the snapshot worker, `riemexp.analyses.snapshot_worker`): those are not submitted again.

Children only draw: every array a figure needs (and every torch computation behind it) is made
before its job is submitted, so a child never touches torch. Forked, a child shares those arrays
without copying them; it ignores Ctrl-C (this process stops it) and reports its seconds and any
error through a pipe.

Timings (`riemexp.timing`): one after another, each job is its stage (`figure:layers`, ...). In
parallel the jobs overlap this process's own stages, so the stage is `figures`: the time this
process waited for them in `wait()`; each figure's own seconds are in `seconds` (metrics.json's
`figure_seconds`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import pickle
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from riemexp.errors import RiemexpError
from riemexp.timing import stage

#: at most this many figures at once (a run has five or six)
MAX_WORKERS = 4


def can_fork() -> bool:
    """True where children can be forked safely from a process that has loaded torch (Linux)."""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


@dataclass
class _Job:
    name: str
    files: list[Path]
    draw: Callable[[], Any] | None  # None: a process started elsewhere (`FigurePool.adopt`)
    process: Any = None
    conn: Connection = field(init=False, repr=False)  # set when the job starts


@dataclass
class FigurePool:
    """Runs figure jobs (see the module docstring) on up to `workers` processes."""

    workers: int = 1
    seconds: dict[str, float] = field(default_factory=dict)
    _queue: list[_Job] = field(default_factory=list)
    _running: list[_Job] = field(default_factory=list)
    _adopted: dict[str, list[Path]] = field(default_factory=dict)
    _warm: bool = False

    @property
    def parallel(self) -> bool:
        return self.workers > 1 and can_fork()

    def submit(self, name: str, files: Sequence[Path], draw: Callable[[], Any]) -> list[Path]:
        """Draw a figure (now, or in a child); return the files it writes (`files`). A figure that an
        adopted process draws (`adopt`) is not drawn again."""
        if name in self._adopted:
            return self._adopted[name]
        job = _Job(name, list(files), draw)
        if not self.parallel:
            start = time.perf_counter()
            with stage(name):
                draw()
            self.seconds[name] = round(time.perf_counter() - start, 4)
            return job.files
        self._queue.append(job)
        self._reap(block=False)
        self._start()
        return job.files

    def adopt(self, figures: dict[str, list[Path]], process: Any, conn: Connection, what: str) -> None:
        """Wait, as for the pool's own jobs, for a process started elsewhere that draws `figures`
        (name -> files; `riemexp.analyses.snapshot_worker`) and then sends ("ok", {name: seconds})
        or ("error", exception) through `conn`. It does not count against `workers`."""
        self._adopted.update(figures)
        job = _Job(what, [f for files in figures.values() for f in files], None, process)
        job.conn = conn
        self._running.append(job)

    def wait(self) -> None:
        """Return when every job is done; raise the first error a job met."""
        if not (self._queue or self._running):
            return
        with stage("figures"):
            while self._queue or self._running:
                self._start()
                self._reap(block=True)

    def close(self) -> None:
        """Stop every child (on an error or Ctrl-C in this process) and forget the queue."""
        self._queue.clear()
        for job in self._running:
            job.process.terminate()
        for job in self._running:
            job.process.join()
            job.conn.close()
        self._running.clear()

    def _start(self) -> None:
        context = multiprocessing.get_context("fork")
        if self._queue and not self._warm:
            warm_up_text()  # once, here: every child forked after it inherits the caches
            self._warm = True
        while self._queue and sum(job.draw is not None for job in self._running) < self.workers:
            job = self._queue.pop(0)
            receive, send = context.Pipe(duplex=False)
            job.process = context.Process(target=_child, args=(job.draw, send), name=job.name, daemon=True)
            job.process.start()
            send.close()
            job.conn = receive
            self._running.append(job)

    def _reap(self, block: bool) -> None:
        """Collect the finished children (waiting for one when `block`); raise a child's error."""
        if not self._running:
            return
        ready = wait([job.conn for job in self._running], timeout=None if block else 0)
        for job in [j for j in self._running if j.conn in ready]:
            try:
                outcome = job.conn.recv()
            except EOFError:  # the child died without a word (killed, out of memory)
                job.process.join()
                why = f"its process ended with exit code {job.process.exitcode} (killed, or out of memory?)"
                outcome = ("error", RiemexpError(f"drawing {job.name.split(':')[-1]} failed: {why}"))
            job.conn.close()
            job.process.join()
            self._running.remove(job)
            if outcome[0] == "error":
                self.close()
                raise outcome[1]
            seconds = outcome[1] if isinstance(outcome[1], dict) else {job.name: outcome[1]}
            self.seconds.update({name: round(value, 4) for name, value in seconds.items()})


def warm_up_text() -> None:
    """Draw a small figure with the text every figure has (fonts, a math label, a legend with a title)
    so that matplotlib's font and text-layout caches are filled in this process: each child forked
    after it starts with them instead of building its own (about 0.1 s of CPU a figure)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 2), layout="constrained")
    ax = fig.subplots()
    (line,) = ax.plot([0, 1], [0, 1], label="a")
    ax.set_title(r"layer 1: $\frac{1}{2}\log\det g_0$ ρ ≤ 0.5", fontsize=9)
    ax.set_xlabel("input $x_1$")
    fig.legend(handles=[line], loc="outside lower center", title="caption", fontsize=8, title_fontsize=8)
    fig.suptitle("title", fontsize=10)
    FigureCanvasAgg(fig).draw()


def _stop(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds: a half-written file's temporary is removed


def forked_child() -> None:
    """First thing in a child forked from a run (a figure, the snapshot worker): Ctrl-C is the
    run's to handle (it stops the child), SIGTERM ends the child cleanly, SIGHUP as by default,
    and the run folder's lock descriptor is closed (`riemexp.lock.forget_inherited`)."""
    from riemexp import lock

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop)  # (the parent's handlers are not ours)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
    lock.forget_inherited()


def _child(draw: Callable[[], Any], send: Connection) -> None:
    """In the child: draw, then send ("ok", seconds) or ("error", exception)."""
    forked_child()
    start = time.perf_counter()
    try:
        draw()
        message: tuple[str, Any] = ("ok", time.perf_counter() - start)
    except SystemExit:
        return  # stopped by the parent, which no longer listens
    except BaseException as err:  # noqa: BLE001 - every error goes back to the parent
        try:
            pickle.dumps(err)
            message = ("error", err)
        except Exception:
            message = ("error", RuntimeError(f"{type(err).__name__}: {err}"))
    with contextlib.suppress(OSError):
        send.send(message)
        send.close()
