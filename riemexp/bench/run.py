"""Benchmark: the whole `riemexp train` command against the floor, stage by stage, and training under load.

1. The command. `riemexp train dataset=spirals [OVERRIDES]` runs in a fresh process (not on a
   terminal), into a temporary run folder; its metrics.json says where the time went (`timings`,
   one entry per stage: startup, imports, config, Hydra's set-up, data, training, geometry, ODE,
   Lie table, each figure, writing, and the residual `other`); what the process spends after
   metrics.json is written (interpreter shutdown) is measured from outside. The floor is a minimal
   script in a fresh process: import torch, make the same number of training points, build the
   same network (a list of nn.Linear layers, the same update rule, activation, width and depth)
   and train it full-batch with Adam for the same epochs on the same torch threads; nothing else.
   The two alternate (`--repeat` rounds), so that other work on a shared machine slows both alike;
   each side's figure is its median over rounds. Targets: the command at most 2.5x the floor at
   the defaults, 3x at network.depth=50.

2. Training under load. The default run's training (`riemexp.train.train`, data made once) is
   timed in this process on an idle machine and while two CPU-bound processes started by the
   benchmark run beside it (stopped afterwards), alternating; with riemexp's threads (auto) and,
   for contrast, torch's default thread count. Target: loaded at most 1.3x idle with auto. Note
   the fair share: with b busy processes on c CPUs one CPU-bound thread gets min(1, c / (b + 1))
   of a CPU, so on 2 CPUs it cannot be faster than 1.5x its idle time.

    riemexp bench run [--repeat 3] [--quick] [--parts command,load] [--keep DIR] [OVERRIDE ...]

--quick: one round of each, and the load section without the contrast. --parts: either or both.
OVERRIDEs are `riemexp train` overrides (e.g. network.depth=50); the floor follows the network,
the dataset size and the optimiser.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from riemexp.bench import machine, option_parser, parse_options, progress, ratio
from riemexp.errors import ConfigError
from riemexp.nets.registry import get_kind

#: the floor: the least a script needs to train the same network; argv[1] is its JSON settings
FLOOR = """
import json, sys, time
t0 = time.perf_counter()
import torch
from torch import nn
t1 = time.perf_counter()
s = json.loads(sys.argv[1])
torch.set_num_threads(s["threads"])
torch.manual_seed(s["seed"])
x = torch.randn(s["points"], 2)
y = torch.randint(0, s["classes"], (s["points"],))
layers = nn.ModuleList(nn.Linear(s["width"], s["width"]) for _ in range(s["depth"]))
head = nn.Linear(s["width"], s["classes"])
sigma = getattr(torch, s["activation"], None) or getattr(nn.functional, s["activation"])
a, c, beta = s["a"], s["c"], s["beta"]  # x_{l+1} = a x_l + c x_{l-1} + beta sigma(W x_l + b)
opt = torch.optim.Adam([*layers.parameters(), *head.parameters()], lr=s["lr"])
t2 = time.perf_counter()
for epoch in range(s["epochs"]):
    z = nn.functional.pad(x, (0, s["width"] - 2))
    prev = z
    for layer in layers:
        out = sigma(layer(z))
        if beta != 1:
            out = beta * out
        if a:
            out = out + (z if a == 1 else a * z)
        if c:
            out = out + c * prev
        z, prev = out, z
    loss = nn.functional.cross_entropy(head(z), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
t3 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "data and model": t2 - t1, "training": t3 - t2, "inside": t3 - t0}))
"""

ACTIVATIONS = {
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "relu": "relu",
    "softplus": "softplus",
    "identity": "clone",
}


def floor_settings(cfg: Any, threads: int) -> dict[str, Any]:
    """The floor's settings for a RunConfig: what decides its training time, nothing more."""
    from riemexp.data.registry import size

    n, classes = size(cfg.dataset)
    return {
        "seed": cfg.seed,
        "points": n - round(n * cfg.dataset.test_fraction),
        "classes": classes,
        "width": cfg.network.width,
        "depth": cfg.network.depth,
        "kind": cfg.network.kind,
        **dataclasses.asdict(get_kind(cfg.network.kind).coefficients(cfg.network.step_size)),
        "activation": ACTIVATIONS[cfg.network.activation.value],
        "lr": cfg.optim.lr,
        "epochs": cfg.optim.epochs,
        "threads": threads,
    }


def run_command(overrides: list[str], folder: Path) -> dict[str, Any]:
    """`riemexp train OVERRIDES` in a fresh process: its wall (from outside) and metrics.json's timings."""
    env = {**os.environ, "CI": "true"}
    cmd = [sys.executable, "-m", "riemexp", "train", *overrides, f"hydra.run.dir={folder}"]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        tail = "\n  ".join((done.stdout + done.stderr).strip().splitlines()[-5:])
        raise ConfigError(f"riemexp bench run: `riemexp train` exited {done.returncode}:\n  {tail}")
    metrics = json.loads((folder / "metrics.json").read_text())
    return {
        "wall": wall,
        "timings": metrics["timings"],
        "threads": metrics["threads"],
        "figure_seconds": metrics.get("figure_seconds", {}),
    }


def run_floor(settings: dict[str, Any]) -> dict[str, float]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", FLOOR, json.dumps(settings)], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise ConfigError(
            f"riemexp bench run: the floor script failed: {done.stderr.strip().splitlines()[-1]}"
        )
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "wall": wall}


def _median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r.get(key, 0.0) for r in rows)


def whole_command(overrides: list[str], cfg: Any, threads: int, repeat: int, root: Path) -> float:
    """Section 1; returns the ratio command / floor."""
    settings = floor_settings(cfg, threads)
    ours: list[dict[str, Any]] = []
    floors: list[dict[str, float]] = []
    with progress("riemexp train and the floor, alternating", 2 * repeat) as advance:
        for i in range(repeat):
            ours.append(run_command(overrides, root / f"run{i}"))
            advance(f"round {i + 1}: riemexp {ours[-1]['wall']:.2f} s")
            floors.append(run_floor(settings))
            advance(f"round {i + 1}: floor {floors[-1]['wall']:.2f} s")
    for i, (a, b) in enumerate(zip(ours, floors)):
        print(
            f"  round {i + 1}: riemexp train {a['wall']:.2f} s, floor {b['wall']:.2f} s, "
            f"ratio {a['wall'] / b['wall']:.2f}"
        )
    walls = [r["wall"] for r in ours]
    wall, floor_wall = statistics.median(walls), _median(floors, "wall")
    stages = [k for k in ours[0]["timings"] if k != "wall"]
    rows = [{**r["timings"], "exit": r["wall"] - r["timings"]["wall"]} for r in ours]

    print(f"\nwhere the command's time goes (median of {repeat} round{'s' if repeat > 1 else ''}; seconds)")
    print(f"  {'stage':<28}{'seconds':>9}{'share':>8}")
    for key in [*stages, "exit"]:
        value = _median(rows, key)
        label = {"other": "other (no stage: residual)", "exit": "after metrics.json (exit)"}.get(key, key)
        print(f"  {label:<28}{value:>9.3f}{value / wall:>7.0%}")
    print(f"  {'whole command':<28}{wall:>9.3f}{1:>7.0%}")
    drawn = [r["figure_seconds"] for r in ours if r["figure_seconds"]]
    if drawn:  # figures drawn in parallel: the stage `figures` is the wait for them
        each = ", ".join(f"{k.split(':')[-1]} {_median(drawn, k):.2f}" for k in drawn[0])
        print(f"  figures were drawn in parallel processes; each one's own seconds: {each}")
    floor_rest = floor_wall - _median(floors, "inside")
    print(
        f"floor (median): import torch {_median(floors, 'imports'):.3f} s, data, model and Adam (which "
        f"loads torch._dynamo) {_median(floors, 'data and model'):.3f} s, training "
        f"{_median(floors, 'training'):.3f} s, interpreter start and exit {floor_rest:.3f} s; "
        f"whole script {floor_wall:.3f} s"
    )
    result = ratio(wall, floor_wall)
    print(
        f"ratio riemexp train / floor: {result:.2f}  (targets: <= 2.5 at the defaults, <= 3 at "
        f"network.depth=50); riemexp ran on {ours[0]['threads']} torch thread(s), the floor on {threads}"
    )
    return result


def _burners(n: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait()


def under_load(cfg: Any, repeat: int, contrast: bool) -> None:
    """Section 2: training idle and beside two CPU-bound processes, alternating."""
    from riemexp.data.dataset import make_dataset
    from riemexp.threads import available_cpus, run_threads, using_threads
    from riemexp.train import train

    data = make_dataset(cfg.dataset, cfg.data_seed)
    auto = run_threads(cfg)
    default = available_cpus()  # torch's own default: one thread per core
    settings = [("threads auto", auto)] + (
        [("torch's default", default)] if contrast and default != auto else []
    )
    times: dict[tuple[str, str], list[float]] = {}
    n_burn = 2
    print(
        f"\ntraining under load: the default run's training ({cfg.optim.epochs} epochs), idle and beside "
        f"{n_burn} CPU-bound processes of this benchmark"
    )
    with progress("training idle and under load", repeat * len(settings) * 2) as advance:
        for _ in range(repeat):
            for name, threads in settings:
                for load in ("idle", "loaded"):
                    procs = _burners(n_burn) if load == "loaded" else []
                    try:
                        if procs:
                            time.sleep(0.5)  # let the burners get going
                        with using_threads(threads):
                            start = time.perf_counter()
                            train(cfg, data)
                            seconds = time.perf_counter() - start
                    finally:
                        _stop(procs)
                    times.setdefault((name, load), []).append(seconds)
                    advance(f"{name} {load}: {seconds:.2f} s")
    print(f"  {'':<26}{'idle s':>8}{'loaded s':>10}{'loaded / idle':>15}")
    for name, threads in settings:
        idle, loaded = statistics.median(times[(name, "idle")]), statistics.median(times[(name, "loaded")])
        label = f"{name} ({threads} thread{'s' if threads > 1 else ''})"
        target = "   (target <= 1.3)" if name == "threads auto" else ""
        print(f"  {label:<26}{idle:>8.3f}{loaded:>10.3f}{ratio(loaded, idle):>15.2f}{target}")
    cpus = available_cpus()
    share = min(1.0, cpus / (n_burn + 1))
    print(
        f"  fair share with {n_burn} busy processes on {cpus} CPUs: {share:.2f} of a CPU per process, so a "
        f"single CPU-bound thread takes at least {1 / share:.2f}x its idle time"
    )


def main(args: list[str]) -> int:
    parser = option_parser("riemexp bench run", __doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds of each side; medians are shown")
    parser.add_argument("--quick", action="store_true", help="one round, no thread-count contrast")
    parser.add_argument("--parts", default="command,load", help="comma-separated: command, load")
    parser.add_argument("--keep", type=Path, default=None, help="keep the run folders under this folder")
    parser.add_argument("overrides", nargs="*", help="riemexp train overrides, e.g. network.depth=50")
    opts = parse_options(parser, args, {"repeat": 1})
    parts = [p.strip() for p in opts.parts.split(",") if p.strip()]
    if not parts or any(p not in ("command", "load") for p in parts):
        raise ConfigError(f"riemexp bench run: --parts must list command, load or both, got '{opts.parts}'")
    if opts.quick:
        opts.repeat = 1
    from riemexp.commands.hydra_app import compose_config, to_run_config
    from riemexp.threads import run_threads

    overrides = ["dataset=spirals", *opts.overrides]
    cfg = to_run_config(compose_config("train", overrides))
    threads = run_threads(cfg)
    print(machine(threads), flush=True)
    print(f"command: riemexp train {' '.join(overrides)}", flush=True)
    if "command" in parts:
        with tempfile.TemporaryDirectory() as scratch:
            root = opts.keep or Path(scratch)
            whole_command(overrides, cfg, threads, opts.repeat, root)
    if "load" in parts:
        under_load(cfg, opts.repeat, contrast=not opts.quick)
    return 0
