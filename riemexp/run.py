"""One experiment, start to finish, in a run folder: train, then analyse.

`run(cfg, out_dir)` is the core of `riemexp train`; it needs no Hydra. The run folder:

    model.pt        weights, resolved config, class names (torch.save of a dict)
    metrics.json    status ("running", "completed", "diverged", "failed", "interrupted"),
                    accuracies, losses, epochs, train_seconds, seed, versions, analysis figures;
                    pid, host, started, heartbeat (refreshed while running), finished
    history.csv     per-epoch train and test loss and accuracy
    config.yaml     the resolved config (Hydra also keeps its own copy in .hydra/)

plus whatever the analysis steps in `ANALYSES` write (geometry, tables, plots); names in
`riemexp.layout`. One run at a time writes into a folder (`riemexp.lock`). Training into a
folder that holds a completed run replaces that run only once the new one has completed (it is
built in a hidden staging folder and swapped in); a new run that fails, diverges or is
interrupted leaves the completed run as it was, with its own record in unfinished-rerun/. An
earlier run that did not complete is replaced at once. A folder that holds files by those
names but no riemexp run is refused (OutputError), never emptied. `load_run(path)` reads a
completed run back.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import json
import logging
import os
import platform
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

import riemexp
from riemexp import console, lock, memory, phases, signals, timing
from riemexp.config import RunConfig, config_to_dict, load_config
from riemexp.datasets import Dataset, make_dataset, source_fingerprint
from riemexp.errors import DivergedError, OutputError, RiemexpError, RunFolderError, safe_reason
from riemexp.figures import MAX_WORKERS, FigurePool
from riemexp.identity import IDENTITY_KEY, run_identity
from riemexp.io import atomic_write_bytes, atomic_write_csv, atomic_write_text
from riemexp.layout import (
    CONFIG_FILE,
    HISTORY_FILE,
    HYDRA_DIR,
    HYDRA_NEXT_DIR,
    METRICS_FILE,
    MODEL_FILE,
    REPLACED_PREFIX,
    RESERVE_FILE,
    RUN_ARTIFACTS,
    RUN_FILES,
    STAGING_PREFIX,
    TABLES_DIR,
    UNFINISHED_RERUN_DIR,
)
from riemexp.lock import Heartbeat
from riemexp.loggers import RunLoggers
from riemexp.networks import LayeredNetwork, build_network
from riemexp.report import write_run_report
from riemexp.threads import run_cpus, run_threads, using_threads
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
    #: draws the run's figures, in parallel when the run may use several CPUs (riemexp.figures);
    #: steps submit each figure once its arrays are made, and the run waits for them at the end
    figures: FigurePool = field(default_factory=FigurePool)


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
    buffer = io.BytesIO()  # torch's own file writer hides the OS reason of a failed write
    torch.save(payload, buffer)
    atomic_write_bytes(out_dir / MODEL_FILE, buffer.getvalue())


def _remove_leftovers(out_dir: Path) -> bool:
    """Remove the hidden staging folders of runs that were killed in this folder (the caller holds
    its lock, so no live run owns them). True when a killed run was swapping its files in."""
    swapping = False
    for path in out_dir.iterdir():
        if path.is_dir() and path.name.startswith((STAGING_PREFIX, REPLACED_PREFIX)):
            swapping |= path.name.startswith(REPLACED_PREFIX)
            shutil.rmtree(path, ignore_errors=True)
    return swapping


def _check_run_folder(out_dir: Path, swapping: bool = False) -> str | None:
    """The status of the earlier run in out_dir (its readable metrics.json), or None for a fresh
    folder. `swapping`: a killed run was moving its files in; the folder is a run folder ("failed").

    Refuses (OutputError) a folder that holds files by riemexp's names but no riemexp run: they
    are not ours.
    """
    try:
        return str(read_metrics(out_dir)["status"])
    except RunFolderError:
        pass
    found = [name for name in RUN_ARTIFACTS if (out_dir / name).exists() or (out_dir / name).is_symlink()]
    if not found:
        return None
    if swapping:
        return "failed"
    raise OutputError(
        f"{out_dir} holds {', '.join(found)} but no riemexp run ({METRICS_FILE}); a run would "
        "overwrite them: choose another folder (hydra.run.dir=...) or move them away"
    )


def _replace(out_dir: Path, work: Path | None) -> None:
    """Move the earlier run's files out of out_dir and, when `work` is given, the new run's in.

    The earlier run's metrics.json leaves first and the new one arrives last, so that no
    metrics.json ever stands over a mix of two runs. Hydra's record of the new run, written
    aside into .hydra-next/ by `riemexp train`, replaces .hydra/ with it. When a move fails (a
    read-only plots/, ...) every move is undone and OSError names the file: the earlier run
    stays as it was.
    """
    trash = Path(tempfile.mkdtemp(prefix=REPLACED_PREFIX, dir=out_dir))
    hydra_next = work is not None and (out_dir / HYDRA_NEXT_DIR).is_dir()
    outgoing = [METRICS_FILE, *RUN_FILES, *([HYDRA_DIR] if hydra_next else [])]
    present = [n for n in outgoing if (out_dir / n).exists() or (out_dir / n).is_symlink()]
    moves = [(out_dir / n, trash / n) for n in present]
    if work is not None:
        moves += [(work / n, out_dir / n) for n in RUN_FILES if (work / n).exists()]
        if hydra_next:
            moves.append((out_dir / HYDRA_NEXT_DIR, out_dir / HYDRA_DIR))
        moves.append((work / METRICS_FILE, out_dir / METRICS_FILE))
    done: list[tuple[Path, Path]] = []
    try:
        for src, dst in moves:
            _move(src, dst)
            done.append((src, dst))
    except OSError:
        for src, dst in reversed(done):
            with contextlib.suppress(OSError):
                os.rename(dst, src)
        shutil.rmtree(trash, ignore_errors=True)
        raise
    shutil.rmtree(trash, ignore_errors=True)
    if work is not None:
        shutil.rmtree(work, ignore_errors=True)


def _move(src: Path, dst: Path) -> None:
    try:
        os.rename(src, dst)
    except OSError as err:
        raise OSError(err.errno, err.strerror, str(src)) from None


def _keep_attempt(work: Path, out_dir: Path) -> None:
    """A re-run that did not complete: keep its record (metrics.json, history.csv, config.yaml and
    Hydra's .hydra/) as out_dir/unfinished-rerun/, drop the rest of its staging folder; the
    earlier run is untouched."""
    keep = out_dir / UNFINISHED_RERUN_DIR
    try:
        for path in work.iterdir():
            if path.name in (METRICS_FILE, HISTORY_FILE, CONFIG_FILE):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        if not (work / METRICS_FILE).is_file():
            raise FileNotFoundError(str(work / METRICS_FILE))
        if (out_dir / HYDRA_NEXT_DIR).is_dir():  # Hydra's record of this attempt goes with it
            os.rename(out_dir / HYDRA_NEXT_DIR, work / HYDRA_DIR)
        if keep.is_dir() and not keep.is_symlink():
            shutil.rmtree(keep)
        os.rename(work, keep)
    except OSError:
        shutil.rmtree(work, ignore_errors=True)


def _record_stop(
    err: BaseException, record: Heartbeat, result: TrainResult, work: Path, write: bool = True
) -> BaseException:
    """Write what stopped the run into its metrics.json (and the history so far); best effort.

    Returns the error to raise: an OSError becomes an OutputError naming the file.
    """
    if isinstance(err, OSError):
        err = OutputError.from_os_error(err)
    if isinstance(err, DivergedError):
        update: dict[str, Any] = {**_final_scores(result), "status": "diverged", "error": str(err)}
    elif isinstance(err, KeyboardInterrupt):
        update = {**_final_scores(result), "status": "interrupted", "signal": signals.signal_name(err)}
    elif isinstance(err, RiemexpError):
        update = {"status": "failed", "error": str(err)}
    else:  # a bug: either way the run did not complete
        update = {"status": "failed", "error": repr(err)}
    update["finished"] = lock.now_iso()
    stopwatch = timing.current()
    if stopwatch is not None:
        update["timings"] = stopwatch.report()
    record.stop()
    if not write:
        return err
    with signals.deferred(), contextlib.suppress(Exception):
        if result.history:
            _write_history(work, result.history)
    with signals.deferred(), contextlib.suppress(Exception):
        record.write(**update)
        err.recorded_in = record.path  # type: ignore[attr-defined]
    return err


def recorded_in(err: BaseException) -> Path | None:
    """The metrics.json where `run` recorded the error it raised (None: it recorded nothing, e.g.
    the folder could not be written); callers that record failures themselves check this first."""
    return getattr(err, "recorded_in", None)


def run(
    cfg: RunConfig, out_dir: str | Path, cpus: int | None = None, loggers: RunLoggers | None = None
) -> dict[str, Any]:
    """Train the network of `cfg`, save it, run the analyses; return the final metrics.

    Torch runs on `cfg.threads` threads (`riemexp.threads`: `auto` on `cpus` CPUs, default all
    this process may use). metrics.json's `timings` give the seconds of every stage
    (`riemexp.timing`; the command's stopwatch when one is recording, else the run's own).

    Raises DivergedError (metrics.json says "diverged"), re-raises KeyboardInterrupt and
    `riemexp.signals.Interrupted` (metrics.json says "interrupted", with the signal), raises
    OutputError naming a file that could not be written (status "failed"); a run folder is
    "completed" only when every file has been written.

    The folder is locked for the run (`riemexp.lock`; FolderBusyError when another live run
    holds it). A folder that already holds a completed run keeps it until the new run has
    completed: the new run is built in a hidden staging folder inside it and swapped in at the
    end; a new run that does not complete leaves the earlier run as it was and its own record
    in unfinished-rerun/.

    `loggers` (`riemexp.loggers`: TensorBoard, MLflow) get each epoch as it comes and the run
    once it has stopped, completed or not; a failing logger is dropped with a warning and
    never fails the run.
    """
    out_dir = Path(out_dir)
    stopwatch = timing.current() or timing.Stopwatch()
    with timing.recording(stopwatch):
        threads = run_threads(cfg, share=cpus)
        with timing.stage("writing"):
            try:
                out_dir.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise OutputError.from_os_error(err) from None
        with lock.hold(out_dir), using_threads(threads):
            return _run_locked(cfg, out_dir, threads, stopwatch, loggers or RunLoggers([]), cpus)


def _phase(record: Heartbeat, name: str) -> None:
    record.write(phase=name)
    phases.reached(name)


#: room kept on the run folder's disk while a run works, given back to write its final record
RESERVE_BYTES = 64 * 1024


def _reserve(out_dir: Path) -> Path:
    """A hidden file of RESERVE_BYTES in out_dir, so that a run stopped by a full disk can still
    say so in its metrics.json (the file is removed just before that write, and at the end)."""
    path = out_dir / RESERVE_FILE
    try:
        with open(path, "wb") as f:
            f.write(bytes(RESERVE_BYTES))
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        with contextlib.suppress(OSError):
            path.unlink()
        reason = err.strerror or str(err)
        raise OutputError(f"cannot write {out_dir}: {reason} (a run needs room there)") from None
    return path


def _release(reserve: Path | None) -> None:
    if reserve is not None:
        with contextlib.suppress(OSError):
            reserve.unlink()


def _run_locked(
    cfg: RunConfig,
    out_dir: Path,
    threads: int,
    stopwatch: timing.Stopwatch,
    loggers: RunLoggers,
    cpus: int | None = None,
) -> dict[str, Any]:
    with timing.stage("writing"):
        earlier = _check_run_folder(out_dir, _remove_leftovers(out_dir))
    # a completed earlier run stays until this one has completed; one that did not complete
    # (failed, diverged, interrupted, killed) has no results to keep and makes way now
    staged = earlier == "completed"
    if earlier is not None and not staged:
        try:
            with signals.deferred(), timing.stage("writing"):
                _replace(out_dir, None)
        except OSError as err:
            raise OutputError.from_os_error(err) from None
    started = lock.now_iso()
    metrics: dict[str, Any] = {
        "status": "running",
        "dataset": cfg.dataset.name,
        "network": cfg.network.kind.value,
        "seed": cfg.seed,
        IDENTITY_KEY: run_identity(cfg, source_fingerprint(cfg.dataset)),
        **versions(),
        "pid": os.getpid(),
        "host": lock.host_name(),
        "started": started,
        "heartbeat": started,
        "threads": threads,
    }
    work = out_dir
    record = Heartbeat(out_dir / METRICS_FILE, metrics)
    result = TrainResult(model=None)  # type: ignore[arg-type]
    done = False
    reserve = None
    try:
        with timing.stage("writing"):
            reserve = _reserve(out_dir)
            if staged:  # an earlier run stays in place until this one has completed
                work = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out_dir))
                record.path = work / METRICS_FILE
            record.write()  # first: the folder says "running" before anything else
            atomic_write_text(work / CONFIG_FILE, OmegaConf.to_yaml(config_to_dict(cfg)))
        record.start()
        loggers.start(loggers.run_info(work, config_to_dict(cfg), metrics[IDENTITY_KEY], folder=out_dir))
        _train_and_analyse(cfg, work, record, result, loggers, cpus)
        with timing.stage("writing"):
            write_run_report(work, {**metrics, "status": "completed"})
        # complete: a signal from here on waits until the run is in its folder
        with signals.deferred(), timing.stage("writing"):
            record.stop()
            metrics.pop("phase", None)
            # the timings cover the command up to this write
            record.write(status="completed", finished=lock.now_iso(), timings=stopwatch.report())
            if staged:
                loggers.pause()  # their files in the staging folder are about to move
                _replace(out_dir, work)
            done = True
    except BaseException as err:
        if done:  # a signal that waited for the completed run: it stays completed
            loggers.finish(metrics, result.history, out_dir)
            raise
        _release(reserve)  # room for the record of what stopped the run
        # (a re-run whose staging folder could not even be made records nothing: the folder's
        # metrics.json is the earlier run's)
        recorded = not (staged and work == out_dir)
        error = _record_stop(err, record, result, work, write=recorded)
        # a report where the run's record stays (a re-run that did not complete keeps only its
        # metrics.json, history.csv and config.yaml in unfinished-rerun/: no report there)
        _stopped(work if recorded and not staged else None, record.metrics, loggers, result.history)
        if staged and work != out_dir:
            with signals.deferred():
                _keep_attempt(work, out_dir)
            log.warning(
                "the earlier run in %s is kept as it was; this run's record is in %s/",
                out_dir,
                out_dir / UNFINISHED_RERUN_DIR,
            )
        if error is err:
            raise
        raise error from None
    finally:
        record.stop()
        _release(reserve)
    loggers.finish(metrics, result.history, out_dir)
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


def _train_and_analyse(
    cfg: RunConfig,
    work: Path,
    record: Heartbeat,
    result: TrainResult,
    loggers: RunLoggers,
    cpus: int | None = None,
) -> None:
    """Everything a run does, writing into `work`: data, memory checks, training, saving, analyses."""
    stage = timing.stage
    metrics = record.metrics
    _phase(record, "setup")
    with stage("data"):
        data = make_dataset(cfg.dataset, cfg.data_seed)
        # every stage, with the real number of points (a CSV's is known only now)
        memory.check_stages(cfg, len(data.x), data.n_classes)
    with stage("imports"):  # torch's optimisers load torch._dynamo when the first one is made
        import torch._dynamo  # noqa: F401
    # training, with a progress bar on a terminal
    _phase(record, "training")
    with stage("training"), console.progress_bar("training", cfg.optim.epochs) as bar:

        def on_epoch(row: dict[str, float]) -> None:
            metrics["epochs"] = int(row["epoch"])  # progress, for the heartbeat
            loggers.epoch(row)
            if row["epoch"] == 1:
                phases.reached("epoch")
            if bar is not None:
                status = f"loss {row['train_loss']:.4f}  acc {row['train_accuracy']:.3f}"
                bar.update(bar.task_ids[0], advance=1, status=status)

        train(cfg, data, on_epoch=on_epoch, result=result)
    metrics.update(_final_scores(result), device=str(next(result.model.parameters()).device))
    _phase(record, "saving")
    with stage("writing"):
        _write_history(work, result.history)
        model = result.model.cpu().eval()
        save_model(work, model, cfg, data)

    # analyses: geometry, tables, figures; each a stage (which may hold stages of its own)
    figures = FigurePool(min(MAX_WORKERS, run_cpus(cfg, cpus)))
    ctx = RunContext(cfg, work, model, data, metrics, figures)
    try:
        for name, target, enabled in ANALYSES:
            if enabled(cfg):
                module, function = target.split(":")
                log.info("analysis: %s", name)
                _phase(record, name)
                with stage("imports"):
                    step = getattr(importlib.import_module(module), function)
                with stage(name):
                    step(ctx)
        figures.wait()  # figures drawn in parallel: every file is written before the run completes
    except BaseException:
        figures.close()
        raise
    if figures.parallel and figures.seconds:
        metrics["figure_seconds"] = dict(figures.seconds)


def _stopped(
    work: Path | None, metrics: dict[str, Any], loggers: RunLoggers, history: list[dict[str, float]]
) -> None:
    """A run that did not complete: its report.md in `work` (where its record is; None: nowhere),
    best effort (the run's own error comes first), then its loggers."""
    if work is not None and (work / METRICS_FILE).is_file():
        try:
            write_run_report(work, metrics)
        except Exception as err:
            log.warning("could not write %s: %s", work / "report.md", err)
    loggers.finish(metrics, history)


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
    """A completed run read back from its folder.

    model, config, metrics and data are read at once; the run's arrays and tables when first
    used: `geometry` (geometry.npz: per-layer coordinates and metric tensors, see
    `riemexp.geometry.GEOMETRY_ARRAYS`), `history` (history.csv as records), `tables`
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
        from riemexp.geometry import load_geometry

        return load_geometry(self.path)

    @functools.cached_property
    def history(self) -> list[dict[str, Any]]:
        """history.csv: one record per epoch (epoch, train_loss, train_accuracy, test_loss, test_accuracy)."""
        from riemexp.notebook import read_records

        return read_records(self.path / HISTORY_FILE)

    @functools.cached_property
    def tables(self) -> dict[str, list[dict[str, Any]]]:
        """Every table of tables/ as records, by name ({} when the run wrote none)."""
        from riemexp.notebook import read_records

        folder = self.path / TABLES_DIR
        return {p.stem: read_records(p) for p in sorted(folder.glob("*.csv"))} if folder.is_dir() else {}

    def table(self, name: str, as_frame: bool | None = None) -> Any:
        """One table: a pandas DataFrame (pandas installed, or as_frame=True) or records."""
        from riemexp.notebook import to_frame

        if name not in self.tables:
            raise RunFolderError(
                f"run {self.path} has no table '{name}'; it has: {', '.join(self.tables) or 'none'}"
            )
        return to_frame(self.tables[name], as_frame)


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
        state = lock.describe_state(path, metrics)
        raise RunFolderError(
            f"run folder {path} is not complete: {METRICS_FILE} says status '{metrics['status']}'"
            + (f", {state}" if state.startswith("running") else "")
            + " (expected 'completed')"
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
