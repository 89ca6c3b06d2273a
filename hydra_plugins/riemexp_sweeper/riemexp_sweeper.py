"""hydra/sweeper=riemexp: launch the jobs that `riemexp sweep` (or `riemexp train -m`) planned.

riemexp expands the grid itself, composes and checks every job, and finds the jobs whose
completed runs already exist (by run identity). This sweeper then hands the launcher
(joblib, submitit, basic, ...) exactly the jobs still to run, read from the sweep's record
(SWEEP_DIR/sweep.yaml, `job_list` entries with `action: run`), each with

    its own overrides                  as Hydra's basic sweeper would have given them
    hydra.sweep.subdir=FOLDER          the job folder, named by the job's run identity
    +hydra.job.env_set.RIEMEXP_JOB_IDENTITY=ID
                                       the identity planned, checked again inside the job

This module is imported by Hydra's plugin scan in every riemexp command: it imports nothing
of riemexp (and no torch), except in a process started to run a sweep's jobs, where it starts
the watchdog (riemexp.sweep.watchdog) before Hydra writes anything into a job folder.
"""

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

IDENTITY_ENV = "RIEMEXP_JOB_IDENTITY"
MAIN_ENV = "RIEMEXP_SWEEP_MAIN"  # riemexp.sweep.watchdog.MAIN_ENV


def _watch_the_sweep() -> None:
    """In a process started to run a riemexp sweep's jobs (Hydra imports this module there before
    it makes any job folder): end now if the sweep has ended, else watch its main process."""
    spec = os.environ.get(MAIN_ENV, "")
    if spec and spec.split(":", 1)[0] != str(os.getpid()):
        from riemexp.sweep import watchdog

        watchdog.check_main_alive()
        watchdog.watch()


_watch_the_sweep()


@dataclass
class RiemexpSweeperConf:
    _target_: str = "hydra_plugins.riemexp_sweeper.riemexp_sweeper.RiemexpSweeper"
    jobs_file: str | None = None  # the sweep's record, written by riemexp before launching


ConfigStore.instance().store(
    group="hydra/sweeper", name="riemexp", node=RiemexpSweeperConf, provider="riemexp"
)


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def planned_jobs(jobs_file: str) -> list[list[str]]:
    """The launch list: each job's overrides, its folder and its planned identity as overrides."""
    record = OmegaConf.to_container(OmegaConf.load(jobs_file), resolve=False)
    if not isinstance(record, dict) or not isinstance(record.get("job_list"), list):
        raise ValueError(f"{jobs_file} has no job_list: not a sweep record riemexp wrote")
    batch = []
    for job in record["job_list"]:
        if job.get("action") != "run":
            continue
        batch.append(
            [
                *[str(o) for o in job["overrides"]],
                f"hydra.sweep.subdir={_quoted(str(job['folder']))}",
                f"+hydra.job.env_set.{IDENTITY_ENV}={_quoted(str(job['identity']))}",
            ]
        )
    return batch


class RiemexpSweeper(Sweeper):
    def __init__(self, jobs_file: str | None = None) -> None:
        super().__init__()
        self.jobs_file = jobs_file
        self.config: DictConfig | None = None
        self.launcher: Launcher | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None
        if not self.jobs_file:
            raise ValueError("hydra/sweeper=riemexp is riemexp's own: run it through `riemexp sweep`")
        batch = planned_jobs(self.jobs_file)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        tmp = sweep_dir / f".multirun.yaml.{os.getpid()}.tmp"  # Hydra's record, written whole
        try:
            OmegaConf.save(self.config, tmp)
            os.replace(tmp, sweep_dir / "multirun.yaml")
        finally:
            tmp.unlink(missing_ok=True)
        if not batch:
            return []
        results: Sequence[JobReturn] = self.launcher.launch(batch, initial_job_idx=0)
        for r in results:
            _ = r.return_value  # a job that raised: Hydra reports it
        return [results]
