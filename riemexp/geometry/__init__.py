"""Exact per-layer geometry, pure maths: float64, batched over points, closed form, no autograd.

Layers are changes of coordinates of the data manifold; the metric of the last hidden layer
(Euclidean, as the head is linear) pulled back through the layer Jacobians gives the metric of
every layer, g_l = J_l^T g_{l+1} J_l, down to the input.

    coordinates   layer coordinates x_l and closed-form layer Jacobians J_l of every kind
    pullback      the metrics g_l (from the factor Q_l = dx_L/dx_l, g_l = Q_l^T Q_l), the input metric
    spectrum      the factors Q_l, Q_l^{-1} (and K_l = dx_l/dx_0 of two-step kinds) with log scales:
                  exact log volumes, eigenvalues and anisotropy, singular only where a layer is
    scalars       log volume element, anisotropy, per-layer statistics, the input log volume
    grids         the evaluation grid; coordinates, metrics and probabilities of grid and data
    lie           layer Jacobians as elements of GL(w): determinants, matrix logarithm

Nothing here reads configs or writes files: the analysis steps (riemexp.analyses) do.
"""

from riemexp.geometry.coordinates import (
    F64,
    layer_coordinates,
    layer_jacobians,
    position_blocks,
    trajectory_jacobians,
)
from riemexp.geometry.grids import geometry_arrays, make_grid
from riemexp.geometry.lie import has_real_log, lie_rows, lie_table, matrix_log, matrix_log_remainder
from riemexp.geometry.pullback import (
    coordinates_and_metrics,
    input_metric,
    pullback,
    pullback_from_jacobians,
    pullback_metrics,
    state_metrics,
    velocity_kept_metrics,
)
from riemexp.geometry.scalars import (
    anisotropy,
    factor_log_volumes,
    input_anisotropy,
    input_log_volume,
    input_log_volume_from_metric,
    layer_statistics,
    log_volume_element,
    log_volume_elements,
    median,
    metric_eigh,
)

__all__ = [
    "F64",
    "anisotropy",
    "coordinates_and_metrics",
    "factor_log_volumes",
    "geometry_arrays",
    "has_real_log",
    "input_anisotropy",
    "input_log_volume",
    "input_log_volume_from_metric",
    "input_metric",
    "layer_coordinates",
    "layer_jacobians",
    "layer_statistics",
    "lie_rows",
    "lie_table",
    "log_volume_element",
    "log_volume_elements",
    "make_grid",
    "matrix_log",
    "matrix_log_remainder",
    "median",
    "metric_eigh",
    "position_blocks",
    "pullback",
    "pullback_from_jacobians",
    "pullback_metrics",
    "state_metrics",
    "trajectory_jacobians",
    "velocity_kept_metrics",
]
