"""Benchmark: riemexp's geometry extraction against two autograd references.

Residual network, width 2, depth 50, tanh, random weights; a 200 x 200 grid over the
spirals' bounding box. Each side computes the coordinates of every grid point in every
layer and the metric g_l of every layer (float64):

    riemexp      `riemexp.geometry.coordinates_and_metrics`: closed-form, batched, J_l never formed
    (a) vmap     torch.func.vmap(torch.func.jacrev(layer)) for each layer, then the same recursion
                 Q_l = Q_{l+1} J_l, g_l = Q_l^T Q_l with batched matmuls on the (N, w, w) Jacobians
                 (`riemexp.geometry.pullback_from_jacobians`); also shown: riemexp's closed-form
                 J_l fed to that same generic pullback, to see where the time goes
    (b) per point  torch.autograd.functional.jacobian of each layer at each point, pulled back
                 point by point (the loop one would write first); timed on a sample of points
                 and extrapolated linearly to the grid

Then the Lie table (`riemexp.geometry.lie_table`: det J_l, |J_l - I| and, residual networks having
J_l near I, log J_l - (J_l - I)) of the same network at the spirals' data points (`--points`): its
2 x 2 closed-form logarithm (method "auto") against the general algorithm (method "general":
LAPACK eigenvalues, Denman-Beavers square roots, the series), timed in alternating blocks too.

riemexp and (a) are timed in alternating blocks, so that a busy machine slows both alike;
each side's time is the median over blocks. Also printed: how riemexp's time scales with
depth and with the number of points, and its peak memory against the size of its output
(measured in a fresh subprocess as the growth of the peak resident set size, VmHWM,
Linux only).

    riemexp bench geometry [--depth 50] [--grid 200] [--blocks 5] [--sample 200] [--points 1000]
                           [--threads auto] [--quick]

--threads: both sides run on the same torch threads (auto: one for this size). --quick: a 100 x 100
grid, 2 blocks, 50 points for (b), and the scaling at depths 25 and 50 only.
"""

from __future__ import annotations

import functools
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch

from riemexp import geometry as geo
from riemexp.bench import add_threads_option, machine, option_parser, parse_options, progress, use_threads
from riemexp.config import NetworkConfig
from riemexp.data.dataset import make_dataset
from riemexp.data.toy import SpiralsConfig
from riemexp.nets.network import LayeredNetwork

F64 = torch.float64


def network(depth: int, seed: int = 0) -> LayeredNetwork:
    torch.manual_seed(seed)
    return LayeredNetwork(NetworkConfig(kind="residual", width=2, depth=depth, step_size=0.5), 2)


def data_points(n: int = 1000) -> torch.Tensor:
    return torch.as_tensor(make_dataset(SpiralsConfig(n_samples=n), seed=0).x)


def grid_points(density: int) -> torch.Tensor:
    data = make_dataset(SpiralsConfig(n_samples=1000), seed=0)
    grid, _ = geo.make_grid(data.x, density, margin=0.1)
    return torch.as_tensor(grid)


def ours(model: LayeredNetwork, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return geo.coordinates_and_metrics(model, x)


def _step(model: LayeredNetwork, layer: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Residual layer `layer` as a function of one point (w,)."""
    W, b = model.weight.detach().to(F64)[layer], model.bias.detach().to(F64)[layer]
    return lambda x: x + model.h * torch.tanh(W @ x + b)


def reference_vmap(model: LayeredNetwork, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(a): J_l by torch.func.vmap(jacrev) for each layer, then riemexp's own pullback."""
    coords = geo.layer_coordinates(model, x)
    jacobian = [torch.func.vmap(torch.func.jacrev(_step(model, layer))) for layer in range(model.depth)]
    metric = geo.pullback_from_jacobians(model, coords, lambda layer: jacobian[layer](coords[layer]))
    return coords, metric


def closed_form_generic_pullback(model: LayeredNetwork, x: torch.Tensor) -> torch.Tensor:
    """riemexp's closed-form J_l (`layer_jacobians`) fed to (a)'s generic pullback: where the time goes."""
    coords = geo.layer_coordinates(model, x)
    jac = geo.layer_jacobians(model, coords)  # (L, N, w, w)
    return geo.pullback_from_jacobians(model, coords, lambda layer: jac[layer])


def reference_per_point(model: LayeredNetwork, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(b): for each point, its layer coordinates, each layer's Jacobian by autograd, pulled back."""
    steps = [_step(model, layer) for layer in range(model.depth)]
    w, L = model.width, model.depth
    all_coords, all_metric = [], []
    for point in x:
        coords = [point]
        for step in steps:
            coords.append(step(coords[-1]))
        metric = [torch.eye(w, dtype=F64)]
        for layer in range(L - 1, -1, -1):
            jac = torch.autograd.functional.jacobian(steps[layer], coords[layer])
            metric.append(jac.T @ metric[-1] @ jac)
        all_coords.append(torch.stack(coords))
        all_metric.append(torch.stack(metric[::-1]))
    return torch.stack(all_coords, dim=1), torch.stack(all_metric, dim=1)


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _alternating(
    sides: list[Callable[[], object]],
    blocks: int,
    advance: Callable[[str], None] = lambda status: None,
    names: tuple[str, str] = ("riemexp", "(a)"),
) -> list[float]:
    """Median seconds of each side over `blocks` blocks, the sides alternating within each block;
    the progress line names the first two sides `names`."""
    times: list[list[float]] = [[] for _ in sides]
    for side in sides:  # warm-up
        side()
    advance("warm-up")
    for block in range(blocks):
        for i, side in enumerate(sides):
            times[i].append(_seconds(side))
        first, second = names
        advance(f"block {block + 1}: {first} {times[0][-1]:.3f} s, {second} {times[1][-1]:.3f} s")
    return [statistics.median(t) for t in times]


def _max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


_MEMORY_PROBE = """
import json, resource, torch
from riemexp.bench.geometry import grid_points, network, ours

def status_kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

torch.set_num_threads({threads})
model, x = network({depth}), grid_points({density})
ours(model, x[:10])  # load everything once
start = status_kib("VmRSS")
with open("/proc/self/clear_refs", "w") as f:  # reset the peak (VmHWM) to the current size
    f.write("5")
coords, metric = ours(model, x)
peak = status_kib("VmHWM") - start
print(json.dumps({{"peak_kib": peak, "output_bytes": coords.nbytes + metric.nbytes}}))
"""


def peak_memory(depth: int, density: int, threads: int) -> tuple[float, float]:
    """(peak growth of the resident set during riemexp's extraction, bytes of its output), in MiB."""
    code = _MEMORY_PROBE.format(depth=depth, density=density, threads=threads)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["peak_kib"] / 1024, result["output_bytes"] / 2**20


def main(args: list[str]) -> int:
    parser = option_parser("riemexp bench geometry", __doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--grid", type=int, default=200, help="grid points along each axis")
    parser.add_argument("--blocks", type=int, default=5, help="alternating timed blocks per side")
    parser.add_argument("--sample", type=int, default=200, help="points timed for reference (b)")
    parser.add_argument("--points", type=int, default=1000, help="spiral data points of the Lie table")
    add_threads_option(parser)
    parser.add_argument("--quick", action="store_true", help="a first look: smaller grid, fewer blocks")
    opts = parse_options(parser, args, {"depth": 1, "grid": 2, "blocks": 1, "sample": 1, "points": 2})
    if opts.quick:
        opts.grid, opts.blocks, opts.sample = min(opts.grid, 100), min(opts.blocks, 2), min(opts.sample, 50)
    threads = use_threads(parser.prog, opts.threads, opts.grid**2, 2)
    print(machine(threads), flush=True)
    model, x = network(opts.depth), grid_points(opts.grid)
    n = len(x)
    print(
        f"geometry extraction: residual, width 2, depth {opts.depth}, tanh; {opts.grid} x {opts.grid} grid "
        f"= {n} points; float64; {threads} torch thread{'s' if threads > 1 else ''} on every side\n",
        flush=True,
    )

    # riemexp vs (a), alternating blocks
    with progress("riemexp vs (a), alternating blocks", opts.blocks + 1) as advance:
        t_ours, t_vmap, t_mixed = _alternating(
            [
                lambda: ours(model, x),
                lambda: reference_vmap(model, x),
                lambda: closed_form_generic_pullback(model, x),
            ],
            opts.blocks,
            advance,
        )
    c_ours, g_ours = ours(model, x)
    c_vmap, g_vmap = reference_vmap(model, x)
    # (b) on a sample, extrapolated
    sample = x[torch.randperm(n, generator=torch.Generator().manual_seed(0))[: opts.sample]]
    with progress("(b) per-point autograd on a sample", 2) as advance:
        samples = []
        for _ in range(2):
            samples.append(_seconds(lambda: reference_per_point(model, sample)))
            advance(f"{samples[-1]:.2f} s")
    t_sample = min(samples)
    t_point = t_sample * n / len(sample)
    c_point, g_point = reference_per_point(model, sample)
    c_ref, g_ref = ours(model, sample)
    print(f"{'method':<44}{'seconds':>10}{'riemexp is':>14}{'max rel. diff':>16}", flush=True)
    print(f"{'riemexp (closed form, batched)':<44}{t_ours:>10.4f}{'':>14}{'':>16}")
    print(
        f"{'(a) vmap(jacrev) per layer, same pullback':<44}{t_vmap:>10.4f}"
        f"{t_vmap / t_ours:>13.1f}x{_max_rel(g_ours, g_vmap):>16.1e}"
    )
    print(
        f"{'  closed-form J_l + the pullback of (a)':<44}{t_mixed:>10.4f}"
        f"{t_mixed / t_ours:>13.1f}x{_max_rel(g_ours, closed_form_generic_pullback(model, x)):>16.1e}"
    )
    print(
        f"{'(b) per-point autograd jacobian (extrap.)':<44}{t_point:>10.2f}"
        f"{t_point / t_ours:>13.0f}x{_max_rel(g_ref, g_point):>16.1e}"
    )
    print(f"    (b) measured on {len(sample)} points: {t_sample:.3f} s, extrapolated x {n / len(sample):.0f}")
    assert _max_rel(c_ours, c_vmap) == 0.0 and _max_rel(c_ref, c_point) < 1e-12

    # scaling of riemexp's time with depth and with the number of points
    print("\nscaling of riemexp's extraction (fastest of 5 runs: the least disturbed by other processes)")
    print(f"{'depth':>8}{'points':>10}{'seconds':>10}{'us / (layer x 1000 points)':>30}")
    base = None
    sizes = [(25, opts.grid), (50, opts.grid)]
    if not opts.quick:
        sizes += [(100, opts.grid), (200, opts.grid)] + [(opts.depth, d) for d in (100, 400)]
    for depth, density in sizes:
        m, pts = network(depth), grid_points(density)
        t = min(_seconds(functools.partial(ours, m, pts)) for _ in range(5))
        unit = t / (depth * len(pts) / 1000) * 1e6
        base = base or unit
        print(f"{depth:>8}{len(pts):>10}{t:>10.4f}{unit:>22.2f} ({unit / base:.2f}x)", flush=True)
    print("(constant per-unit cost = linear in depth and in the number of points)")

    # memory
    peak, output = peak_memory(opts.depth, opts.grid, threads)
    print(
        f"\npeak memory of riemexp's extraction: {peak:.1f} MiB above the start, for {output:.1f} MiB of "
        f"output arrays (coordinates + metrics): {peak / output:.2f}x"
    )
    lie_tables(model, data_points(opts.points), opts.blocks)
    return 0


def lie_tables(model: LayeredNetwork, x: torch.Tensor, blocks: int) -> None:
    """The Lie table by the 2 x 2 closed form against the general algorithm: times and largest difference."""
    with progress("Lie table: closed form vs general, alternating blocks", blocks + 1) as advance:
        t_auto, t_general = _alternating(
            [lambda: geo.lie_table(model, x), lambda: geo.lie_table(model, x, method="general")],
            blocks,
            advance,
            names=("closed form", "general"),
        )
    auto, general = geo.lie_table(model, x), geo.lie_table(model, x, method="general")
    diff = max(
        abs(a[key] - g[key]) / max(abs(g[key]), 1e-300)
        for a, g in zip(auto, general, strict=True)
        for key in a
        if a[key] is not None and g[key] is not None and a[key] == a[key]  # not None, not NaN
    )
    print(
        f"\nLie table (lie.csv) of this network at {len(x)} spiral data points, {model.depth} layers x "
        f"{len(x)} Jacobians ({model.width} x {model.width}):"
    )
    print(f"{'method':<44}{'seconds':>10}{'ratio':>14}{'max rel. diff':>16}")
    print(f"{'closed-form 2 x 2 logarithm (auto)':<44}{t_auto:>10.4f}{'':>14}{'':>16}")
    general_name = "general: eigvals + Denman-Beavers + series"
    print(f"{general_name:<44}{t_general:>10.4f}{t_general / t_auto:>13.1f}x{diff:>16.1e}")
