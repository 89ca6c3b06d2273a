"""One writer per run folder, and whether a run that says "running" is still alive.

Writer lock. `hold(folder)` takes `folder/.riemexp.lock` with `fcntl.flock(LOCK_EX)` for as long
as the run works in the folder, and writes into it who holds it: `{"pid", "host", "started"}`
(JSON). The kernel drops the lock when its owner dies, however it dies (SIGKILL, the OOM killer),
so a dead run never holds a folder. A second run into a held folder gets `FolderBusyError`
naming the live one. The lock is re-entrant within a process (`riemexp train` takes it before
Hydra writes anything into the folder, and `riemexp.runner.run` takes it again); the file is
removed when its holder lets go, and left behind (unlocked, harmless) by a killed one.

Liveness. A running run also writes "pid", "host" and "heartbeat" (UTC, ISO 8601) into its
metrics.json and refreshes the heartbeat every `heartbeat_seconds()` while it works (`Heartbeat`).
`run_state(folder, metrics)` tells a live run from a dead one with the best evidence there is:

    1. the folder's lock is held                       -> "live"
    2. the run was started on this host                -> "live" if its pid is alive and the lock
                                                          file is not a dead owner's, else "dead"
    3. another host (the lock may be invisible here)   -> "live" if its heartbeat is younger than
                                                          `stale_after()`, else "dead"

and returns the metrics' own status ("completed", "diverged", "failed", "interrupted") for a
run that has finished.

Shared file systems. flock is coherent between hosts on NFSv4 and on NFSv3 with lockd (Linux
emulates flock with POSIX byte-range locks there, so a lost client's lock expires with its
lease, about 90 s); on an NFS mount with `nolock`, and on some FUSE file systems, locks are
seen by the local host only. Rule 3 covers those: a run on another host counts as live while
its heartbeat is fresh. Because POSIX locks belong to the process and drop when any of its
descriptors of the file closes, a process never opens a lock file it holds a second time:
re-entrant holds and `run_state` on a held folder answer from memory. Where the file system
refuses locks altogether (ENOLCK, EOPNOTSUPP), the run goes on unlocked with a warning.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from riemexp.errors import FolderBusyError, OutputError, RunFolderError

log = logging.getLogger("riemexp")

LOCK_FILE = ".riemexp.lock"
#: seconds between heartbeats of a running run (RIEMEXP_HEARTBEAT_SECONDS overrides)
HEARTBEAT_SECONDS = 30.0
#: a heartbeat this many intervals old means the run is dead (hosts that may not see its lock)
STALE_INTERVALS = 4
#: how long a new holder retries a lock held for a moment by another process's liveness probe
_PROBE_GRACE_SECONDS = 1.0
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)

#: metrics.json keys that say which process ran a run and when (not what it measured)
PROCESS_KEYS = ("pid", "host", "started", "heartbeat", "finished")

#: statuses of a run that has stopped working (metrics.json "status")
FINISHED = ("completed", "diverged", "failed", "interrupted")


def now_iso() -> str:
    """The current UTC time, ISO 8601 with seconds: 2024-05-01T12:00:00+00:00."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def host_name() -> str:
    return socket.gethostname()


def heartbeat_seconds() -> float:
    value = os.environ.get("RIEMEXP_HEARTBEAT_SECONDS")
    try:
        seconds = float(value) if value else HEARTBEAT_SECONDS
    except ValueError:
        seconds = HEARTBEAT_SECONDS
    return seconds if seconds > 0 else HEARTBEAT_SECONDS


def stale_after() -> float:
    """Seconds after which a heartbeat says its run is dead."""
    return STALE_INTERVALS * heartbeat_seconds()


# --------------------------------------------------------------------------- the writer lock


class _Hold:
    """This process's hold on one folder's lock: the open, flocked descriptor and a count."""

    def __init__(self, path: Path, fd: int | None, info: dict[str, Any]) -> None:
        self.path, self.fd, self.info, self.count = path, fd, info, 1


_held: dict[str, _Hold] = {}
_held_lock = threading.Lock()


def _key(folder: Path) -> str:
    return os.path.realpath(folder)


def _read_info(path: Path) -> dict[str, Any] | None:
    """The holder's {pid, host, started}; None when unreadable (e.g. being written this instant)."""
    for _ in range(20):
        try:
            info = json.loads(path.read_text())
            if isinstance(info, dict) and "pid" in info:
                return info
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    return None


def describe_holder(info: dict[str, Any] | None) -> str:
    if not info:
        return "a run whose pid and host could not be read"
    return f"pid {info.get('pid')} on host {info.get('host')}, started {info.get('started')}"


def _acquire(folder: Path) -> _Hold:
    path = folder / LOCK_FILE
    info = {"pid": os.getpid(), "host": host_name(), "started": now_iso()}
    deadline = time.monotonic() + _PROBE_GRACE_SECONDS
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise OutputError.from_os_error(err) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() < deadline:  # perhaps a liveness probe's shared lock: try again
                time.sleep(0.02)
                continue
            holder = _read_info(path)
            raise FolderBusyError(
                f"{folder} is in use by a live run ({describe_holder(holder)}); wait for it to "
                "finish, or choose another folder (hydra.run.dir=...)"
            ) from None
        except OSError as err:
            os.close(fd)
            if err.errno not in _NO_LOCKS:
                raise OutputError.from_os_error(err) from None
            log.warning(
                "%s: the file system does not support locks (%s); two runs into this folder at once "
                "would not be detected",
                folder,
                err.strerror,
            )
            return _Hold(path, None, info)
        # the holder before us may have removed the file between our open and our lock: retry
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        try:
            data = json.dumps(info).encode()
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
        except OSError as err:  # a full disk: leave nothing behind
            with contextlib.suppress(OSError):
                os.unlink(path)
            os.close(fd)
            raise OutputError.from_os_error(OSError(err.errno, err.strerror, str(path))) from None
        return _Hold(path, fd, info)


def _release(hold: _Hold) -> None:
    if hold.fd is None:
        return
    with contextlib.suppress(OSError):
        os.unlink(hold.path)  # while still holding it: a waiter that opened it retries (samestat)
    with contextlib.suppress(OSError):
        os.close(hold.fd)


@contextlib.contextmanager
def hold(folder: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Hold the writer lock of `folder` (created if missing) for the duration of the block.

    Yields the holder's info {pid, host, started}. Raises FolderBusyError when another live
    process holds it, OutputError when the folder cannot be written. Re-entrant in a process.
    """
    folder = Path(folder)
    key = _key(folder)
    with _held_lock:
        current = _held.get(key)
        if current is not None:
            current.count += 1
    if current is None:
        folder.mkdir(parents=True, exist_ok=True)
        current = _acquire(folder)
        with _held_lock:
            _held[key] = current
    try:
        yield current.info
    finally:
        with _held_lock:
            current.count -= 1
            last = current.count == 0
            if last:
                _held.pop(key, None)
        if last:
            _release(current)


def forget_inherited() -> None:
    """In a process forked from a lock holder (a figure or snapshot worker): close the lock
    descriptors it inherited, so that a child outliving a killed run never keeps its folder
    locked. The parent's lock stays: flock belongs to the open file, which the parent keeps open
    (and an emulated POSIX lock belongs to the parent process alone)."""
    for inherited in _held.values():
        if inherited.fd is not None:
            with contextlib.suppress(OSError):
                os.close(inherited.fd)
    _held.clear()


def holds(folder: str | os.PathLike[str]) -> bool:
    """True when this process holds the lock of `folder`."""
    return _key(Path(folder)) in _held


def probe(folder: str | os.PathLike[str]) -> bool | None:
    """Is `folder`'s lock held? True (by a live process), False (the lock file is there and free:
    its last holder died without letting go), None (no lock file, or it cannot be tested here)."""
    folder = Path(folder)
    if holds(folder):
        return True
    path = folder / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(fd)  # also drops the shared lock, if we got it
    return False


def holder(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """{pid, host, started} of the live process holding `folder`, or None when it is free."""
    folder = Path(folder)
    key = _key(folder)
    if key in _held:
        return dict(_held[key].info)
    if not probe(folder):
        return None
    return _read_info(folder / LOCK_FILE) or {}


# --------------------------------------------------------------------------- liveness


def pid_alive(pid: Any) -> bool:
    """True when a process with this pid exists on this host."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def heartbeat_age(metrics: dict[str, Any]) -> float | None:
    """Seconds since the run's last heartbeat (metrics["heartbeat"]); None when it has none."""
    try:
        beat = datetime.fromisoformat(str(metrics["heartbeat"]))
    except (KeyError, ValueError):
        return None
    if beat.tzinfo is None:
        beat = beat.replace(tzinfo=timezone.utc)
    return (datetime.now(timezone.utc) - beat).total_seconds()


def read_record(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The folder's metrics.json as a dict with a "status", or None (missing, unreadable, corrupt)."""
    try:
        metrics = json.loads((Path(folder) / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    return metrics if isinstance(metrics, dict) and "status" in metrics else None


def run_state(folder: str | os.PathLike[str], metrics: dict[str, Any] | None = None) -> str:
    """What a run folder's run is doing: "live", "dead", or its finished status.

    metrics: the folder's metrics.json as read by the caller (read here when None). A run whose
    status is "running" is "live" or "dead" by the rules of the module docstring; any other
    status is returned as it is. A folder with no readable metrics.json is "live" while a
    process holds its lock (a run that is just starting) and raises RunFolderError otherwise.
    """
    folder = Path(folder)
    if metrics is None:
        metrics = read_record(folder)
        if metrics is None:
            if probe(folder):
                return "live"
            raise RunFolderError(f"{folder} holds no readable run record (metrics.json)")
    status = str(metrics.get("status"))
    if status != "running":
        return status
    locked = probe(folder)
    if locked:
        return "live"
    if metrics.get("host") == host_name():
        # the lock is exact on one host: a free lock file means its owner died
        return "live" if locked is None and pid_alive(metrics.get("pid")) else "dead"
    age = heartbeat_age(metrics)
    return "live" if age is not None and age < stale_after() else "dead"


def describe_state(folder: str | os.PathLike[str], metrics: dict[str, Any]) -> str:
    """One line for people: the status, and for a "running" run whether it is live or dead."""
    state = run_state(folder, metrics)
    if state not in ("live", "dead"):
        return state
    who = f"pid {metrics.get('pid')} on host {metrics.get('host')}"
    age = heartbeat_age(metrics)
    beat = f"last heartbeat {age:.0f} s ago" if age is not None else "no heartbeat recorded"
    phase = f" ({metrics['phase']})" if metrics.get("phase") else ""
    if state == "live":
        return f"running{phase}: live ({who}, {beat})"
    return f"running{phase}, but dead: no live process works on it ({who}, {beat}); it was killed"


# --------------------------------------------------------------------------- the heartbeat


class Heartbeat:
    """Owns a running run's metrics.json: every write goes through `write`, under one lock.

    Each write stamps "heartbeat" with the current UTC time; a daemon thread also writes every
    `interval` seconds while the run works, so that a reader can tell a live run from a dead
    one (`run_state`). Writes are atomic (temporary file, then rename) and never interleave.
    `path` may change (a staged run moves into its folder); `stop()` ends the thread.
    """

    def __init__(self, path: Path, metrics: dict[str, Any], interval: float | None = None) -> None:
        self.path = path
        self.metrics = metrics
        self.interval = heartbeat_seconds() if interval is None else interval
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failed: BaseException | None = None  # the last failed background write

    def write(self, **updates: Any) -> None:
        """Update the metrics, stamp the heartbeat and write metrics.json (OSError when it cannot)."""
        from riemexp.io import atomic_write_json

        with self._lock:
            self.metrics.update(updates)
            if self.metrics.get("status") == "running":
                self.metrics["heartbeat"] = now_iso()
            atomic_write_json(self.path, dict(self.metrics))

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.write()
            except Exception as err:  # a full disk: the main thread's next write reports it
                self.failed = err

    def start(self) -> Heartbeat:
        from riemexp import signals

        if self._thread is None:
            thread = threading.Thread(target=self._beat, name="riemexp-heartbeat", daemon=True)
            with signals.deferred():  # a stop signal must not leave a thread half started (unjoinable)
                thread.start()
                self._thread = thread
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


__all__ = [
    "FINISHED",
    "Heartbeat",
    "LOCK_FILE",
    "PROCESS_KEYS",
    "describe_state",
    "heartbeat_age",
    "hold",
    "holder",
    "holds",
    "pid_alive",
    "probe",
    "read_record",
    "run_state",
]
