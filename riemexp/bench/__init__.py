"""Benchmarks: each module times riemexp against a reference and prints both and the ratio.

Run as `riemexp bench NAME [--option value ...]`; each module has `main(args) -> int` and
reads its options with `parse_options`.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence

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


#: benchmark name -> (module, one-line description)
BENCHES: dict[str, tuple[str, str]] = {
    "train": ("riemexp.bench.train", "riemexp's training step against a hand-written PyTorch loop"),
    "sweep": (
        "riemexp.bench.sweep",
        "a sweep on the joblib launcher against the same sweep run job after job",
    ),
    "geometry": (
        "riemexp.bench.geometry",
        "riemexp's geometry extraction against torch.func.vmap(jacrev) and per-point autograd",
    ),
    "ensemble": (
        "riemexp.bench.ensemble",
        "runs trained as batched ensembles against the same runs trained one after another",
    ),
}
