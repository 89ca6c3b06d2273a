"""Benchmark: a sweep trained as ensembles, on the joblib launcher and one job after another.

Every side runs the whole `riemexp sweep` command in a fresh subprocess, into its own
sweep folder, with the same grid and overrides; only the launcher differs:

    ensemble     hydra/launcher=ensemble (jobs of one shape trained together as one
                 ensemble, one unit per worker, a worker per core; riemexp.sweep.ensemble)
    joblib       hydra/launcher=joblib (n_jobs=-1: every core; one torch thread per job)
    sequential   hydra/launcher=basic  (Hydra's in-process launcher, one job after another)
    ensemble1    hydra/launcher=ensemble hydra.launcher.n_jobs=1 (not run by default: the
                 ensembles in the sweep's own process, one unit after another; against
                 sequential it measures the batching alone, without the parallel workers,
                 which a machine busy with other work slows most)

Printed: each side's walls (the multirun, as the command reports it, and the whole command),
its CPU time (user + system of the command and every worker it waited for: what the side
costs the machine, less disturbed by other work than a wall),
the ratios to one after another (targets on 2 cores: joblib <= 0.6, ensemble <= 0.25) and
ensemble / joblib, and the per-job start-up cost of each launcher, (multirun wall x workers -
sum of in-job seconds) / jobs: the core time per job spent outside the job itself (process
start, imports, Hydra's job set-up, waiting; for the ensemble launcher also the training of
the ensembles, which happens outside the jobs). The sides alternate `--repeat` times and each
side's fastest round is shown, so that other work on a shared machine disturbs them alike.

    riemexp bench sweep [--grid default] [--epochs N] [--quick] [--repeat 2] [--keep DIR]
                        [--launchers ensemble,joblib,sequential] [OVERRIDES]

--quick: depth {2, 4, 8} and seeds {0, 1} (24 jobs with the default preset's kinds and step
sizes) instead of the preset's 60. OVERRIDES (e.g. geometry.snapshots=0) go to every side's
`riemexp sweep`, after the preset's.

Each side's jobs' own stage timings (metrics.json `timings`, summed over the jobs) are printed
too: where the time inside the jobs went (training, snapshots, ODE, ...), the same work on every
side but training, which the ensemble launcher does outside the jobs (with the members' snapshots).
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from riemexp.bench import machine, option_parser, parse_options
from riemexp.cli import conf_dir
from riemexp.errors import ConfigError
from riemexp.layout import METRICS_FILE
from riemexp.sweep.grid import load_grid
from riemexp.sweep.jobs import JOB_FILE

QUICK = ["network.depth=2,4,8", "seed=0,1"]
#: side -> its launcher overrides
SIDES = {
    "ensemble": ["hydra/launcher=ensemble"],
    "joblib": ["hydra/launcher=joblib"],
    "sequential": ["hydra/launcher=basic"],
    "ensemble1": ["hydra/launcher=ensemble", "hydra.launcher.n_jobs=1"],
}
#: the sides run unless --launchers says otherwise
DEFAULT_SIDES = ("ensemble", "joblib", "sequential")
#: sides that run everything in the sweep's own process
ONE_PROCESS = ("sequential", "ensemble1")


def run_side(name: str, launcher: list[str], overrides: list[str], root: Path) -> dict[str, Any]:
    """Run one `riemexp sweep` in a subprocess; its walls, CPU time, job count, summed in-job seconds
    and the jobs' stage timings summed over the jobs (`stages`)."""
    sweep = root / name
    cmd = [sys.executable, "-m", "riemexp", "sweep", *overrides, *launcher]
    cmd.append(f"hydra.sweep.dir={sweep}")
    env = {**os.environ, "CI": "true"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    total = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the command and the workers it waited for
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        print(f"{name}: riemexp sweep exited {done.returncode}:\n  " + "\n  ".join(tail), file=sys.stderr)
    found = re.search(r"wall time ([0-9.]+) s", done.stdout)
    multirun = float(found.group(1)) if found else total
    seconds = [json.loads(f.read_text())["seconds"] for f in sweep.glob(f"*/{JOB_FILE}")]
    stages: dict[str, float] = {}
    for f in sweep.glob(f"*/{METRICS_FILE}"):
        try:
            timings = json.loads(f.read_text()).get("timings") or {}
        except ValueError:  # a job killed while writing: its stages are not counted
            continue
        for stage, value in timings.items():
            if stage != "wall" and isinstance(value, int | float):
                stages[stage] = stages.get(stage, 0.0) + value
    side: dict[str, Any] = {"total": total, "multirun": multirun, "jobs": len(seconds), "cpu": cpu}
    return {**side, "in_job": sum(seconds), "stages": stages}


def main(args: list[str]) -> int:
    parser = option_parser("riemexp bench sweep", __doc__.splitlines()[0])
    parser.add_argument("--grid", default="default", help="grid preset (conf/grid/NAME.yaml)")
    parser.add_argument("--epochs", type=int, default=None, help="optim.epochs of every job")
    parser.add_argument("--quick", action="store_true", help="a smaller grid: depth 2,4,8 and seeds 0,1")
    parser.add_argument("--repeat", type=int, default=2, help="rounds of both sides; the fastest is shown")
    parser.add_argument("--keep", type=Path, default=None, help="keep the sweep folders under this folder")
    parser.add_argument(
        "--launchers",
        default=",".join(DEFAULT_SIDES),
        help=f"sides to run, comma-separated: {', '.join(SIDES)}",
    )
    parser.add_argument("overrides", nargs="*", help="riemexp sweep overrides, e.g. geometry.snapshots=0")
    opts = parse_options(parser, args, {"epochs": 1, "repeat": 1})
    sides = [s.strip() for s in opts.launchers.split(",") if s.strip()]
    if not sides or any(s not in SIDES for s in sides) or len(set(sides)) != len(sides):
        raise ConfigError(
            f"riemexp bench sweep: --launchers must list some of {', '.join(SIDES)}, got '{opts.launchers}'"
        )
    load_grid(opts.grid, conf_dir())  # an unknown preset: ConfigError listing the presets
    overrides = [f"grid={opts.grid}", *(QUICK if opts.quick else [])]
    if opts.epochs is not None:
        overrides.append(f"optim.epochs={opts.epochs}")
    overrides += opts.overrides
    workers = os.cpu_count() or 1

    with tempfile.TemporaryDirectory() as scratch:
        root = opts.keep or Path(scratch)
        print(machine("auto in every job (one each: a job per core)"), flush=True)
        print(f"riemexp sweep {' '.join(overrides)}  ({workers} cores)", flush=True)
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
        for i in range(max(opts.repeat, 1)):
            for name in sides:
                side = run_side(f"{name}{i}", SIDES[name], overrides, root)
                rounds[name].append(side)
                walls = f"multirun {side['multirun']:.1f} s, command {side['total']:.1f} s"
                print(f"  round {i + 1} {name}: {walls}", flush=True)
    best = {name: min(rounds[name], key=lambda side: side["total"]) for name in sides}

    header = ("launcher", "jobs", "multirun s", "command s", "cpu s", "in-job s", "start-up s/job")
    print(
        f"{header[0]:<12} {header[1]:>5} {header[2]:>11} {header[3]:>10} {header[4]:>8} {header[5]:>9} "
        f"{header[6]:>15}"
    )
    for name, side in best.items():
        used = 1 if name in ONE_PROCESS else workers
        startup = (side["multirun"] * used - side["in_job"]) / max(side["jobs"], 1)
        print(
            f"{name:<12} {side['jobs']:>5.0f} {side['multirun']:>11.1f} {side['total']:>10.1f} "
            f"{side['cpu']:>8.1f} {side['in_job']:>9.1f} {startup:>15.2f}"
        )
    print("in-job stages, summed over the jobs (s; the largest first):")
    for name, side in best.items():
        shown = sorted(side["stages"].items(), key=lambda item: -item[1])[:8]
        print(f"  {name:<12} " + ", ".join(f"{stage} {value:.1f}" for stage, value in shown))
    targets = {"joblib": "  (target <= 0.6)", "ensemble": "  (target <= 0.25)"}
    pairs = [(a, "sequential") for a in ("joblib", "ensemble", "ensemble1")] + [("ensemble", "joblib")]
    for a, b in pairs:
        if a in best and b in best:
            for what, key in (("whole command", "total"), ("multirun wall", "multirun"), ("cpu time", "cpu")):
                ratio = best[a][key] / best[b][key]
                print(
                    f"ratio {a} / {b} ({what}): {ratio:.2f}{targets.get(a, '') if b == 'sequential' else ''}"
                )
    counts = {side["jobs"] for side in best.values()}
    if len(counts) != 1 or 0 in counts:
        print("warning: the sides did not record the same number of jobs", file=sys.stderr)
        return 1
    return 0
