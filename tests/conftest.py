"""Shared test helpers: tiny configs and the CLI in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from riemexp.config import AdamConfig, GeometryConfig, NetworkConfig, RunConfig
from riemexp.data.toy import MoonsConfig

torch.set_num_threads(1)

# A suite started from a background job of a non-interactive shell (`./dev.sh test &`, some CI
# runners) inherits SIGINT and SIGHUP ignored, and every riemexp process it starts would inherit
# that too: riemexp rightly leaves ignored signals ignored, so the Ctrl-C and hang-up tests would
# wait for an interruption that never comes. Restore the defaults for the processes the tests start.
for _signum in (signal.SIGINT, signal.SIGHUP):
    if signal.getsignal(_signum) is signal.SIG_IGN:
        signal.signal(_signum, signal.default_int_handler if _signum == signal.SIGINT else signal.SIG_DFL)

REPO = Path(__file__).resolve().parent.parent


def tiny_config(**sections: object) -> RunConfig:
    """A RunConfig small enough to train in well under a second (no training snapshots: their
    tests ask for them).

    Keyword arguments replace whole sections, e.g. tiny_config(network=NetworkConfig(...)).
    """
    base = dict(
        dataset=MoonsConfig(n_samples=120),
        network=NetworkConfig(depth=3),
        optim=AdamConfig(epochs=5),
        geometry=GeometryConfig(snapshots=0),
    )
    base.update(sections)
    return RunConfig(**base)  # type: ignore[arg-type]


@pytest.fixture
def tiny() -> type:
    return tiny_config  # type: ignore[return-value]


TINY_OVERRIDES = [
    "dataset=moons",
    "dataset.n_samples=120",
    "network.depth=3",
    "optim.epochs=5",
    "geometry.snapshots=0",
]


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run `python -m riemexp ARGS` in a subprocess, not on a terminal; capture its output."""
    full_env = {**os.environ, "CI": "true", "HYDRA_FULL_ERROR": "0", **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR")
    return subprocess.run(
        [sys.executable, "-m", "riemexp", *args],
        cwd=cwd or REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def cli() -> object:
    return run_cli


def wait_for_phase(proc: subprocess.Popen, phase_log: Path, phase: str, timeout: float = 120) -> None:
    """Wait until a run started with RIEMEXP_PHASE_LOG=phase_log has entered `phase`.

    Polls for the line the run writes itself (an event, not a time); fails if the process ends
    first, or after `timeout` seconds on a machine so busy that nothing happens.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if phase_log.is_file() and phase in phase_log.read_text().split():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (exit {proc.returncode}) before phase '{phase}'")
        time.sleep(0.01)
    raise AssertionError(f"the run did not reach phase '{phase}' in {timeout} s")
