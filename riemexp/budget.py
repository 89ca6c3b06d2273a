"""The grid arithmetic of the geometry and its figures, and their memory budget, without torch.

`geometry_nbytes` counts the bytes of the geometry step's arrays (`riemexp.analyses.geometry`),
`check_memory` refuses a grid that would need more than `geometry.max_memory_gb` (or the memory
free), and `lattice_fits`, `fitting_density`, `plots_grid_density` say which grid holds the
figures' glyph lattice. Torch-free, so that checking a config loads no torch.
"""

from __future__ import annotations

from riemexp import memory
from riemexp.config import INPUT_DIM, GeometryConfig
from riemexp.errors import GeometryError

MIN_COVERAGE = 0.8  # an evenly spaced glyph lattice must span this much of the grid


def lattice_fits(n: int, count: int) -> bool:
    """Whether `count` evenly spaced indices (a whole step apart) span >= MIN_COVERAGE of 0 .. n-1."""
    if count <= 1:
        return n >= 1
    step = (n - 1) // (count - 1)
    return step >= 1 and step * (count - 1) >= MIN_COVERAGE * (n - 1)


def fitting_density(n: int, count: int) -> int:
    """The smallest grid density >= n on which `count` evenly spaced glyphs span the whole grid."""
    if count <= 1:
        return max(n, 2)
    return (count - 1) * max(1, -(-(n - 1) // (count - 1))) + 1


def geometry_nbytes(n_grid: int, n_data: int, depth: int, width: int, n_classes: int, kind: str) -> int:
    """Bytes `compute_geometry` and `geometry_step` need: the output arrays plus working memory.

    Outputs: coordinates and metrics of G grid and N data points in L+1 layers, points,
    labels, probabilities. Working memory: the per-layer factors of one pass over the grid,
    and the per-layer Jacobians and factors of the data kept for the layers table (on the state
    (x_l, x_{l-1}) of a two-step kind: 2w).
    """
    from riemexp.nets.registry import get_kind

    L1, w = depth + 1, width
    s = 2 * w if get_kind(kind).two_step else w
    outputs = L1 * (n_grid + n_data) * (w + w * w) + n_grid * (INPUT_DIM + n_classes) + n_data * 3 + 2
    work = n_grid * (8 * w * w + 6 * w) + n_data * L1 * (s * s + 3 * w * w + 2 * w)
    return 8 * (outputs + work)


def plots_grid_density(grid_density: int, glyph_density: int) -> int:
    """The grid the figures draw on: grid_density, or the next one that holds the glyph lattice."""
    if lattice_fits(grid_density, glyph_density):
        return grid_density
    return fitting_density(grid_density, glyph_density)


def check_memory(
    cfg: GeometryConfig,
    n_data: int,
    depth: int,
    width: int,
    n_classes: int,
    kind: str,
    grid_density: int | None = None,
    max_memory_gb: float | None = None,
    why_density: str | None = None,
) -> None:
    """Raise GeometryError if the geometry of this network would need more than cfg.max_memory_gb,
    max_memory_gb (the run's limit, when set) or the memory free on this machine.

    grid_density: the grid computed (default cfg.grid_density; the figures may ask for a finer
    one: why_density, e.g. "plot.glyph_density=25"). The message names what dominates the need:
    the grid or the data.
    """
    n = grid_density or cfg.grid_density
    why_density = why_density or f"geometry.grid_density={n}"
    need = geometry_nbytes(n * n, n_data, depth, width, n_classes, kind)
    grid_part = geometry_nbytes(n * n, 0, depth, width, n_classes, kind)
    if grid_part >= need - grid_part:
        cause = f"a {n} x {n} grid ({why_density}) through {depth + 1} layers at width {width}"
        advice = f"lower {why_density.split('=')[0]}, network.depth or network.width"
    else:
        cause = f"{n_data} data points through {depth + 1} layers at width {width}"
        advice = "use fewer points (dataset.n_samples, or fewer CSV rows), or lower network.depth or width"
    if need > cfg.max_memory_gb * 2**30:
        raise GeometryError(
            f"the geometry would need about {need / 2**30:.3g} GB for {cause}, more than "
            f"geometry.max_memory_gb={cfg.max_memory_gb:g}; {advice}, or raise geometry.max_memory_gb"
        )
    memory.check(need, "the geometry", cause, advice, max_memory_gb, GeometryError)


__all__ = [
    "MIN_COVERAGE",
    "check_memory",
    "fitting_density",
    "geometry_nbytes",
    "lattice_fits",
    "plots_grid_density",
]
