"""The run folders of an ensemble's members while the ensemble trains (hydra/launcher=ensemble).

A member trained in an ensemble is written into its run folder by `run(cfg, folder,
trained=member)` only once the whole ensemble has trained. Until then `MemberRecords` keeps
each member's folder as a run keeps its own while it trains: the folder is locked
(`riemexp.lock`), an earlier run that did not complete makes way (as in `run`), config.yaml is
written and metrics.json is kept by a `riemexp.lock.Heartbeat`: status "running", phase
"training" with the epochs reached, then phase "trained" while the member waits for its job.

    hand_over(k)   member k's job is about to write it: its heartbeat stops and the lock is let
                   go, and `run` replaces the record with the run's own
    stopped(err)   a stop signal (Ctrl-C, SIGTERM, SIGHUP) or the end of the sweep reached the
                   members first: each member not handed over records it as a stopped run does
                   (`riemexp.runner.record.record_stop`): status "interrupted" with the signal,
                   its phase, the epochs and scores reached, history.csv so far and report.md
                   (a member that had already diverged: "diverged", as its run would say)
    close()        let go of the members not handed over without writing anything

A member whose folder holds a completed run gets no record here: that run stays until the
member's own run has completed (`run` stages it). A folder that cannot be locked or written
gets none either; its job says why when it runs.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import OmegaConf

from riemexp import lock, phases, timing
from riemexp.config import RunConfig, config_to_dict
from riemexp.io import atomic_write_text
from riemexp.layout import CONFIG_FILE, METRICS_FILE
from riemexp.lock import Heartbeat
from riemexp.loggers import RunLoggers
from riemexp.runner.folder import make_way
from riemexp.runner.record import first_record, record_stop, report_stopped
from riemexp.train import TrainResult

if TYPE_CHECKING:
    from riemexp.ensemble import TrainedEnsemble

log = logging.getLogger("riemexp")

#: the phase of a member whose ensemble has trained, waiting for its job to write its folder
TRAINED_PHASE = "trained"


@dataclass
class _Member:
    folder: Path
    record: Heartbeat
    release: contextlib.ExitStack


class MemberRecords:
    """The records of an ensemble's members in their run folders (see the module docstring).

    cfgs and folders: one per member (a folder None: that member gets no record); threads: the
    torch threads the ensemble trains on (recorded as a run records its own); ensemble: the
    `riemexp.ensemble.TrainedEnsemble` that training fills in as it goes (its histories and
    divergences are what `stopped` records).
    """

    def __init__(
        self,
        cfgs: Sequence[RunConfig],
        folders: Sequence[Path | None],
        threads: int,
        ensemble: TrainedEnsemble | None = None,
    ) -> None:
        self.cfgs, self.folders, self.threads = list(cfgs), list(folders), threads
        self.ensemble = ensemble
        self.held: dict[int, _Member] = {}
        self.stopwatch = timing.Stopwatch()
        self.started = time.perf_counter()

    def open(self) -> MemberRecords:
        """Lock each member's folder and write its first record (status "running", phase "training")."""
        for k, (cfg, folder) in enumerate(zip(self.cfgs, self.folders, strict=True)):
            if folder is not None:
                self._open(k, cfg, folder)
        return self

    def _open(self, k: int, cfg: RunConfig, folder: Path) -> None:
        release = contextlib.ExitStack()
        try:
            release.enter_context(lock.hold(folder))
            if make_way(folder):  # a completed run stays until the member's own run has completed
                release.close()
                return
            first = first_record(cfg, self.threads)
            first.update(phase="training", epochs=0, ensemble_members=len(self.cfgs))
            record = Heartbeat(folder / METRICS_FILE, first)
            record.write()  # first: the folder says "running" before anything else
            atomic_write_text(folder / CONFIG_FILE, OmegaConf.to_yaml(config_to_dict(cfg)))
            record.start()
        except Exception as err:  # busy, unwritable: the member's job says so when it runs
            release.close()
            log.warning("no record of ensemble member %s while it trains: %s", folder, err)
            return
        except BaseException:
            release.close()
            raise
        self.held[k] = _Member(folder, record, release)

    def epoch(self, epoch: int, rows: Mapping[int, dict[str, float]]) -> None:
        """`riemexp.ensemble.train_ensemble`'s on_epoch: the epochs each member has reached."""
        for k in rows:
            member = self.held.get(k)
            if member is not None:
                member.record.metrics["epochs"] = epoch  # written with the next heartbeat
        if epoch == 1:
            phases.reached("epoch")

    def trained(self) -> None:
        """The ensemble has trained: each member waits for its job (phase "trained")."""
        for k, member in self.held.items():
            member.record.write(phase=TRAINED_PHASE, epochs=len(self._history(k)))

    def _history(self, k: int) -> list[dict[str, float]]:
        histories = self.ensemble.histories if self.ensemble is not None else []
        return list(histories[k]) if k < len(histories) else []

    def _error(self, k: int) -> BaseException | None:
        errors = self.ensemble.errors if self.ensemble is not None else []
        return errors[k] if k < len(errors) else None

    def hand_over(self, k: int) -> None:
        """Member k's run is about to write its folder: stop its heartbeat, let go of its lock."""
        member = self.held.pop(k, None)
        if member is not None:
            member.record.stop()
            member.release.close()

    def stopped(self, err: BaseException, reason: str | None = None) -> None:
        """Record what stopped the members not handed over (`reason`: an error line to add)."""
        seconds = time.perf_counter() - self.started
        with timing.recording(self.stopwatch):
            for k in list(self.held):
                member = self.held.pop(k)
                try:
                    result = TrainResult(model=None)  # type: ignore[arg-type]
                    result.history = self._history(k)
                    result.seconds = seconds
                    error = self._error(k) or err  # a member that diverged before the stop says so
                    record_stop(error, member.record, result, member.folder)
                    if reason is not None and isinstance(error, KeyboardInterrupt):
                        with contextlib.suppress(OSError):
                            member.record.write(error=reason)
                    report_stopped(member.folder, member.record.metrics, RunLoggers([]), result.history)
                finally:
                    member.record.stop()
                    member.release.close()

    def close(self) -> None:
        """Let go of every member not handed over, writing nothing more."""
        for k in list(self.held):
            self.hand_over(k)

    def __len__(self) -> int:
        return len(self.held)


__all__ = ["TRAINED_PHASE", "MemberRecords"]
