"""`riemexp train [OVERRIDES]`: one run of conf/train.yaml into a Hydra run folder.

The same task is every job of `riemexp sweep` (a Hydra multirun): there a failure is recorded
in the job folder and the task returns, so that one bad job does not stop the others.
"""

from __future__ import annotations

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
    multirun = "-m" in args or "--multirun" in args  # sweep values: `riemexp sweep` checks those
    if not multirun and not any(a in HYDRA_FLAGS or a.split("=")[0] in HYDRA_FLAGS for a in args):
        # check the whole config, and that its device exists, before Hydra makes a run folder
        resolve_device(to_run_config(compose_config("train", task_overrides(args))).device)
    with hydra_argv("riemexp train", args):
        _task()
    return 0
