"""The geometry step of a run: geometry.npz (grid and data through every layer) and tables/layers.csv|md.

geometry.npz holds the arrays of `riemexp.geometry.geometry_arrays` (names and shapes in
`GEOMETRY_ARRAYS`); `load_geometry` reads and checks them for the figures, `riemexp plot-metric`,
sweeps and notebooks. tables/layers.csv|md has one row per layer of
`riemexp.geometry.layer_statistics` over the run's data (columns `LAYER_COLUMNS`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from riemexp import console
from riemexp.analyses import RunContext
from riemexp.budget import check_memory
from riemexp.certify import CERTIFICATE_COLUMNS, with_certificate
from riemexp.config import INPUT_DIM, GeometryConfig
from riemexp.data.dataset import Dataset
from riemexp.errors import RunFolderError
from riemexp.geometry import (
    geometry_arrays,
    input_anisotropy,
    input_log_volume_from_metric,
    layer_statistics,
    median,
)
from riemexp.geometry.folds import determinants_at, negative_fraction
from riemexp.io import atomic_save, read_npz
from riemexp.layout import GEOMETRY_FILE, TABLES_DIR
from riemexp.nets.network import LayeredNetwork
from riemexp.tables import write_table
from riemexp.timing import stage

LAYERS_TABLE = f"{TABLES_DIR}/layers"

#: geometry.npz: name -> shape with symbolic sizes (G grid points, N data points, L depth,
#: w width, C classes)
GEOMETRY_ARRAYS: dict[str, tuple[str, ...]] = {
    "grid_points": ("G", "2"),
    "grid_shape": ("2",),
    "grid_coords": ("L+1", "G", "w"),
    "grid_metric": ("L+1", "G", "w", "w"),
    "data_points": ("N", "2"),
    "data_labels": ("N",),
    "data_coords": ("L+1", "N", "w"),
    "data_metric": ("L+1", "N", "w", "w"),
    "grid_proba": ("G", "C"),
}
#: written beside GEOMETRY_ARRAYS, missing from files of earlier riemexp versions: `input_log_volume`
#: of the grid and data points, computed from the network (the true values, -inf only where a layer
#: is singular; the saved g_0 cannot tell a saturated network's tiny lambda_min from 0)
LOG_VOLUME_ARRAYS: dict[str, tuple[str, ...]] = {
    "grid_input_log_volume": ("G",),
    "data_input_log_volume": ("N",),
}

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


def check_geometry(arrays: Mapping[str, np.ndarray], where: str = "geometry arrays") -> None:
    """Check the names and consistent shapes of geometry arrays; raise RunFolderError naming the problem.

    `LOG_VOLUME_ARRAYS` may be missing (files of earlier versions); when present they are checked.
    """
    missing = [name for name in GEOMETRY_ARRAYS if name not in arrays]
    if missing:
        raise RunFolderError(f"{where} is incomplete: missing {', '.join(missing)}")
    sizes: dict[str, int] = {"2": INPUT_DIM}
    present = {**GEOMETRY_ARRAYS, **{k: v for k, v in LOG_VOLUME_ARRAYS.items() if k in arrays}}
    for name, dims in present.items():
        shape = tuple(arrays[name].shape)
        ok = len(shape) == len(dims)
        for dim, size in zip(dims, shape) if ok else ():
            if sizes.setdefault(dim, size) != size:
                ok = False
        if not ok:
            expected = "(" + ", ".join(f"{d}={sizes[d]}" if d in sizes else d for d in dims) + ")"
            raise RunFolderError(f"{where} is corrupt: {name} has shape {shape}, expected {expected}")
    ny, nx = (int(v) for v in arrays["grid_shape"])
    if ny * nx != sizes["G"]:
        raise RunFolderError(
            f"{where} is corrupt: grid_shape {ny} x {nx} does not match {sizes['G']} grid points"
        )
    for name in GEOMETRY_ARRAYS:  # geometry_arrays never returns inf or NaN (GeometryError instead)
        values = np.asarray(arrays[name])
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            raise RunFolderError(f"{where} is corrupt: {name} holds inf or NaN")
    for name in LOG_VOLUME_ARRAYS.keys() & arrays.keys():  # -inf where singular; never NaN or +inf
        values = np.asarray(arrays[name])
        if values.dtype.kind != "f" or np.isnan(values).any() or (values == np.inf).any():
            raise RunFolderError(f"{where} is corrupt: {name} holds NaN or +inf")


def saved_input_log_volume(arrays: Mapping[str, np.ndarray], input_scale: Any) -> np.ndarray:
    """The grid's input log volume element (G,) from geometry arrays: the saved `grid_input_log_volume`.

    Files of earlier riemexp versions lack it: then `input_log_volume_from_metric` of the saved
    g_0 and input_scale (2,), which reads -inf wherever g_0's lambda_min is below float64's
    rounding level of lambda_max (saturated networks), singular or not.
    """
    if "grid_input_log_volume" in arrays:
        return np.asarray(arrays["grid_input_log_volume"], dtype=np.float64)
    return input_log_volume_from_metric(arrays["grid_metric"][0], input_scale)


def save_geometry(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write geometry arrays to an .npz file atomically: `GEOMETRY_ARRAYS`, `LOG_VOLUME_ARRAYS` if given."""
    check_geometry(arrays)
    names = [*GEOMETRY_ARRAYS, *(name for name in LOG_VOLUME_ARRAYS if name in arrays)]

    def saver(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            payload: dict[str, Any] = {name: np.asarray(arrays[name]) for name in names}
            np.savez(f, **payload)

    atomic_save(path, saver)


def load_geometry(path: str | Path) -> dict[str, np.ndarray]:
    """Read a geometry.npz (a file, or a run folder holding one); check its arrays.

    Raises RunFolderError naming the missing file, the missing arrays or the corrupt ones.
    """
    path = Path(path)
    if path.is_dir():
        path = path / GEOMETRY_FILE
    if not path.is_file():
        raise RunFolderError(f"{path} is missing (run `riemexp train` with geometry.enabled=true)")
    arrays = read_npz(path)
    check_geometry(arrays, str(path))
    return arrays


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
