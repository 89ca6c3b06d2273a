"""What a run's figures are drawn from: numpy arrays only (geometry.npz, the head, class names).

Figures never touch the model: the plots step (`riemexp.analyses.plots.figure_data`) reads what
they need from a trained model and a geometry dict once, so the training run and
`riemexp plot-metric` draw from the same arrays and produce the same files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FigureData:
    """Arrays for the figures of one run (float64 numpy).

    geometry: the arrays of geometry.npz (see `riemexp.analyses.geometry.GEOMETRY_ARRAYS`):
      grid_points (G, 2), grid_shape (2,) = (ny, nx) x fastest, grid_coords (L+1, G, w),
      grid_metric (L+1, G, w, w), data_points (N, 2), data_labels (N,), data_coords (L+1, N, w),
      grid_proba (G, C).
    grid_input_metric: (G, 2, 2) g_0 at the grid points in the dataset's own input units.
    grid_input_log_volume: (G,) 1/2 log det of grid_input_metric (`riemexp.geometry.input_log_volume`,
      from the factor of g_0, so it stays finite where det g_0 underflows).
    head_weight (C, w), head_bias (C,): the linear head, logits = V x_L + c.
    kind: the network kind's name; two_step: whether its state is (x_l, x_{l-1}) (c2).
    grid_layer_det: (L, G) det J_l at the grid points' images x_l (`riemexp.geometry.folds`), for the
      folds det J_l = 0 on the input-space figure; None: no folds drawn.
    boundary_segments: (B, 2, 2) the decision boundary located on the network itself
      (`riemexp.geometry.boundary.boundary_segments`), drawn on the input-space figure; None: the
      contour of the grid's class probabilities is drawn instead.
    """

    geometry: Mapping[str, np.ndarray]
    grid_input_metric: np.ndarray
    grid_input_log_volume: np.ndarray
    head_weight: np.ndarray
    head_bias: np.ndarray
    class_names: tuple[str, ...]
    title: str
    kind: str
    two_step: bool = False
    #: "test accuracy 0.996" (with the warning when near chance); "" when unknown
    accuracy_line: str = ""
    near_chance: bool = False
    #: names of the two input coordinates, for input-space axes (a CSV's column names)
    coordinate_names: tuple[str, str] = ("input $x_1$", "input $x_2$")
    grid_layer_det: np.ndarray | None = None
    boundary_segments: np.ndarray | None = None

    @property
    def depth(self) -> int:
        return int(self.geometry["grid_coords"].shape[0]) - 1

    @property
    def width(self) -> int:
        return int(self.geometry["grid_coords"].shape[2])

    @property
    def grid_shape(self) -> tuple[int, int]:
        ny, nx = (int(v) for v in self.geometry["grid_shape"])
        return ny, nx

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


__all__ = ["FigureData"]
