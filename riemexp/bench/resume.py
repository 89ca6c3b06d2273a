"""Benchmark: a sweep resume with nothing left to do, against the start-up floor of the command.

First a sweep is run once into a fresh folder (few epochs, so that it is quick); then the very
same `riemexp sweep` command is run again `--repeat` times, each finding every job completed.
Both sides run in fresh subprocesses:

    resume   riemexp sweep [grid] optim.epochs=N hydra.sweep.dir=DIR   (every job already done)
    floor    riemexp sweep --help   (the sweep command's start-up: the interpreter, riemexp's
             command line, the sweep command and its presets; no Hydra composition, no job)

Printed: the fastest resume and the floor, their ratio, the target (a no-op resume of the
default grid, 60 jobs, under 3 s), the machine's load average at the start and its cores.

    riemexp bench resume [--grid default] [--epochs 1] [--quick] [--repeat 3] [--keep DIR]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from riemexp.bench import machine, option_parser, parse_options
from riemexp.cli import conf_dir
from riemexp.sweep.grid import load_grid

QUICK = ["network.depth=2,4,8", "seed=0,1"]
TARGET_SECONDS = 3.0


def _run(args: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    env = {**os.environ, "CI": "true"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "riemexp", *args], capture_output=True, text=True, env=env)
    return time.perf_counter() - start, done


def _failed(what: str, done: subprocess.CompletedProcess[str]) -> int:
    tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
    print(f"{what}: riemexp exited {done.returncode}:\n  " + "\n  ".join(tail), file=sys.stderr)
    return 1


def main(args: list[str]) -> int:
    parser = option_parser("riemexp bench resume", __doc__.splitlines()[0])
    parser.add_argument("--grid", default="default", help="grid preset (conf/grid/NAME.yaml)")
    parser.add_argument("--epochs", type=int, default=1, help="optim.epochs of every job of the first run")
    parser.add_argument("--quick", action="store_true", help="a smaller grid: depth 2,4,8 and seeds 0,1")
    parser.add_argument("--repeat", type=int, default=3, help="resumes timed; the fastest is shown")
    parser.add_argument("--keep", type=Path, default=None, help="keep the sweep folder under this folder")
    opts = parse_options(parser, args, {"epochs": 1, "repeat": 1})
    load_grid(opts.grid, conf_dir())  # an unknown preset: ConfigError listing the presets
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cores = os.cpu_count() or 1

    with tempfile.TemporaryDirectory() as scratch:
        root = opts.keep or Path(scratch)
        sweep = [f"grid={opts.grid}", *(QUICK if opts.quick else []), f"optim.epochs={opts.epochs}"]
        sweep.append(f"hydra.sweep.dir={root / 'sweep'}")
        print(machine("auto in every job (a resume with nothing to do runs none)"), flush=True)
        print(f"riemexp sweep {' '.join(sweep)}  ({cores} cores, load average {load:.2f})", flush=True)
        seconds, done = _run(["sweep", *sweep])
        if done.returncode != 0:
            return _failed("first run", done)
        jobs = next((line for line in done.stdout.splitlines() if " jobs: " in line), "").split(" jobs: ")[0]
        print(f"  first run: {seconds:.1f} s ({jobs.split()[-1] if jobs else '?'} jobs)", flush=True)
        resumes, floors = [], []
        for i in range(opts.repeat):
            seconds, done = _run(["sweep", *sweep])
            if done.returncode != 0:
                return _failed("resume", done)
            if " 0 to run" not in done.stdout:
                print("warning: the resume found jobs to run; it is not a no-op resume", file=sys.stderr)
            resumes.append(seconds)
            floor, _ = _run(["sweep", "--help"])
            floors.append(floor)
            print(f"  round {i + 1}: resume {seconds:.2f} s, floor {floor:.2f} s", flush=True)
    resume, floor = min(resumes), min(floors)
    print(f"{'side':<10} {'seconds':>8}")
    print(f"{'resume':<10} {resume:>8.2f}")
    print(f"{'floor':<10} {floor:>8.2f}")
    print(f"ratio resume / floor: {resume / floor:.2f}")
    if opts.grid == "default" and not opts.quick:
        verdict = "met" if resume < TARGET_SECONDS else "NOT met"
        print(f"target: a no-op resume of the default grid under {TARGET_SECONDS:.0f} s: {verdict}")
    else:
        print(f"target: under {TARGET_SECONDS:.0f} s for the default grid (60 jobs, no --quick or --grid)")
    return 0
