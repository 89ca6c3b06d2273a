"""`riemexp train [OVERRIDES]`: one run of conf/train.yaml into a Hydra run folder.

The same task is every job of `riemexp sweep` (a Hydra multirun): there a failure is recorded
in the job folder and the task returns, so that one bad job does not stop the others.
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from riemexp.cli import conf_dir
from riemexp.commands.hydra_app import (
    HYDRA_FLAGS,
    compose_config,
    hydra_argv,
    output_dir,
    passing_errors_through,
    task_overrides,
    to_run_config,
)
from riemexp.run import run


@hydra.main(config_path=str(conf_dir()), config_name="train", version_base="1.3")
def _task(dcfg: DictConfig) -> str | None:
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        # a sweep job: metrics.json and job.json record the outcome, whatever it is
        from riemexp.sweep.jobs import sweep_job

        return sweep_job(lambda: to_run_config(dcfg), output_dir())
    with passing_errors_through():
        run(to_run_config(dcfg), output_dir())
    return None


def main(args: list[str]) -> int:
    multirun = "-m" in args or "--multirun" in args  # sweep values: `riemexp sweep` checks those
    if not multirun and not any(a in HYDRA_FLAGS or a.split("=")[0] in HYDRA_FLAGS for a in args):
        # check the whole config before Hydra makes a run folder
        to_run_config(compose_config("train", task_overrides(args)))
    with hydra_argv("riemexp train", args):
        _task()
    return 0
