"""The topology step of a run on dataset=circles: the noise-free disc and ring (riemexp.topology).

Adds disc_error, ring_error, boundary_distance_disc, boundary_distance_ring and folded_fraction
to metrics.json (`riemexp.topology.measure`).
"""

from __future__ import annotations

import logging

from riemexp.analyses import RunContext
from riemexp.data.toy import CirclesConfig
from riemexp.topology import measure

log = logging.getLogger("riemexp")


def topology_step(ctx: RunContext) -> None:
    """Analysis step of `riemexp train` on dataset=circles: the `measure` metrics into metrics.json."""
    data = ctx.cfg.dataset
    if not isinstance(data, CirclesConfig):  # the disc and ring exist only for circles
        return
    values = measure(ctx.model, data.factor, ctx.data.x)
    ctx.metrics.update(values)
    log.info(
        "topology: disc misclassified %.4g, ring misclassified %.4g; boundary to disc %s, to ring %s",
        values["disc_error"],
        values["ring_error"],
        values["boundary_distance_disc"],
        values["boundary_distance_ring"],
    )


__all__ = ["topology_step"]
