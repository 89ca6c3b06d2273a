"""The geometry step of a run: geometry.npz (grid and data through every layer) and tables/layers.csv|md.

geometry.npz holds the arrays of `riemexp.geometry.geometry_arrays` (names and shapes in
`GEOMETRY_ARRAYS`); `load_geometry` reads and checks them for the figures, `riemexp plot-metric`,
sweeps and notebooks. tables/layers.csv|md has one row per layer of
`riemexp.geometry.layer_statistics` over the run's data (columns `LAYER_COLUMNS`).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from riemexp import console
from riemexp.analyses import RunContext
from riemexp.analyses.geometry_file import (
    GEOMETRY_ARRAYS,
    LOG_VOLUME_ARRAYS,
    check_geometry,
    load_geometry,
    save_geometry,
    saved_input_log_volume,
)
from riemexp.budget import check_memory
from riemexp.certify import CERTIFICATE_COLUMNS, with_certificate
from riemexp.config import GeometryConfig
from riemexp.data.dataset import Dataset
from riemexp.geometry import (
    geometry_arrays,
    input_anisotropy,
    layer_statistics,
    median,
)
from riemexp.geometry.folds import determinants_at, negative_fraction
from riemexp.layout import GEOMETRY_FILE, TABLES_DIR
from riemexp.nets.network import LayeredNetwork
from riemexp.tables import write_table
from riemexp.timing import stage

LAYERS_TABLE = f"{TABLES_DIR}/layers"

#: columns of tables/layers.csv|md; row l describes layer l (the metric g_l at x_l) and, in the
#: last four columns, the map l -> l+1 (empty in the last row, l = L, where g_L = I);
#: grid_det_negative_fraction: the fraction of the geometry grid's points where det J_l < 0
#: (`riemexp.geometry.folds`), added by `geometry_step`
LAYER_COLUMNS = (
    "layer",
    "log_volume_mean",
    "log_volume_median",
    "log_volume_max",
    "anisotropy_median",
    "anisotropy_max",
    "step_length_mean",
    "det_positive_fraction",
    "grid_det_negative_fraction",
    "identity_distance_mean",
    *CERTIFICATE_COLUMNS,  # invertibility of the map l -> l+1 from the weights (riemexp.certify)
)
#: earlier names of table columns, read as today's names (`LoadedRun.tables`)
RENAMED_COLUMNS = {"jacobian_minus_identity_mean": "identity_distance_mean"}


def compute_geometry(model: LayeredNetwork, data: Dataset, cfg: GeometryConfig) -> dict[str, np.ndarray]:
    """The geometry.npz arrays of a model on its data (train then test), on a grid of cfg.grid_density.

    Raises GeometryError before any work when the arrays would need more than cfg.max_memory_gb
    (or the memory free), and when coordinates or metrics overflow float64.
    """
    check_memory(cfg, len(data.x), model.depth, model.width, model.head.out_features, model.kind.name)
    return geometry_arrays(model, data.x, data.y, cfg.grid_density, cfg.margin)


def _shown_layers(n_layers: int, at_most: int = 9) -> list[int]:
    if n_layers <= at_most:
        return list(range(n_layers))
    return sorted({round(i * (n_layers - 1) / (at_most - 1)) for i in range(at_most)})


def geometry_step(ctx: RunContext) -> None:
    """Analysis step of `riemexp train`: geometry.npz, tables/layers.csv|md and two metrics.

    Adds to ctx.metrics: input_log_volume_median and input_anisotropy_median (the usual medians
    over the dataset of `input_log_volume` and `input_anisotropy`, of the metric of the data plane
    in the user's input units) and geometry_seconds. The layers table's row 0 is
    instead g_0 itself, in layer-0 (standardised, padded) coordinates, like every other row.
    """
    start = time.perf_counter()
    arrays = compute_geometry(ctx.model, ctx.data, ctx.cfg.geometry)
    with stage("writing"):
        save_geometry(ctx.out_dir / GEOMETRY_FILE, arrays)
    rows = with_certificate(layer_statistics(ctx.model, ctx.data.x), ctx.model)  # tables/layers.csv
    # folds: the fraction of the grid each layer reverses (det J_l < 0), over the whole box
    reversed_fraction = negative_fraction(determinants_at(ctx.model, arrays["grid_coords"]))  # (L,)
    for row in rows[:-1]:
        row["grid_det_negative_fraction"] = float(reversed_fraction[row["layer"]])
    with stage("writing"):
        write_table(ctx.out_dir / LAYERS_TABLE, rows, LAYER_COLUMNS)
    ctx.metrics["input_log_volume_median"] = median(torch.from_numpy(arrays["data_input_log_volume"]))
    ctx.metrics["input_anisotropy_median"] = median(input_anisotropy(ctx.model, ctx.data.x))
    ctx.metrics["geometry_seconds"] = round(time.perf_counter() - start, 4)
    show_layer_table(rows)


def show_layer_table(rows: list[dict[str, Any]]) -> None:
    """The layers table in the terminal (about 9 evenly spaced rows; the CSV has all)."""

    def cell(value: Any) -> Any:
        return "" if value is None else value

    console.show_table(
        f"geometry per layer over the data (all layers: {LAYERS_TABLE}.md)",
        ["layer", "log vol (median)", "anisotropy (median)", "det J > 0", "|J - I| (mean)"],
        [
            [
                rows[i]["layer"],
                rows[i]["log_volume_median"],
                rows[i]["anisotropy_median"],
                cell(rows[i]["det_positive_fraction"]),
                cell(rows[i]["identity_distance_mean"]),
            ]
            for i in _shown_layers(len(rows))
        ],
    )


__all__ = [
    "GEOMETRY_ARRAYS",
    "LAYER_COLUMNS",
    "LOG_VOLUME_ARRAYS",
    "check_geometry",
    "compute_geometry",
    "geometry_step",
    "load_geometry",
    "save_geometry",
    "saved_input_log_volume",
]
