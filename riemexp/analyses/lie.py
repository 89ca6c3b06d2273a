"""The Lie step of a run: tables/lie.csv|md, every layer Jacobian as an element of GL(w).

Columns (`LIE_COLUMNS`, documented in riemexp.geometry.lie): layer, det_mean, det_min,
det_positive_fraction, identity_distance_mean and, for kinds near the identity (residual),
log_error_mean and log_defined_fraction; the smallest log_defined_fraction over the layers goes
to the metrics as lie_log_defined_fraction_min. Runs for every kind, whatever else is enabled.
"""

from __future__ import annotations

from riemexp.analyses import RunContext
from riemexp.geometry.lie import lie_table
from riemexp.layout import TABLES_DIR
from riemexp.tables import write_table
from riemexp.timing import stage

LIE_TABLE = f"{TABLES_DIR}/lie"
LIE_COLUMNS = [
    "layer",
    "det_mean",
    "det_min",
    "det_positive_fraction",
    "identity_distance_mean",
    "log_error_mean",
    "log_defined_fraction",
]


def lie_step(ctx: RunContext) -> None:
    """Write tables/lie.csv|md for the run's data points (train and test)."""
    rows = lie_table(ctx.model, ctx.data.x)
    with stage("writing"):
        write_table(ctx.out_dir / LIE_TABLE, rows, LIE_COLUMNS)
    if ctx.model.kind.near_identity:
        ctx.metrics["lie_log_defined_fraction_min"] = min(r["log_defined_fraction"] for r in rows)


__all__ = ["LIE_COLUMNS", "LIE_TABLE", "lie_step"]
