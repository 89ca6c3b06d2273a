"""Benchmark: what training snapshots cost, a default run with them against the same run without.

1. The command. `riemexp train dataset=spirals [OVERRIDES]` with the default snapshots
   (geometry.snapshots=20) and with geometry.snapshots=0, each in a fresh process into a
   temporary run folder, alternating (`--repeat` rounds, so that other work on a shared machine
   slows both alike); each side's figure is its median. Where the extra time goes comes from
   metrics.json: recording (`snapshots`: in the training loop, or, where the run may use two CPUs,
   only handing the weights to the snapshot worker and waiting for its last snapshot), the
   boundary step and the three snapshot figures (drawn in parallel processes beside the others
   where the run may use several CPUs). Target: at most 1.10x the run without.
2. Training alone. The default run's training (`riemexp.train.train`, data made once) in this
   process, with the snapshot recorder and without, alternating: the recording's own cost.

    riemexp bench snapshots [--repeat 3] [--quick] [--parts command,training] [OVERRIDE ...]
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from riemexp.bench import machine, option_parser, parse_options, progress, ratio
from riemexp.errors import ConfigError

SNAPSHOT_FIGURES = ("figure:snapshots", "figure:snapshots_gif", "figure:boundary_curves")


def whole_command(overrides: list[str], repeat: int, root: Path, count: int) -> float:
    """Section 1; returns the ratio with / without snapshots (medians)."""
    from riemexp.bench.run import run_command

    sides = {"with": [f"geometry.snapshots={count}"], "without": ["geometry.snapshots=0"]}
    walls: dict[str, list[float]] = {"with": [], "without": []}
    cpus: dict[str, list[float]] = {"with": [], "without": []}
    timings: list[dict[str, Any]] = []
    with progress("riemexp train with and without snapshots, alternating", 2 * repeat) as advance:
        for i in range(repeat):
            for side, extra in sides.items():
                before = _children_cpu()
                done = run_command([*overrides, *extra], root / f"{side}{i}")
                walls[side].append(done["wall"])
                cpus[side].append(_children_cpu() - before)
                if side == "with":
                    timings.append(done)
                advance(f"round {i + 1}: {side} {done['wall']:.2f} s")
    for i in range(repeat):
        a, b = walls["with"][i], walls["without"][i]
        ca, cb = cpus["with"][i], cpus["without"][i]
        print(
            f"  round {i + 1}: wall with snapshots {a:.2f} s, without {b:.2f} s, ratio {ratio(a, b):.3f}; "
            f"CPU with {ca:.2f} s, without {cb:.2f} s, ratio {ratio(ca, cb):.3f}"
        )
    with_s, without_s = statistics.median(walls["with"]), statistics.median(walls["without"])

    def median(key: str, where: str = "timings") -> float:
        return statistics.median(float(t[where].get(key, 0.0)) for t in timings)

    figures = ", ".join(f"{k.split(':')[-1]} {median(k, 'figure_seconds'):.2f} s" for k in SNAPSHOT_FIGURES)
    print(
        f"where the extra time goes (median, with snapshots): recording {median('snapshots'):.3f} s, "
        f"boundary step {median('boundary'):.3f} s, waiting for figures {median('figures'):.3f} s "
        f"(each snapshot figure's own seconds, in parallel processes: {figures})"
    )
    result = ratio(with_s, without_s)
    cpu_with, cpu_without = statistics.median(cpus["with"]), statistics.median(cpus["without"])
    print(
        f"CPU (user + system of the command and its figure processes; steadier than the wall on a busy "
        f"machine), medians: with {cpu_with:.2f} s, without {cpu_without:.2f} s, ratio "
        f"{ratio(cpu_with, cpu_without):.3f}"
    )
    print(
        f"ratio with / without snapshots (wall, medians {with_s:.2f} s / {without_s:.2f} s): {result:.3f}  "
        f"(target <= 1.10)"
    )
    return result


def _children_cpu() -> float:
    """User + system seconds of this process's finished children (and theirs), so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def training_alone(cfg: Any, repeat: int) -> float:
    """Section 2: training with the recorder and without, in this process; returns the ratio."""
    from riemexp.analyses.snapshots import SnapshotRecorder
    from riemexp.data.dataset import make_dataset
    from riemexp.nets.network import build_network
    from riemexp.threads import run_threads, using_threads
    from riemexp.train import train

    data = make_dataset(cfg.dataset, cfg.data_seed)
    # warm-up, untimed: the first snapshot loads the geometry code and torch's linear algebra
    SnapshotRecorder(cfg, data).record(build_network(cfg.network, data.n_classes), 0)
    times: dict[str, list[float]] = {"with": [], "without": []}
    cpu: dict[str, list[float]] = {"with": [], "without": []}
    recorded = 0
    with (
        using_threads(run_threads(cfg)),
        progress("training with and without the recorder", 2 * repeat) as advance,
    ):
        for _ in range(repeat):
            for side in ("with", "without"):
                start, start_cpu = time.perf_counter(), time.process_time()
                if side == "without":
                    train(cfg, data)
                else:
                    recorded = _train_recording(cfg, data, SnapshotRecorder(cfg, data))
                times[side].append(time.perf_counter() - start)
                cpu[side].append(time.process_time() - start_cpu)
                advance(f"{side}: {times[side][-1]:.2f} s")
    a, b = statistics.median(times["with"]), statistics.median(times["without"])
    ca, cb = statistics.median(cpu["with"]), statistics.median(cpu["without"])
    print(
        f"\ntraining alone ({cfg.optim.epochs} epochs): with {recorded} snapshots recorded {a:.3f} s, "
        f"without {b:.3f} s, ratio {ratio(a, b):.3f}; CPU with {ca:.3f} s, without {cb:.3f} s, ratio "
        f"{ratio(ca, cb):.3f}; {(ca - cb) / max(recorded, 1) * 1000:.1f} ms of CPU a snapshot "
        f"({cfg.geometry.snapshot_density} x {cfg.geometry.snapshot_density} snapshot grid, "
        f"depth {cfg.network.depth})"
    )
    return ratio(a, b)


def _train_recording(cfg: Any, data: Any, recorder: Any) -> int:
    """Train as `riemexp train` does with snapshots on; return the number of snapshots recorded."""
    from riemexp.train import TrainResult, train

    result = TrainResult(model=None)  # type: ignore[arg-type]
    train(
        cfg,
        data,
        on_epoch=lambda row: recorder.record(result.model, int(row["epoch"])),
        result=result,
        on_start=lambda model: recorder.record(model, 0),
    )
    return len(recorder.rows)


def main(args: list[str]) -> int:
    parser = option_parser("riemexp bench snapshots", __doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds of each side; medians are shown")
    parser.add_argument("--quick", action="store_true", help="one round of each")
    parser.add_argument("--parts", default="command,training", help="comma-separated: command, training")
    parser.add_argument("--keep", type=Path, default=None, help="keep the run folders under this folder")
    parser.add_argument("overrides", nargs="*", help="riemexp train overrides, e.g. dataset=moons")
    opts = parse_options(parser, args, {"repeat": 1})
    parts = [p.strip() for p in opts.parts.split(",") if p.strip()]
    if not parts or any(p not in ("command", "training") for p in parts):
        raise ConfigError(
            f"riemexp bench snapshots: --parts must list command, training or both, got '{opts.parts}'"
        )
    if opts.quick:
        opts.repeat = 1
    from riemexp.commands.hydra_app import compose_config, to_run_config
    from riemexp.threads import run_threads

    # the snapshots compared: the default or an override's count, against none
    count = to_run_config(compose_config("train", ["dataset=spirals", *opts.overrides])).geometry.snapshots
    if count == 0:
        raise ConfigError(
            "riemexp bench snapshots: compares snapshots against none; geometry.snapshots=0 was given"
        )
    overrides = ["dataset=spirals", *[o for o in opts.overrides if not o.startswith("geometry.snapshots=")]]
    cfg = to_run_config(compose_config("train", [*overrides, f"geometry.snapshots={count}"]))
    print(machine(run_threads(cfg)), flush=True)
    print(f"command: riemexp train {' '.join(overrides)}, geometry.snapshots={count} against 0", flush=True)
    if "command" in parts:
        with tempfile.TemporaryDirectory() as scratch:
            whole_command(overrides, opts.repeat, opts.keep or Path(scratch), count)
    if "training" in parts:
        training_alone(cfg, opts.repeat)
    return 0
