"""Benchmark: a sweep on the joblib launcher (one job per core) against the same sweep one job after another.

Both sides run the whole `riemexp sweep` command in a fresh subprocess, into their own
sweep folder, with the same grid and overrides; only the launcher differs:

    joblib       hydra/launcher=joblib (n_jobs=-1: every core; one torch thread per job)
    sequential   hydra/launcher=basic  (Hydra's in-process launcher, one job after another)

Printed: both walls (the multirun, as the command reports it, and the whole command), the
ratio joblib / sequential (target <= 0.6 on 2 cores) and the per-job start-up cost of each
launcher, (multirun wall x workers - sum of in-job seconds) / jobs: the core time per job
spent outside the job itself (process start, imports, Hydra's job set-up, waiting).
The sides alternate `--repeat` times (joblib, sequential, joblib, ...) and each side's
fastest round is shown, so that other work on a shared machine disturbs both alike.

    riemexp bench sweep [--grid default] [--epochs N] [--quick] [--repeat 2] [--keep DIR]

--quick: depth {2, 4, 8} and seeds {0, 1} (24 jobs with the default preset's kinds and step
sizes) instead of the preset's 60.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from riemexp.bench import machine, option_parser, parse_options
from riemexp.cli import conf_dir
from riemexp.sweep.grid import load_grid
from riemexp.sweep.jobs import JOB_FILE

QUICK = ["network.depth=2,4,8", "seed=0,1"]


def run_side(name: str, launcher: str, overrides: list[str], root: Path) -> dict[str, float]:
    """Run one `riemexp sweep` in a subprocess; its walls, job count and summed in-job seconds."""
    sweep = root / name
    cmd = [sys.executable, "-m", "riemexp", "sweep", *overrides, f"hydra/launcher={launcher}"]
    cmd.append(f"hydra.sweep.dir={sweep}")
    env = {**os.environ, "CI": "true"}
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    total = time.perf_counter() - start
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        print(f"{name}: riemexp sweep exited {done.returncode}:\n  " + "\n  ".join(tail), file=sys.stderr)
    found = re.search(r"wall time ([0-9.]+) s", done.stdout)
    multirun = float(found.group(1)) if found else total
    seconds = [json.loads(f.read_text())["seconds"] for f in sweep.glob(f"*/{JOB_FILE}")]
    return {"total": total, "multirun": multirun, "jobs": len(seconds), "in_job": sum(seconds)}


def main(args: list[str]) -> int:
    parser = option_parser("riemexp bench sweep", __doc__.splitlines()[0])
    parser.add_argument("--grid", default="default", help="grid preset (conf/grid/NAME.yaml)")
    parser.add_argument("--epochs", type=int, default=None, help="optim.epochs of every job")
    parser.add_argument("--quick", action="store_true", help="a smaller grid: depth 2,4,8 and seeds 0,1")
    parser.add_argument("--repeat", type=int, default=2, help="rounds of both sides; the fastest is shown")
    parser.add_argument("--keep", type=Path, default=None, help="keep the sweep folders under this folder")
    opts = parse_options(parser, args, {"epochs": 1, "repeat": 1})
    load_grid(opts.grid, conf_dir())  # an unknown preset: ConfigError listing the presets
    overrides = [f"grid={opts.grid}", *(QUICK if opts.quick else [])]
    if opts.epochs is not None:
        overrides.append(f"optim.epochs={opts.epochs}")
    workers = os.cpu_count() or 1

    with tempfile.TemporaryDirectory() as scratch:
        root = opts.keep or Path(scratch)
        print(machine("auto in every job (one each: a job per core)"), flush=True)
        print(f"riemexp sweep {' '.join(overrides)}  ({workers} cores)", flush=True)
        rounds: dict[str, list[dict[str, float]]] = {"joblib": [], "sequential": []}
        for i in range(max(opts.repeat, 1)):
            for name, launcher in (("joblib", "joblib"), ("sequential", "basic")):
                side = run_side(f"{name}{i}", launcher, overrides, root)
                rounds[name].append(side)
                print(f"  round {i + 1} {name}: multirun {side['multirun']:.1f} s", flush=True)
    par = min(rounds["joblib"], key=lambda side: side["multirun"])
    seq = min(rounds["sequential"], key=lambda side: side["multirun"])

    header = ("launcher", "jobs", "multirun s", "command s", "in-job s", "start-up s/job")
    print(f"{header[0]:<12} {header[1]:>5} {header[2]:>11} {header[3]:>10} {header[4]:>9} {header[5]:>15}")
    for name, side, used in (("joblib", par, workers), ("sequential", seq, 1)):
        startup = (side["multirun"] * used - side["in_job"]) / max(side["jobs"], 1)
        print(
            f"{name:<12} {side['jobs']:>5.0f} {side['multirun']:>11.1f} {side['total']:>10.1f} "
            f"{side['in_job']:>9.1f} {startup:>15.2f}"
        )
    print(
        f"ratio joblib / sequential (multirun wall): {par['multirun'] / seq['multirun']:.2f}  (target <= 0.6)"
    )
    print(f"ratio joblib / sequential (whole command): {par['total'] / seq['total']:.2f}")
    if par["jobs"] != seq["jobs"] or par["jobs"] == 0:
        print("warning: the two sides did not record the same number of jobs", file=sys.stderr)
        return 1
    return 0
