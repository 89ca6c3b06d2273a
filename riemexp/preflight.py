"""What a run of a checked config could still be refused for, said before any run folder exists.

`riemexp.config.load_config` checks types and ranges without reading any file; `check_run` then
looks at what the run would meet: its dataset (a CSV file read and checked: DataError) and the
memory every enabled stage would need on that many points (MemoryNeedError, GeometryError).
`riemexp train` and `riemexp sweep` call it before they make a folder; `riemexp.runner.run` meets
the same checks as it goes.
"""

from __future__ import annotations

from riemexp import memory
from riemexp.config import RunConfig
from riemexp.data.registry import source_of
from riemexp.errors import MemoryNeedError


def check_run(cfg: RunConfig) -> tuple[int, int]:
    """Check the data and each stage's memory of a run of `cfg`; return (points, classes).

    Torch is loaded only for a dataset that must be made to be checked (a CSV's seeded split
    and the standardisation of its training split), last.
    """
    source = source_of(cfg.dataset)
    n_points, n_classes = source.size(cfg.dataset, cfg.max_memory_gb)
    memory.check_stages(cfg, n_points, n_classes)
    check_snapshots(cfg, n_classes)
    source.check(cfg.dataset, cfg.data_seed, cfg.max_memory_gb)
    return n_points, n_classes


def check_snapshots(cfg: RunConfig, n_classes: int) -> None:
    """MemoryNeedError when snapshots.npz would need more than geometry.max_memory_gb: per
    snapshot and grid point g_0 (4), log volume (1), probabilities (C), det J_l (L), float64."""
    g, n = cfg.geometry, cfg.network
    snapshot_bytes = (g.snapshots + 1) * g.snapshot_density**2 * (5 + n_classes + n.depth) * 8
    if g.enabled and g.snapshots > 0 and snapshot_bytes > g.max_memory_gb * 2**30:
        raise MemoryNeedError(
            f"geometry.snapshots={g.snapshots} on a {g.snapshot_density} x {g.snapshot_density} grid "
            f"(geometry.snapshot_density) at depth "
            f"{n.depth} needs {snapshot_bytes / 2**30:.2f} GB, more than geometry.max_memory_gb="
            f"{g.max_memory_gb}; expected fewer snapshots or a coarser snapshot grid"
        )


__all__ = ["check_run", "check_snapshots"]
