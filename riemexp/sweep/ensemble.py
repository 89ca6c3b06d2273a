"""Sweep jobs trained as batched ensembles: the work of `hydra/launcher=ensemble`.

The launcher (hydra_plugins/riemexp_sweeper/ensemble_launcher.py) composes every job it is
handed, as Hydra's basic launcher does, and asks `plan_groups` which of them can share an
ensemble: runs of one network kind, width, depth and activation, one optimizer, batch size,
numbers of training and test points and classes, device and torch thread count
(`riemexp.ensemble.ensemble_key`), on the cpu and narrow enough (width and classes <= 3) for
every member to end bit for bit where the job trained alone ends. Each group is trained at once
(`train_group`), then its jobs run one by one through Hydra exactly as under the basic launcher:
the job's task finds its member (`member_for`) and `riemexp.run.run` writes it into the job's
own folder with the single run's pipeline (geometry, tables, figures, metrics.json, history.csv,
model.pt, report.md). While a group trains, each of its jobs' folders holds its member's record
(`riemexp.runner.members`: "running", phase "training", the epochs reached), and a stop signal
makes every member record "interrupted" there, as a job stopped alone does. A job in no group
(alone in its shape, a config that does not compose, a dataset that cannot be made, width above
3, CUDA) runs as under the basic launcher.

Groups are cut at `max_members` members and at a quarter of the memory this process can get
(the training estimate of `riemexp.memory` and the snapshots each member keeps, times the
members). Members are handed over in this
process only, and each at most once: a job that finds no member (another config, a folder
already completed, a member already used) trains alone.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from riemexp.config import RunConfig

if TYPE_CHECKING:
    from riemexp.data.dataset import Dataset
    from riemexp.ensemble import MemberResult
    from riemexp.runner.members import MemberRecords

log = logging.getLogger("riemexp")

#: the largest ensemble a sweep trains (hydra.launcher.max_members)
MAX_MEMBERS = 256
#: the share of the available memory one ensemble's training may take
MEMORY_SHARE = 0.25

#: the widest network an ensemble trains bit for bit as alone (riemexp.ensemble.network.EXACT_MAX_CONTRACTION)
EXACT_WIDTH = 3

#: members trained and not yet written, by run identity (this process only)
_members: dict[str, MemberResult] = {}
#: the records in their job folders of members not yet written: (records, position), by run identity
_records: dict[str, tuple[MemberRecords, int]] = {}


def identity_of(cfg: RunConfig) -> str:
    from riemexp.data.registry import fingerprint
    from riemexp.identity import run_identity

    return run_identity(cfg, fingerprint(cfg.dataset))


def member_for(cfg: RunConfig) -> MemberResult | None:
    """The trained ensemble member waiting in this process for the job of `cfg` (used once), or
    None. A member of another config is never used: the job then trains alone. Either way the
    member's record in the job folder (`riemexp.runner.members`) makes way for the job's run."""
    if not _members and not _records:
        return None
    try:
        identity = identity_of(cfg)
    except Exception:  # an unreadable dataset file: the job finds out itself
        return None
    hand_over(identity)
    member = _members.pop(identity, None)
    return member if member is not None and member.cfg == cfg else None


def batch_key(cfg: RunConfig) -> str | None:
    """What jobs must share to be trained together, from the config alone (no data, no torch):
    the sweep planner records it for every job (sweep.yaml, `batch`) and the launcher groups the
    jobs by it. None: the job trains alone (wider than `exact_alone` allows). Jobs with equal
    keys are checked again on their data before they share an ensemble (`plan_groups`)."""
    net, optim, data = cfg.network, cfg.optim, cfg.dataset
    if net.width > EXACT_WIDTH:
        return None
    classes = getattr(data, "n_classes", None)  # gaussians choose their number of classes
    return json.dumps(
        [
            net.kind,
            net.width,
            net.depth,
            net.activation.value,
            optim.name.value,
            optim.batch_size,
            data.name,
            getattr(data, "n_samples", None),  # a toy dataset's size; a CSV's size is its file's
            data.test_fraction,
            classes,
            getattr(data, "path", None),  # only a CSV dataset has a file
            cfg.device.value,
            cfg.threads,
        ]
    )


def job_cost(batch: str | None) -> float | None:
    """A job's relative cost, from its batch key (`batch_key`): its network depth, which its training,
    snapshots and analyses grow with; None when the key does not say (no key, or not riemexp's)."""
    try:
        depth = json.loads(batch)[2] if batch is not None else None
    except (ValueError, TypeError, IndexError, KeyError):
        return None
    return float(depth) if isinstance(depth, int) and depth > 0 else None


def hand_over(identity: str) -> None:
    """The job of this identity starts: its member's record (if held here) lets go of its folder."""
    held = _records.pop(identity, None)
    if held is not None:
        records, position = held
        records.hand_over(position)


def forget(identities: Sequence[str], stopped: BaseException | None = None) -> None:
    """Drop the members of these jobs (written, or their jobs failed before asking). `stopped`: the
    stop signal (KeyboardInterrupt) that ended their unit; the members not yet written record it in
    their job folders (status "interrupted", phase "trained": `riemexp.runner.members`)."""
    from riemexp.sweep import watchdog

    groups: dict[int, MemberRecords] = {}
    for identity in identities:
        _members.pop(identity, None)
        held = _records.pop(identity, None)
        if held is not None:
            groups[id(held[0])] = held[0]
    for records in groups.values():
        if isinstance(stopped, KeyboardInterrupt):
            records.stopped(stopped, watchdog.orphan_reason())
        else:
            records.close()


def stop_waiting(stopped: BaseException) -> None:
    """A stop signal ended a job of this process: every member still waiting here for its job
    records it in its job folder now (before the process hands back to its launcher or exits)."""
    forget(list(_records), stopped)


def waiting() -> int:
    """How many trained members wait for their jobs."""
    return len(_members)


@dataclass
class Job:
    """One job of the batch as the ensemble planner sees it: its config (None when it does not
    compose into a RunConfig: it runs alone and fails there), identity and dataset."""

    position: int
    cfg: RunConfig | None = None
    identity: str = ""
    data: Dataset | None = None
    folder: Path | None = None  # where the job writes its run (its member's record while it trains)


def exact_alone(cfg: RunConfig, data: Dataset) -> bool:
    """Whether an ensemble trains this run bit for bit as it trains alone: on the cpu, width and
    classes up to `riemexp.ensemble.network.EXACT_MAX_CONTRACTION`."""
    from riemexp.ensemble.network import EXACT_MAX_CONTRACTION
    from riemexp.train import resolve_device

    return (
        resolve_device(cfg.device).type == "cpu"
        and max(cfg.network.width, data.n_classes) <= EXACT_MAX_CONTRACTION
    )


def _member_bytes(cfg: RunConfig, data: Dataset) -> int:
    """One member's memory in its ensemble: its training (`riemexp.memory.training_bytes`) and the
    geometry snapshots it keeps until its job writes them: (S + 1) snapshots of G grid points
    (geometry.snapshot_density squared), 5 + C + L float64 numbers each (metric, log volume, class
    probabilities, det J_l), as `riemexp.preflight.check_snapshots` counts them."""
    from riemexp.memory import training_bytes

    n_train = len(data.x_train)
    batch = n_train if cfg.optim.batch_size is None else min(cfg.optim.batch_size, n_train)
    need = training_bytes(len(data.x), batch, cfg.network.width, cfg.network.depth)
    g = cfg.geometry
    if g.enabled and g.snapshots > 0:
        need += (g.snapshots + 1) * g.snapshot_density**2 * (5 + data.n_classes + cfg.network.depth) * 8
    return need


def plan_groups(
    jobs: Sequence[Job], max_members: int = MAX_MEMBERS, min_members: int = 2, cpus: int | None = None
) -> list[list[int]]:
    """The jobs' positions in the order they run: each inner list one ensemble (at least
    min_members jobs) or one job alone. An ensemble runs where its first job stood."""
    from riemexp.ensemble import ensemble_key
    from riemexp.memory import available_bytes
    from riemexp.threads import run_threads

    room = available_bytes()
    keys: dict[int, Any] = {}
    for job in jobs:
        if job.cfg is None or job.data is None:
            continue
        try:
            if not exact_alone(job.cfg, job.data):
                continue
            threads = run_threads(job.cfg, n_data=len(job.data.x), share=cpus)
            keys[job.position] = (ensemble_key(job.cfg, job.data), threads)
        except Exception:  # e.g. device=cuda without CUDA, threads above the CPUs: the job says so
            continue
    by_key: dict[Any, list[Job]] = {}
    for job in jobs:
        if job.position in keys:
            by_key.setdefault(keys[job.position], []).append(job)
    groups: dict[int, list[int]] = {}  # first position -> positions
    for members in by_key.values():
        size = max(1, max_members)
        if room is not None:
            per_member = max(_member_bytes(members[0].cfg, members[0].data), 1)  # type: ignore[arg-type]
            size = max(1, min(size, int(room * MEMORY_SHARE) // per_member))
        for i in range(0, len(members), size):
            piece = [j.position for j in members[i : i + size]]
            if len(piece) >= min_members:
                groups[piece[0]] = piece
    grouped = {p for piece in groups.values() for p in piece}
    order = []
    for job in jobs:
        if job.position in groups:
            order.append(groups[job.position])
        elif job.position not in grouped:
            order.append([job.position])
    return order


def datasets_of(cfgs: Sequence[RunConfig | None]) -> list[Dataset | None]:
    """Each config's dataset (shared between configs with the same data); None where it cannot be made."""
    from riemexp.config import config_to_dict
    from riemexp.data.dataset import make_dataset

    made: dict[str, Dataset | None] = {}
    out: list[Dataset | None] = []
    for cfg in cfgs:
        if cfg is None:
            out.append(None)
            continue
        key = json.dumps([config_to_dict(cfg.dataset), cfg.data_seed], sort_keys=True)
        if key not in made:
            try:
                made[key] = make_dataset(cfg.dataset, cfg.data_seed)
            except Exception:  # the job itself reports it, alone
                made[key] = None
        out.append(made[key])
    return out


def snapshot_recorders(cfgs: Sequence[RunConfig], datasets: Sequence[Dataset]) -> list[Any]:
    """A SnapshotRecorder (riemexp.analyses.snapshots) for each run whose config asks for geometry
    snapshots, None for the others: `riemexp.ensemble.train_ensemble(cfgs, datasets, recorders=...)`
    then records each member's snapshots during the ensemble's training, and `riemexp.runner.run`
    writes them (snapshots.npz) as the run trained alone writes its own."""
    from riemexp.analyses.snapshots import SnapshotRecorder

    return [
        SnapshotRecorder(cfg, data) if cfg.geometry.enabled and cfg.geometry.snapshots > 0 else None
        for cfg, data in zip(cfgs, datasets, strict=True)
    ]


def train_group(jobs: Sequence[Job], cpus: int | None = None, keep: bool = True) -> list[MemberResult]:
    """Train the jobs as one ensemble; its members, in the jobs' order, each kept in this process
    for its job (`member_for`) when `keep`.

    While the ensemble trains, each job with a `folder` holds its member's record there
    (`riemexp.runner.members`: status "running", phase "training", the epochs reached), kept
    until the job's run takes the folder (`member_for`). A stop signal (Ctrl-C, SIGTERM, SIGHUP;
    in a worker process also the end of the sweep's main process, `riemexp.sweep.watchdog`)
    stops the training as it stops a job: every member records "interrupted" with the signal,
    and the KeyboardInterrupt propagates. A failure of the ensemble itself (memory, a bug) is
    logged and gives no members: the jobs then train alone.
    """
    from riemexp import phases, signals, timing
    from riemexp.ensemble import TrainedEnsemble, split_ensemble, train_ensemble
    from riemexp.runner.members import MemberRecords
    from riemexp.sweep import watchdog
    from riemexp.threads import run_threads, using_threads

    cfgs = [j.cfg for j in jobs]
    datasets = [j.data for j in jobs]
    first = cfgs[0]
    assert first is not None
    net = first.network
    log.info(
        "ensemble of %d jobs (%s, depth %d, width %d, %s): training",
        len(jobs),
        net.kind,
        net.depth,
        net.width,
        net.activation.value,
    )
    watchdog.watch()
    watchdog.check_main_alive()  # an ensemble handed to a worker after its sweep ended never starts
    trained = TrainedEnsemble()
    folders = [j.folder if keep else None for j in jobs]
    records: MemberRecords | None = None
    # a stop signal stops the training as it stops a job (riemexp.signals; loky's workers ignore Ctrl-C)
    watchdog.job_started()
    try:
        threads = run_threads(first, n_data=len(datasets[0].x), share=cpus)  # type: ignore[union-attr]
        records = MemberRecords(cfgs, folders, threads, trained)  # type: ignore[arg-type]
        with timing.recording(records.stopwatch), using_threads(threads):
            with signals.deferred():  # a signal meanwhile stops the training once every member has a record
                records.open()
            phases.reached("training")
            recorders = snapshot_recorders(cfgs, datasets)  # type: ignore[arg-type]
            with timing.stage("training"):
                train_ensemble(cfgs, datasets, records.epoch, trained, recorders=recorders)  # type: ignore[arg-type]
            records.trained()
        members = split_ensemble(trained)
        # the members' ODE tables, measured together (a stop signal meanwhile: each records it, "trained")
        phases.reached("measuring")
        measure_odes(members, datasets, threads)  # type: ignore[arg-type]
        for k, job in enumerate(jobs):  # each member's record now waits for its job (member_for)
            if keep and k in records.held:
                _records[job.identity] = (records, k)
    except KeyboardInterrupt as err:  # a stop signal, or the sweep ended: each member records it
        if records is not None:
            records.stopped(err, watchdog.orphan_reason())
        if watchdog.in_worker() and not watchdog.orphaned():
            watchdog.wait_for_main()  # the main process stops the launcher once all jobs recorded
        raise
    except Exception as err:
        if records is not None:
            records.close()
        log.warning(
            "the ensemble could not be trained (%s: %s): its jobs train alone", type(err).__name__, err
        )
        return []
    finally:
        watchdog.job_ended()
    if not keep:
        records.close()
    if keep:
        for job, member in zip(jobs, members):
            _members[job.identity] = member
    diverged = sum(m.error is not None for m in members)
    snapshots = sum(r.seconds for r in trained.recorders if r is not None)
    log.info(
        "ensemble of %d jobs trained in %.2f s%s%s",
        len(jobs),
        max(trained.seconds, default=0.0),
        f", its members' snapshots recorded in {snapshots:.2f} s" if snapshots else "",
        f" ({diverged} diverged)" if diverged else "",
    )
    return members


def measure_odes(members: Sequence[MemberResult], datasets: Sequence[Dataset], threads: int) -> None:
    """The ODE step's measurement (riemexp.analyses.ode) of the completed members whose config asks
    for it and whose kind has an ODE, in one batched call per ODE settings (`riemexp.ode_batch`,
    each member's report bit for bit its own `riemexp.ode.measure`), with the threads the jobs run
    with: each report goes into its member's `analyses["ode"]`, which its job's ODE step writes. A
    failure is logged, and the jobs then measure their own."""
    from riemexp.ode_batch import measure_members
    from riemexp.threads import using_threads

    groups: dict[tuple[Any, ...], list[int]] = {}
    for k, (member, data) in enumerate(zip(members, datasets, strict=True)):
        cfg = member.cfg
        if member.error is not None or cfg is None or not cfg.ode.enabled:
            continue
        if member.model.kind.ode_order is None:  # no ODE: the step says so, without measuring
            continue
        ode = cfg.ode
        key = (ode.max_refinement, ode.rtol, ode.atol, ode.max_steps_per_layer, tuple(data.x.shape))
        groups.setdefault(key, []).append(k)
    for (max_refinement, rtol, atol, max_steps, _), ks in groups.items():
        start = time.perf_counter()
        try:
            with using_threads(threads):
                reports = measure_members(
                    [members[k].model for k in ks],
                    [datasets[k].x for k in ks],
                    max_refinement,
                    rtol,
                    atol,
                    max_steps_per_layer=max_steps,
                )
        except Exception as err:
            log.warning(
                "the ODE measurement of %d members failed (%s: %s): each job measures its own",
                len(ks),
                type(err).__name__,
                err,
            )
            continue
        for k, report in zip(ks, reports, strict=True):
            members[k].analyses["ode"] = report
        log.info("ODE of %d members measured together in %.2f s", len(ks), time.perf_counter() - start)


__all__ = [
    "Job",
    "datasets_of",
    "exact_alone",
    "forget",
    "hand_over",
    "job_cost",
    "measure_odes",
    "member_for",
    "plan_groups",
    "snapshot_recorders",
    "stop_waiting",
    "train_group",
    "waiting",
]
