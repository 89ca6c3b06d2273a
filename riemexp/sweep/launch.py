"""Launching a planned sweep through Hydra: the sweep-folder lock, the launcher's settings checked
up front, and workers that end with the sweep.

    hydra_settings(args)   the sweep folder and launcher the Hydra arguments select, checked
                           (an unknown launcher or hydra.launcher.n_jobs=0 is one line, exit 2)
    SweepLock              one sweep at a time per sweep folder (riemexp.lock on SWEEP_DIR)
    launch(...)            Hydra's multirun of the jobs still to run, with riemexp's sweeper
                           (hydra/sweeper=riemexp: exactly the planned jobs, each into its own
                           folder) and the chosen launcher (joblib, submitit, basic, ...)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from riemexp.errors import ConfigError, FolderBusyError
from riemexp.sweep import watchdog

log = logging.getLogger("riemexp")

SWEEPER = "riemexp"  # conf: hydra/sweeper=riemexp (hydra_plugins/riemexp_sweeper)
JOB_IDENTITY_ENV = "RIEMEXP_JOB_IDENTITY"  # the identity the main process planned for a job
REMOTE_LAUNCHERS = ("SlurmLauncher",)  # launchers whose jobs run elsewhere, owned by a scheduler


def quoted(value: str) -> str:
    """A value as a quoted Hydra override string, so that any path or name reads back verbatim."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class HydraSettings:
    sweep_dir: Path  # absolute
    launcher: str  # the launcher's _target_
    n_jobs: int | None  # joblib's n_jobs, when the launcher is joblib

    @property
    def local(self) -> bool:
        return not any(name in self.launcher for name in REMOTE_LAUNCHERS)

    @property
    def joblib(self) -> bool:
        return "JoblibLauncher" in self.launcher

    @property
    def ensemble(self) -> bool:
        """hydra/launcher=ensemble (riemexp.sweep.ensemble): jobs of one shape trained together."""
        return "EnsembleLauncher" in self.launcher


def _hydra_error(message: str) -> str:
    """Hydra's multi-line complaint as one line; an unknown group option lists the options."""
    missing = re.search(r"Could not find '([^']+)/([^'/]+)'", message)
    if missing:
        group, option = missing.groups()
        options = re.findall(r"^\t(\S+)$", message.split("Config search path")[0], flags=re.M)
        listed = f"; expected one of: {', '.join(options)}" if options else ""
        return f"unknown {group} '{option}'{listed}"
    first = message.strip().splitlines()[0] if message.strip() else "unknown error"
    return f"bad Hydra override: {first}"


def hydra_settings(hydra_args: Sequence[str], command: str) -> HydraSettings:
    """Compose Hydra's own config with the command line's Hydra arguments and check it."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from riemexp.cli import conf_dir

    for arg in hydra_args:
        key = arg.split("=", 1)[0].lstrip("+~")
        if key == "hydra/sweeper" or key.startswith("hydra.sweeper"):
            raise ConfigError(
                f"{command} expands the grid itself and launches each job into the folder named by its "
                f"run identity; {key} cannot be set (got {arg})"
            )
        if key == "hydra.sweep.subdir":
            raise ConfigError(
                f"{command} names each job folder by its run identity; hydra.sweep.subdir cannot be set "
                f"(got {arg})"
            )
    from riemexp.commands.hydra_app import check_launcher

    check_launcher(list(hydra_args))  # a launcher whose plugin is missing: what to install
    overrides = [a for a in hydra_args if not a.startswith("-")]
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            cfg = compose("train", overrides=overrides, return_hydra_config=True)
        sweep_dir = str(OmegaConf.select(cfg, "hydra.sweep.dir"))
        launcher = str(OmegaConf.select(cfg, "hydra.launcher._target_"))
        n_jobs = OmegaConf.select(cfg, "hydra.launcher.n_jobs", default=None)
        sizes = {
            k: OmegaConf.select(cfg, f"hydra.launcher.{k}", default=1) for k in ("max_members", "min_members")
        }
    except Exception as err:
        raise ConfigError(_hydra_error(str(err))) from None
    if not sweep_dir.strip():
        raise ConfigError("hydra.sweep.dir must name a folder, got an empty value")
    settings = HydraSettings(Path(sweep_dir).expanduser().resolve(), launcher, n_jobs)
    for key, value in sizes.items() if settings.ensemble else ():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"hydra.launcher.{key} must be a number of jobs >= 1, got {value!r}")
    if (settings.joblib or settings.ensemble) and n_jobs == 0:
        raise ConfigError(
            "hydra.launcher.n_jobs must be a number of parallel jobs >= 1, or negative to count back "
            "from the cores (-1: every core), got 0"
        )
    return settings


def effective_workers(n_jobs: int | None) -> int:
    """How many processes joblib starts for n_jobs (negative: counted back from the cores)."""
    cores = os.cpu_count() or 1
    if n_jobs is None:
        return 1
    return n_jobs if n_jobs > 0 else max(cores + 1 + n_jobs, 1)


class SweepLock:
    """One sweep at a time in a sweep folder: the folder's writer lock (`riemexp.lock.hold`:
    an flock on SWEEP_DIR/.riemexp.lock recording pid, host and start time), held from planning
    to the summary and dropped by the kernel when the sweep's process dies, however it dies."""

    def __init__(self, sweep_dir: Path, command: str) -> None:
        self.sweep_dir = sweep_dir
        self.command = command
        self._hold: contextlib.AbstractContextManager[Any] | None = None

    def __enter__(self) -> SweepLock:
        from riemexp.lock import describe_holder, hold, holder

        self._hold = hold(self.sweep_dir)
        try:
            self._hold.__enter__()
        except FolderBusyError:
            self._hold = None
            raise FolderBusyError(
                f"sweep folder {self.sweep_dir} is in use by another sweep "
                f"({describe_holder(holder(self.sweep_dir))}); wait for it to finish (re-running "
                "then skips its completed jobs) or choose another hydra.sweep.dir"
            ) from None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._hold is not None:
            self._hold.__exit__(*exc)
            self._hold = None


def sweep_in_progress(sweep_dir: Path) -> str | None:
    """Who holds the sweep folder's lock right now, or None when no sweep runs in it."""
    from riemexp.lock import describe_holder, holder

    who = holder(sweep_dir)
    return None if who is None else describe_holder(who)


@contextlib.contextmanager
def _environment(name: str, value: str | None) -> Iterator[None]:
    saved = os.environ.get(name)
    if value is not None:
        os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


@contextlib.contextmanager
def _loky_workers_watch(spec: str) -> Iterator[None]:
    """Give loky's workers (the joblib launcher's processes) the watchdog from their first
    moment, so that even a worker that never got a job ends with the sweep."""
    try:
        from joblib import parallel
        from joblib._parallel_backends import LokyBackend
    except ImportError:
        yield
        return
    original = parallel.BACKENDS.get("loky")

    def backend(nesting_level: int | None = None, **kwargs: Any) -> Any:
        return LokyBackend(
            nesting_level=nesting_level,
            initializer=watchdog.worker_initializer,
            initargs=(spec,),
            **kwargs,
        )

    parallel.register_parallel_backend("loky", backend)
    try:
        yield
    finally:
        if original is not None:
            parallel.BACKENDS["loky"] = original


def _running_jobs(sweep_dir: Path, folders: Sequence[str]) -> dict[int, list[Path]]:
    """{pid: folders} of the launched jobs whose metrics.json says a live process of ours runs them
    (one process holds several: the members of the ensemble it trains, hydra/launcher=ensemble)."""
    from riemexp.lock import host_name, pid_alive

    found: dict[int, list[Path]] = {}
    for name in folders:
        try:
            metrics = json.loads((sweep_dir / name / "metrics.json").read_text())
        except (OSError, ValueError):
            continue
        pid = metrics.get("pid") if isinstance(metrics, dict) else None
        if metrics.get("status") == "running" and metrics.get("host") == host_name() and pid_alive(pid):
            if isinstance(pid, int) and pid != os.getpid():
                found.setdefault(pid, []).append(sweep_dir / name)
    return found


@contextlib.contextmanager
def _jobs_stop_first(sweep_dir: Path, folders: Sequence[str]) -> Iterator[None]:
    """While the jobs run: a stop signal (Ctrl-C, SIGTERM, SIGHUP) to the sweep's main process is
    passed on to the processes running its jobs, and the main process waits (at most
    `watchdog.GRACE_SECONDS`) until each has recorded "interrupted" before it stops too, so that
    the launcher's tear-down does not kill a job half way through writing its record."""
    import signal

    from riemexp import signals

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in signals.STOP_SIGNALS}

    def on_stop(signum: int, frame: Any) -> None:
        running = _running_jobs(sweep_dir, folders)
        name = signal.Signals(signum).name
        jobs = [path.name for paths in running.values() for path in paths]
        log.warning("%s: passing it on to the %d running jobs and waiting for their records", name, len(jobs))
        for pid in running:
            with contextlib.suppress(OSError):
                os.kill(pid, signum)
        deadline = time.monotonic() + watchdog.GRACE_SECONDS
        while time.monotonic() < deadline:
            left = _running_jobs(sweep_dir, jobs)
            if not left:
                break
            time.sleep(0.05)
        else:
            log.warning("%s: jobs still running after %.0f s: %s", name, watchdog.GRACE_SECONDS, left)
        handler = previous[signum]
        if callable(handler):
            handler(signum, frame)
        elif handler == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    for signum, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(signum, on_stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if handler is not None:
                signal.signal(signum, handler)


def launch(
    prog: str,
    overrides: Sequence[str],
    settings: HydraSettings,
    record: Path,
    hydra_args: Sequence[str],
    extra: Sequence[str] = (),
    folders: Sequence[str] = (),
) -> int | None:
    """Run Hydra's multirun of the jobs that sweep.yaml (`record`) marks `run` (their job folders:
    `folders`); the launcher's exit status when Hydra stopped with one (a launcher failure), else
    None. A stop signal interrupts the jobs first (see `_jobs_stop_first`), then raises here."""
    n_pending = max(len(folders), 1)
    from riemexp.commands.hydra_app import hydra_argv
    from riemexp.commands.train import _task

    flags = [a for a in hydra_args if a.startswith("-") and a not in ("-m", "--multirun")]
    rest = [a for a in hydra_args if not a.startswith("-") and a.split("=", 1)[0] != "hydra.sweep.dir"]
    workers = []
    if settings.joblib and effective_workers(settings.n_jobs) > n_pending:
        workers = [f"hydra.launcher.n_jobs={n_pending}"]  # no idle workers to start and stop
    argv = [
        "--multirun",
        *flags,
        *overrides,
        f"hydra.sweep.dir={quoted(str(settings.sweep_dir))}",
        f"hydra/sweeper={SWEEPER}",
        f"hydra.sweeper.jobs_file={quoted(str(record))}",
        *extra,
        *rest,
        *workers,
    ]
    spec = watchdog.main_spec() if settings.local else None
    watched = _loky_workers_watch(spec) if spec is not None else contextlib.nullcontext()
    stop_first = _jobs_stop_first(settings.sweep_dir, folders) if spec else contextlib.nullcontext()
    try:
        with _environment(watchdog.MAIN_ENV, spec), watched, stop_first, hydra_argv(prog, argv):
            _task()
    except SystemExit as exit_:  # Hydra reports a launcher failure and exits
        return exit_.code if isinstance(exit_.code, int) else 1
    return None


__all__ = ["HydraSettings", "SweepLock", "hydra_settings", "launch", "quoted", "sweep_in_progress"]
