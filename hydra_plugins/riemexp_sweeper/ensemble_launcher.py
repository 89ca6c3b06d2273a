"""hydra/launcher=ensemble: a sweep's jobs of one shape trained together as batched ensembles.

riemexp's sweep planner records, for every job, what it must share with others to be trained
together (its `batch` in SWEEP_DIR/sweep.yaml: network kind, width, depth and activation,
optimizer, batch size, dataset size, device; riemexp.sweep.ensemble.batch_key). This launcher
cuts the jobs into units: the jobs of one batch key (at most max_members), or one job alone.
Each unit runs in a worker process (joblib's loky workers, one per core: n_jobs) or, with
n_jobs 1 or without the joblib plugin, in this process:

    compose the unit's jobs as Hydra does, check on their data that they can share an ensemble
    (riemexp.sweep.ensemble.plan_groups), train each group at once (its members' records in
    their job folders: "running" while it trains, "interrupted" when a stop signal ends it),
    then run every job through Hydra as any launcher does (its folder, .hydra/, train.log,
    env_set): its task finds its trained member and writes it into the job folder with the
    single run's pipeline.

Every member ends bit for bit as the job trained alone; a job in no group trains alone. Units
run costliest first (the sum of their jobs' network depths); when there are fewer units than
workers, the largest ensembles are halved so that every core has work.

    hydra.launcher.n_jobs        worker processes: -1 one per core (default), -2 all but one,
                                 ...; 1: everything in this process
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
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

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


def run_unit(
    positions: Sequence[int],
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int,
    hydra_context: HydraContext,
    config: DictConfig,
    task_function: TaskFunction,
    singleton_state: dict[Any, Any] | None,
    max_members: int,
    min_members: int,
    cpus: int,
) -> list[tuple[int, JobReturn]]:
    """Run the jobs at `positions` of the batch (one unit), here: compose them, train those that
    can share an ensemble together, then run each through Hydra. Returns (position, JobReturn)."""
    from riemexp.sweep import ensemble

    setup_globals()
    if singleton_state is not None:  # in a worker process: Hydra's state as in the main process
        Singleton.set_state(singleton_state)
    sweep_configs = {}
    for i in positions:
        sweep_config = hydra_context.config_loader.load_sweep_config(config, list(job_overrides[i]))
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{initial_job_idx + i}"
            sweep_config.hydra.job.num = initial_job_idx + i
        sweep_configs[i] = sweep_config
    order: list[list[int]] = [[i] for i in positions]
    jobs = {}
    if len(positions) > 1:
        cfgs = [_task_config(sweep_configs[i]) for i in positions]
        datasets = ensemble.datasets_of(cfgs)
        for i, cfg, data in zip(positions, cfgs, datasets):
            job = ensemble.Job(i, cfg, data=data)
            if cfg is not None and data is not None:
                try:
                    job.identity = ensemble.identity_of(cfg)
                except Exception:  # an unreadable data file: the job says so, alone
                    job.cfg = None
            jobs[i] = job
        order = ensemble.plan_groups(list(jobs.values()), max_members, min_members, cpus)
    done = []
    for group in order:
        identities = [jobs[i].identity for i in group if i in jobs]
        try:
            if len(group) > 1:
                for i in group:
                    jobs[i].folder = _job_folder(sweep_configs[i])
                ensemble.train_group([jobs[i] for i in group], cpus)
            for i in group:
                log.info(f"\t#{initial_job_idx + i} : {' '.join(filter_overrides(job_overrides[i]))}")
                HydraConfig.instance().set_config(sweep_configs[i])
                ret = run_job(
                    hydra_context=hydra_context,
                    task_function=task_function,
                    config=sweep_configs[i],
                    job_dir_key="hydra.sweep.dir",
                    job_subdir_key="hydra.sweep.subdir",
                )
                done.append((i, ret))
                configure_log(config.hydra.hydra_logging, config.hydra.verbose)
        except BaseException as err:  # a stop signal: the members not yet written record it
            ensemble.forget(identities, stopped=err)
            raise
        ensemble.forget(identities)
    return done


def _job_folder(sweep_config: DictConfig) -> Path | None:
    """The folder Hydra's run_job makes for the job (hydra.sweep.dir / hydra.sweep.subdir, absolute);
    None when it cannot be told here (the job then has no record while its ensemble trains)."""
    import os

    try:
        HydraConfig.instance().set_config(sweep_config)
        parent = OmegaConf.select(sweep_config, "hydra.sweep.dir")
        subdir = OmegaConf.select(sweep_config, "hydra.sweep.subdir")
        if parent is None or subdir is None:
            return None
        return Path(os.path.abspath(os.path.join(str(parent), str(subdir))))
    except Exception:
        return None


def _planned_batches(config: DictConfig) -> dict[str, str | None]:
    """{job folder: batch key} from the sweep's record (riemexp's sweeper writes it); {} without one."""
    jobs_file = OmegaConf.select(config, "hydra.sweeper.jobs_file", default=None)
    if not jobs_file:
        return {}
    try:
        record: Any = OmegaConf.to_container(OmegaConf.load(str(jobs_file)), resolve=False)
        return {str(j["folder"]): j.get("batch") for j in record["job_list"]}
    except Exception:  # no usable record: every job alone
        return {}


def _subdir(overrides: Sequence[str]) -> str | None:
    """The job folder a job's overrides name (hydra.sweep.subdir=...), unquoted."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    for text in reversed(list(overrides)):
        if text.startswith("hydra.sweep.subdir="):
            try:
                return str(OverridesParser.create().parse_override(text).value())
            except Exception:
                return None
    return None


def plan_units(
    job_overrides: Sequence[Sequence[str]],
    batches: dict[str, str | None],
    max_members: int,
    min_members: int,
    workers: int,
) -> list[list[int]]:
    """The batch's job positions cut into units (see the module docstring), costliest first: a unit's
    cost is the sum of its jobs' depths (`riemexp.sweep.ensemble.job_cost`; a job whose key does
    not say counts as the deepest job), so that the longest units do not start last."""
    from riemexp.sweep.ensemble import job_cost

    by_batch: dict[str, list[int]] = {}
    units = []
    costs: dict[int, float | None] = {}
    for i, overrides in enumerate(job_overrides):
        batch = batches.get(_subdir(overrides) or "")
        costs[i] = job_cost(batch)
        if batch is None:
            units.append([i])
        else:
            by_batch.setdefault(batch, []).append(i)
    for members in by_batch.values():
        for k in range(0, len(members), max_members):
            piece = members[k : k + max_members]
            units += [piece] if len(piece) >= min_members else [[i] for i in piece]
    while len(units) < workers:  # fewer units than cores: halve the largest ensemble
        largest = max(units, key=len)
        if len(largest) < 2 * max(min_members, 1):
            break
        units.remove(largest)
        half = (len(largest) + 1) // 2
        units += [largest[:half], largest[half:]]
    known = [c for c in costs.values() if c is not None]
    unknown = max(known, default=1.0)
    return sorted(
        units, key=lambda unit: sum(c if (c := costs[i]) is not None else unknown for i in unit), reverse=True
    )


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
        from riemexp.threads import available_cpus

        setup_globals()
        assert self.hydra_context is not None and self.config is not None and self.task_function is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        workers = _workers(self.n_jobs, available_cpus(), len(job_overrides))
        units = plan_units(
            job_overrides, _planned_batches(self.config), self.max_members, self.min_members, workers
        )
        workers = min(workers, len(units))  # one unit: no worker to start
        grouped = [u for u in units if len(u) > 1]
        log.info(
            f"Launching {len(job_overrides)} jobs on {workers} {'workers' if workers > 1 else 'process'}: "
            f"{sum(map(len, grouped))} in {len(grouped)} ensembles, "
            f"{len(job_overrides) - sum(map(len, grouped))} alone"
        )
        # each job's CPUs, as the job itself counts them (`threads: auto`, hence its bits, depend on them)
        cpus = launcher_share(str(self.config.hydra.launcher._target_), self.n_jobs, available_cpus())
        common = (
            job_overrides,
            initial_job_idx,
            self.hydra_context,
            self.config,
            self.task_function,
        )
        sizes = (self.max_members, self.min_members, cpus)
        if workers > 1:
            from joblib import Parallel, delayed

            state = Singleton.get_state()
            results = Parallel(n_jobs=workers, backend="loky", batch_size=1)(
                delayed(run_unit)(unit, *common, state, *sizes) for unit in units
            )
        else:
            results = [run_unit(unit, *common, None, *sizes) for unit in units]
        runs: dict[int, JobReturn] = {}
        for done in results:
            runs.update(done)
        return [runs[i] for i in sorted(runs)]


def _workers(n_jobs: int, cpus: int, n_tasks: int) -> int:
    """Worker processes for n_tasks jobs: n_jobs (negative: counted back from the cpus), at most
    one per job; 1 (none: this process) when joblib is not installed."""
    import importlib.util

    if importlib.util.find_spec("joblib") is None:
        return 1
    wanted = n_jobs if n_jobs > 0 else max(cpus + 1 + n_jobs, 1)
    return max(1, min(wanted, n_tasks))
