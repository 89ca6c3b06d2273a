"""The `riemexp` command: dispatches to subcommands, each a module with `main(args)`.

Hydra lives here and in `riemexp.commands`; the core takes typed configs. Adding a
subcommand is one entry in `COMMANDS` and a module with `main(args: list[str]) -> int`.
"""

from __future__ import annotations

import time

_IMPORTED = time.perf_counter()  # first: the command's stopwatch counts what came before as startup

import importlib  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from riemexp import __version__, signals, timing  # noqa: E402
from riemexp.errors import OutputError, RiemexpError  # noqa: E402

#: subcommand -> (module, one-line description)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": (
        "riemexp.commands.train",
        "train a network, then extract its geometry, tables and figures",
    ),
    "sweep": (
        "riemexp.commands.sweep",
        "a grid of training runs (Hydra multirun: local cores or SLURM), summary tables and figures",
    ),
    "plot-metric": (
        "riemexp.commands.plot_metric",
        "re-draw a saved run's figures (layers, glyphs, GIF) without retraining",
    ),
    "ls": (
        "riemexp.commands.ls",
        "list the runs and sweeps under folders (default outputs/ and multirun/), with filters",
    ),
    "bench": (
        "riemexp.commands.bench",
        "benchmarks that print both sides of a comparison, the ratio and the machine: `riemexp bench --help`",
    ),
}


def conf_dir() -> Path:
    """The Hydra config folder: inside the installed package, else the repository's conf/."""
    packaged = Path(__file__).resolve().parent / "conf"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "conf"


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [
        f"riemexp {__version__}: the Riemannian geometry of neural networks, measured and drawn.",
        "",
        "usage: riemexp COMMAND [OVERRIDES...]      e.g. riemexp train dataset=moons network.depth=20",
        "       riemexp COMMAND --help              config groups and options of a command",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def _error(message: str) -> None:
    print(f"riemexp: error: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if args else 2
    if args[0] == "--version":
        print(__version__)
        return 0
    if args[0] in ("--shell-completion", "-sc"):  # Hydra's shell completion, for every command
        args = ["train", *args]
    name = args[0]
    if name not in COMMANDS:
        _error(f"unknown command '{name}'; expected one of: {', '.join(COMMANDS)}")
        return 2
    # the command's stopwatch (riemexp.timing): as the program, from the start of the process
    # where that is known (the interpreter, until riemexp.cli loads, is the stage "startup")
    started = timing.process_start() if argv is None else None
    stopwatch = timing.Stopwatch(started)
    if started is not None:
        stopwatch.add("startup", _IMPORTED - started)
    try:
        with timing.recording(stopwatch):
            with stopwatch.stage("imports"):
                module = importlib.import_module(COMMANDS[name][0])
            return int(module.main(args[1:]) or 0)
    except RiemexpError as err:
        _error(str(err))
        return err.exit_code
    except OSError as err:  # riemexp reads through its own errors: an OSError here is a write
        error = OutputError.from_os_error(err)
        _error(str(error))
        return error.exit_code
    except KeyboardInterrupt as err:  # Ctrl-C, SIGTERM, SIGHUP (riemexp.signals), at any phase
        _error(f"interrupted ({signals.signal_name(err)})")
        return signals.exit_code(err)


def entry() -> None:
    """The `riemexp` command: SIGTERM and SIGHUP act like Ctrl-C from the first instant on."""
    signals.install()
    logging.raiseExceptions = False  # a log file on a full disk must not print tracebacks
    try:
        code = main()
    except KeyboardInterrupt as err:  # before main's own handler was reached
        _error(f"interrupted ({signals.signal_name(err)})")
        code = signals.exit_code(err)
    signals.ignore_from_now_on()  # the exit status is decided: a late signal must not change it
    _leave(code)


def _leave(code: int) -> None:
    """Exit with `code` without tearing the interpreter down.

    The teardown (collecting every object of torch, matplotlib and Hydra) takes seconds, and a
    command that has finished needs none of it. Do what Python's own exit does first (join the
    threads, run the exit handlers: logging's flush, the launchers' worker clean-up, ...), flush
    the standard streams, and leave.
    """
    import atexit
    import threading

    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is None:  # not CPython as we know it: the ordinary exit
        sys.exit(code)
    shutdown()
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe: nothing more can be said
        pass
    os._exit(code)
