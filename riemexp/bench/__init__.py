"""Benchmarks: each module times riemexp against a reference and prints both and the ratio.

Run as `riemexp bench NAME [--option value ...]`; each module has `main(args) -> int` and
reads its options with `parse_options`. Every benchmark prints the machine it ran on (CPUs,
load average when it started) and its torch thread count (`--threads`, default `auto`: the rule
of `riemexp.threads`), shows its progress on a terminal (`progress`), and takes `--quick` for a
first look at a smaller size.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from riemexp.errors import ConfigError


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are riemexp's: one line, exit 2, no usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{self.prog}: {message} (see --help)")


def option_parser(prog: str, description: str) -> argparse.ArgumentParser:
    return _Parser(prog=prog, description=description)


def parse_options(
    parser: argparse.ArgumentParser, args: Sequence[str], minimum: Mapping[str, int]
) -> argparse.Namespace:
    """Parse args; raise ConfigError when an option is below its minimum (None values pass)."""
    opts = parser.parse_args(list(args))
    for name, least in minimum.items():
        value = getattr(opts, name)
        if value is not None and value < least:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{parser.prog}: {flag} must be >= {least}, got {value}")
    return opts


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        default="auto",
        help="torch threads: auto (riemexp's rule) or 1 .. the CPUs (default auto)",
    )


def use_threads(prog: str, value: str, points: int, width: int) -> int:
    """Resolve and set the torch threads of a benchmark (`--threads`); ConfigError for a bad value."""
    from riemexp.threads import AUTO, resolve_threads, set_threads

    setting: int | str = value
    if value != AUTO:
        try:
            setting = int(value)
        except ValueError:
            raise ConfigError(f"{prog}: --threads must be {AUTO} or an integer, got {value!r}") from None
    try:
        threads = resolve_threads(setting, points, width)
    except ConfigError as err:
        raise ConfigError(f"{prog}: --{err}") from None
    set_threads(threads)
    return threads


def machine(threads: int | str) -> str:
    """One line: the CPUs, the load average now (call it when the benchmark starts), the threads."""
    from riemexp.threads import available_cpus

    try:
        load = "load average at start {:.2f} {:.2f} {:.2f} (1, 5, 15 min)".format(*os.getloadavg())
    except OSError:
        load = "load average unknown"
    return f"machine: {available_cpus()} CPUs, {load}; torch threads: {threads}"


@contextmanager
def progress(description: str, total: int) -> Iterator[Callable[[str], None]]:
    """A progress bar on a terminal (stderr); yields advance(status) to call after each of `total` steps."""
    from riemexp import console

    with console.progress_bar(description, total) as bar:

        def advance(status: str = "") -> None:
            if bar is not None:
                bar.update(bar.task_ids[0], advance=1, status=status)

        yield advance


def ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


#: benchmark name -> (module, one-line description)
BENCHES: dict[str, tuple[str, str]] = {
    "run": (
        "riemexp.bench.run",
        "the whole `riemexp train` command, stage by stage, against a minimal torch script; "
        "training under load",
    ),
    "train": ("riemexp.bench.train", "riemexp's training step against a hand-written PyTorch loop"),
    "threads": (
        "riemexp.bench.threads",
        "a training step at 1 .. N torch threads, from riemexp's sizes up: where more threads pay",
    ),
    "sweep": (
        "riemexp.bench.sweep",
        "a sweep on the joblib launcher against the same sweep run job after job",
    ),
    "resume": (
        "riemexp.bench.resume",
        "a sweep resume with nothing left to do against the command's start-up floor",
    ),
    "geometry": (
        "riemexp.bench.geometry",
        "riemexp's geometry extraction against torch.func.vmap(jacrev) and per-point autograd; "
        "the Lie table's 2 x 2 logarithm against the general algorithm",
    ),
    "ensemble": (
        "riemexp.bench.ensemble",
        "runs trained as batched ensembles against the same runs trained one after another",
    ),
    "ode": (
        "riemexp.bench.ode",
        "an ensemble's members' ODE measurement batched against member by member (bit for bit the same)",
    ),
    "snapshots": (
        "riemexp.bench.snapshots",
        "a default run with training snapshots against the same run without (target <= 1.10x)",
    ),
}
