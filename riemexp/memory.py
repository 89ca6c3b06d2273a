"""Memory: what each stage of a run will need, checked before the stage starts.

Every stage is refused up front (MemoryNeedError, one line naming the setting that makes it
large) when its estimate exceeds the limit: `max_memory_gb` when set, and always the memory
this process can still get, the smaller of the system's MemAvailable and the room left under
its cgroup's limit (what SLURM and containers enforce). Estimates, in bytes, with N points of
which N_b are in a training batch, width w, depth L, C classes:

    data       128 N                                 the points, labels, splits and copies
    training   data + 24 N_b w (L+1) + 16 L (w^2 + w) + 4096 L
                                                     float32 activations kept for backward
                                                     (measured: 4-6 floats per unit and layer),
                                                     weights with their gradient and Adam's
                                                     two moments, autograd's per-layer records
    ode        16 (8L + 1) N s + 112 L N s^2 + 256 N s
                                                     the reference flow at 8 times per layer
                                                     (float64, with its concatenated copy),
                                                     the Lie tables' matrix logarithms of the
                                                     L x N layer Jacobians (about 14 copies),
                                                     and the solver's stages; s = w (2w for c2)
    csv        12 x the file's size                  streaming parse into float64 arrays
    geometry   `riemexp.budget.geometry_nbytes`      also bounded by geometry.max_memory_gb

The constants were measured with `ru_maxrss` on CPU (peak growth over the estimate's main term:
training 3.8-5.8 x its activation bytes, CSV reading 2-8 x the file).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from riemexp.errors import MemoryNeedError, RiemexpError

GB = 2**30


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # other POSIX systems: the physical memory, a loose upper bound
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_room() -> int | None:
    """Bytes left under this process's cgroup memory limit (v2 or v1); None when unlimited or unknown."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    rooms = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, rel = parts
        rel = rel.lstrip("/")
        if controllers == "":  # cgroup v2
            base = Path("/sys/fs/cgroup") / rel
            limit, usage = _read_int(base / "memory.max"), _read_int(base / "memory.current")
        elif "memory" in controllers.split(","):
            base = Path("/sys/fs/cgroup/memory") / rel
            limit = _read_int(base / "memory.limit_in_bytes")
            usage = _read_int(base / "memory.usage_in_bytes")
        else:
            continue
        if limit is not None and usage is not None and limit < 2**60:
            rooms.append(max(limit - usage, 0))
    return min(rooms) if rooms else None


def available_bytes() -> int | None:
    """Memory this process can still get: min(MemAvailable, cgroup limit - usage); None if unknown."""
    known = [v for v in (_meminfo_available(), _cgroup_room()) if v is not None]
    return min(known) if known else None


def limit_bytes(max_memory_gb: float | None) -> tuple[float, str] | None:
    """(bytes, what that limit is) for a stage; None when nothing is known to limit it."""
    limits = []
    if max_memory_gb is not None:
        limits.append((max_memory_gb * GB, f"max_memory_gb={max_memory_gb:g}"))
    free = available_bytes()
    if free is not None:
        limits.append((float(free), f"the {free / GB:.3g} GB this machine has free"))
    return min(limits) if limits else None


def check(
    need: float,
    stage: str,
    cause: str,
    advice: str,
    max_memory_gb: float | None,
    error: type[RiemexpError] = MemoryNeedError,
) -> None:
    """Raise `error` when `need` bytes exceed the limit: "STAGE would need about X GB for CAUSE, more
    than LIMIT; ADVICE"."""
    limit = limit_bytes(max_memory_gb)
    if limit is None or need <= limit[0]:
        return
    raise error(f"{stage} would need about {need / GB:.3g} GB for {cause}, more than {limit[1]}; {advice}")


def training_bytes(n_points: int, n_batch: int, width: int, depth: int) -> int:
    return (
        128 * n_points
        + 24 * n_batch * width * (depth + 1)
        + 16 * depth * (width * width + width)
        + 4096 * depth
    )


def ode_bytes(n_points: int, width: int, depth: int, second_order: bool) -> int:
    s = 2 * width if second_order else width
    return 16 * (8 * depth + 1) * n_points * s + 112 * depth * n_points * s * s + 256 * n_points * s


def lie_bytes(n_points: int, width: int, depth: int, two_step: bool) -> int:
    """The layer Jacobians (L, N, s, s) of the Lie table and the matrix logarithm's temporaries."""
    s = 2 * width if two_step else width
    return 112 * depth * n_points * s * s


CSV_BYTES_PER_FILE_BYTE = 12


def csv_bytes(file_size: int) -> int:
    return CSV_BYTES_PER_FILE_BYTE * file_size


def check_stages(cfg: Any, n_points: int, n_classes: int) -> None:
    """Check every enabled stage of a run of `cfg` (a RunConfig) on n_points points, in run order.

    Raises MemoryNeedError (training, ODE, Lie table) or GeometryError (geometry, figures) naming the stage,
    its need, its cause and what to change.
    """
    from riemexp.budget import check_memory, plots_grid_density
    from riemexp.nets.registry import get_kind

    d, net, o = cfg.dataset, cfg.network, cfg.optim
    kind = get_kind(net.kind)
    limit = cfg.max_memory_gb
    if n_points > 0:
        n_train = n_points - round(n_points * d.test_fraction)
        n_batch = n_train if o.batch_size is None else min(o.batch_size, n_train)
        need = training_bytes(n_points, n_batch, net.width, net.depth)
        batch = "full-batch" if o.batch_size is None else f"optim.batch_size={o.batch_size}:"
        cause = f"{batch} {n_batch} points per step through {net.depth + 1} layers at width {net.width}"
        if o.batch_size is None and n_batch > 10000:
            advice = "set optim.batch_size (e.g. 1000), or use fewer points (dataset.n_samples)"
        else:
            advice = "lower network.depth or network.width, or optim.batch_size"
        check(need, "training", cause, advice, limit)
    if cfg.ode.enabled and kind.ode_order is not None and n_points > 0:
        need = ode_bytes(n_points, net.width, net.depth, kind.ode_order == 2)
        cause = f"the reference flow of {n_points} points through {net.depth} layers at width {net.width}"
        advice = "set ode.enabled=false, or use fewer points (dataset.n_samples) or layers (network.depth)"
        check(need, "the ODE analysis", cause, advice, limit)
    if cfg.geometry.enabled:
        check_memory(cfg.geometry, n_points, net.depth, net.width, n_classes, net.kind, None, limit)
    if n_points > 0:
        need = lie_bytes(n_points, net.width, net.depth, kind.two_step)
        cause = f"the layer Jacobians of {n_points} points through {net.depth} layers at width {net.width}"
        advice = "use fewer points (dataset.n_samples) or layers (network.depth)"
        check(need, "the Lie table", cause, advice, limit)
    if cfg.plot.enabled:
        density = plots_grid_density(cfg.geometry.grid_density, cfg.plot.glyph_density)
        if density != cfg.geometry.grid_density or not cfg.geometry.enabled:
            why = (
                f"plot.glyph_density={cfg.plot.glyph_density}"
                if density != cfg.geometry.grid_density
                else None
            )
            check_memory(
                cfg.geometry, n_points, net.depth, net.width, n_classes, net.kind, density, limit, why
            )


__all__ = [
    "available_bytes",
    "check",
    "check_stages",
    "csv_bytes",
    "lie_bytes",
    "limit_bytes",
    "ode_bytes",
    "training_bytes",
]
