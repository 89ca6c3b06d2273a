"""Snapshots recorded beside training, in a process of their own, on a CPU the training leaves idle.

Recording a snapshot (`riemexp.analyses.snapshots.SnapshotRecorder`: the grid's geometry, the
boundary search, the scores) takes about 15 ms at the default 40 x 40 grid and depth 10; in the
training loop that is some 0.3 s of a default run, and the three snapshot figures (about 1.5 s
of CPU) could only start once the run had imported matplotlib after training. Training uses one
CPU here (torch's threads: `riemexp.threads`), so where the run may use two or more, trains on
the CPU and can fork (Linux), `SnapshotWorker.start` forks a process when training starts:

- while the run imports the rest of torch and trains, the worker imports the snapshot figures'
  code (matplotlib) and fills its text caches;
- at every snapshot epoch the training loop hands it a copy of the weights (a few kB, through a
  pipe) and goes on; the worker loads them into its own copy of the network and records the
  snapshot with the same `SnapshotRecorder` (one torch thread, float32 evaluation, float64
  geometry: the arrays of recording in the loop at one thread, bit for bit);
- `finish()` (after training) returns snapshots.npz's arrays; the worker then draws the three
  snapshot figures (`riemexp.plotting.snapshots`) into the run's plots folder at once, beside the
  run's analyses, and `FigurePool.adopt` makes the run wait for them as for its other figures.

Everywhere else (one CPU, a GPU, no fork) the run records in the training loop as before. The
worker ignores Ctrl-C (the run stops it), ends on SIGTERM, and ends by itself when the run's
process is gone (killed) and no longer hands it anything.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import time
from collections.abc import Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from riemexp.analyses.snapshots import SnapshotRecorder, run_snapshot_epochs
from riemexp.errors import RiemexpError
from riemexp.figures import FigurePool, can_fork, forked_child
from riemexp.timing import stage

if TYPE_CHECKING:
    from riemexp.config import RunConfig
    from riemexp.data.dataset import Dataset
    from riemexp.nets.network import LayeredNetwork

#: how often (seconds) a worker waiting for the next snapshot checks that the run's process lives
_PARENT_CHECK = 1.0


class SnapshotWorker:
    """The run's side of the worker (module docstring): `epochs`, `record`, `finish`, `arrays`, `close`.

    `seconds` is the worker's own recording time; `seconds_at` the time the training loop spent
    handing over each snapshot epoch's weights (what recording costs the training).
    """

    def __init__(self, cfg: RunConfig, data: Dataset, plots: tuple[Path, list[str]] | None) -> None:
        self.epochs = run_snapshot_epochs(cfg)
        self.seconds = 0.0
        self.seconds_at: dict[int, float] = {}
        self.plots = plots
        self._arrays: dict[str, np.ndarray] | None = None
        context = multiprocessing.get_context("fork")
        child_in, self._send = context.Pipe(duplex=False)
        self._receive, child_out = context.Pipe(duplex=False)
        self.process = context.Process(
            target=_serve,
            args=(cfg, data, plots, child_in, child_out, os.getpid()),
            name="snapshots",
            daemon=True,
        )
        self.process.start()
        child_in.close()
        child_out.close()

    @classmethod
    def start(
        cls, cfg: RunConfig, data: Dataset, cpus: int, plots: tuple[Path, list[str]] | None
    ) -> SnapshotWorker | None:
        """A worker for the run of `cfg` where it helps (`cpus` >= 2, training on the CPU, fork
        available), else None (record in the training loop). `plots`: (plots folder, formats) for
        the snapshot figures, None to draw none."""
        from riemexp.train import resolve_device

        if cpus < 2 or not can_fork() or resolve_device(cfg.device).type != "cpu":
            return None
        return cls(cfg, data, plots)

    def record(self, model: LayeredNetwork, epoch: int) -> None:
        """Hand over the weights of `epoch` if it is a snapshot epoch (not yet handed over)."""
        if epoch not in self.epochs or epoch in self.seconds_at:
            return
        start = time.perf_counter()
        state = {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}
        # the network's own config: a refined run's network grows during training (riemexp.refine)
        self._talk(lambda: self._send.send(("snapshot", epoch, model.cfg, state)))
        self.seconds_at[epoch] = time.perf_counter() - start

    def finish(self) -> None:
        """Wait for the last snapshot: afterwards `arrays()` holds them and the worker draws (if asked)."""
        self._talk(lambda: self._send.send(("finish",)))
        outcome = self._outcome()
        self._send.close()
        self._arrays, self.seconds = outcome[1], float(outcome[2])
        if self.plots is None:
            self.process.join()
            self._receive.close()

    def arrays(self) -> dict[str, np.ndarray]:
        """snapshots.npz's arrays (`SnapshotRecorder.arrays`); after `finish()`."""
        assert self._arrays is not None, "SnapshotWorker.arrays() before finish()"
        return self._arrays

    def hand_figures_to(self, pool: FigurePool) -> None:
        """After `finish()`: the figures the worker now draws, for `pool` to wait for."""
        if self.plots is not None:
            with stage("imports"):  # matplotlib, here only now: the run's own figures need it too
                from riemexp.plotting.snapshots import snapshot_figure_files

            figures = snapshot_figure_files(*self.plots)
            pool.adopt(figures, self.process, self._receive, "the snapshot figures")

    def close(self) -> None:
        """Stop the worker (the run stopped: an error, Ctrl-C, a signal)."""
        if self.process.is_alive():
            self.process.terminate()
        self.process.join()
        for conn in (self._send, self._receive):
            conn.close()

    def _talk(self, send: Any) -> None:
        try:
            send()
        except (BrokenPipeError, ConnectionResetError):  # the worker is gone: say why
            self._outcome()
            raise

    def _outcome(self) -> tuple[Any, ...]:
        """The worker's answer to "finish"; raises the worker's error, or says that it died."""
        try:
            outcome = self._receive.recv()
        except EOFError:
            self.process.join()
            why = f"its process ended with exit code {self.process.exitcode} (killed, or out of memory?)"
            outcome = ("error", RiemexpError(f"recording the training snapshots failed: {why}"))
        if outcome[0] == "error":
            raise outcome[1]
        return outcome


def _next(conn: Connection, parent: int) -> tuple[Any, ...] | None:
    """The run's next message; None once the run's process is gone."""
    while not conn.poll(_PARENT_CHECK):
        if os.getppid() != parent:
            return None
    try:
        message: tuple[Any, ...] = conn.recv()
    except EOFError:
        return None
    return message


def _serve(
    cfg: RunConfig,
    data: Dataset,
    plots: tuple[Path, list[str]] | None,
    receive: Connection,
    send: Connection,
    parent: int,
) -> None:
    """In the worker: record the snapshots handed over, answer "finish" with the arrays, draw."""
    forked_child()  # signals as a figure process has them; the folder's lock is the run's alone
    try:
        import torch

        torch.set_num_threads(1)  # the training keeps its own; one thread is safe after a fork
        if plots is not None:  # while the run trains: the figures' code and text caches
            import riemexp.analyses.plots  # noqa: F401
            from riemexp.figures import warm_up_text

            warm_up_text()
        from riemexp.nets.network import build_network

        recorder = SnapshotRecorder(cfg, data)
        model = build_network(cfg.network, data.n_classes)
        while (message := _next(receive, parent)) is not None:
            if message[0] == "finish":
                send.send(("recorded", recorder.arrays(), recorder.seconds))
                break
            _, epoch, network, state = message
            if network != model.cfg:
                model = build_network(network, data.n_classes)
            model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
            recorder.record(model, epoch)
        else:
            return  # the run is gone
        if plots is not None:
            send.send(("ok", _draw(recorder.arrays(), cfg, *plots)))
    except SystemExit:
        return  # stopped by the run, which no longer listens
    except BaseException as err:  # noqa: BLE001 - every error goes back to the run
        with contextlib.suppress(OSError):
            send.send(("error", _picklable(err)))
    finally:
        with contextlib.suppress(OSError):
            send.close()


def _draw(
    arrays: Mapping[str, np.ndarray], cfg: RunConfig, out_dir: Path, formats: list[str]
) -> dict[str, float]:
    """The three snapshot figures, one after another here; each one's seconds."""
    from riemexp.analyses.plots import run_title
    from riemexp.plotting.snapshots import snapshot_figure_jobs

    seconds = {}
    for name, draw in snapshot_figure_jobs(arrays, run_title(cfg), formats, out_dir).items():
        start = time.perf_counter()
        draw()
        seconds[name] = time.perf_counter() - start
    return seconds


def _picklable(err: BaseException) -> BaseException:
    try:
        pickle.dumps(err)
        return err
    except Exception:
        return RuntimeError(f"{type(err).__name__}: {err}")


__all__ = ["SnapshotWorker"]
