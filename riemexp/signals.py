"""SIGTERM and SIGHUP stop a run like Ctrl-C does, and nothing stops its clean-up half way.

A SLURM time limit sends SIGTERM, a closed terminal SIGHUP. `install()` (called by the
`riemexp` command, never on import) makes SIGINT, SIGTERM and SIGHUP raise `Interrupted`, a
KeyboardInterrupt that carries the signal: `riemexp.runner.run` writes status "interrupted" with
the signal's name and the history so far, temporary files are removed on the way out, and the
command exits with 128 + the signal's number (130, 143, 129).

Only the first signal raises. Later ones (a second Ctrl-C a millisecond after the first, a
scheduler's SIGTERM after SIGINT) are noted and otherwise ignored, so that the clean-up they
would cut short (writing "interrupted", removing a staging folder) always finishes; SIGKILL
still ends everything. A signal that was ignored when riemexp started (`nohup` ignores SIGHUP,
a shell's background job SIGINT) stays ignored. `deferred()` holds these signals back around
a few lines that must not be split (swapping a finished run into its folder).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

#: the signals that stop a run like Ctrl-C
STOP_SIGNALS = tuple(
    s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s
)


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread by the first SIGINT, SIGTERM or SIGHUP."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        super().__init__(self.signal_name)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def signal_name(err: BaseException) -> str:
    """SIGINT for a plain KeyboardInterrupt, else the signal an Interrupted carries."""
    return err.signal_name if isinstance(err, Interrupted) else "SIGINT"


def exit_code(err: BaseException) -> int:
    return err.exit_code if isinstance(err, Interrupted) else 128 + signal.SIGINT


_stopping = False  # an Interrupted has been raised: the command is on its way out
_deferring = 0  # depth of `deferred()` blocks
_pending: int | None = None  # a signal that arrived inside a `deferred()` block


def stopping() -> bool:
    """True once a stop signal has been raised as Interrupted."""
    return _stopping


def _handler(signum: int, frame: FrameType | None) -> None:
    global _stopping, _pending
    if _stopping:
        return  # already stopping: the clean-up under way must finish
    if _deferring:
        _pending = _pending or signum
        return
    _stopping = True
    raise Interrupted(signum)


def install() -> None:
    """Route SIGINT, SIGTERM and SIGHUP to `Interrupted` (main thread only; ignored ones stay ignored)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is signal.SIG_IGN:
            continue
        signal.signal(signum, _handler)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold stop signals back for the block; one that arrived meanwhile raises Interrupted after it."""
    global _deferring, _pending, _stopping
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
    if not _deferring and _pending is not None and not _stopping:
        signum, _pending = _pending, None
        _stopping = True
        raise Interrupted(signum)


def ignore_from_now_on() -> None:
    """Ignore the stop signals for good: the command is exiting with its status already decided.

    (Blocking them in the main thread is not enough: torch's worker threads would take a late
    signal with its default action, after the interpreter has restored it, and die by it.)
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


__all__ = [
    "Interrupted",
    "STOP_SIGNALS",
    "ignore_from_now_on",
    "deferred",
    "exit_code",
    "install",
    "signal_name",
    "stopping",
]
