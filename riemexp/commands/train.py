"""`riemexp train [OVERRIDES]`: one run of conf/train.yaml into a Hydra run folder.

The same task is every job of `riemexp sweep` (a Hydra multirun): there a failure is recorded
in the job folder and the task returns, so that one bad job does not stop the others.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from riemexp import lock, timing
from riemexp.cli import conf_dir
from riemexp.commands.hydra_app import (
    EXPERIMENT_GROUP,
    HYDRA_FLAGS,
    compose_args,
    compose_full,
    flag_values,
    group_options,
    groups,
    hydra_argv,
    hydra_errors_raised,
    logger_values,
    output_dir,
    passing_errors_through,
    task_overrides,
    to_run_config,
)
from riemexp.config import Device
from riemexp.errors import ConfigError, OutputError
from riemexp.layout import HYDRA_NEXT_DIR
from riemexp.preflight import check_run
from riemexp.threads import check_threads

_hydra_called: list[float] = []  # when `main` handed over to Hydra: its set-up is timed up to the task


@hydra.main(config_path=str(conf_dir()), config_name="train", version_base="1.3")
def _task(dcfg: DictConfig) -> str | None:
    _started.append(True)
    hydra_cfg = HydraConfig.get()
    path = OmegaConf.select(dcfg, "dataset.path")
    if hydra_cfg.job.chdir and isinstance(path, str) and path and not os.path.isabs(os.path.expanduser(path)):
        # hydra.job.chdir=true has moved into the run folder: a relative CSV path still means
        # the folder riemexp was started from
        dcfg.dataset.path = os.path.join(hydra_cfg.runtime.cwd, path)
    from riemexp.loggers import RunLoggers

    if hydra_cfg.mode == RunMode.MULTIRUN:
        # a sweep job: metrics.json and job.json record the outcome, whatever it is
        from riemexp.commands.hydra_app import job_cpus
        from riemexp.sweep.jobs import sweep_job

        sweep_dir = Path(hydra_cfg.sweep.dir).resolve()
        return sweep_job(
            lambda: to_run_config(dcfg),
            output_dir(),
            cpus=job_cpus(),
            loggers=lambda: RunLoggers.from_config(logger_values(dcfg), sweep_dir),
        )
    stopwatch = timing.current()
    if stopwatch is not None and _hydra_called:
        stopwatch.add("hydra", time.perf_counter() - _hydra_called.pop())
    with timing.stage("imports"):
        from riemexp.runner import run
    with passing_errors_through():
        with timing.stage("config"):
            cfg = to_run_config(dcfg)
            loggers = RunLoggers.from_config(logger_values(dcfg))
        run(cfg, output_dir(), loggers=loggers)
    return None


HELP = """\
riemexp train: train a network on a 2-D toy dataset, then extract its per-layer coordinates
and metric tensors, and write tables and figures into the run folder.

usage: riemexp train [GROUP=OPTION | KEY=VALUE ...] [hydra.run.dir=FOLDER]

== Config groups (GROUP=OPTION; presets: +experiment=NAME, conf/experiment/) ==
{groups}

== Config (KEY=VALUE; shown with the overrides given) ==
{config}
Examples:
  riemexp train dataset=moons
  riemexp train +experiment=circles_width3    # a preset: a whole known-good experiment
  riemexp train network=plain network.depth=20 optim.epochs=500
  riemexp train dataset=circles network.width=3 hydra.run.dir=outputs/circles-w3
  riemexp train -m network.depth=2,4,8      # several runs (see also `riemexp sweep`)

Your own group options: put them in a folder (DIR/network/shallow.yaml, DIR/dataset/mine.yaml; a
file may start from riemexp's option with `defaults: [residual, _self_]`) and add
`--config-dir DIR` (or hydra.searchpath=[file://DIR]). Shell completion (bash, zsh, fish):
  eval "$(riemexp train --shell-completion install=bash)"

The run folder defaults to outputs/DATE/TIME_DATASET_NETWORK under the current folder (-2, -3, ...
appended when runs start in the same second). One run at a time writes into a folder.
Hydra's own flags (--cfg job, --info, --hydra-help, -m) work too.
"""


def help_text(args: list[str]) -> str:
    config_dir = flag_values(args)[1].get("--config-dir")
    listing = "\n".join(
        f"{'+' if g == EXPERIMENT_GROUP else ''}{g}: {', '.join(group_options(g, config_dir))}"
        for g in groups(config_dir)
    )
    config = OmegaConf.to_yaml(compose_args("train", args))
    return HELP.format(groups=listing, config=config)


#: Hydra's shell-completion flag
COMPLETION_FLAGS = ("--shell-completion", "-sc")

#: subcommands whose arguments complete as `riemexp train`'s config (groups, options, keys)
COMPLETED_COMMANDS = ("train", "sweep")


def shell_completion(args: list[str]) -> int:
    """Hydra's shell completion for riemexp: `riemexp train --shell-completion install=bash`
    prints the script to eval (bash, zsh, fish: Hydra's), registered for the `riemexp` command.

    The installed script calls `riemexp -sc query=SHELL` with the line typed so far in COMP_LINE
    ("riemexp train dataset=m"): the subcommand is completed from riemexp's commands, and the
    arguments of train and sweep by Hydra from the training config (a `--config-dir` on the line
    adds that folder's options).
    """
    from riemexp.cli import COMMANDS

    line = os.environ.get("COMP_LINE")
    query = any(a.startswith("query=") for a in args)
    if query and line is not None:
        words = line.split()
        typing_command = len(words) == 1 and line.endswith(" ") or len(words) == 2 and not line.endswith(" ")
        if typing_command:
            start = words[1] if len(words) == 2 else ""
            print(" ".join(name for name in COMMANDS if name.startswith(start)))
            return 0
        if len(words) < 2 or words[1] not in COMPLETED_COMMANDS:
            return 0
        rest = line.split(None, 2)[2] if len(words) > 2 else ""
        os.environ["COMP_LINE"] = f"riemexp {rest}"
        config_dir = flag_values(words[2:])[1].get("--config-dir")
        if config_dir is not None and os.path.isdir(os.path.expanduser(config_dir)):
            args = [*args, "--config-dir", config_dir]
    with hydra_argv("riemexp", [a for a in args if a not in COMPLETION_FLAGS] + ["--shell-completion"]):
        _task()
    return 0


def main(args: list[str]) -> int:
    if any(a in COMPLETION_FLAGS for a in args):
        return shell_completion(args)
    if "-h" in args or "--help" in args:
        print(help_text([a for a in args if a not in ("-h", "--help")]))
        return 0
    given = flag_values(args)[1].get("--config-path")
    if given is not None:  # Hydra would read the user's folder instead of riemexp's conf/
        raise ConfigError(
            "riemexp train: --config-path would replace riemexp's own configs, which every run needs; "
            f"expected --config-dir DIR (or hydra.searchpath=[DIR]) to add a folder of configs, got "
            f"--config-path {given}"
        )
    hydra_flags = any(a in HYDRA_FLAGS or a.split("=")[0] in HYDRA_FLAGS for a in args)
    if ("-m" in args or "--multirun" in args) and not hydra_flags:
        return _multirun(args)
    if hydra_flags:
        with hydra_argv("riemexp train", args):
            _task()
        return 0
    # check the whole config, its threads and that its device exists, before Hydra makes a run folder
    with timing.stage("config"):
        composed = compose_args("train", args)
        cfg = to_run_config(composed)
        check_run(cfg)  # its data (a CSV file read and checked) and every stage's memory
        check_threads(cfg.threads)
        logger_values(composed)  # a chosen logger that is not installed: said now, before any folder
        if cfg.device is Device.CUDA:  # torch only to ask for CUDA
            from riemexp.train import resolve_device

            resolve_device(cfg.device)
        run_dir = resolve_run_dir(args)
    if run_dir is None:  # an interpolation only Hydra can resolve: run() still takes the lock
        with hydra_argv("riemexp train", args), hydra_errors_raised():
            _hydra_called[:] = [time.perf_counter()]
            _task()
        return 0
    args = [a for a in args if not a.startswith("hydra.run.dir=")] + [f"hydra.run.dir={run_dir}"]
    fresh = not any(run_dir.iterdir())
    _started.clear()
    try:
        # the folder's writer lock, taken before Hydra writes .hydra/ and train.log into it; a
        # second run into the folder is refused here (FolderBusyError), an unwritable one named
        with lock.hold(run_dir):
            args = _hydra_record_aside(run_dir, args)
            with hydra_argv("riemexp train", args), hydra_errors_raised():
                _hydra_called[:] = [time.perf_counter()]
                _task()
    except (OSError, OutputError) as err:
        if not _started and fresh:  # nothing of a run was written: leave no empty folder behind
            shutil.rmtree(run_dir, ignore_errors=True)
        if isinstance(err, OSError) and not err.filename and not _started:
            # Hydra's own files failed (it names none): .hydra/ and train.log
            raise OSError(err.errno, err.strerror, str(run_dir / ".hydra")) from None
        raise
    return 0


def _hydra_record_aside(run_dir: Path, args: list[str]) -> list[str]:
    """A folder holding a completed run keeps it until the new run has completed (riemexp.runner):
    Hydra's own record of the new run (.hydra/) is then written to .hydra-next/ and swapped in
    with the run's files. Called holding the folder's lock."""
    shutil.rmtree(run_dir / HYDRA_NEXT_DIR, ignore_errors=True)  # a killed run's
    record = lock.read_record(run_dir)
    if (
        record is None
        or record["status"] != "completed"
        or any(a.startswith("hydra.output_subdir=") for a in args)
    ):
        return args
    return [*args, f"hydra.output_subdir={HYDRA_NEXT_DIR}"]


#: set when the task itself starts (after Hydra has written its own files into the run folder)
_started: list[bool] = []


def resolve_run_dir(args: list[str]) -> Path | None:
    """The run folder of `riemexp train ARGS`, made now; None when only Hydra can resolve it.

    hydra.run.dir given: that folder (a re-run into it replaces the run there once the new one
    has completed). Not given: the default outputs/DATE/TIME_DATASET_NETWORK, made exclusively,
    with -2, -3, ... appended when another run (started in the same second by a shell loop or a
    SLURM array) has taken the name, so that runs started together never share a folder.
    """
    given = [a.split("=", 1)[1] for a in args if a.startswith("hydra.run.dir=")]
    if given and not given[-1].strip():
        raise ConfigError("hydra.run.dir must name a folder, got an empty value")
    if given and "${" not in given[-1]:
        folder = Path(given[-1]).expanduser()
    else:
        overrides, flags = flag_values(args)
        hydra_overrides = [a for a in overrides if a.lstrip("+~").startswith("hydra.")]
        try:
            from hydra.core.utils import setup_globals

            setup_globals()  # Hydra's ${now:...} resolver, which the default folder name uses
            full = compose_full(
                flags.get("--config-name", "train"),
                [*task_overrides(args), *hydra_overrides],
                flags.get("--config-dir"),
            )
            folder = Path(str(OmegaConf.select(full, "hydra.run.dir", throw_on_missing=True))).expanduser()
        except Exception:  # e.g. ${hydra.job.override_dirname}: Hydra fills it in at run time
            return None
    if given:
        folder.mkdir(parents=True, exist_ok=True)  # OSError: cannot write
        return folder.resolve()
    return unique_folder(folder)


def unique_folder(folder: Path) -> Path:
    """Make `folder`, or FOLDER-2, FOLDER-3, ... if taken, exclusively (mkdir is atomic, NFS too)."""
    folder.parent.mkdir(parents=True, exist_ok=True)  # OSError: cannot write
    for n in range(1, 10_000):
        candidate = folder if n == 1 else folder.with_name(f"{folder.name}-{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate.resolve()
    raise OutputError(f"cannot make a run folder beside {folder}: 10000 names taken")


def _multirun(args: list[str]) -> int:
    """`riemexp train -m`: the jobs of a Hydra multirun, planned and launched as `riemexp sweep`
    does (riemexp.commands.sweep) without its tables and figures: every job's config checked
    before anything is written, completed jobs found by run identity and skipped, each job in
    SWEEP_DIR/IDENTITY/; exit 1 when any of its runs failed."""
    from riemexp import console
    from riemexp.commands.hydra_app import searchpath_override, user_search_path
    from riemexp.commands.sweep import (
        INVOCATION_ENV,
        log_done_jobs,
        plan_line,
        report_busy,
        sweep_loggers,
        write_record,
    )
    from riemexp.sweep.folders import scan
    from riemexp.sweep.launch import SweepLock, hydra_settings, launch
    from riemexp.sweep.plan import Composer, dedupe, expand, match, plan_jobs
    from riemexp.sweep.summary import FAILED, summarize

    args, user_paths = user_search_path(args)  # a user's config folders: on to every job
    search = [searchpath_override(user_paths)] if user_paths else []
    unknown = [a for a in args if a.startswith("-") and a not in ("-m", "--multirun")]
    if unknown:
        raise ConfigError(
            f"riemexp train -m: unknown option '{unknown[0]}'; expected overrides KEY=VALUE or GROUP=OPTION"
        )
    task = task_overrides(args)
    hydra_args = [a for a in args if not a.startswith("-") and a not in task]
    settings = hydra_settings(hydra_args, "riemexp train -m")
    jobs, repeats = dedupe(plan_jobs(expand(task), Composer(groups(user_paths), search)))
    sweep_dir = settings.sweep_dir
    loggers = sweep_loggers(task, sweep_dir)
    with SweepLock(sweep_dir, "riemexp train -m"):
        jobs = match(jobs, scan(sweep_dir), sweep_dir).jobs
        invocation = uuid.uuid4().hex[:12]
        record = write_record(sweep_dir, {"grid": "none", "command_line": [*args, *search]}, jobs, invocation)
        print(plan_line("riemexp train -m", "", jobs, repeats, sweep_dir), flush=True)
        launched = [j.folder for j in jobs if not j.done and not j.busy]
        launch_failed = None
        if loggers:
            loggers.prepare_sweep()
        if launched:
            # quoted: an id such as 595343e45369 would be read as a number (inf)
            extra = [*search, f"+hydra.job.env_set.{INVOCATION_ENV}='{invocation}'"]
            launch_failed = launch("riemexp train", task, settings, record, hydra_args, extra, launched)
        summary = summarize(sweep_dir, jobs)
        log_done_jobs(loggers, jobs, sweep_dir)
    ran = [j for j in summary.jobs if j.record.get("invocation") == invocation]
    no_record = [name for name in launched if name not in {j.name for j in ran}]
    failed = [j for j in summary.jobs if j.status in FAILED]
    for job in failed:
        console.error(f"run {job.path} {job.status}: {job.error or 'no message recorded'}")
    if no_record:
        console.error(
            f"{len(no_record)} runs left no record (killed, or the launcher failed): {', '.join(no_record)}"
        )
    print(
        f"riemexp train -m: {len(jobs)} runs, {len(failed)} failed ({len(ran)} ran, "
        f"{sum(j.done for j in jobs)} skipped: already completed) -> {sweep_dir}"
    )
    busy = report_busy(jobs)
    if launch_failed not in (None, 0):
        console.error(f"the launcher stopped with exit status {launch_failed}")
        return 1
    return 1 if failed or no_record or busy else 0
