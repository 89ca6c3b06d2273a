"""Benchmark: the ODE step of an ensemble's members measured together, against member by member.

For each depth, the default sweep grid's ensemble of residual networks (spirals, step sizes 0.1,
0.5, 1.0, seeds 0, 1, 2: nine members) is trained as one ensemble (riemexp.ensemble, the default
config otherwise, `--epochs` to shorten it); then its members' ODE measurement (riemexp.ode: the
reference solve and the convergence table at the config's ode settings) is timed both ways, side by
side in one process:

    alone    riemexp.ode.measure(member) for each member, one after another (the sum)
    batched  riemexp.ode_batch.measure_members(members): one call

and every report is checked to be the same bit for bit (all but its seconds). Printed per depth:
both times, the reference solves' share, the ratio, whether the reports are identical.

    riemexp bench ode [--depths 8,32] [--epochs 300] [--repeat 1] [--quick] [--threads auto]
"""

from __future__ import annotations

import math
import time
from typing import Any

from riemexp.bench import (
    add_threads_option,
    machine,
    option_parser,
    parse_options,
    progress,
    ratio,
    use_threads,
)

STEP_SIZES = (0.1, 0.5, 1.0)
SEEDS = (0, 1, 2)


def _same(a: Any, b: Any) -> bool:
    import torch

    if isinstance(a, torch.Tensor):
        return a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def identical(batched: Any, alone: Any) -> bool:
    """Two OdeReports the same in everything but their seconds."""
    s, t = batched.solution, alone.solution
    return (
        batched.rows == alone.rows
        and all(_same(getattr(batched, n), getattr(alone, n)) for n in ("order", "gap", "spread"))
        and _same(s.times, t.times)
        and _same(s.path, t.path)
        and (s.layer_index, s.evaluations, s.converged, s.stopped_layer)
        == (t.layer_index, t.evaluations, t.converged, t.stopped_layer)
    )


def main(args: list[str]) -> int:
    parser = option_parser("riemexp bench ode", __doc__.splitlines()[0])
    parser.add_argument("--depths", default="8,32", help="network depths, comma-separated (default 8,32)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the config's)")
    parser.add_argument("--repeat", type=int, default=1, help="timings of each side; the fastest is shown")
    parser.add_argument("--quick", action="store_true", help="depth 8 only, 30 epochs")
    add_threads_option(parser)
    opts = parse_options(parser, args, {"epochs": 1, "repeat": 1})
    from dataclasses import replace

    from riemexp.config import NetworkConfig, RunConfig
    from riemexp.ensemble import member_datasets, split_ensemble, train_ensemble
    from riemexp.ode import measure
    from riemexp.ode_batch import measure_members

    depths = [8] if opts.quick else [int(d) for d in opts.depths.split(",")]
    epochs = 30 if opts.quick and opts.epochs is None else opts.epochs
    base = RunConfig()
    if epochs is not None:
        base = replace(base, optim=replace(base.optim, epochs=epochs))
    threads = use_threads("riemexp bench ode", opts.threads, base.dataset.n_samples, base.network.width)  # type: ignore[attr-defined]
    print(machine(threads), flush=True)
    ode = base.ode
    settings = dict(rtol=ode.rtol, atol=ode.atol, max_steps_per_layer=ode.max_steps_per_layer)
    print(
        f"ode: max_refinement {ode.max_refinement}, rtol {ode.rtol:g}, atol {ode.atol:g}; "
        f"epochs {base.optim.epochs}"
    )
    rows = []
    with progress("ode", len(depths)) as advance:
        for depth in depths:
            cfgs = [
                replace(base, seed=seed, network=NetworkConfig(kind="residual", depth=depth, step_size=h))
                for h in STEP_SIZES
                for seed in SEEDS
            ]
            datasets = member_datasets(cfgs)
            start = time.perf_counter()
            members = split_ensemble(train_ensemble(cfgs, datasets))
            trained = time.perf_counter() - start
            models, xs = [m.model for m in members], [d.x for d in datasets]
            alone_s, batched_s, alone_ref, batched_ref, same = math.inf, math.inf, 0.0, 0.0, True
            for _ in range(opts.repeat):
                start = time.perf_counter()
                alone = [measure(m, x, ode.max_refinement, **settings) for m, x in zip(models, xs)]  # type: ignore[arg-type]
                seconds = time.perf_counter() - start
                if seconds < alone_s:
                    alone_s, alone_ref = seconds, sum(r.solution.seconds for r in alone)
                start = time.perf_counter()
                batched = measure_members(models, xs, ode.max_refinement, **settings)  # type: ignore[arg-type]
                seconds = time.perf_counter() - start
                if seconds < batched_s:
                    batched_s, batched_ref = seconds, sum(r.solution.seconds for r in batched)
                same = same and all(identical(b, a) for b, a in zip(batched, alone))
            rows.append((depth, len(models), trained, alone_s, alone_ref, batched_s, batched_ref, same))
            advance(f"depth {depth}")
    print(
        f"{'depth':>5} {'K':>3} {'train s':>8} {'alone s':>8} {'(ref)':>7} {'batched s':>10} {'(ref)':>7} "
        f"{'ratio':>6}  identical"
    )
    for depth, k, trained, a, a_ref, b, b_ref, same in rows:
        print(
            f"{depth:>5} {k:>3} {trained:>8.1f} {a:>8.2f} {a_ref:>7.2f} {b:>10.2f} {b_ref:>7.2f} "
            f"{ratio(b, a):>6.2f}  {'yes' if same else 'NO'}"
        )
    print(
        "ratio: batched / alone (alone: the members' measure one after another, summed); "
        "(ref): the reference solves"
    )
    return 0 if all(r[-1] for r in rows) else 1
