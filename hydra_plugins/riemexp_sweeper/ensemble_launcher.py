"""hydra/launcher=ensemble: a sweep's jobs of one shape trained together as batched ensembles.

Hydra's basic launcher runs the jobs one after another in this process; this one first composes
them all, groups those that can share an ensemble (riemexp.sweep.ensemble: same network shape,
optimizer, batch size and data size; seeds, step sizes, learning rates, datasets and epochs may
differ) and trains each group at once, in this process. Then every job runs through Hydra as
under the joblib launcher (its folder, .hydra/, train.log, env_set), on n_jobs worker processes,
and its task writes the trained member into the job folder with the single run's pipeline
(analyses, tables, figures); each member ends bit for bit as the job trained alone. Jobs that
fit no group train alone there, as under the joblib launcher. With n_jobs 1 (or without the
joblib plugin) the launcher trains and writes one group at a time, all in this process, as
Hydra's basic launcher runs jobs.

    hydra.launcher.n_jobs        worker processes for the jobs: -1 one per core (default),
                                 -2 all but one, ...; 1: none, everything in this process
    hydra.launcher.max_members   the largest ensemble (default 256; memory cuts groups further)
    hydra.launcher.min_members   smaller groups train job by job (default 2)

Like every module here, this one imports nothing of riemexp (nor torch) until it launches.
"""

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict, read_write

log = logging.getLogger(__name__)


@dataclass
class EnsembleLauncherConf:
    _target_: str = "hydra_plugins.riemexp_sweeper.ensemble_launcher.EnsembleLauncher"
    n_jobs: int = -1
    max_members: int = 256
    min_members: int = 2


ConfigStore.instance().store(
    group="hydra/launcher", name="ensemble", node=EnsembleLauncherConf, provider="riemexp"
)


def _task_config(sweep_config: DictConfig) -> Any:
    """The job's task config (Hydra's own node removed) as a checked RunConfig; None when refused."""
    from riemexp.commands.hydra_app import to_run_config

    task = copy.deepcopy(sweep_config)  # as Hydra's run_job makes the task's config
    with read_write(task), open_dict(task):
        del task["hydra"]
    try:
        return to_run_config(task)
    except Exception:  # the job itself fails with the message
        return None


class EnsembleLauncher(Launcher):
    def __init__(self, n_jobs: int = -1, max_members: int = 256, min_members: int = 2) -> None:
        super().__init__()
        if int(max_members) < 1 or int(min_members) < 1 or int(n_jobs) == 0:
            raise ValueError(
                "hydra.launcher.max_members and min_members must be >= 1 and n_jobs nonzero, got "
                f"{max_members}, {min_members} and {n_jobs}"
            )
        self.n_jobs = int(n_jobs)
        self.max_members = int(max_members)
        self.min_members = int(min_members)
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from riemexp.commands.hydra_app import launcher_share
        from riemexp.sweep import ensemble
        from riemexp.threads import available_cpus

        setup_globals()
        assert self.hydra_context is not None and self.config is not None and self.task_function is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)

        sweep_configs = []
        for idx, overrides in enumerate(job_overrides):
            sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(sweep_config):
                sweep_config.hydra.job.id = initial_job_idx + idx
                sweep_config.hydra.job.num = initial_job_idx + idx
            sweep_configs.append(sweep_config)
        cfgs = [_task_config(c) for c in sweep_configs]
        datasets = ensemble.datasets_of(cfgs)
        jobs = []
        for idx, (cfg, data) in enumerate(zip(cfgs, datasets)):
            job = ensemble.Job(idx, cfg, data=data)
            if cfg is not None and data is not None:
                try:
                    job.identity = ensemble.identity_of(cfg)
                except Exception:
                    job.cfg = None
            jobs.append(job)
        # each job's CPUs, as the job itself counts them (`threads: auto`, hence its bits, depend on them)
        cpus = launcher_share(self.config.hydra.launcher._target_, self.n_jobs, available_cpus())
        order = ensemble.plan_groups(jobs, self.max_members, self.min_members, cpus)
        sizes = [len(g) for g in order if len(g) > 1]
        log.info(
            f"Launching {len(job_overrides)} jobs locally: {sum(sizes)} in {len(sizes)} ensembles, "
            f"{len(job_overrides) - sum(sizes)} alone"
        )
        workers = _workers(self.n_jobs, available_cpus(), len(job_overrides))
        if workers > 1:
            return self._launch_parallel(job_overrides, initial_job_idx, jobs, order, workers, cpus)
        runs: list[JobReturn | None] = [None] * len(job_overrides)
        for group in order:
            if len(group) > 1:
                ensemble.train_group([jobs[i] for i in group], cpus)
            try:
                for i in group:
                    idx = initial_job_idx + i
                    log.info(f"\t#{idx} : {' '.join(filter_overrides(job_overrides[i]))}")
                    runs[i] = run_job(
                        hydra_context=self.hydra_context,
                        task_function=self.task_function,
                        config=sweep_configs[i],
                        job_dir_key="hydra.sweep.dir",
                        job_subdir_key="hydra.sweep.subdir",
                    )
                    configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
            finally:
                ensemble.forget([jobs[i].identity for i in group])
        return [r for r in runs if r is not None]

    def _launch_parallel(
        self,
        job_overrides: Sequence[Sequence[str]],
        initial_job_idx: int,
        jobs: list[Any],
        order: list[list[int]],
        workers: int,
        cpus: int,
    ) -> Sequence[JobReturn]:
        """Train every group here, leave the members in SWEEP_DIR/.ensemble/, then run all jobs on
        the joblib launcher's workers (each job finds its member there)."""
        import shutil

        from hydra_plugins.hydra_joblib_launcher.config import JobLibLauncherConf
        from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher

        from riemexp.sweep import ensemble

        assert self.hydra_context is not None and self.config is not None and self.task_function is not None
        folder = Path(str(self.config.hydra.sweep.dir)) / ensemble.MEMBERS_DIR
        shutil.rmtree(folder, ignore_errors=True)  # a killed sweep's (the sweep folder is locked)
        folder.mkdir(parents=True)
        try:
            for group in order:
                if len(group) > 1:
                    members = ensemble.train_group([jobs[i] for i in group], cpus, keep=False)
                    for member, i in zip(members, group):
                        ensemble.write_member(folder / f"{jobs[i].identity}.pt", member)
            options = {k: v for k, v in vars(JobLibLauncherConf()).items() if k != "_target_"}
            inner = JoblibLauncher(**{**options, "n_jobs": workers})
            inner.setup(
                hydra_context=self.hydra_context, task_function=self.task_function, config=self.config
            )
            return inner.launch(job_overrides, initial_job_idx)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _workers(n_jobs: int, cpus: int, n_tasks: int) -> int:
    """Worker processes for n_tasks jobs: n_jobs (negative: counted back from the cpus), at most
    one per job; 1 (none: this process) when the joblib plugin is not installed."""
    import importlib.util

    if importlib.util.find_spec("hydra_plugins.hydra_joblib_launcher") is None:
        return 1
    wanted = n_jobs if n_jobs > 0 else max(cpus + 1 + n_jobs, 1)
    return max(1, min(wanted, n_tasks))
