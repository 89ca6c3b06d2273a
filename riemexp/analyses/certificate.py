"""The certificate step of a run: what the weights prove about invertibility, into metrics.json.

Adds certified_invertible, certificate, max_contraction, lipschitz_bound and
inverse_lipschitz_bound (`riemexp.certify.network_certificate`, the kind's `certify_network`);
the per-layer values go into tables/layers.csv with the geometry (riemexp.analyses.geometry).
"""

from __future__ import annotations

import logging

from riemexp.analyses import RunContext
from riemexp.certify import certify_model

log = logging.getLogger("riemexp")


def certificate_step(ctx: RunContext) -> None:
    """Analysis step of `riemexp train`: the network's invertibility certificate into ctx.metrics."""
    _, network = certify_model(ctx.model)
    ctx.metrics.update(network)
    log.info("invertibility: %s", network["certificate"])


__all__ = ["certificate_step"]
