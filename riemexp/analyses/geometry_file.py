"""geometry.npz, the file: its arrays, checked on reading and writing; numpy only (no torch).

The arrays are those of `riemexp.geometry.geometry_arrays`; the geometry step that computes and
writes them is `riemexp.analyses.geometry`. Sweeps, `riemexp plot-metric` and notebooks read them
here without loading torch (`saved_input_log_volume` needs it only for files of earlier versions).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from riemexp.config import INPUT_DIM
from riemexp.errors import RunFolderError
from riemexp.io import read_run_npz, write_npz
from riemexp.layout import GEOMETRY_FILE

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


def check_geometry(arrays: Mapping[str, np.ndarray], where: str = "geometry arrays") -> None:
    """Check the names and consistent shapes of geometry arrays; raise RunFolderError naming the problem.

    `LOG_VOLUME_ARRAYS` may be missing (files of earlier versions); when present they are checked.
    """
    missing = [name for name in GEOMETRY_ARRAYS if name not in arrays]
    if missing:
        raise RunFolderError(f"{where} is incomplete: missing {', '.join(missing)}")
    present = {**GEOMETRY_ARRAYS, **{k: v for k, v in LOG_VOLUME_ARRAYS.items() if k in arrays}}
    check_shapes(arrays, present, where)
    for name in GEOMETRY_ARRAYS:  # geometry_arrays never returns inf or NaN (GeometryError instead)
        values = np.asarray(arrays[name])
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            raise RunFolderError(f"{where} is corrupt: {name} holds inf or NaN")
    for name in LOG_VOLUME_ARRAYS.keys() & arrays.keys():  # -inf where singular; never NaN or +inf
        values = np.asarray(arrays[name])
        if values.dtype.kind != "f" or np.isnan(values).any() or (values == np.inf).any():
            raise RunFolderError(f"{where} is corrupt: {name} holds NaN or +inf")


def check_shapes(
    arrays: Mapping[str, Any], spec: Mapping[str, tuple[str, ...]], where: str
) -> dict[str, int]:
    """Check that the arrays named in spec (name -> symbolic shape, e.g. ("L+1", "G", "w")) agree on
    every symbolic size, "2" being 2, and that grid_shape (ny, nx) holds G = ny nx points.

    Returns the sizes found; RunFolderError naming the first array that does not fit.
    """
    sizes: dict[str, int] = {"2": INPUT_DIM}
    for name, dims in spec.items():
        shape = tuple(np.shape(arrays[name]))
        ok = len(shape) == len(dims) and all(sizes.setdefault(d, n) == n for d, n in zip(dims, shape))
        if not ok:
            expected = "(" + ", ".join(f"{d}={sizes[d]}" if d in sizes else d for d in dims) + ")"
            raise RunFolderError(f"{where} is corrupt: {name} has shape {shape}, expected {expected}")
    ny, nx = (int(v) for v in arrays["grid_shape"])
    if ny * nx != sizes["G"]:
        raise RunFolderError(
            f"{where} is corrupt: grid_shape {ny} x {nx} does not match {sizes['G']} grid points"
        )
    return sizes


def saved_input_log_volume(arrays: Mapping[str, np.ndarray], input_scale: Any) -> np.ndarray:
    """The grid's input log volume element (G,) from geometry arrays: the saved `grid_input_log_volume`.

    Files of earlier riemexp versions lack it: then `input_log_volume_from_metric` of the saved
    g_0 and input_scale (2,), which reads -inf wherever g_0's lambda_min is below float64's
    rounding level of lambda_max (saturated networks), singular or not. input_scale may be a
    function returning it (e.g. reading model.pt, which needs torch), called only for such files.
    """
    if "grid_input_log_volume" in arrays:
        return np.asarray(arrays["grid_input_log_volume"], dtype=np.float64)
    from riemexp.geometry import input_log_volume_from_metric  # torch: earlier files only

    scale = input_scale() if callable(input_scale) else input_scale
    return input_log_volume_from_metric(arrays["grid_metric"][0], scale)


def save_geometry(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write geometry arrays to an .npz file atomically: `GEOMETRY_ARRAYS`, `LOG_VOLUME_ARRAYS` if given."""
    check_geometry(arrays)
    write_npz(path, arrays, [*GEOMETRY_ARRAYS, *(name for name in LOG_VOLUME_ARRAYS if name in arrays)])


def load_geometry(path: str | Path) -> dict[str, np.ndarray]:
    """Read a geometry.npz (a file, or a run folder holding one); check its arrays.

    Raises RunFolderError naming the missing file, the missing arrays or the corrupt ones.
    """
    arrays, file = read_run_npz(path, GEOMETRY_FILE, "run `riemexp train` with geometry.enabled=true")
    check_geometry(arrays, str(file))
    return arrays


__all__ = [
    "GEOMETRY_ARRAYS",
    "LOG_VOLUME_ARRAYS",
    "check_geometry",
    "check_shapes",
    "load_geometry",
    "save_geometry",
    "saved_input_log_volume",
]
