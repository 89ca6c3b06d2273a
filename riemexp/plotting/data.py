"""What a run's figures are drawn from: numpy arrays only (geometry.npz, the head, class names).

Figures never touch the model: `figure_data` reads what they need from a trained model
and a geometry dict once, so the training run and `riemexp plot-metric` draw from the
same arrays and produce the same files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from riemexp.config import NetworkKind, RunConfig
from riemexp.networks import LayeredNetwork


@dataclass(frozen=True)
class FigureData:
    """Arrays for the figures of one run (float64 numpy).

    geometry: the arrays of geometry.npz (see `riemexp.geometry`): grid_points (G, 2),
      grid_shape (2,) = (ny, nx) x fastest, grid_coords (L+1, G, w), grid_metric
      (L+1, G, w, w), data_points (N, 2), data_labels (N,), data_coords (L+1, N, w),
      grid_proba (G, C).
    input_metric: (G, 2, 2) g_0 at the grid points in the dataset's own input units.
    input_log_volume: (G,) 1/2 log det of input_metric (`riemexp.geometry.input_log_volume`,
      from the factor of g_0, so it stays finite where det g_0 underflows).
    head_weight (C, w), head_bias (C,): the linear head, logits = V x_L + c.
    """

    geometry: Mapping[str, np.ndarray]
    input_metric: np.ndarray
    input_log_volume: np.ndarray
    head_weight: np.ndarray
    head_bias: np.ndarray
    class_names: tuple[str, ...]
    title: str
    kind: NetworkKind

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


def run_title(cfg: RunConfig) -> str:
    """A one-line description of a run for figure titles."""
    n = cfg.network
    step = "" if n.kind is NetworkKind.PLAIN else f", h = {n.step_size:g}"
    return (
        f"{cfg.dataset.name} · {n.kind.value} network, depth {n.depth}, width {n.width}{step}, "
        f"{n.activation.value} · seed {cfg.seed}"
    )


def figure_data(
    model: LayeredNetwork, cfg: RunConfig, class_names: tuple[str, ...], geometry: Mapping[str, np.ndarray]
) -> FigureData:
    """Collect the arrays the figures need from a trained model and its geometry arrays."""
    from riemexp.geometry import input_log_volume, input_metric

    points = torch.as_tensor(np.asarray(geometry["grid_points"]), dtype=torch.float64)
    g_input = input_metric(model, points)  # (G, 2, 2)
    log_volume = input_log_volume(model, points).cpu().numpy()  # (G,)
    return FigureData(
        geometry={k: np.asarray(v) for k, v in geometry.items()},
        input_metric=g_input.cpu().numpy().astype(np.float64),
        input_log_volume=log_volume.astype(np.float64),
        head_weight=model.head.weight.detach().double().cpu().numpy(),
        head_bias=model.head.bias.detach().double().cpu().numpy(),
        class_names=tuple(class_names),
        title=run_title(cfg),
        kind=cfg.network.kind,
    )
