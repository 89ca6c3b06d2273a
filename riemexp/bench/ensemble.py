"""Benchmark: training runs as batched ensembles against training them one after another.

Three parts, each printing both sides and the ratio:

    seeds    the default `riemexp train` configuration (spirals, residual depth 10) for seeds
             0 .. K-1 (K = --seeds, 100) as one ensemble, against one run (seed 0) trained alone
             (target: the ensemble takes at most 5x the one run), in each --mode; with
             --compare, every seed is also trained alone and the largest member-vs-single
             difference of each mode is printed
    grid     every job of a sweep grid preset (default: 60 jobs), grouped into ensembles by
             shape (`riemexp.ensemble.group_members`), against the same jobs trained one after
             another with `riemexp.train.train` (target: at most 0.25x), in each --mode. Training
             only: no run folders, no analyses, no process start-up on either side. Both sides'
             results are compared too: the largest member-vs-single difference is printed.
    memory   peak resident memory of a fresh process training K = 100 members at depth 50,
             against the same process training one member; and the tape the backward pass keeps
    snapshots  the grid's ensembles (exact mode) with every job's geometry snapshots (its config's:
             20 on a 40 x 40 grid by default), the members measured together in one batched pass
             (`riemexp.analyses.ensemble_snapshots`) against member by member: the seconds spent recording,
             summed over the jobs, each side's whole training wall, and whether both sides'
             snapshots.npz arrays are identical

Modes (`train_ensemble(exact=...)`, docs/ensembles.md): exact (members bit-identical to their
single runs; the default of train_ensemble and of the ensemble launcher) and fast (exact=False:
planar kernels, members agree with their single runs to float32 rounding per step). --mode both
(the default) times both. The one run trains with its own thread rule (`riemexp.threads`: one
thread for the default run), the ensembles with --threads.

Times are the fastest of --repeat rounds, the sides alternating so that other work on a
shared machine slows both alike. The thread counts and the load average are printed.

    riemexp bench ensemble [--quick] [--parts seeds,grid,memory,snapshots] [--seeds 100] [--epochs N]
                           [--grid default] [--repeat 2] [--threads auto] [--mode both]
                           [--compare] [--memory-members 100] [--memory-depth 50]

--quick: 20 epochs instead of the configurations' own (300), 2 epochs for memory, one round.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace

import torch

from riemexp.bench import add_threads_option, option_parser, parse_options, use_threads
from riemexp.cli import conf_dir
from riemexp.config import RunConfig
from riemexp.errors import ConfigError, DivergedError
from riemexp.train import TrainResult, train

PARTS = ("seeds", "grid", "memory", "snapshots")
#: --mode: the modes each lists, as train_ensemble's `exact` argument
MODES: dict[str, tuple[tuple[str, bool | None], ...]] = {
    "exact": (("exact", None),),
    "fast": (("fast", False),),
    "both": (("exact", None), ("fast", False)),
}
QUICK_EPOCHS = 20


def grid_configs(name: str, overrides: Sequence[str] = ()) -> list[RunConfig]:
    """Every job of grid preset `name` as a RunConfig, composed by Hydra as `riemexp sweep` composes it.

    The preset's fixed values, crossed axes and paired sets, then `overrides` (KEY=VALUE each).
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    from riemexp.commands.hydra_app import to_run_config
    from riemexp.sweep.grid import hydra_value, load_grid

    grid = load_grid(name, conf_dir())
    parser = OverridesParser.create()
    axes = []
    for key, values in grid.params.items():
        override = parser.parse_override(f"{key}={values}")
        axes.append([f"{key}={v}" for v in override.sweep_string_iterator()])
    paired = [[f"{k}={hydra_value(v)}" for k, v in entry.items()] for entry in grid.paired] or [[]]
    fixed = [f"{k}={v}" for k, v in grid.fixed.items()]
    jobs = [
        fixed + list(crossed) + entry + list(overrides)
        for crossed in itertools.product(*axes)
        for entry in paired
    ]
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            return [to_run_config(compose(config_name="train", overrides=job)) for job in jobs]
    except HydraException as err:
        raise ConfigError(f"grid preset {name}: {str(err).strip().splitlines()[0]}") from None


def _train_alone(cfg: RunConfig, data) -> tuple[TrainResult, str | None]:
    """cfg trained by riemexp.train.train with its own thread count (riemexp.threads: as `riemexp
    train` runs it), whatever the ensembles use."""
    from riemexp.threads import run_threads, using_threads

    result = TrainResult(model=None)  # type: ignore[arg-type]
    with using_threads(run_threads(cfg, n_data=len(data.x))):
        try:
            train(cfg, data, result=result)
        except DivergedError as err:
            return result, str(err)
    return result, None


def _warm_up(cfgs: Sequence[RunConfig], datasets: Sequence, modes) -> None:
    """Train two epochs alone and as an ensemble in each mode, untimed: torch's first calls are slow."""
    from riemexp.ensemble import train_ensemble

    short = [replace(cfg, optim=replace(cfg.optim, epochs=2)) for cfg in cfgs[:2]]
    _train_alone(short[0], datasets[0])
    for _, exact in modes:
        train_ensemble(short, datasets[: len(short)], exact=exact)


def _rounds(sides: dict[str, object], repeat: int) -> dict[str, tuple[float, object]]:
    """Run each side `repeat` times, alternating; the fastest wall (and that round's output) of each."""
    best: dict[str, tuple[float, object]] = {}
    for _ in range(repeat):
        for name, side in sides.items():
            start = time.perf_counter()
            out = side()  # type: ignore[operator]
            wall = time.perf_counter() - start
            if name not in best or wall < best[name][0]:
                best[name] = (wall, out)
    return best


def _seeds(opts, epochs: int | None) -> None:
    from riemexp.commands.hydra_app import compose_config, to_run_config
    from riemexp.ensemble import member_datasets, split_ensemble, train_ensemble
    from riemexp.threads import run_threads

    base = to_run_config(compose_config("train", []))
    if epochs is not None:
        base = replace(base, optim=replace(base.optim, epochs=epochs))
    cfgs = [replace(base, seed=s) for s in range(opts.seeds)]
    datasets = member_datasets(cfgs)  # made before timing, on both sides
    modes = MODES[opts.mode]
    _warm_up(cfgs, datasets, modes)
    sides: dict[str, object] = {"one run": lambda: _train_alone(cfgs[0], datasets[0])}
    for name, exact in modes:
        sides[name] = lambda exact=exact: train_ensemble(cfgs, datasets, exact=exact)
    best = _rounds(sides, opts.repeat)
    one = best["one run"][0]
    net = base.network
    print(
        f"seeds: {opts.seeds} seeds of {base.dataset.name} / {net.kind} depth {net.depth} width "
        f"{net.width}, {base.optim.epochs} epochs full batch, {base.optim.name.value}"
    )
    one_threads = run_threads(cfgs[0], n_data=len(datasets[0].x))
    print(f"  one run (seed 0)            {one:9.3f} s   ({one_threads} thread{'s' * (one_threads > 1)})")
    for name, _ in modes:
        ens = best[name][0]
        print(
            f"  ensemble of {opts.seeds:<4} {name:>5}     {ens:9.3f} s   ({torch.get_num_threads()} thread"
            f"{'s' * (torch.get_num_threads() > 1)}, {ens / opts.seeds / base.optim.epochs * 1e3:.3f} ms "
            f"per member-epoch)   ratio ensemble / one {ens / one:6.2f}   (target <= 5)"
        )
    print(
        f"  ratio ensemble / {opts.seeds} runs one after another (estimated): "
        + ", ".join(f"{name} {best[name][0] / (one * opts.seeds):.3f}" for name, _ in modes)
    )
    if opts.compare:
        singles = [_train_alone(cfg, data) for cfg, data in zip(cfgs, datasets)]
        _spread("alone", [single.final for single, _ in singles])
        for name, _ in modes:
            members = split_ensemble(best[name][1])  # type: ignore[arg-type]
            _spread(name, [member.final for member in members])
            _differences(singles, members, f"{name}: ")


def _spread(label: str, finals: Sequence[dict[str, float]]) -> None:
    """Mean and sample standard deviation over the seeds of the final scores (what a seeds sweep reports)."""
    parts = []
    for key in ("train_loss", "train_accuracy", "test_accuracy"):
        values = torch.tensor([f[key] for f in finals if key in f], dtype=torch.float64)
        parts.append(f"{key} {values.mean().item():.4f} +- {values.std().item():.4f}")
    print(f"  {label:>5}: over the seeds, final " + ", ".join(parts))


def _grid(opts, epochs: int | None) -> None:
    from riemexp.ensemble import group_members, member_datasets, split_ensemble, train_ensemble

    overrides = [f"optim.epochs={epochs}"] if epochs is not None else []
    cfgs = grid_configs(opts.grid, overrides)
    datasets = member_datasets(cfgs)
    groups = group_members(cfgs, datasets)
    modes = MODES[opts.mode]
    _warm_up([cfgs[i] for i in groups[0]], [datasets[i] for i in groups[0]], modes)

    def alone():
        return [_train_alone(cfg, data) for cfg, data in zip(cfgs, datasets)]

    def together(exact: bool | None):
        members: list[object] = [None] * len(cfgs)
        for group in groups:
            trained = train_ensemble([cfgs[i] for i in group], [datasets[i] for i in group], exact=exact)
            for i, member in zip(group, split_ensemble(trained)):
                members[i] = member
        return members

    sides: dict[str, object] = {"one after another": alone}
    for name, exact in modes:
        sides[name] = lambda exact=exact: together(exact)
    best = _rounds(sides, opts.repeat)
    seq = best["one after another"][0]
    sizes = sorted(len(g) for g in groups)
    print(
        f"grid: {len(cfgs)} jobs of grid preset '{opts.grid}' ({cfgs[0].optim.epochs} epochs each), "
        f"{len(groups)} ensembles of sizes {', '.join(map(str, sizes))}; training only"
    )
    print(f"  one after another           {seq:9.3f} s")
    for name, _ in modes:
        ens = best[name][0]
        print(
            f"  ensembles by shape {name:>5}   {ens:9.3f} s   ratio ensembles / one after another "
            f"{ens / seq:.3f}   (target <= 0.25)"
        )
        _differences(best["one after another"][1], best[name][1], f"{name}: ")


class _MemberByMember:
    """A snapshot hook that is not a SnapshotRecorder: the trainer then has each member record alone."""

    def __init__(self, recorder) -> None:
        self.recorder, self.epochs = recorder, recorder.epochs

    def record(self, model, epoch: int) -> None:
        self.recorder.record(model, epoch)


def _snapshots(opts, epochs: int | None) -> None:
    from riemexp.ensemble import group_members, member_datasets, train_ensemble
    from riemexp.sweep.ensemble import snapshot_recorders

    overrides = [f"optim.epochs={epochs}"] if epochs is not None else []
    cfgs = grid_configs(opts.grid, overrides)
    datasets = member_datasets(cfgs)
    groups = group_members(cfgs, datasets)
    _warm_up([cfgs[i] for i in groups[0]], [datasets[i] for i in groups[0]], MODES["exact"])

    def side(batched: bool):
        recorders: list = [None] * len(cfgs)
        for group in groups:
            mine = snapshot_recorders([cfgs[i] for i in group], [datasets[i] for i in group])
            hooks = mine if batched else [r if r is None else _MemberByMember(r) for r in mine]
            train_ensemble([cfgs[i] for i in group], [datasets[i] for i in group], recorders=hooks)
            for i, recorder in zip(group, mine):
                recorders[i] = recorder
        return recorders

    best = _rounds({"member by member": lambda: side(False), "batched": lambda: side(True)}, opts.repeat)
    kept: dict[str, list] = {name: out for name, (_, out) in best.items()}  # type: ignore[misc]
    recorded = {name: sum(r.seconds for r in out if r is not None) for name, out in kept.items()}
    counts = sum(len(r.rows) for r in kept["batched"] if r is not None)
    identical = all(
        (a is None) == (b is None) and (a is None or _same_arrays(a.arrays(), b.arrays()))
        for a, b in zip(kept["batched"], kept["member by member"])
    )
    print(
        f"snapshots: {len(cfgs)} jobs of grid preset '{opts.grid}' in {len(groups)} ensembles (exact), "
        f"{counts} snapshots recorded; seconds recording (summed over the jobs) / whole training wall"
    )
    for name in ("member by member", "batched"):
        print(f"  {name:<18} {recorded[name]:9.3f} s / {best[name][0]:9.3f} s")
    ratio = recorded["batched"] / recorded["member by member"]
    print(
        f"  ratio batched / member by member: recording {ratio:.3f}, "
        f"wall {best['batched'][0] / best['member by member'][0]:.3f}; "
        f"snapshots.npz arrays identical: {'yes' if identical else 'no'}"
    )


def _same_arrays(a: dict, b: dict) -> bool:
    """Whether two sets of named arrays are equal, NaN where NaN."""
    import numpy as np

    return sorted(a) == sorted(b) and all(
        np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f") for k in a
    )


def _differences(singles, members, label: str = "") -> None:
    """The largest member-vs-single differences over all jobs, and whether all are bit-identical."""
    worst = {"weights": 0.0, "loss": 0.0, "accuracy": 0.0, "final_accuracy": 0.0}
    identical, fates = True, 0
    for (single, error), member in zip(singles, members):
        fates += (error is None) != (member.error is None)
        a, b = single.model.state_dict(), member.model.state_dict()
        for name in a:
            identical &= torch.equal(a[name], b[name])
            diff = (a[name].double() - b[name].double()).abs().max().item()
            worst["weights"] = max(worst["weights"], diff)
        identical &= single.history == member.history and single.final == member.final
        for row_a, row_b in zip(single.history, member.history):
            for key in ("train_loss", "test_loss"):
                worst["loss"] = max(worst["loss"], abs(row_a[key] - row_b[key]))
            for key in ("train_accuracy", "test_accuracy"):
                worst["accuracy"] = max(worst["accuracy"], abs(row_a[key] - row_b[key]))
        for key in ("train_accuracy", "test_accuracy"):
            if key in single.final and key in member.final:
                worst["final_accuracy"] = max(
                    worst["final_accuracy"], abs(single.final[key] - member.final[key])
                )
    print(
        f"  {label}largest member-vs-single difference: weights {worst['weights']:.3g}, losses "
        f"{worst['loss']:.3g}, accuracies {worst['accuracy']:.3g} (final {worst['final_accuracy']:.3g}); "
        f"bit-identical: {'yes' if identical and not fates else 'no'}"
        + (f"; {fates} jobs diverged on one side only" if fates else "")
    )


def _resident_mib() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MiB (Linux /proc; elsewhere the peak twice)."""
    try:
        status = open("/proc/self/status").read()
        current = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
        peak = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
        return current, peak
    except (OSError, AttributeError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return peak, peak


def memory_probe(members: int, depth: int, epochs: int) -> dict[str, float]:
    """Train `members` seeds of the default configuration at `depth` in this process.

    Returns the resident memory before training and its peak during training, in MiB.
    """
    from riemexp.config import AdamConfig, NetworkConfig
    from riemexp.ensemble import member_datasets, train_ensemble

    cfgs = [
        RunConfig(seed=s, network=NetworkConfig(depth=depth), optim=AdamConfig(epochs=epochs))
        for s in range(members)
    ]
    datasets = member_datasets(cfgs)
    before, _ = _resident_mib()
    train_ensemble(cfgs, datasets)
    out = {"before": before, "peak": _resident_mib()[1]}
    if torch.cuda.is_available():
        out["cuda_peak"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _memory(opts, epochs: int) -> None:
    depth, k = opts.memory_depth, opts.memory_members
    measured = {}
    for members in (1, k):
        code = (
            "import json, torch; from riemexp.bench.ensemble import memory_probe; "
            f"torch.set_num_threads({torch.get_num_threads()}); "
            f"print(json.dumps(memory_probe({members}, {depth}, {epochs})))"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if done.returncode != 0:
            raise ConfigError(f"the memory probe failed: {done.stderr.strip().splitlines()[-1]}")
        measured[members] = json.loads(done.stdout.strip().splitlines()[-1])
    # the tape: x_l (point-major), z_l and sigma(z_l) for every layer, float32, for 750 training points
    tape = k * 3 * depth * 2 * 750 * 4 / 2**20
    one, many = measured[1], measured[k]
    print(f"memory: K members at depth {depth}, width 2, 750 training points, {epochs} epochs")
    for members, side in ((1, one), (k, many)):
        print(
            f"  K = {members:<3}  peak resident {side['peak']:7.1f} MiB, "
            f"{side['peak'] - side['before']:6.1f} MiB above "
            f"the {side['before']:.1f} MiB before training"
        )
    print(f"  of which the backward pass's tape at K = {k} (x_l, z_l, sigma(z_l), float32): {tape:.1f} MiB")
    if "cuda_peak" in many:
        print(f"  cuda peak allocated at K = {k}: {many['cuda_peak']:.1f} MiB")


def main(args: list[str]) -> int:
    parser = option_parser("riemexp bench ensemble", __doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_EPOCHS} epochs, one round")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated: " + ", ".join(PARTS))
    parser.add_argument("--seeds", type=int, default=100, help="members of the seeds ensemble")
    parser.add_argument(
        "--epochs", type=int, default=None, help="epochs of every run (default: the config's)"
    )
    parser.add_argument(
        "--grid", default="default", help="grid preset of the grid part (conf/grid/NAME.yaml)"
    )
    parser.add_argument("--repeat", type=int, default=None, help="rounds of each side; the fastest is shown")
    add_threads_option(parser)
    parser.add_argument(
        "--mode", default="both", choices=sorted(MODES), help="ensemble modes to time: exact, fast or both"
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="seeds: also train every seed alone and print each mode's largest member-vs-single difference",
    )
    parser.add_argument("--memory-members", type=int, default=100, help="K of the memory part")
    parser.add_argument("--memory-depth", type=int, default=50, help="depth of the memory part")
    opts = parse_options(
        parser,
        args,
        {"seeds": 1, "epochs": 1, "repeat": 1, "memory_members": 1, "memory_depth": 1},
    )
    parts = [p.strip() for p in opts.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise ConfigError(
            f"riemexp bench ensemble: --parts must list some of {', '.join(PARTS)}, got '{opts.parts}'"
        )
    if "grid" in parts or "snapshots" in parts:
        from riemexp.sweep.grid import load_grid

        load_grid(
            opts.grid, conf_dir()
        )  # an unknown preset: ConfigError listing the presets, before any work
    # auto: the rule of riemexp.threads for the seeds ensemble's batch (members x 1000 points, width 2)
    use_threads(parser.prog, opts.threads, opts.seeds * 1000, 2)
    opts.repeat = opts.repeat or (1 if opts.quick else 2)
    epochs = opts.epochs or (QUICK_EPOCHS if opts.quick else None)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {load} (1, 5, 15 min)")
    if "seeds" in parts:
        _seeds(opts, epochs)
    if "grid" in parts:
        _grid(opts, epochs)
    if "memory" in parts:
        _memory(opts, 2 if opts.quick else (epochs or 5))
    if "snapshots" in parts:
        _snapshots(opts, epochs)
    return 0
