"""Sweep workers end with their sweep: every process that runs jobs watches the sweep's main process.

`riemexp sweep` (and `riemexp train -m`) put their own process in the environment of everything
they start (`RIEMEXP_SWEEP_MAIN` = "PID:START_TICKS:HOST", START_TICKS from /proc/PID/stat so that
a recycled pid is not mistaken for the sweep). Any process that runs sweep jobs on the same host
(a joblib/loky worker, a submitit_local job, any other local launcher's process) calls `watch()`,
which starts one daemon thread per process. When the main process ends, however it ends
(kill -9 included), the thread

    1. interrupts the job running in this process, if any: run() marks its folder "interrupted"
       and writes its history, as for Ctrl-C (KeyboardInterrupt in the main thread);
    2. ends the process (os._exit) once that job has unwound, or after `GRACE_SECONDS`.

A job that has not started yet never starts: `check_main_alive()` ends the process first. The
thread waits on a pidfd (Linux >= 5.3: woken the moment the main process exits), else it
polls twice a second. Jobs on another host (SLURM) are not watched: they belong to the scheduler.
"""

from __future__ import annotations

import _thread
import logging
import os
import select
import signal
import socket
import threading
import time
from typing import Any

log = logging.getLogger("riemexp")

MAIN_ENV = "RIEMEXP_SWEEP_MAIN"
GRACE_SECONDS = 20.0  # for the interrupted job to write its record before the process ends
EXIT_ORPHANED = 75  # the exit status of a worker whose sweep ended (EX_TEMPFAIL)
POLL_SECONDS = 0.5

_lock = threading.Lock()
_watching = False
_job_running = threading.Event()
_job_unwound = threading.Event()
_orphaned = threading.Event()
_saved_handlers: list[dict[int, Any]] = []


def start_ticks(pid: int) -> str | None:
    """The start time of process pid in clock ticks since boot (/proc/PID/stat field 22), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def main_spec(pid: int | None = None) -> str:
    """This process as the sweep's main process, for MAIN_ENV."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}:{start_ticks(pid) or ''}:{socket.gethostname()}"


def _parse(spec: str) -> tuple[int, str, str] | None:
    try:
        pid, ticks, host = spec.split(":", 2)
        return int(pid), ticks, host
    except ValueError:
        return None


def _alive(pid: int, ticks: str) -> bool:
    """True while the process pid that started at `ticks` exists (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    now = start_ticks(pid)
    if now is None:
        return os.path.exists(f"/proc/{pid}") or not os.path.isdir("/proc")
    if ticks and now != ticks:
        return False  # the pid belongs to another process now
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def _watched() -> tuple[int, str] | None:
    """(pid, start ticks) of the sweep's main process when this process should watch it."""
    parsed = _parse(os.environ.get(MAIN_ENV, ""))
    if parsed is None:
        return None
    pid, ticks, host = parsed
    if pid == os.getpid() or host != socket.gethostname():
        return None  # jobs in the main process itself (basic launcher), or on another host
    return pid, ticks


def _wait_for_exit(pid: int, ticks: str) -> None:
    """Return when the process has ended."""
    if hasattr(os, "pidfd_open"):
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            fd = None
        if fd is not None:
            try:
                if _alive(pid, ticks):  # opened the right process, not a recycled pid
                    poller = select.poll()
                    poller.register(fd, select.POLLIN)
                    while not poller.poll(None):
                        pass
                return
            finally:
                os.close(fd)
    while _alive(pid, ticks):
        time.sleep(POLL_SECONDS)


def _end_process() -> None:
    """The sweep is gone: stop the job running here (its folder says "interrupted"), then exit."""
    _orphaned.set()
    if _job_running.is_set():
        log.error("the sweep's main process ended: interrupting this job")
        _thread.interrupt_main()
        _job_unwound.wait(GRACE_SECONDS)
    os._exit(EXIT_ORPHANED)


def _watch(pid: int, ticks: str) -> None:
    _wait_for_exit(pid, ticks)
    _end_process()


def watch() -> None:
    """Start watching the sweep's main process (once per process; nothing outside a sweep)."""
    global _watching
    target = _watched()
    if target is None:
        return
    with _lock:
        if _watching:
            return
        _watching = True
    threading.Thread(target=_watch, args=target, name="riemexp-sweep-watchdog", daemon=True).start()


def check_main_alive() -> None:
    """Before a job touches its folder: end this process at once when the sweep has ended."""
    target = _watched()
    if target is not None and (_orphaned.is_set() or not _alive(*target)):
        os._exit(EXIT_ORPHANED)


def job_started() -> None:
    """A job starts in this process: while it runs, Ctrl-C, SIGTERM and SIGHUP (and the watchdog)
    stop it as they stop `riemexp train` (riemexp.signals: run() records "interrupted" with the
    signal). Launchers' workers often ignore SIGINT, and submitit's ignore SIGTERM; the job's own
    handlers replace theirs while it runs and are put back when it ends."""
    _job_unwound.clear()
    _job_running.set()
    if threading.current_thread() is not threading.main_thread():
        return
    from riemexp import signals

    _saved_handlers.append({s: signal.getsignal(s) for s in signals.STOP_SIGNALS})
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # loky's workers: Ctrl-C is the job's
        signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in signals.STOP_SIGNALS:  # submitit's SIGTERM "bypass" is for its own requeueing
        if signal.getsignal(signum) not in (signal.SIG_DFL, signal.default_int_handler, signal.SIG_IGN):
            signal.signal(signum, signal.SIG_DFL)
    signals.install()


def job_ended() -> None:
    if _saved_handlers and threading.current_thread() is threading.main_thread():
        for signum, handler in _saved_handlers.pop().items():
            if handler is not None:
                signal.signal(signum, handler)
    _job_running.clear()
    _job_unwound.set()


def in_worker() -> bool:
    """True in a process that runs jobs for a sweep's main process elsewhere on this host."""
    return _watched() is not None


def wait_for_main(timeout: float = GRACE_SECONDS) -> None:
    """Wait (at most `timeout` s) for the sweep's main process to end. A worker whose job was
    stopped by a signal calls it after the job has recorded "interrupted": the main process
    passes the signal to every running job and stops the launcher only when all have recorded
    theirs, so a worker that hurried back to the launcher could get the others killed half way."""
    _orphaned.wait(timeout)


def orphaned() -> bool:
    """True once this process has seen its sweep's main process end."""
    return _orphaned.is_set()


def main_pid() -> int | None:
    parsed = _parse(os.environ.get(MAIN_ENV, ""))
    return None if parsed is None else parsed[0]


def orphan_reason() -> str | None:
    """The error line a job (or an ensemble's member) stopped by the end of its sweep's main process
    records; None while that process lives."""
    if not orphaned():
        return None
    return f"the sweep's main process (pid {main_pid()}) ended while the job ran"


def worker_initializer(spec: str) -> None:
    """A loky worker's initializer: watch from the worker's first moment, before any job."""
    os.environ[MAIN_ENV] = spec
    watch()


__all__ = [
    "MAIN_ENV",
    "check_main_alive",
    "job_ended",
    "job_started",
    "in_worker",
    "main_spec",
    "wait_for_main",
    "watch",
    "worker_initializer",
]
