"""Geometry through training: snapshots of the input metric and the classifier, and the boundary numbers.

With `geometry.snapshots=N` (default 20; 0: none) a run records, at initialisation (epoch 0) and at
N epochs spread evenly over training (`snapshot_epochs`: round(k E / N) for k = 1 .. N, always
the last), on the snapshot grid (`geometry.snapshot_density` points along each axis, default 40, in
the box of `riemexp.geometry.make_grid`; coarser than the final geometry's `geometry.grid_density`,
so the last snapshot's boundary numbers are those of metrics.json measured on the coarser grid):
the input metric g_0 in the user's input units, the class probabilities, det J_l of every layer
(`riemexp.geometry.folds`), the loss and accuracy of the model at that moment on the train and test sets
(evaluated then, in eval mode), and the boundary numbers of `riemexp.geometry.boundary`. Recording reads the
weights and draws no random numbers, so a run trains exactly as without snapshots (history.csv
is byte-identical). They are written to snapshots.npz (`SNAPSHOT_ARRAYS`, atomically) once
training has completed; a run that stops early writes none. Where the run may use two CPUs or
more, they are recorded beside training by `riemexp.analyses.snapshot_worker` (the same
`SnapshotRecorder` in a forked process: the same arrays), which then draws their figures too.

`boundary_step` (an analysis step of `riemexp train`, after the geometry) measures the trained
network: metrics.json's boundary_* numbers, tables/boundary.csv|md and, from snapshots.npz,
tables/snapshots.csv|md (one row per snapshot) and, with plots on, starts drawing the snapshot
figures (`riemexp.plotting.snapshots`) unless the snapshot worker already draws them: it is the
first analysis step, so that they draw beside the others.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from riemexp import console
from riemexp.analyses.geometry_file import check_shapes
from riemexp.config import RunConfig
from riemexp.errors import RunFolderError
from riemexp.geometry.boundary import NUMBER_NAMES, BoundaryNumbers, network_boundary_numbers
from riemexp.geometry.folds import negative_fraction
from riemexp.io import read_run_npz, write_npz
from riemexp.layout import PLOTS_DIR, SNAPSHOTS_FILE, TABLES_DIR
from riemexp.tables import write_table
from riemexp.timing import stage

if TYPE_CHECKING:
    from riemexp.analyses import RunContext
    from riemexp.data.dataset import Dataset
    from riemexp.nets.network import LayeredNetwork

BOUNDARY_TABLE = f"{TABLES_DIR}/boundary"
SNAPSHOTS_TABLE = f"{TABLES_DIR}/snapshots"

#: the scalar series of snapshots.npz, one value per snapshot (S,)
SCORE_NAMES = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")
#: snapshots.npz: name -> shape with symbolic sizes (S snapshots, G grid points, N data points,
#: L depth, C classes); every array float64 but epoch, grid_shape and data_labels (int64)
SNAPSHOT_ARRAYS: dict[str, tuple[str, ...]] = {
    "epoch": ("S",),  # 0 = initialisation
    "grid_points": ("G", "2"),  # input units, x fastest (riemexp.geometry.make_grid)
    "grid_shape": ("2",),  # (ny, nx)
    "grid_metric": ("S", "G", "2", "2"),  # g_0 in input units (riemexp.geometry.input_metric)
    "grid_log_volume": ("S", "G"),  # 1/2 log det of grid_metric (riemexp.geometry.input_log_volume)
    "grid_proba": ("S", "G", "C"),  # class probabilities
    # det J_l at the grid points' images x_l (riemexp.folds); L the deepest network's layers: a
    # refined run's shallower stages have NaN for the layers they lack
    "grid_layer_det": ("S", "L", "G"),
    "det_negative_fraction": ("S", "L"),  # fraction of grid points with det J_l < 0 (NaN: as above)
    "data_points": ("N", "2"),  # train then test, input units
    "data_labels": ("N",),
    **{name: ("S",) for name in SCORE_NAMES},
    **{f"boundary_{name}": ("S",) for name in NUMBER_NAMES},  # riemexp.geometry.boundary, NaN where undefined
}
#: snapshots.npz, written since the boundary was located for the figures too (older files lack them):
#: every snapshot's decision boundary as located by `riemexp.geometry.boundary.boundary_segments`,
#: all snapshots' segments in one array, snapshot s's being segments[offsets[s]:offsets[s + 1]]
#: (`riemexp.plotting.snapshots.snapshot_segments`)
SEGMENT_ARRAYS: dict[str, tuple[str, ...]] = {
    "boundary_segments": ("B", "2", "2"),  # input units
    "boundary_offsets": ("S+1",),  # int64, 0 .. B
}


def snapshot_epochs(epochs: int, count: int) -> list[int]:
    """The epochs recorded: 0 (initialisation) and round(k epochs / count), k = 1 .. count, deduplicated.

    Every epoch when count >= epochs; [] when count is 0.
    """
    if count <= 0:
        return []
    chosen = {int(math.floor(k * epochs / count + 0.5)) for k in range(1, count + 1)}
    return [0, *sorted(e for e in chosen if 1 <= e <= epochs)]


def run_snapshot_epochs(cfg: RunConfig) -> list[int]:
    """The snapshot epochs of the run of cfg: spread over its whole training (a refined run's every
    stage, `riemexp.refine.total_epochs`)."""
    from riemexp.refine import total_epochs

    return snapshot_epochs(total_epochs(cfg), cfg.geometry.snapshots)


class SnapshotRecorder:
    """Records a network's snapshots during training (module docstring).

    Call `record(model, epoch)` at initialisation (epoch 0) and after every epoch; it does its work
    only at the epochs of `snapshot_epochs`. `arrays()` gives snapshots.npz's arrays.
    """

    def __init__(self, cfg: RunConfig, data: Dataset) -> None:
        from riemexp.geometry import make_grid

        self.epochs = run_snapshot_epochs(cfg)
        self.band_fraction = cfg.geometry.boundary_band
        self.data = data
        self.data_points = data.x.detach().cpu().to(torch.float64).numpy()
        self.grid, self.grid_shape = make_grid(
            self.data_points, cfg.geometry.snapshot_density, cfg.geometry.margin
        )
        self.rows: list[dict[str, Any]] = []
        self.seconds = 0.0  # spent recording
        self.seconds_at: dict[int, float] = {}  # per recorded epoch

    @property
    def enabled(self) -> bool:
        return bool(self.epochs)

    @staticmethod
    def record_many(pairs: Sequence[tuple[SnapshotRecorder, LayeredNetwork]], epoch: int) -> None:
        """Record the snapshot of `epoch` for several (recorder, model) pairs, an ensemble's members:
        measured together where they can be, to the same bits (`riemexp.analyses.ensemble_snapshots`)."""
        from riemexp.analyses.ensemble_snapshots import record_members

        record_members(pairs, epoch)

    def wants(self, epoch: int) -> bool:
        """True when `epoch` is one of the chosen epochs and not yet recorded."""
        return epoch in self.epochs and not any(r["epoch"] == epoch for r in self.rows)

    def scores(self, model: LayeredNetwork) -> dict[str, float]:
        """Loss and accuracy on the train and test sets now (eval mode; `riemexp.train.evaluate`)."""
        from riemexp.train import evaluate

        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        scores = {}
        for split in ("train", "test"):
            x = getattr(self.data, f"x_{split}").to(device, torch.float32)
            y = getattr(self.data, f"y_{split}").to(device)
            scores[f"{split}_loss"], scores[f"{split}_accuracy"] = evaluate(model, x, y)
        model.train(was_training)
        return scores

    @torch.no_grad()
    def record(self, model: LayeredNetwork, epoch: int) -> None:
        """Record the snapshot of `epoch` (0: initialisation) if it is one of the chosen epochs."""
        if not self.wants(epoch):
            return
        start = time.perf_counter()
        scores = self.scores(model)
        metric, log_volume, proba, dets, classes = grid_state(model, self.grid)
        numbers, segments = network_boundary_numbers(
            model,
            self.grid,
            self.grid_shape,
            self.data_points,
            self.band_fraction,
            log_volume,
            classes,
            data_log_volume(model, self.data_points),
        )
        self.keep(epoch, scores, metric, log_volume, proba, dets, numbers, segments)
        self.spent(epoch, time.perf_counter() - start)

    def keep(
        self,
        epoch: int,
        scores: Mapping[str, float],
        metric: np.ndarray,
        log_volume: np.ndarray,
        proba: np.ndarray,
        dets: np.ndarray,
        numbers: BoundaryNumbers,
        segments: np.ndarray,
    ) -> None:
        """Keep the snapshot of `epoch`: the arrays of `grid_state` (without the classes), the
        boundary numbers and segments of `network_boundary_numbers`, the scores of `scores`."""
        self.rows.append(
            {
                "epoch": epoch,
                "metric": metric,
                "log_volume": log_volume,
                "proba": proba,
                "dets": dets,
                "numbers": numbers,
                "segments": segments,
                **scores,
            }
        )

    def spent(self, epoch: int, seconds: float) -> None:
        """Count `seconds` of recording against the snapshot of `epoch`."""
        self.seconds += seconds
        self.seconds_at[epoch] = self.seconds_at.get(epoch, 0.0) + seconds

    def arrays(self) -> dict[str, np.ndarray]:
        """snapshots.npz's arrays (`SNAPSHOT_ARRAYS`), snapshots in epoch order."""
        rows = sorted(self.rows, key=lambda r: r["epoch"])
        # (S, L, G) at the deepest network's L: a refined run's shallower stages lack layers (NaN)
        depth = max((len(r["dets"]) for r in rows), default=0)
        dets = np.full((len(rows), depth, len(self.grid)), np.nan)
        fractions = np.full((len(rows), depth), np.nan)
        for s, r in enumerate(rows):
            dets[s, : len(r["dets"])] = r["dets"]
            fractions[s, : len(r["dets"])] = negative_fraction(r["dets"])
        out: dict[str, np.ndarray] = {
            "epoch": np.array([r["epoch"] for r in rows], dtype=np.int64),
            "grid_points": self.grid,
            "grid_shape": np.asarray(self.grid_shape, dtype=np.int64),
            "grid_metric": np.stack([r["metric"] for r in rows]),
            "grid_log_volume": np.stack([r["log_volume"] for r in rows]),
            "grid_proba": np.stack([r["proba"] for r in rows]),
            "grid_layer_det": dets,
            "det_negative_fraction": fractions,
            "data_points": self.data_points,
            "data_labels": self.data.y.detach().cpu().to(torch.int64).numpy(),
        }
        for name in SCORE_NAMES:
            out[name] = np.array([r[name] for r in rows], dtype=np.float64)
        for name in NUMBER_NAMES:
            out[f"boundary_{name}"] = np.array([getattr(r["numbers"], name) for r in rows], dtype=np.float64)
        counts = [len(r["segments"]) for r in rows]
        out["boundary_offsets"] = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        out["boundary_segments"] = (
            np.concatenate([np.asarray(r["segments"]).reshape(-1, 2, 2) for r in rows])
            if rows
            else np.zeros((0, 2, 2))
        )
        return out


@torch.no_grad()
def grid_state(
    model: LayeredNetwork, grid: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What a snapshot keeps of the grid (G, 2), from one pass through the layers, float64:

    g_in (G, 2, 2) the input metric in input units (`riemexp.geometry.input_metric`), its log volume
    element (G,) (`riemexp.geometry.input_log_volume`), the class probabilities (G, C), det J_l
    (L, G) (`riemexp.folds.layer_determinants`), and the predicted classes (G,) (argmax of the logits,
    as `riemexp.geometry.boundary.network_classifier`).
    """
    from riemexp.config import INPUT_DIM
    from riemexp.geometry import input_log_volume, layer_coordinates, pullback

    coords = layer_coordinates(model, grid)  # (L+1, G, w)
    metric, _ = pullback(model, coords)  # (L+1, G, w, w)
    scale = model.input_scale.detach().to(torch.float64).to(coords.device)  # (2,)
    g_in = metric[0, :, :INPUT_DIM, :INPUT_DIM] / (scale[:, None] * scale[None, :])  # (G, 2, 2)
    dets, log_volume = _dets_and_log_volume(model, coords)
    if log_volume is None:
        log_volume = input_log_volume(model, grid)
    V = model.head.weight.detach().to(torch.float64).to(coords.device)  # (C, w)
    c = model.head.bias.detach().to(torch.float64).to(coords.device)  # (C,)
    logits = torch.addmm(c, coords[-1], V.T)  # (G, C)
    proba = torch.softmax(logits, dim=1)
    return (
        g_in.cpu().numpy(),
        log_volume.cpu().numpy(),
        proba.cpu().numpy(),
        dets.cpu().numpy(),
        logits.argmax(dim=1).cpu().numpy(),
    )


def _dets_and_log_volume(
    model: LayeredNetwork, coords: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """det J_l (L, M) at layer coordinates coords (L+1, M, w), and the input log volume element (M,) where
    it follows from them: at width 2 for one-step kinds, 1/2 log det g_in = sum_l log|det J_l| - sum log
    scale (the definition of `riemexp.geometry.input_log_volume` there); else None.

    At width 2, det J_l = J_00 J_11 - J_01 J_10 in closed form.
    """
    from riemexp.config import INPUT_DIM
    from riemexp.geometry import trajectory_jacobians

    jac = trajectory_jacobians(model, coords)  # (L, M, w, w)
    if jac.shape[-1] == 2:
        dets = jac[..., 0, 0] * jac[..., 1, 1] - jac[..., 0, 1] * jac[..., 1, 0]
    else:
        dets = torch.linalg.det(jac)
    if model.width != INPUT_DIM or model.kind.two_step:
        return dets, None
    scale = model.input_scale.detach().to(torch.float64).to(coords.device)
    return dets, dets.abs().log().sum(0) - torch.log(scale).sum()


def data_log_volume(model: LayeredNetwork, points: np.ndarray) -> np.ndarray:
    """1/2 log det g_in at points (N, 2) in input units (`riemexp.geometry.input_log_volume`), by the
    layers' determinants where the width allows (`_dets_and_log_volume`): (N,) float64."""
    from riemexp.geometry import input_log_volume, layer_coordinates

    _, log_volume = _dets_and_log_volume(model, layer_coordinates(model, points))
    return (log_volume if log_volume is not None else input_log_volume(model, points)).cpu().numpy()


# --------------------------------------------------------------------------- the file


def check_snapshots(arrays: Mapping[str, np.ndarray], where: str = "snapshot arrays") -> None:
    """Check the names and consistent shapes of snapshot arrays; RunFolderError naming the problem."""
    missing = [name for name in SNAPSHOT_ARRAYS if name not in arrays]
    if missing:
        raise RunFolderError(f"{where} is incomplete: missing {', '.join(missing)}")
    sizes = check_shapes(arrays, SNAPSHOT_ARRAYS, where)
    if ("boundary_segments" in arrays) != ("boundary_offsets" in arrays):
        raise RunFolderError(f"{where} is corrupt: boundary_segments and boundary_offsets come together")
    if "boundary_segments" in arrays:
        segments, offsets = np.shape(arrays["boundary_segments"]), np.asarray(arrays["boundary_offsets"])
        ok = (
            len(segments) == 3
            and segments[1:] == (2, 2)
            and offsets.shape == (sizes["S"] + 1,)
            and offsets[0] == 0
            and offsets[-1] == segments[0]
            and bool(np.all(np.diff(offsets) >= 0))
        )
        if not ok:
            raise RunFolderError(
                f"{where} is corrupt: boundary_segments {segments} and boundary_offsets {offsets.shape} "
                f"do not match (expected (B, 2, 2) and ({sizes['S'] + 1},) offsets rising from 0 to B)"
            )


def save_snapshots(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write snapshot arrays (names of `SNAPSHOT_ARRAYS`) to an .npz file atomically."""
    check_snapshots(arrays)
    write_npz(path, arrays, [*SNAPSHOT_ARRAYS, *(name for name in SEGMENT_ARRAYS if name in arrays)])


def load_snapshots(path: str | Path) -> dict[str, np.ndarray]:
    """Read a snapshots.npz (a file, or a run folder holding one); check its arrays (RunFolderError)."""
    arrays, file = read_run_npz(path, SNAPSHOTS_FILE, "run `riemexp train` with geometry.snapshots > 0")
    check_snapshots(arrays, str(file))
    return arrays


# --------------------------------------------------------------------------- tables

#: tables/boundary.csv|md: one row for the grid, one for the data points
BOUNDARY_COLUMNS = ("points", "count", "spearman", "band_ratio", "in_band", "band_width", "boundary_length")
#: tables/snapshots.csv|md: one row per snapshot
SNAPSHOT_COLUMNS = (
    "epoch",
    *SCORE_NAMES,
    "spearman_grid",
    "band_ratio_grid",
    "spearman_data",
    "band_ratio_data",
    "boundary_length",
    "folding_layers",
    "det_negative_fraction_max",
)


def boundary_rows(numbers: BoundaryNumbers, n_grid: int, n_data: int) -> list[dict[str, Any]]:
    """The rows of tables/boundary: the numbers over the grid and over the data points."""
    return [
        {
            "points": where,
            "count": count,
            "spearman": getattr(numbers, f"spearman_{where}"),
            "band_ratio": getattr(numbers, f"band_ratio_{where}"),
            "in_band": getattr(numbers, f"n_band_{where}"),
            "band_width": numbers.band_width,
            "boundary_length": numbers.boundary_length,
        }
        for where, count in (("grid", n_grid), ("data", n_data))
    ]


def snapshot_rows(arrays: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """The rows of tables/snapshots from snapshots.npz's arrays: one per snapshot.

    folding_layers: how many layers fold the grid (det J_l of both signs over it);
    det_negative_fraction_max: the largest fraction of grid points with det J_l < 0 over the layers.
    """
    dets = np.asarray(arrays["grid_layer_det"])  # (S, L, G)
    folding = ((dets < 0).any(axis=2) & (dets > 0).any(axis=2)).sum(axis=1)  # (S,)
    rows = []
    for s, epoch in enumerate(np.asarray(arrays["epoch"])):
        row: dict[str, Any] = {"epoch": int(epoch)}
        for name in SCORE_NAMES:
            row[name] = float(arrays[name][s])
        for name in (
            "spearman_grid",
            "band_ratio_grid",
            "spearman_data",
            "band_ratio_data",
            "boundary_length",
        ):
            row[name] = float(arrays[f"boundary_{name}"][s])
        row["folding_layers"] = int(folding[s])
        fractions = np.asarray(arrays["det_negative_fraction"])[s]
        known = fractions[np.isfinite(fractions)]  # (a refined run's shallower stage: fewer layers)
        row["det_negative_fraction_max"] = float(known.max()) if known.size else 0.0
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- the analysis step


def _cell(value: Any) -> Any:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else value


def boundary_step(ctx: RunContext) -> None:
    """Analysis step of `riemexp train`: the boundary numbers of the trained network, their table and
    the snapshot table.

    Adds to ctx.metrics: boundary_spearman_grid, boundary_band_ratio_grid, boundary_spearman_data,
    boundary_band_ratio_data, boundary_band_width, boundary_n_band_grid, boundary_n_band_data,
    boundary_length (`riemexp.geometry.boundary`; None where undefined) and boundary_seconds.
    """
    from riemexp.geometry import make_grid

    start = time.perf_counter()
    geometry = ctx.cfg.geometry
    points = ctx.data.x.detach().cpu().to(torch.float64).numpy()
    grid, shape = make_grid(points, geometry.grid_density, geometry.margin)
    numbers, _ = network_boundary_numbers(ctx.model, grid, shape, points, geometry.boundary_band)
    metrics = numbers.as_metrics()
    metrics["boundary_length"] = metrics.pop("boundary_boundary_length")
    ctx.metrics.update(metrics)
    with stage("writing"):
        write_table(
            ctx.out_dir / BOUNDARY_TABLE, boundary_rows(numbers, len(grid), len(points)), BOUNDARY_COLUMNS
        )
    snapshots_file = ctx.out_dir / SNAPSHOTS_FILE
    arrays = load_snapshots(snapshots_file) if snapshots_file.is_file() else None
    if arrays is not None:
        with stage("writing"):
            write_table(ctx.out_dir / SNAPSHOTS_TABLE, snapshot_rows(arrays), SNAPSHOT_COLUMNS)
    if arrays is not None and ctx.cfg.plot.enabled:
        # the snapshot figures, drawn beside the geometry, ODE and Lie steps where the run may use
        # several CPUs (`riemexp plot-metric` draws the same files with the run's other figures)
        from riemexp.analyses.plots import run_title
        from riemexp.plotting.snapshots import submit_snapshot_figures

        written = submit_snapshot_figures(
            arrays, run_title(ctx.cfg), ctx.cfg.plot.formats, ctx.out_dir / PLOTS_DIR, ctx.figures
        )
        ctx.metrics["plots"] = ctx.metrics.get("plots", []) + [
            p.relative_to(ctx.out_dir).as_posix() for p in written
        ]
    ctx.metrics["boundary_seconds"] = round(time.perf_counter() - start, 4)
    first = (
        None
        if arrays is None
        else snapshot_rows({k: v[:1] if k in _PER_SNAPSHOT else v for k, v in arrays.items()})
    )
    console.show_table(
        f"magnification near the decision boundary (band: distance <= {numbers.band_width:.3g}; "
        f"{BOUNDARY_TABLE}.md)",
        ["points", "Spearman(log vol, distance)", "median vol in band / outside"]
        + (["at initialisation (Spearman, ratio)"] if first else []),
        [
            [
                where,
                _cell(getattr(numbers, f"spearman_{where}")),
                _cell(getattr(numbers, f"band_ratio_{where}")),
            ]
            + (
                [f"{_cell(first[0][f'spearman_{where}'])}, {_cell(first[0][f'band_ratio_{where}'])}"]
                if first
                else []
            )
            for where in ("grid", "data")
        ],
    )


#: the arrays of snapshots.npz that have one entry per snapshot (first axis S)
_PER_SNAPSHOT = {name for name, dims in SNAPSHOT_ARRAYS.items() if dims[0] == "S"}


def train_seconds_without(recorder: SnapshotRecorder, seconds: float, last_epoch: int) -> float:
    """The training time `seconds` (riemexp.train's, which includes the work done after every epoch
    but the last) less the time spent recording snapshots within it."""
    inside = sum(s for e, s in recorder.seconds_at.items() if 1 <= e < last_epoch)
    return max(seconds - inside, 0.0)
