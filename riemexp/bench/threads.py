"""Benchmark: where more torch threads pay, the measurement behind `threads: auto`.

A training step (forward, backward, Adam) of a residual network of depth 4 is timed at 1 .. N
torch threads (N: the CPUs this process may use, at most 4) for networks and batches from
riemexp's defaults (width 2, 1,000 points) up to width 256 and 100,000 points. The thread counts
alternate block by block, so that other work on a shared machine slows them alike; each count's
time is the median over blocks. Printed for every size: the work of one layer's matmul (points x
width^2 multiply-adds), the time per step at each thread count, the best count's speed-up over
one thread, and what `auto` picks (`riemexp.threads.PAYING_WORK`). More threads pay only where
the speed-up is well above 1 on an idle machine; on a busy one they rarely do.

    riemexp bench threads [--blocks 5] [--quick]

--quick: three sizes (up to width 64 and 10,000 points) and 3 blocks.
"""

from __future__ import annotations

import statistics
import time

from riemexp.bench import machine, option_parser, parse_options, progress

#: (width, points): riemexp's defaults, then ever larger work per layer
SIZES = [
    (2, 1000),
    (2, 100_000),
    (16, 10_000),
    (16, 100_000),
    (64, 10_000),
    (64, 100_000),
    (256, 10_000),
    (256, 100_000),
]
QUICK_SIZES = [(2, 1000), (16, 10_000), (64, 10_000)]
DEPTH = 4


def step_seconds(width: int, points: int, threads: int, steps: int) -> float:
    """Seconds per training step of a residual network (width, depth 4) on `points` points."""
    import torch

    from riemexp.config import NetworkConfig
    from riemexp.nets.network import build_network
    from riemexp.threads import using_threads
    from riemexp.train import train_step

    with using_threads(threads):  # the caller's thread count comes back afterwards
        torch.manual_seed(0)
        model = build_network(NetworkConfig(depth=DEPTH, width=width, step_size=0.5), 2)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        x = torch.randn(points, 2)
        y = (x[:, 0] > 0).long()
        train_step(model, optimizer, x, y)  # warm-up
        start = time.perf_counter()
        for _ in range(steps):
            train_step(model, optimizer, x, y)
        return (time.perf_counter() - start) / steps


def main(args: list[str]) -> int:
    parser = option_parser("riemexp bench threads", __doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=5, help="alternating blocks per thread count")
    parser.add_argument("--quick", action="store_true", help="three sizes, 3 blocks")
    opts = parse_options(parser, args, {"blocks": 1})
    import torch

    from riemexp.threads import PAYING_WORK, auto_threads, available_cpus, using_threads

    cpus = available_cpus()
    counts = list(range(1, min(cpus, 4) + 1))
    sizes = QUICK_SIZES if opts.quick else SIZES
    blocks = min(opts.blocks, 3) if opts.quick else opts.blocks
    print(machine(f"{', '.join(map(str, counts))} (compared)"), flush=True)
    print(
        f"training step of a residual network of depth {DEPTH}; median of {blocks} alternating blocks; "
        f"auto starts a second thread at {PAYING_WORK:,} multiply-adds per layer"
    )
    header = "".join(f"{f'{n} thr ms':>11}" for n in counts)
    print(f"{'width':>6}{'points':>9}{'work/layer':>16}{header}{'best':>7}{'speed-up':>10}{'auto':>6}")
    # the comparisons set torch's thread count: the caller's is restored afterwards
    with using_threads(torch.get_num_threads()):
        for width, points in sizes:
            steps = max(2, min(50, int(2e7 / (points * width * width + 1e5))))
            times: dict[int, list[float]] = {n: [] for n in counts}
            with progress(f"width {width}, {points} points", blocks * len(counts)) as advance:
                for _ in range(blocks):
                    for n in counts:
                        times[n].append(step_seconds(width, points, n, steps))
                        advance(f"{n} threads: {times[n][-1] * 1e3:.2f} ms")
            medians = {n: statistics.median(t) for n, t in times.items()}
            best = min(medians, key=medians.get)  # type: ignore[arg-type]
            cells = "".join(f"{medians[n] * 1e3:>11.2f}" for n in counts)
            work = points * width * width
            auto = auto_threads(points, width, cpus)
            ratio = medians[1] / medians[best]
            print(f"{width:>6}{points:>9}{work:>16,}{cells}{best:>7}{ratio:>9.2f}x{auto:>6}")
    return 0
