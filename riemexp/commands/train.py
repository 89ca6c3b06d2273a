"""`riemexp train [OVERRIDES]`: one run of conf/train.yaml into a Hydra run folder.

The same task is every job of `riemexp sweep` (a Hydra multirun): there a failure is recorded
in the job folder and the task returns, so that one bad job does not stop the others.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from riemexp.cli import conf_dir
from riemexp.commands.hydra_app import (
    HYDRA_FLAGS,
    compose_config,
    group_options,
    groups,
    hydra_argv,
    output_dir,
    passing_errors_through,
    task_overrides,
    to_run_config,
)
from riemexp.errors import ConfigError, RunFolderError
from riemexp.run import run
from riemexp.train import resolve_device


@hydra.main(config_path=str(conf_dir()), config_name="train", version_base="1.3")
def _task(dcfg: DictConfig) -> str | None:
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        # a sweep job: metrics.json and job.json record the outcome, whatever it is
        from riemexp.sweep.jobs import sweep_job

        return sweep_job(lambda: to_run_config(dcfg), output_dir())
    with passing_errors_through():
        run(to_run_config(dcfg), output_dir())
    return None


HELP = """\
riemexp train: train a network on a 2-D toy dataset, then extract its per-layer coordinates
and metric tensors, and write tables and figures into the run folder.

usage: riemexp train [GROUP=OPTION | KEY=VALUE ...] [hydra.run.dir=FOLDER]

== Config groups (GROUP=OPTION) ==
{groups}

== Config (KEY=VALUE; shown with the overrides given) ==
{config}
Examples:
  riemexp train dataset=moons
  riemexp train network=plain network.depth=20 optim.epochs=500
  riemexp train dataset=circles network.width=3 hydra.run.dir=outputs/circles-w3
  riemexp train -m network.depth=2,4,8      # several runs (see also `riemexp sweep`)

The run folder defaults to outputs/DATE/TIME_DATASET_NETWORK under the current folder.
Hydra's own flags (--cfg job, --info, --hydra-help, -m) work too.
"""


def help_text(args: list[str]) -> str:
    listing = "\n".join(f"{g}: {', '.join(group_options(g))}" for g in groups())
    config = OmegaConf.to_yaml(compose_config("train", task_overrides(args)))
    return HELP.format(groups=listing, config=config)


def main(args: list[str]) -> int:
    if "-h" in args or "--help" in args:
        print(help_text([a for a in args if a not in ("-h", "--help")]))
        return 0
    hydra_flags = any(a in HYDRA_FLAGS or a.split("=")[0] in HYDRA_FLAGS for a in args)
    if ("-m" in args or "--multirun" in args) and not hydra_flags:
        return _multirun(args)
    if not hydra_flags:
        # check the whole config, and that its device exists, before Hydra makes a run folder
        resolve_device(to_run_config(compose_config("train", task_overrides(args))).device)
        given = [a.split("=", 1)[1] for a in args if a.startswith("hydra.run.dir=")]
        if given and not given[-1].strip():
            raise ConfigError("hydra.run.dir must name a folder, got an empty value")
        if given and "${" not in given[-1]:
            Path(given[-1]).expanduser().mkdir(parents=True, exist_ok=True)  # OSError: cannot write
    with hydra_argv("riemexp train", args):
        _task()
    return 0


def _multirun(args: list[str]) -> int:
    """`riemexp train -m`: Hydra's multirun of the task; exit 1 when any of its runs failed.

    Each job records its outcome in its folder (metrics.json, job.json), whatever the launcher;
    the jobs of this invocation are found by an id set in their environment.
    """
    from riemexp import console
    from riemexp.commands.sweep import resolve_sweep_dir
    from riemexp.sweep.jobs import INVOCATION_ENV
    from riemexp.sweep.summary import FAILED, find_jobs

    sweep_dir = resolve_sweep_dir(args)  # fixed now, so that the jobs can be found afterwards
    sweep_dir.mkdir(parents=True, exist_ok=True)  # OSError (cannot write) before Hydra starts
    invocation = uuid.uuid4().hex[:12]
    argv = [  # Hydra wants its flags first and the overrides together after them
        "--multirun",
        *[a for a in args if a.startswith("-") and a not in ("-m", "--multirun")],
        *[a for a in args if not a.startswith("-") and a.split("=", 1)[0] != "hydra.sweep.dir"],
        f"hydra.sweep.dir={sweep_dir}",
        f"+hydra.job.env_set.{INVOCATION_ENV}={invocation}",
    ]
    with hydra_argv("riemexp train", argv):
        _task()
    try:
        jobs = [j for j in find_jobs(sweep_dir) if j.record.get("invocation") == invocation]
    except RunFolderError:
        jobs = []
    failed = [j for j in jobs if j.status in FAILED]
    for job in failed:
        console.error(f"run {job.path} {job.status}: {job.error or 'no message recorded'}")
    print(f"riemexp train -m: {len(jobs)} runs, {len(failed)} failed -> {sweep_dir}")
    return 1 if failed or not jobs else 0
