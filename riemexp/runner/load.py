"""A run folder's files read back: metrics.json, model.pt (and its writer), and a whole completed run.

`load_run(path)` gives a `LoadedRun`: the trained model, its config, metrics and regenerated
dataset at once; its arrays and tables (geometry.npz, history.csv, tables/*.csv) when first used.
"""

from __future__ import annotations

import functools
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import riemexp
from riemexp import lock
from riemexp.config import RunConfig, config_to_dict, load_saved_config
from riemexp.data.dataset import Dataset, make_dataset
from riemexp.data.registry import fingerprint, source_of
from riemexp.errors import RiemexpError, RunFolderError, safe_reason
from riemexp.identity import IDENTITY_KEY, run_identity
from riemexp.io import atomic_write_bytes
from riemexp.layout import HISTORY_FILE, METRICS_FILE, MODEL_FILE, TABLES_DIR
from riemexp.nets.network import LayeredNetwork, build_network


def save_model(out_dir: Path, model: LayeredNetwork, cfg: RunConfig, data: Dataset) -> None:
    """model.pt: the weights, the resolved config, the class names, the dataset's fingerprint and
    the run identity (torch.save of a dict, written atomically)."""
    dataset_sha256 = fingerprint(cfg.dataset)
    payload = {
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": config_to_dict(cfg),
        "class_names": list(data.class_names),
        "dataset_sha256": dataset_sha256,
        IDENTITY_KEY: run_identity(cfg, dataset_sha256),
        "riemexp_version": riemexp.__version__,
    }
    buffer = io.BytesIO()  # torch's own file writer hides the OS reason of a failed write
    torch.save(payload, buffer)
    atomic_write_bytes(out_dir / MODEL_FILE, buffer.getvalue())


@dataclass
class LoadedRun:
    """A completed run read back from its folder.

    model, config, metrics and data are read at once; the run's arrays and tables when first
    used: `geometry` (geometry.npz: per-layer coordinates and metric tensors, see
    `riemexp.analyses.geometry.GEOMETRY_ARRAYS`), `history` (history.csv as records), `tables`
    ({"layers": records, "ode": ..., "lie": ...} from tables/*.csv) and `table(name)` (one
    table, a pandas DataFrame when pandas is installed; `riemexp.notebook`).
    """

    path: Path
    model: LayeredNetwork  # cpu, eval mode
    config: RunConfig
    metrics: dict[str, Any]
    data: Dataset  # regenerated from the saved config's seed

    @functools.cached_property
    def geometry(self) -> dict[str, np.ndarray]:
        """geometry.npz's arrays, checked (RunFolderError when missing or corrupt)."""
        from riemexp.analyses.geometry import load_geometry

        return load_geometry(self.path)

    @functools.cached_property
    def history(self) -> list[dict[str, Any]]:
        """history.csv: one record per epoch (epoch, train_loss, train_accuracy, test_loss, test_accuracy)."""
        from riemexp.notebook import read_records

        return read_records(self.path / HISTORY_FILE)

    @functools.cached_property
    def tables(self) -> dict[str, list[dict[str, Any]]]:
        """Every table of tables/ as records, by name ({} when the run wrote none); columns renamed
        since the run was written are read by today's names."""
        from riemexp.analyses.geometry import RENAMED_COLUMNS
        from riemexp.notebook import read_records

        folder = self.path / TABLES_DIR
        if not folder.is_dir():
            return {}
        return {
            p.stem: [{RENAMED_COLUMNS.get(k, k): v for k, v in row.items()} for row in read_records(p)]
            for p in sorted(folder.glob("*.csv"))
        }

    def table(self, name: str, as_frame: bool | None = None) -> Any:
        """One table: a pandas DataFrame (pandas installed, or as_frame=True) or records."""
        from riemexp.notebook import to_frame

        if name not in self.tables:
            raise RunFolderError(
                f"run {self.path} has no table '{name}'; it has: {', '.join(self.tables) or 'none'}"
            )
        return to_frame(self.tables[name], as_frame)


def read_metrics(path: Path) -> dict[str, Any]:
    """The run folder's metrics.json; RunFolderError when missing or not a run's record."""
    file = path / METRICS_FILE
    if not file.is_file():
        raise RunFolderError(f"{path} is not a riemexp run folder: {METRICS_FILE} is missing")
    try:
        metrics = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunFolderError(f"{file} is corrupt: not valid JSON ({err})") from None
    if not isinstance(metrics, dict) or "status" not in metrics:
        raise RunFolderError(f"{file} is corrupt: expected a JSON object with a 'status' key")
    return metrics


def read_model_file(path: Path) -> dict[str, Any]:
    """The dict saved in the run folder's model.pt; RunFolderError when missing or unreadable."""
    model_file = path / MODEL_FILE
    if not model_file.is_file():
        raise RunFolderError(f"run folder {path} is incomplete: {MODEL_FILE} is missing")
    try:
        payload = torch.load(model_file, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types
        raise RunFolderError(f"{model_file} is corrupt: {safe_reason(err)}") from None
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise RunFolderError(f"{model_file} is corrupt: expected a dict with a 'state_dict' key")
    return payload


def read_input_scale(path: str | Path) -> np.ndarray:
    """The input standardisation scale (2,) saved in a run folder's model.pt, float64.

    Converts metrics saved in layer-0 coordinates to the user's input units without
    rebuilding the model (see `riemexp.geometry.input_log_volume_from_metric`).
    """
    path = Path(path)
    state = read_model_file(path)["state_dict"]
    if "input_scale" not in state:
        raise RunFolderError(f"{path / MODEL_FILE} is corrupt: its state_dict has no input_scale")
    return state["input_scale"].detach().double().numpy()


def load_run(path: str | Path, require_completed: bool = True) -> LoadedRun:
    """Read a run folder: the trained model (eval mode), its config, metrics and dataset.

    Raises RunFolderError naming what is missing or corrupt.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunFolderError(f"{path} is not a folder; expected a run folder (the one holding metrics.json)")
    if not path.is_dir():
        raise RunFolderError(f"run folder {path} does not exist")
    metrics = read_metrics(path)
    if require_completed and metrics["status"] != "completed":
        state = lock.describe_state(path, metrics)
        raise RunFolderError(
            f"run folder {path} is not complete: {METRICS_FILE} says status '{metrics['status']}'"
            + (f", {state}" if state.startswith("running") else "")
            + " (expected 'completed')"
        )
    model_file = path / MODEL_FILE
    payload = read_model_file(path)
    try:
        cfg = load_saved_config(payload["config"])
        state = payload["state_dict"]
        n_classes = len(payload["class_names"])
    except RiemexpError as err:
        raise RunFolderError(f"{model_file} holds a config riemexp cannot use: {err}") from None
    except Exception as err:  # a readable file with the wrong contents
        raise RunFolderError(f"{model_file} is corrupt: {safe_reason(err)}") from None
    model = build_network(cfg.network, n_classes)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise RunFolderError(f"{model_file} does not match its config: {err}") from None
    model.eval()
    saved_hash = payload.get("dataset_sha256")
    if saved_hash is not None and saved_hash != fingerprint(cfg.dataset):
        where = source_of(cfg.dataset).where(cfg.dataset)
        raise RunFolderError(
            f"the dataset file {where} has changed since run {path} was trained (its sha256 "
            "differs from the one saved in model.pt); restore the file or train a new run"
        )
    data = make_dataset(cfg.dataset, cfg.data_seed)
    return LoadedRun(path, model, cfg, metrics, data)


__all__ = [
    "LoadedRun",
    "load_run",
    "read_input_scale",
    "read_metrics",
    "read_model_file",
    "save_model",
]
