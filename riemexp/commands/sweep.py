"""`riemexp sweep [grid=NAME] [OVERRIDES]`: a Hydra multirun of the training task over a grid preset,
then the sweep's tables and figures. `riemexp sweep aggregate=PATH` rebuilds those only.

Steps, all in this process before anything runs: load the preset (conf/grid/NAME.yaml), build
the multirun overrides (preset, then the command line), check the Hydra arguments (launcher,
its settings), expand the grid into jobs and compose and check every job's config and run
identity (riemexp.sweep.plan). Only then the sweep folder is touched: take its lock (one sweep at
a time), find the jobs a trusted folder already holds (by identity), record the plan in
sweep.yaml, launch the others through Hydra (joblib on the local cores by default, or any
launcher given as hydra/launcher=...), each into the folder named by its identity, and
summarize this sweep's jobs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from riemexp import __version__, console, signals
from riemexp.cli import conf_dir
from riemexp.errors import ConfigError
from riemexp.io import atomic_write_json, atomic_write_text
from riemexp.loggers import RunLoggers
from riemexp.report import write_sweep_report
from riemexp.sweep.folders import NOT_STARTED, JobFolder, dump_literal_yaml, scan
from riemexp.sweep.grid import (
    SET_DIR,
    SET_GROUP,
    Grid,
    load_grid,
    preset_names,
    sweep_overrides,
)
from riemexp.sweep.launch import SweepLock, hydra_settings, launch, sweep_in_progress
from riemexp.sweep.plan import Composer, PlannedJob, dedupe, expand, match, plan_jobs
from riemexp.sweep.summary import FAILED, RECORD, Summary, show_grouped, summarize, write_summary

SWEEP_RECORD = RECORD  # what the last invocation planned: preset, overrides, Hydra arguments, jobs
FIGURES_STAMP = ".figures.json"  # what the figures were drawn from (a resume redraws only on change)
DEFAULT_LAUNCHER = "joblib"
MAX_LISTED = 20
INVOCATION_ENV = "RIEMEXP_SWEEP_ID"  # also riemexp.sweep.jobs.INVOCATION_ENV (set in every job)


def usage() -> str:
    presets = []
    for name in preset_names(conf_dir()):
        presets.append(f"  {name:<12} {load_grid(name, conf_dir()).description}")
    launcher = (
        DEFAULT_LAUNCHER if _joblib_installed() else "basic (install hydra-joblib-launcher for parallel jobs)"
    )
    return "\n".join(
        [
            "usage: riemexp sweep [grid=NAME|PATH.yaml] [OVERRIDES...]   run a grid of training jobs",
            "       riemexp sweep aggregate=SWEEP_DIR                    rebuild a sweep's summary only",
            "",
            "grid presets (conf/grid/; grid=none: only the overrides, like `riemexp train -m`):",
            *presets,
            "",
            "Overrides are Hydra's: network.depth=2,4,8 dataset=spirals,moons add or replace axes;",
            "hydra.sweep.dir=DIR sets the folder; each job runs in DIR/IDENTITY/ (its run identity), and",
            "re-running into it skips every job already completed there, whatever the grid.",
            f"Launcher: {launcher}; hydra/launcher=ensemble trains the jobs that share a shape",
            "together as batched ensembles, each bit for bit as alone (docs/ensembles.md);",
            "hydra/launcher=slurm (conf/hydra/launcher/slurm.yaml) or submitit_slurm / submitit_local",
            "send the jobs through submitit.",
            "",
            "Writes DIR/summary.{csv,md,tex}, DIR/summary_grouped.{csv,md,tex} and DIR/plots/.",
            "Exit status: 0 when every job completed, 1 when any failed or left no record, 2 for bad input",
            "or a sweep folder in use by another sweep.",
        ]
    )


def _joblib_installed() -> bool:
    return importlib.util.find_spec("hydra_plugins.hydra_joblib_launcher") is not None


def _split(args: Sequence[str]) -> tuple[dict[str, str], list[str], list[str]]:
    """(own options grid/aggregate, task overrides, Hydra's own overrides); ConfigError for a flag."""
    own: dict[str, str] = {}
    task, hydra_args = [], []
    for arg in args:
        key = arg.split("=", 1)[0]
        if arg in ("-m", "--multirun"):
            continue  # a sweep is a multirun already
        if arg.startswith("-"):
            raise ConfigError(
                f"riemexp sweep: unknown option '{arg}'; expected overrides KEY=VALUE or GROUP=OPTION, "
                "grid=NAME, aggregate=PATH or --help"
            )
        if key in ("grid", "aggregate") and "=" in arg:
            own[key] = arg.split("=", 1)[1]
        elif arg.lstrip("+~").startswith("hydra"):
            hydra_args.append(arg)
        else:
            task.append(arg)
    return own, task, hydra_args


def _value(args: Sequence[str], key: str) -> str | None:
    for arg in reversed(args):
        if arg.split("=", 1)[0].lstrip("+") == key:
            return arg.split("=", 1)[1]
    return None


def _with_default_launcher(hydra_args: list[str]) -> list[str]:
    if _value(hydra_args, "hydra/launcher") is not None or not _joblib_installed():
        return hydra_args
    return [f"hydra/launcher={DEFAULT_LAUNCHER}", *hydra_args]


def _swept(jobs: Sequence[PlannedJob]) -> list[str]:
    """Config keys whose values differ between the jobs, in config order."""
    order: list[str] = []
    for job in jobs:
        order += [k for k in job.values if k not in order]
    return [k for k in order if len({repr(j.values.get(k)) for j in jobs}) > 1]


def job_list(jobs: Sequence[PlannedJob]) -> list[dict[str, Any]]:
    """The plan as sweep.yaml records it: per job its folder, identity, action (run; skip:
    already completed there; busy: another live run writes its folder), overrides, the
    values of the swept keys and its batch (what jobs trained with it as an ensemble share;
    riemexp.sweep.ensemble.batch_key)."""
    keys = _swept(jobs)
    return [
        {
            "folder": job.folder,
            "identity": job.identity,
            **({"legacy_identity": job.legacy} if job.legacy else {}),  # an older riemexp's run
            "action": "skip" if job.done else ("busy" if job.busy else "run"),
            "overrides": list(job.overrides),
            "values": {k: job.values.get(k) for k in keys},
            "batch": job.batch,
        }
        for job in jobs
    ]


def write_record(
    sweep_dir: Path, record: dict[str, Any], jobs: Sequence[PlannedJob], invocation: str
) -> Path:

    full = {
        **record,
        "jobs": len(jobs),
        "invocation": invocation,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "job_list": job_list(jobs),
    }
    path = sweep_dir / SWEEP_RECORD
    atomic_write_text(path, dump_literal_yaml(full))
    return path


def plan_line(prog: str, label: str, jobs: Sequence[PlannedJob], repeats: int, where: Path) -> str:
    done = sum(j.done for j in jobs)
    busy = sum(j.busy is not None for j in jobs)
    line = f"{prog}: {label}{len(jobs)} jobs: {len(jobs) - done - busy} to run, {done} already completed"
    if busy:
        line += f", {busy} being run by another process"
    line += f" -> {where}"
    if repeats:
        line += f" ({repeats} more repeat the config of another job: each config runs once)"
    return line


def report_busy(jobs: Sequence[PlannedJob]) -> bool:
    """Name the jobs not launched because another live run writes their folder; any such?"""
    busy = [j for j in jobs if j.busy]
    for job in busy[:MAX_LISTED]:
        console.error(
            f"job {job.folder} was not launched: its folder is being written by another live run "
            f"({job.busy}); re-run the sweep when that run has finished"
        )
    return bool(busy)


def _names(folders: Sequence[JobFolder]) -> str:
    names = [f.name for f in folders[:MAX_LISTED]]
    return ", ".join(names) + (
        f", ... ({len(folders) - MAX_LISTED} more)" if len(folders) > MAX_LISTED else ""
    )


def report_outside(summary: Summary) -> None:
    """Name the folders that are not counted: an earlier grid's jobs, copies, disagreeing files."""
    by_reason: dict[str, list[JobFolder]] = {}
    for folder, why in summary.outside:
        by_reason.setdefault(why, []).append(folder)
    for why, folders in by_reason.items():
        count = f"{len(folders)} folder" + ("s" if len(folders) > 1 else "")
        print(f"  not in this sweep (not counted): {count}, {why}: {_names(folders)}")


def report(
    summary: Summary,
    invocation: str | None,
    launched: Sequence[str] = (),
    skipped: int = 0,
    stopped: KeyboardInterrupt | None = None,
) -> int:
    """Print what happened (this invocation's jobs when given, else the folder); the exit status.

    stopped: the stop signal that ended the launch (Ctrl-C, SIGTERM, SIGHUP): the jobs it
    interrupted and those it kept from starting are counted as such, not as jobs that left no record.
    """
    jobs, where = summary.jobs, summary.sweep_dir
    failed = [j for j in jobs if j.status in FAILED]
    unfinished = [j for j in jobs if j.status not in FAILED and j.status != "completed"]
    no_record: list[str] = []
    if invocation is not None:
        ours = {j.name: j for j in jobs if j.record.get("invocation") == invocation}
        no_record = [name for name in launched if name not in ours]
        print(
            f"sweep: {len(jobs)} jobs: {len(ours)} ran, {skipped} skipped "
            f"(already completed with the same config), {len(failed)} failed -> {where}"
        )
    else:
        completed = sum(j.status == "completed" for j in jobs)
        print(
            f"sweep {where}: {len(jobs)} jobs: {completed} completed, {len(failed)} failed, "
            f"{len(unfinished)} unfinished"
        )
    if stopped is not None:  # what the stop left: interrupted, not started (no job.json of this sweep)
        status = {j.name: j.status for j in jobs}
        counts = Counter(status.get(name, NOT_STARTED) for name in no_record)
        no_record = []
        left = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        console.error(
            f"sweep stopped ({signals.signal_name(stopped)}): {left or 'every job had recorded its end'}; "
            "re-run the same command to resume"
        )
    for job in failed[:MAX_LISTED]:
        values = ", ".join(f"{k}={job.config.get(k)}" for k in summary.keys) or job.name
        console.error(f"job {job.name} ({values}) {job.status}: {job.error or 'no message recorded'}")
    if len(failed) > MAX_LISTED:
        console.error(f"... and {len(failed) - MAX_LISTED} more failed jobs (see summary.csv, column error)")
    if no_record:
        console.error(
            f"{len(no_record)} jobs left no record in {where} (killed, or the launcher failed): "
            f"{', '.join(no_record[:MAX_LISTED])}; re-run to resume"
        )
    if invocation is None and unfinished:
        states = ", ".join(sorted({j.status for j in unfinished}))
        print(
            f"  {len(unfinished)} jobs are not finished ({states}): "
            + " ".join(j.name for j in unfinished[:MAX_LISTED])
            + ("; re-run the sweep to resume" if summary.planned else "")
        )
    report_outside(summary)
    print(
        f"  report: {where / 'report.md'}; tables: {where / 'summary.md'}, {where / 'summary_grouped.md'}; "
        f"figures: {where / 'plots'}"
    )
    return 1 if failed or no_record else 0


def _figure_inputs(summary: Summary) -> str:
    """A digest of what the sweep's figures are drawn from: each row's folder, status, identity
    and metrics.json's size and time, the swept keys and riemexp's version."""
    parts: list[Any] = [__version__, summary.keys]
    for job in summary.jobs:
        try:
            stat = (job.path / "metrics.json").stat()
            stamp: Any = [stat.st_mtime_ns, stat.st_size]
        except OSError:
            stamp = None
        parts.append([job.name, job.status, job.identity, stamp])
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


def _figures_current(summary: Summary, digest: str) -> bool:
    try:
        stamp = json.loads((summary.sweep_dir / FIGURES_STAMP).read_text())
        files = [summary.sweep_dir / name for name in stamp["files"]]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return stamp.get("inputs") == digest and all(f.is_file() for f in files)


def build_outputs(summary: Summary, redraw: bool = True) -> None:
    """The tables, and the figures (and the ode_limit study) unless they are already drawn from
    exactly these runs and redraw is False."""
    write_summary(summary)
    digest = _figure_inputs(summary)
    if redraw or not _figures_current(summary, digest):
        from riemexp.sweep import ode_limit
        from riemexp.sweep.figures import draw_sweep_figures

        files = draw_sweep_figures(summary)
        from riemexp.sweep import refine, topology

        if ode_limit.applies(summary):  # residual nets at one T = L h (grid=ode_limit): the depth limit
            files += ode_limit.write_ode_limit(summary) or []
        if refine.applies(summary):  # with a refinement path: both paths side by side
            files += refine.write_depth_limit(summary)

        if topology.applies(summary):  # circles with the disc and ring measured (grid=topology)
            files += topology.write_topology(summary)
        names = [str(f.relative_to(summary.sweep_dir)) for f in files if summary.sweep_dir in f.parents]
        atomic_write_json(summary.sweep_dir / FIGURES_STAMP, {"inputs": digest, "files": names})
    write_sweep_report(summary, _read_record(summary.sweep_dir))
    show_grouped(summary)


def _read_record(sweep_dir: Path) -> dict[str, Any]:
    """The folder's sweep.yaml as plain values; {} when there is none."""
    import yaml  # type: ignore[import-untyped]

    try:
        values = yaml.safe_load((Path(sweep_dir) / RECORD).read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return values if isinstance(values, dict) else {}


def sweep_loggers(task: Sequence[str], sweep_dir: Path) -> RunLoggers | None:
    """The loggers of the command line's logger=... overrides, for a sweep into sweep_dir; None
    for none. ConfigError (a logger not installed, a bad option) before anything is written."""
    from riemexp.commands.hydra_app import compose_config, logger_values

    chosen = [a for a in task if a.split("=", 1)[0].lstrip("+~").split(".")[0] == "logger"]
    values = logger_values(compose_config("train", chosen)) if chosen else {}
    return RunLoggers.from_config(values, sweep_dir) if values else None


def log_done_jobs(loggers: RunLoggers | None, jobs: Sequence[PlannedJob], sweep_dir: Path) -> None:
    """Jobs found completed (not launched): logged from their folders where a logger lacks them."""
    for job in jobs if loggers else ():
        if job.done and job.folder:
            loggers.record_finished(sweep_dir / job.folder)  # type: ignore[union-attr]


def aggregate(sweep_dir: str | Path) -> int:
    """Rebuild the summary tables and figures of a sweep folder; print the report; the exit status."""
    sweep_dir = Path(sweep_dir).expanduser()
    summary = summarize(sweep_dir)
    build_outputs(summary, redraw=True)
    status = report(summary, None)
    holder = sweep_in_progress(sweep_dir) if sweep_dir.is_dir() else None
    if holder is not None:
        print(f"  a sweep is running in this folder ({holder}): its unfinished jobs may still complete")
    return status


def job_search_path(user_paths: Sequence[str], sets_in: Path | None) -> list[str]:
    """The hydra.searchpath override every job composes with (none when empty): a user's config
    folders (--config-dir, hydra.searchpath) and, for a preset with paired sets, their folder."""
    from riemexp.commands.hydra_app import searchpath_override

    entries = list(user_paths)
    if sets_in is not None:
        entries.append(f"file://{(sets_in / SET_DIR).resolve()}")
    return [searchpath_override(entries)] if entries else []


def plan(
    grid: Grid, task: list[str], group_names: list[str], user_paths: Sequence[str] = ()
) -> tuple[list[str], list[PlannedJob], int]:
    """(the multirun's task overrides, the distinct jobs with their identities, how many jobs
    repeated another's config). Writes nothing: a preset's paired sets go to a scratch folder."""
    with tempfile.TemporaryDirectory() as scratch:
        overrides = sweep_overrides(grid, task, group_names, Path(scratch))
        extra = job_search_path(user_paths, Path(scratch) if grid.paired else None)
        jobs, repeats = dedupe(plan_jobs(expand(overrides), Composer([*group_names, SET_GROUP], extra)))
    return overrides, jobs, repeats


def main(args: list[str]) -> int:
    from riemexp.commands.train import COMPLETION_FLAGS, shell_completion

    if any(a in COMPLETION_FLAGS for a in args):  # Hydra's, for every riemexp command
        return shell_completion(args)
    if any(a in ("-h", "--help") for a in args):
        print(usage())
        return 0
    from riemexp.commands.hydra_app import user_search_path

    args, user_paths = user_search_path(args)  # a user's config folders: on to every job
    own, task, hydra_args = _split(args)
    if "aggregate" in own:
        if task or "grid" in own or hydra_args or user_paths:
            raise ConfigError(
                "aggregate=PATH rebuilds a summary and runs nothing: give no grid or overrides with it"
            )
        if not own["aggregate"].strip():
            raise ConfigError("aggregate= must name a sweep folder, got an empty value")
        return aggregate(own["aggregate"])

    # everything checked before the sweep folder is touched: preset, Hydra settings, every job
    from riemexp.commands.hydra_app import groups

    grid = load_grid(own.get("grid", "default"), conf_dir())
    hydra_args = _with_default_launcher(hydra_args)
    settings = hydra_settings(hydra_args, "riemexp sweep")
    group_names = [g for g in groups(user_paths) if g not in ("grid", "hydra")]
    overrides, jobs, repeats = plan(grid, task, group_names, user_paths)
    sweep_dir = settings.sweep_dir
    loggers = sweep_loggers(task, sweep_dir)

    with SweepLock(sweep_dir, "riemexp sweep"):
        if grid.paired:
            sweep_overrides(grid, task, group_names, sweep_dir)  # the sets' configs, for the jobs
        folders = scan(sweep_dir)
        jobs = match(jobs, folders, sweep_dir).jobs
        invocation = uuid.uuid4().hex[:12]
        record = {
            "grid": grid.name,
            "description": grid.description,
            "params": grid.params,
            "paired": [dict(s) for s in grid.paired],
            "fixed": grid.fixed,
            "command_line": [*task, *hydra_args, *job_search_path(user_paths, None)],
        }
        record_path = write_record(sweep_dir, record, jobs, invocation)
        print(plan_line("sweep", f"grid '{grid.name}', ", jobs, repeats, sweep_dir), flush=True)
        launched = [j.folder for j in jobs if not j.done and not j.busy]
        if loggers:
            loggers.prepare_sweep()  # e.g. the sweep's MLflow experiment, once, before the jobs
        start = time.perf_counter()
        launch_failed, interrupted = None, None
        if launched:
            # the tables say from now on what this sweep has and has not done yet, even if killed
            write_summary(summarize(sweep_dir, jobs, folders))
            (sweep_dir / FIGURES_STAMP).unlink(missing_ok=True)
            extra = job_search_path(user_paths, sweep_dir if grid.paired else None)
            # quoted: an id such as 595343e45369 would be read as a number (inf)
            extra.append(f"+hydra.job.env_set.{INVOCATION_ENV}='{invocation}'")
            try:
                launch_failed = launch(
                    "riemexp sweep", overrides, settings, record_path, hydra_args, extra, launched
                )
            except KeyboardInterrupt as err:  # Ctrl-C, SIGTERM, SIGHUP: the jobs have recorded it
                interrupted = err
        seconds = time.perf_counter() - start
        summary = summarize(sweep_dir, jobs, None if launched else folders)
        if interrupted is not None:  # the tables of what was done, then stop as `riemexp` does
            write_summary(summary)
            report(summary, invocation, launched, sum(j.done for j in jobs), stopped=interrupted)
            raise interrupted
        build_outputs(summary, redraw=False)
        log_done_jobs(loggers, jobs, sweep_dir)
        status = report(summary, invocation, launched, sum(j.done for j in jobs))
        status = 1 if report_busy(jobs) else status
    print(f"  wall time {seconds:.1f} s")
    if launch_failed not in (None, 0):
        console.error(f"the launcher stopped with exit status {launch_failed}")
        return 1
    return status


__all__ = ["aggregate", "main", "plan", "report", "usage"]
