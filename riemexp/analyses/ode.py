"""The ODE step of a run: tables/ode.csv|md, ode.npz and the ode_* metrics (riemexp.ode measures).

For a kind with an ODE (residual, c2, ...) the step measures the refinement study of `riemexp.ode`
on all data points (train then test) and writes

    tables/ode.csv|md   k, substep h/k, error_mean, error_max, observed_order (`ODE_COLUMNS`);
                        one `note` row instead when the reference solve did not converge
    ode.npz             the reference flow of the points the trajectories figure draws (`ODE_ARRAYS`),
                        so that `riemexp plot-metric` re-draws plots/trajectories without solving again

and adds ode_applicable, ode_converged, ode_gap, ode_order, ode_spread, ode_error_k1,
ode_reference_evaluations, ode_reference_seconds and ode_seconds to the metrics. A kind without an
ODE (plain) gets ode_applicable: false and a note, and no files.

A member of an ensemble (riemexp.sweep.ensemble) comes with its report measured together with the
other members' (`riemexp.ode_batch.measure_members`, the same numbers bit for bit): the step writes
it (`RunContext.precomputed["ode"]`); its ode_seconds and ode_reference_seconds are then the batched
measurement's times divided by the members measured together.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from riemexp.analyses import RunContext
from riemexp.errors import RunFolderError
from riemexp.io import read_npz, write_npz
from riemexp.layout import ODE_FILE, TABLES_DIR
from riemexp.ode import measure, no_ode_note, unconverged_note
from riemexp.tables import write_table
from riemexp.timing import stage

log = logging.getLogger("riemexp")

ODE_TABLE = f"{TABLES_DIR}/ode"
ODE_COLUMNS = ["k", "substep", "error_mean", "error_max", "observed_order"]
#: tables/ode.csv when the reference solve did not converge: one row saying so
UNCONVERGED_COLUMNS = ["note"]
#: ode.npz: name -> shape (M dense times, n chosen points, w width, L depth)
ODE_ARRAYS: dict[str, tuple[str, ...]] = {
    "point_index": ("n",),  # the chosen points, as indices into the data (train then test)
    "times": ("M",),  # t from 0 to T = L h, n_dense per layer interval
    "flow": ("M", "n", "w"),  # x(t) of the chosen points, layer-0 units
    "layer_index": ("L+1",),  # indices into times of t = l h
}
#: at most this many points of each class are drawn (and their flow saved)
MAX_PER_CLASS = 15
MIN_PER_CLASS = 4
#: about this many layer points per class in the trajectories figure: fewer trajectories for
#: deeper networks, so that a depth-50 network's paths stay apart
LAYER_POINTS_PER_CLASS = 160


def points_per_class(depth: int) -> int:
    """Trajectories drawn per class for a network of `depth` layers: 15 up to depth 10, fewer
    beyond (LAYER_POINTS_PER_CLASS / depth, at least MIN_PER_CLASS): depth 50 draws 4."""
    return int(np.clip(LAYER_POINTS_PER_CLASS // max(depth, 1), MIN_PER_CLASS, MAX_PER_CLASS))


def choose_points(y: np.ndarray, per_class: int = MAX_PER_CLASS, seed: int = 0) -> np.ndarray:
    """Indices of at most `per_class` points of each class, drawn without replacement (seeded)."""
    rng = np.random.default_rng(seed)
    picks = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        picks.append(np.sort(rng.choice(idx, size=min(per_class, len(idx)), replace=False)))
    return np.concatenate(picks)


def save_flow(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ode.npz (names of `ODE_ARRAYS`) atomically."""
    write_npz(path, arrays, ODE_ARRAYS)


def load_flow(run_dir: Path) -> dict[str, np.ndarray] | None:
    """The arrays of run_dir/ode.npz, checked; None when the run has none (no ODE, or not converged).

    Raises RunFolderError when the file is unreadable or its arrays do not fit together.
    """
    path = Path(run_dir) / ODE_FILE
    if not path.is_file():
        return None
    arrays = read_npz(path)
    missing = [name for name in ODE_ARRAYS if name not in arrays]
    if missing:
        raise RunFolderError(f"{path} is incomplete: missing {', '.join(missing)}")
    flow = arrays["flow"]
    if flow.ndim != 3 or flow.shape[:2] != (len(arrays["times"]), len(arrays["point_index"])):
        raise RunFolderError(
            f"{path} is corrupt: flow has shape {flow.shape}, expected (times={len(arrays['times'])}, "
            f"points={len(arrays['point_index'])}, w)"
        )
    if not np.isfinite(flow).all():
        raise RunFolderError(f"{path} is corrupt: flow holds inf or NaN")
    return arrays


def ode_step(ctx: RunContext) -> None:
    """Analysis step of `riemexp train`: tables/ode.csv|md, ode.npz and the ode_* metrics."""
    cfg, model, out = ctx.cfg, ctx.model, ctx.out_dir
    if model.kind.ode_order is None:
        ctx.metrics.update(ode_applicable=False, ode_gap=None, ode_order=None, ode_note=no_ode_note(model))
        return
    report = ctx.precomputed.get("ode")  # an ensemble's member: measured with the others (riemexp.ode_batch)
    if report is None:
        report = measure(
            model,
            ctx.data.x,
            cfg.ode.max_refinement,
            cfg.ode.rtol,
            cfg.ode.atol,
            max_steps_per_layer=cfg.ode.max_steps_per_layer,
        )
    ctx.metrics.update(
        ode_applicable=True,
        ode_converged=report.converged,
        ode_reference_evaluations=report.solution.evaluations,
        ode_reference_seconds=round(report.solution.seconds, 4),
        ode_seconds=round(report.seconds, 4),
    )
    if not report.converged:
        note = unconverged_note(report.solution, cfg.ode.max_steps_per_layer, model.depth)
        log.warning("%s", note)
        with stage("writing"):
            write_table(out / ODE_TABLE, [{"note": note}], UNCONVERGED_COLUMNS)
        ctx.metrics.update(ode_gap=None, ode_order=None, ode_spread=None, ode_error_k1=None, ode_note=note)
        return
    pick = choose_points(ctx.data.y.cpu().numpy(), points_per_class(ctx.model.depth))
    solution = report.solution
    with stage("writing"):
        write_table(out / ODE_TABLE, report.rows, ODE_COLUMNS)
        save_flow(
            out / ODE_FILE,
            {
                "point_index": pick.astype(np.int64),
                "times": solution.times.cpu().numpy(),
                "flow": solution.path.cpu().numpy()[:, pick],
                "layer_index": np.asarray(solution.layer_index, dtype=np.int64),
            },
        )
    ctx.metrics.update(
        ode_gap=report.gap,
        ode_order=report.order,
        ode_spread=report.spread,
        ode_error_k1=report.rows[0]["error_mean"],
    )


__all__ = [
    "ODE_ARRAYS",
    "ODE_COLUMNS",
    "ODE_FILE",
    "ODE_TABLE",
    "choose_points",
    "load_flow",
    "ode_step",
    "save_flow",
]
