"""One experiment, start to finish, in a run folder: train, then analyse.

`run(cfg, out_dir)` is the core of `riemexp train`; it needs no Hydra. The run folder:

    model.pt        weights, resolved config, class names (torch.save of a dict)
    metrics.json    status ("running", "completed", "diverged", "failed", "interrupted"),
                    accuracies, losses, epochs, train_seconds, seed, versions, analysis figures;
                    pid, host, started, heartbeat (refreshed while running), finished
    history.csv     per-epoch train and test loss and accuracy
    config.yaml     the resolved config (Hydra also keeps its own copy in .hydra/)

plus whatever the analysis steps in `riemexp.analyses.ANALYSES` write (geometry, tables, plots);
names in `riemexp.layout`. One run at a time writes into a folder (`riemexp.lock`); how an earlier
run in the folder is kept or replaced is `riemexp.runner.folder`'s job, what the run records about
itself `riemexp.runner.record`'s.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import OmegaConf

from riemexp import console, lock, memory, phases, signals, timing, verdict
from riemexp.analyses import ANALYSES, RunContext
from riemexp.analyses.snapshot_worker import SnapshotWorker
from riemexp.config import RunConfig, config_to_dict
from riemexp.data.dataset import make_dataset
from riemexp.errors import OutputError
from riemexp.figures import MAX_WORKERS, FigurePool
from riemexp.identity import IDENTITY_KEY
from riemexp.io import atomic_write_text
from riemexp.layout import CONFIG_FILE, METRICS_FILE, PLOTS_DIR, SNAPSHOTS_FILE, UNFINISHED_RERUN_DIR
from riemexp.lock import Heartbeat
from riemexp.loggers import RunLoggers
from riemexp.report import write_run_report
from riemexp.runner import folder
from riemexp.runner.load import save_model
from riemexp.runner.record import (
    final_scores,
    first_record,
    record_stop,
    report_stopped,
    show_summary,
    write_history,
)
from riemexp.threads import run_cpus, run_threads, using_threads
from riemexp.train import TrainResult, train

if TYPE_CHECKING:
    from riemexp.data.dataset import Dataset
    from riemexp.ensemble import MemberResult
    from riemexp.nets.network import LayeredNetwork

log = logging.getLogger("riemexp")


def run(
    cfg: RunConfig,
    out_dir: str | Path,
    cpus: int | None = None,
    loggers: RunLoggers | None = None,
    trained: MemberResult | None = None,
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

    `trained`: the run's training, already done as a member of an ensemble
    (`riemexp.ensemble.split_ensemble`, trained with this very config): the run takes its weights,
    history and scores (or its divergence) instead of training, and does everything else as
    usual, so that its folder is that of the run trained alone (metrics.json adds
    `ensemble_members`, the size of the ensemble, and its `train_seconds` are the ensemble's).
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
            return _run_locked(cfg, out_dir, threads, stopwatch, loggers or RunLoggers([]), cpus, trained)


class _Attempt:
    """One run in a locked folder: where it writes (`work`: the folder, or a staging folder inside
    it when a completed earlier run stays until this one completes), its record and result."""

    def __init__(self, out_dir: Path, staged: bool, metrics: dict[str, Any], loggers: RunLoggers) -> None:
        self.out_dir, self.staged, self.loggers = out_dir, staged, loggers
        self.work = out_dir
        self.record = Heartbeat(out_dir / METRICS_FILE, metrics)
        self.result = TrainResult(model=None)  # type: ignore[arg-type]
        self.reserve: Path | None = None
        self.done = False

    @property
    def metrics(self) -> dict[str, Any]:
        return self.record.metrics

    def begin(self, cfg: RunConfig) -> None:
        """Keep room on the disk, make the staging folder, say "running", write config.yaml."""
        with timing.stage("writing"):
            self.reserve = folder.reserve(self.out_dir)
            if self.staged:  # an earlier run stays in place until this one has completed
                self.work = folder.staging_folder(self.out_dir)
                self.record.path = self.work / METRICS_FILE
            self.record.write()  # first: the folder says "running" before anything else
            atomic_write_text(self.work / CONFIG_FILE, OmegaConf.to_yaml(config_to_dict(cfg)))
        self.record.start()
        info = self.loggers.run_info(
            self.work, config_to_dict(cfg), self.metrics[IDENTITY_KEY], folder=self.out_dir
        )
        self.loggers.start(info)

    def complete(self, stopwatch: timing.Stopwatch) -> None:
        """Every file is written: report.md, the final record, and (staged) the swap into the folder."""
        with timing.stage("writing"):
            write_run_report(self.work, {**self.metrics, "status": "completed"})
        # complete: a signal from here on waits until the run is in its folder
        with signals.deferred(), timing.stage("writing"):
            self.record.stop()
            self.metrics.pop("phase", None)
            # the timings cover the command up to this write
            self.record.write(status="completed", finished=lock.now_iso(), timings=stopwatch.report())
            if self.staged:
                self.loggers.pause()  # their files in the staging folder are about to move
                folder.replace(self.out_dir, self.work)
            self.done = True

    def stopped(self, err: BaseException) -> BaseException:
        """The run did not complete: record why where its record stays; return the error to raise."""
        folder.release(self.reserve)  # room for the record of what stopped the run
        # (a re-run whose staging folder could not even be made records nothing: the folder's
        # metrics.json is the earlier run's)
        recorded = not (self.staged and self.work == self.out_dir)
        error = record_stop(err, self.record, self.result, self.work, write=recorded)
        # a report where the run's record stays (a re-run that did not complete keeps only its
        # metrics.json, history.csv and config.yaml in unfinished-rerun/: no report there)
        where = self.work if recorded and not self.staged else None
        report_stopped(where, self.record.metrics, self.loggers, self.result.history)
        if self.staged and self.work != self.out_dir:
            with signals.deferred():
                folder.keep_attempt(self.work, self.out_dir)
            log.warning(
                "the earlier run in %s is kept as it was; this run's record is in %s/",
                self.out_dir,
                self.out_dir / UNFINISHED_RERUN_DIR,
            )
        return error

    def close(self) -> None:
        self.record.stop()
        folder.release(self.reserve)


def _run_locked(
    cfg: RunConfig,
    out_dir: Path,
    threads: int,
    stopwatch: timing.Stopwatch,
    loggers: RunLoggers,
    cpus: int | None = None,
    trained: MemberResult | None = None,
) -> dict[str, Any]:
    staged = folder.make_way(out_dir)
    attempt = _Attempt(out_dir, staged, first_record(cfg, threads), loggers)
    metrics = attempt.metrics
    try:
        attempt.begin(cfg)
        _train_and_analyse(cfg, attempt.work, attempt.record, attempt.result, loggers, cpus, trained)
        attempt.complete(stopwatch)
    except BaseException as err:
        if attempt.done:  # a signal that waited for the completed run: it stays completed
            loggers.finish(metrics, attempt.result.history, out_dir)
            raise
        error = attempt.stopped(err)
        if error is err:
            raise
        raise error from None
    finally:
        attempt.close()
    loggers.finish(metrics, attempt.result.history, out_dir)
    title = f"{cfg.dataset.name} / {cfg.network.kind} (depth {cfg.network.depth}) -> {out_dir}"
    show_summary(metrics, title, out_dir)
    return metrics


def _phase(record: Heartbeat, name: str) -> None:
    record.write(phase=name)
    phases.reached(name)


def _train_and_analyse(
    cfg: RunConfig,
    work: Path,
    record: Heartbeat,
    result: TrainResult,
    loggers: RunLoggers,
    cpus: int | None = None,
    trained: MemberResult | None = None,
) -> None:
    """Everything a run does, writing into `work`: data, memory checks, training (or the ensemble
    member's, `trained`), saving, analyses."""
    stage = timing.stage
    metrics = record.metrics
    _phase(record, "setup")
    with stage("data"):
        data = make_dataset(cfg.dataset, cfg.data_seed)
        # every stage, with the real number of points (a CSV's is known only now)
        memory.check_stages(cfg, len(data.x), data.n_classes)
    figures = FigurePool(min(MAX_WORKERS, run_cpus(cfg, cpus)))
    # snapshots of the geometry during training (riemexp.analyses.snapshots): they only read the weights
    recorder, replayed = _snapshot_recorder(cfg, data, trained, work, run_cpus(cfg, cpus))
    try:
        model = _train_and_save(cfg, data, work, record, result, loggers, trained, recorder, replayed)
        if isinstance(recorder, SnapshotWorker):
            recorder.hand_figures_to(figures)  # it draws the snapshot figures now, beside the analyses
        # analyses: geometry, ODE, Lie table, figures; each a stage (which may hold stages of its own)
        ctx = RunContext(cfg, work, model, data, metrics, figures)
        if trained is not None and recorder is replayed:  # the member replayed: its precomputed analyses
            ctx.precomputed.update(trained.analyses)
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
        if isinstance(recorder, SnapshotWorker):
            recorder.close()
        raise
    if figures.parallel and figures.seconds:
        metrics["figure_seconds"] = dict(figures.seconds)


def _snapshot_recorder(
    cfg: RunConfig, data: Dataset, trained: MemberResult | None, work: Path, cpus: int
) -> tuple[Any, Any]:
    """(recorder, replayed): what records the run's snapshots (None: nothing), and the ensemble's
    recording where the run replays one (then `recorder is replayed`: nothing is recorded again).

    Beside training where the run may use two CPUs or more and trains on the CPU (a
    `SnapshotWorker`, riemexp.analyses.snapshot_worker, which then draws the snapshot figures
    too), else in the training loop (a `SnapshotRecorder`).
    """
    if trained is not None and trained.snapshots is not None:  # recorded during the ensemble's training
        return trained.snapshots, trained.snapshots
    if not (cfg.geometry.enabled and cfg.geometry.snapshots > 0):
        return None, None
    from riemexp.analyses.snapshots import SnapshotRecorder

    plots = (work / PLOTS_DIR, list(cfg.plot.formats)) if cfg.plot.enabled else None
    return SnapshotWorker.start(cfg, data, cpus, plots) or SnapshotRecorder(cfg, data), None


def _train_and_save(
    cfg: RunConfig,
    data: Dataset,
    work: Path,
    record: Heartbeat,
    result: TrainResult,
    loggers: RunLoggers,
    trained: MemberResult | None,
    recorder: Any,
    replayed: Any,
) -> LayeredNetwork:
    """Train (or replay the ensemble member `trained`), recording snapshots with `recorder`; write
    history.csv, snapshots.npz and model.pt; return the trained model (cpu, eval mode)."""
    stage = timing.stage
    metrics = record.metrics
    # an ensemble's member is replayed (a member trained without the snapshots its run asks for
    # trains alone)
    replaying = trained is not None and recorder is replayed
    if not replaying:
        with stage("imports"):  # torch's optimisers load torch._dynamo when the first one is made
            import torch._dynamo  # noqa: F401

    def snapshot(model: Any, epoch: int) -> None:
        if recorder is not None and recorder is not replayed and epoch in recorder.epochs:
            with stage("snapshots"):
                recorder.record(model, epoch)

    # training, with a progress bar on a terminal
    _phase(record, "training")
    from riemexp.refine import total_epochs

    with stage("training"), console.progress_bar("training", total_epochs(cfg)) as bar:

        def on_epoch(row: dict[str, float]) -> None:
            snapshot(result.model, int(row["epoch"]))
            metrics["epochs"] = int(row["epoch"])  # progress, for the heartbeat
            loggers.epoch(row)
            if row["epoch"] == 1:
                phases.reached("epoch")
            if bar is not None:
                status = f"loss {row['train_loss']:.4f}  acc {row['train_accuracy']:.3f}"
                bar.update(bar.task_ids[0], advance=1, status=status)

        if trained is not None and replaying:  # trained in an ensemble (riemexp.ensemble)
            metrics["ensemble_members"] = trained.members
            trained.replay(cfg, result, on_epoch)
        else:  # (a member trained without the snapshots its config asks for: the run trains alone)
            train(cfg, data, on_epoch=on_epoch, result=result, on_start=lambda model: snapshot(model, 0))
    metrics.update(final_scores(result), device=str(next(result.model.parameters()).device))
    metrics.update(verdict.assess(metrics["test_accuracy"], data.y_test.numpy()))
    if metrics.get("near_chance"):
        log.warning("%s", metrics["warning"])
    if isinstance(recorder, SnapshotWorker):
        with stage("snapshots"):
            recorder.finish()  # the last snapshot, recorded beside the training's end
    if recorder is not None:
        from riemexp.analyses.snapshots import train_seconds_without

        seconds = result.seconds  # an ensemble's member: its training seconds are without snapshots
        if recorder is not replayed:
            seconds = train_seconds_without(recorder, result.seconds, len(result.history))
        metrics.update(train_seconds=round(seconds, 4), snapshot_seconds=round(recorder.seconds, 4))
    _phase(record, "saving")
    with stage("writing"):
        write_history(work, result.history)
        if recorder is not None:
            from riemexp.analyses.snapshots import save_snapshots

            save_snapshots(work / SNAPSHOTS_FILE, recorder.arrays())
        model = result.model.cpu().eval()
        save_model(work, model, cfg, data)

    return model


__all__ = ["run"]
