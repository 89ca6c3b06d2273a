"""`riemexp train [OVERRIDES]`: one run of conf/train.yaml into a Hydra run folder."""

from __future__ import annotations

import hydra
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
def _task(dcfg: DictConfig) -> None:
    with passing_errors_through():
        run(to_run_config(dcfg), output_dir())


def main(args: list[str]) -> int:
    if not any(a in HYDRA_FLAGS or a.split("=")[0] in HYDRA_FLAGS for a in args):
        # check the whole config before Hydra makes a run folder
        to_run_config(compose_config("train", task_overrides(args)))
    with hydra_argv("riemexp train", args):
        _task()
    return 0
