"""The run folder while a run works in it: leftovers of killed runs, the earlier run, the swap, the reserve.

One run at a time writes into a folder (its lock, `riemexp.lock`, is held by the caller). Training
into a folder that holds a completed run replaces that run only once the new one has completed: it
is built in a hidden staging folder and swapped in (`replace`); a new run that does not complete
leaves the completed run as it was, with its own record in unfinished-rerun/ (`keep_attempt`). An
earlier run that did not complete is replaced at once. A folder that holds files by riemexp's names
but no riemexp run is refused (OutputError), never emptied.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from riemexp import signals, timing
from riemexp.errors import OutputError, RunFolderError
from riemexp.layout import (
    CONFIG_FILE,
    HISTORY_FILE,
    HYDRA_DIR,
    HYDRA_NEXT_DIR,
    METRICS_FILE,
    REPLACED_PREFIX,
    RESERVE_FILE,
    RUN_ARTIFACTS,
    RUN_FILES,
    STAGING_PREFIX,
    UNFINISHED_RERUN_DIR,
)

#: room kept on the run folder's disk while a run works, given back to write its final record
RESERVE_BYTES = 64 * 1024


def remove_leftovers(out_dir: Path) -> bool:
    """Remove the hidden staging folders of runs that were killed in this folder (the caller holds
    its lock, so no live run owns them). True when a killed run was swapping its files in."""
    swapping = False
    for path in out_dir.iterdir():
        if path.is_dir() and path.name.startswith((STAGING_PREFIX, REPLACED_PREFIX)):
            swapping |= path.name.startswith(REPLACED_PREFIX)
            shutil.rmtree(path, ignore_errors=True)
    return swapping


def earlier_status(out_dir: Path, swapping: bool = False) -> str | None:
    """The status of the earlier run in out_dir (its readable metrics.json), or None for a fresh
    folder. `swapping`: a killed run was moving its files in; the folder is a run folder ("failed").

    Refuses (OutputError) a folder that holds files by riemexp's names but no riemexp run: they
    are not ours.
    """
    from riemexp.runner.load import read_metrics

    try:
        return str(read_metrics(out_dir)["status"])
    except RunFolderError:
        pass
    found = [name for name in RUN_ARTIFACTS if (out_dir / name).exists() or (out_dir / name).is_symlink()]
    if not found:
        return None
    if swapping:
        return "failed"
    raise OutputError(
        f"{out_dir} holds {', '.join(found)} but no riemexp run ({METRICS_FILE}); a run would "
        "overwrite them: choose another folder (hydra.run.dir=...) or move them away"
    )


def staging_folder(out_dir: Path) -> Path:
    """A new hidden folder inside out_dir for a re-run's files until it has completed."""
    return Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out_dir))


def replace(out_dir: Path, work: Path | None) -> None:
    """Move the earlier run's files out of out_dir and, when `work` is given, the new run's in.

    The earlier run's metrics.json leaves first and the new one arrives last, so that no
    metrics.json ever stands over a mix of two runs. Hydra's record of the new run, written
    aside into .hydra-next/ by `riemexp train`, replaces .hydra/ with it. When a move fails (a
    read-only plots/, ...) every move is undone and OSError names the file: the earlier run
    stays as it was.
    """
    trash = Path(tempfile.mkdtemp(prefix=REPLACED_PREFIX, dir=out_dir))
    hydra_next = work is not None and (out_dir / HYDRA_NEXT_DIR).is_dir()
    outgoing = [METRICS_FILE, *RUN_FILES, *([HYDRA_DIR] if hydra_next else [])]
    present = [n for n in outgoing if (out_dir / n).exists() or (out_dir / n).is_symlink()]
    moves = [(out_dir / n, trash / n) for n in present]
    if work is not None:
        moves += [(work / n, out_dir / n) for n in RUN_FILES if (work / n).exists()]
        if hydra_next:
            moves.append((out_dir / HYDRA_NEXT_DIR, out_dir / HYDRA_DIR))
        moves.append((work / METRICS_FILE, out_dir / METRICS_FILE))
    done: list[tuple[Path, Path]] = []
    try:
        for src, dst in moves:
            _move(src, dst)
            done.append((src, dst))
    except OSError:
        for src, dst in reversed(done):
            with contextlib.suppress(OSError):
                os.rename(dst, src)
        shutil.rmtree(trash, ignore_errors=True)
        raise
    shutil.rmtree(trash, ignore_errors=True)
    if work is not None:
        shutil.rmtree(work, ignore_errors=True)


def _move(src: Path, dst: Path) -> None:
    try:
        os.rename(src, dst)
    except OSError as err:
        raise OSError(err.errno, err.strerror, str(src)) from None


def keep_attempt(work: Path, out_dir: Path) -> None:
    """A re-run that did not complete: keep its record (metrics.json, history.csv, config.yaml and
    Hydra's .hydra/) as out_dir/unfinished-rerun/, drop the rest of its staging folder; the
    earlier run is untouched."""
    keep = out_dir / UNFINISHED_RERUN_DIR
    try:
        for path in work.iterdir():
            if path.name in (METRICS_FILE, HISTORY_FILE, CONFIG_FILE):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        if not (work / METRICS_FILE).is_file():
            raise FileNotFoundError(str(work / METRICS_FILE))
        if (out_dir / HYDRA_NEXT_DIR).is_dir():  # Hydra's record of this attempt goes with it
            os.rename(out_dir / HYDRA_NEXT_DIR, work / HYDRA_DIR)
        if keep.is_dir() and not keep.is_symlink():
            shutil.rmtree(keep)
        os.rename(work, keep)
    except OSError:
        shutil.rmtree(work, ignore_errors=True)


def reserve(out_dir: Path) -> Path:
    """A hidden file of RESERVE_BYTES in out_dir, so that a run stopped by a full disk can still
    say so in its metrics.json (the file is removed just before that write, and at the end)."""
    path = out_dir / RESERVE_FILE
    try:
        with open(path, "wb") as f:
            f.write(bytes(RESERVE_BYTES))
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        with contextlib.suppress(OSError):
            path.unlink()
        reason = err.strerror or str(err)
        raise OutputError(f"cannot write {out_dir}: {reason} (a run needs room there)") from None
    return path


def release(reserved: Path | None) -> None:
    """Give the reserve back (remove the file; nothing when there is none)."""
    if reserved is not None:
        with contextlib.suppress(OSError):
            reserved.unlink()


def make_way(out_dir: Path) -> bool:
    """Clear out_dir for a new run; True when a completed earlier run stays until this one completes.

    An earlier run that did not complete (failed, diverged, interrupted, killed) has no results
    to keep and makes way now.
    """
    with timing.stage("writing"):
        earlier = earlier_status(out_dir, remove_leftovers(out_dir))
    staged = earlier == "completed"
    if earlier is not None and not staged:
        try:
            with signals.deferred(), timing.stage("writing"):
                replace(out_dir, None)
        except OSError as err:
            raise OutputError.from_os_error(err) from None
    return staged


__all__ = [
    "RESERVE_BYTES",
    "earlier_status",
    "keep_attempt",
    "make_way",
    "release",
    "remove_leftovers",
    "replace",
    "reserve",
    "staging_folder",
]
