"""One experiment, start to finish, in a run folder: train, then analyse.

`run(cfg, out_dir)` is the core of `riemexp train`; it needs no Hydra. The run folder:

    model.pt        weights, resolved config, class names (torch.save of a dict)
    metrics.json    status ("running", "completed", "diverged", "interrupted"), accuracies,
                    losses, epochs, train_seconds, seed, versions, and analysis figures
    history.csv     per-epoch train and test loss and accuracy
    config.yaml     the resolved config (Hydra also keeps its own copy in .hydra/)

plus whatever the analysis steps in `ANALYSES` write (geometry, tables, plots); names in
`riemexp.layout`. Training into a folder that holds an earlier run replaces that run: its
files are removed before training starts. A folder that holds files by those names but no
riemexp run is refused (OutputError), never emptied.
`load_run(path)` reads a completed run back.
"""

from __future__ import annotations

import importlib
import json
import logging
import platform
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

import riemexp
from riemexp import console
from riemexp.config import RunConfig, config_to_dict, load_config
from riemexp.datasets import Dataset, make_dataset, source_fingerprint
from riemexp.errors import DivergedError, OutputError, RiemexpError, RunFolderError, safe_reason
from riemexp.geometry import check_memory
from riemexp.identity import IDENTITY_KEY, run_identity
from riemexp.io import atomic_save, atomic_write_csv, atomic_write_json, atomic_write_text
from riemexp.layout import CONFIG_FILE, HISTORY_FILE, METRICS_FILE, MODEL_FILE, RUN_ARTIFACTS
from riemexp.networks import LayeredNetwork, build_network
from riemexp.train import HISTORY_COLUMNS, TrainResult, train

log = logging.getLogger("riemexp")


@dataclass
class RunContext:
    """What an analysis step gets: the trained model (cpu, eval mode) and its run folder.

    Steps write their own files into `out_dir` and add scalars to `metrics`.
    """

    cfg: RunConfig
    out_dir: Path
    model: LayeredNetwork
    data: Dataset
    metrics: dict[str, Any]


#: Analysis steps run after training, in order: (name, "module:function", enabled(cfg)).
ANALYSES: list[tuple[str, str, Callable[[RunConfig], bool]]] = [
    ("geometry", "riemexp.geometry:geometry_step", lambda cfg: cfg.geometry.enabled),
    ("ode", "riemexp.ode:ode_step", lambda cfg: cfg.ode.enabled),
    ("plots", "riemexp.plotting:plots_step", lambda cfg: cfg.plot.enabled),
]


def versions() -> dict[str, str]:
    return {
        "python_version": platform.python_version(),
        "torch_version": torch.__version__,
        "riemexp_version": riemexp.__version__,
    }


def _write_metrics(out_dir: Path, metrics: dict[str, Any]) -> None:
    atomic_write_json(out_dir / METRICS_FILE, metrics)


def _write_history(out_dir: Path, history: list[dict[str, float]]) -> None:
    atomic_write_csv(out_dir / HISTORY_FILE, history, HISTORY_COLUMNS)


def _final_scores(result: TrainResult) -> dict[str, Any]:
    """Scores of the trained model; of the last epoch's history row when training stopped early."""
    last = result.final or (result.history[-1] if result.history else {})
    return {
        "train_accuracy": last.get("train_accuracy"),
        "test_accuracy": last.get("test_accuracy"),
        "train_loss": last.get("train_loss"),
        "test_loss": last.get("test_loss"),
        "epochs": len(result.history),
        "train_seconds": round(result.seconds, 4),
    }


def save_model(out_dir: Path, model: LayeredNetwork, cfg: RunConfig, data: Dataset) -> None:
    dataset_sha256 = source_fingerprint(cfg.dataset)
    payload = {
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": config_to_dict(cfg),
        "class_names": list(data.class_names),
        "dataset_sha256": dataset_sha256,
        IDENTITY_KEY: run_identity(cfg, dataset_sha256),
        "riemexp_version": riemexp.__version__,
    }
    atomic_save(out_dir / MODEL_FILE, lambda tmp: torch.save(payload, tmp))


def _check_run_folder(out_dir: Path) -> None:
    """Refuse a folder that holds files by riemexp's names but no riemexp run (they are not ours).

    A folder with an earlier run (a readable metrics.json) is replaced by the new run.
    """
    found = [name for name in RUN_ARTIFACTS if (out_dir / name).exists() or (out_dir / name).is_symlink()]
    if not found:
        return
    try:
        read_metrics(out_dir)
    except RunFolderError:
        raise OutputError(
            f"{out_dir} holds {', '.join(found)} but no riemexp run ({METRICS_FILE}); a run would "
            "overwrite them: choose another folder (hydra.run.dir=...) or move them away"
        ) from None


def _remove_earlier_artifacts(out_dir: Path) -> None:
    """Remove what an earlier run into the same folder wrote (RUN_ARTIFACTS), and only that."""
    for name in RUN_ARTIFACTS:
        path = out_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def run(cfg: RunConfig, out_dir: str | Path) -> dict[str, Any]:
    """Train the network of `cfg`, save it, run the analyses; return the final metrics.

    Raises DivergedError (metrics.json says "diverged") and re-raises KeyboardInterrupt
    (metrics.json says "interrupted"); a run folder is "completed" only when every file
    has been written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_run_folder(out_dir)
    metrics: dict[str, Any] = {
        "status": "running",
        "dataset": cfg.dataset.name,
        "network": cfg.network.kind.value,
        "seed": cfg.seed,
        IDENTITY_KEY: run_identity(cfg, source_fingerprint(cfg.dataset)),
        **versions(),
    }
    _write_metrics(out_dir, metrics)  # first: the folder says "running" before anything else
    _remove_earlier_artifacts(out_dir)
    atomic_write_text(out_dir / CONFIG_FILE, OmegaConf.to_yaml(config_to_dict(cfg)))
    # training, with a progress bar on a terminal
    result = TrainResult(model=None)  # type: ignore[arg-type]
    try:
        data = make_dataset(cfg.dataset, cfg.data_seed)
        if cfg.geometry.enabled:  # with the real number of points (a CSV's is known only now)
            check_memory(
                cfg.geometry,
                len(data.x),
                cfg.network.depth,
                cfg.network.width,
                data.n_classes,
                cfg.network.kind.value,
            )
        with console.progress_bar("training", cfg.optim.epochs) as bar:

            def on_epoch(row: dict[str, float]) -> None:
                if bar is not None:
                    status = f"loss {row['train_loss']:.4f}  acc {row['train_accuracy']:.3f}"
                    bar.update(bar.task_ids[0], advance=1, status=status)

            train(cfg, data, on_epoch=on_epoch, result=result)
        metrics.update(_final_scores(result), device=str(next(result.model.parameters()).device))
        _write_history(out_dir, result.history)
        model = result.model.cpu().eval()
        save_model(out_dir, model, cfg, data)

        # analyses: geometry, tables, figures
        ctx = RunContext(cfg, out_dir, model, data, metrics)
        for name, target, enabled in ANALYSES:
            if enabled(cfg):
                module, function = target.split(":")
                log.info("analysis: %s", name)
                getattr(importlib.import_module(module), function)(ctx)
    except DivergedError as err:
        metrics.update(_final_scores(result), status="diverged", error=str(err))
        _write_history(out_dir, result.history)
        _write_metrics(out_dir, metrics)
        raise
    except KeyboardInterrupt:
        metrics.update(_final_scores(result), status="interrupted")
        _write_history(out_dir, result.history)
        _write_metrics(out_dir, metrics)
        raise
    except Exception as err:  # a RiemexpError, or a bug: either way the run did not complete
        metrics.update(status="failed", error=str(err) if isinstance(err, RiemexpError) else repr(err))
        _write_metrics(out_dir, metrics)
        raise
    metrics["status"] = "completed"
    _write_metrics(out_dir, metrics)
    log.info(
        "completed: train accuracy %.4f, test accuracy %.4f, %d epochs in %.2f s -> %s",
        metrics["train_accuracy"],
        metrics["test_accuracy"],
        metrics["epochs"],
        metrics["train_seconds"],
        out_dir,
    )
    console.show_table(
        f"{cfg.dataset.name} / {cfg.network.kind.value} (depth {cfg.network.depth}) -> {out_dir}",
        ["summary", "value"],
        [[label, metrics[key]] for key, label in SUMMARY_ROWS if metrics.get(key) is not None],
    )
    return metrics


#: metrics shown in the terminal summary of a run: (key, label)
SUMMARY_ROWS = (
    ("train_accuracy", "train accuracy"),
    ("test_accuracy", "test accuracy"),
    ("train_loss", "train loss"),
    ("test_loss", "test loss"),
    ("train_seconds", "training seconds"),
    ("input_log_volume_median", "input log volume element (median)"),
    ("input_anisotropy_median", "input anisotropy (median)"),
    ("ode_gap", "ODE gap (k=1 error / spread)"),
    ("ode_order", "refinement order"),
)


@dataclass
class LoadedRun:
    """A completed run read back from its folder."""

    path: Path
    model: LayeredNetwork  # cpu, eval mode
    config: RunConfig
    metrics: dict[str, Any]
    data: Dataset  # regenerated from the saved config's seed


def read_metrics(path: Path) -> dict[str, Any]:
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
        raise RunFolderError(
            f"run folder {path} is not complete: {METRICS_FILE} says status '{metrics['status']}'"
            " (expected 'completed')"
        )
    model_file = path / MODEL_FILE
    payload = read_model_file(path)
    try:
        cfg = load_config(payload["config"])
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
    if saved_hash is not None and saved_hash != source_fingerprint(cfg.dataset):
        raise RunFolderError(
            f"the dataset file {cfg.dataset.path} has changed since run {path} was trained (its sha256 "
            "differs from the one saved in model.pt); restore the file or train a new run"
        )
    data = make_dataset(cfg.dataset, cfg.data_seed)
    return LoadedRun(path, model, cfg, metrics, data)


__all__ = ["ANALYSES", "LoadedRun", "RunContext", "load_run", "read_input_scale", "run"]
