"""Atomic file writing: every file lands whole or not at all.

Each writer writes to a temporary file in the destination folder, flushes it to disk and
renames it over the destination (`os.replace`, atomic on POSIX and Windows). Whatever stops a
write (a full disk, a signal) removes the temporary file; an OSError names the destination.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it to `path`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise _naming(err, path) from None
    try:
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise _naming(err, path) from None
        raise


def _naming(err: OSError, path: Path) -> OSError:
    """The same OS error, naming the file being written (not its temporary name, not nothing)."""
    return type(err)(err.errno, err.strerror or str(err), str(path)) if err.errno else err


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=True) + "\n")


def atomic_write_csv(
    path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]], columns: Sequence[str]
) -> None:
    """Write dict rows as CSV with the given column order."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: row.get(c, "") for c in columns})
    atomic_write_text(path, buf.getvalue())


def atomic_save(path: str | os.PathLike[str], save: Callable[[Path], None]) -> None:
    """Call save(tmp_path) and rename into place.

    The temporary name ends in `.tmp`: give savers that guess from the suffix an open
    file or an explicit format (`np.savez(open(tmp, "wb"), ...)`, `fig.savefig(tmp,
    format="png")`).
    """
    with atomic_path(path) as tmp:
        save(tmp)


def write_npz(path: str | os.PathLike[str], arrays: Mapping[str, Any], names: Iterable[str]) -> None:
    """Write the arrays `names` of `arrays` to the .npz file at `path` (uncompressed), atomically."""
    import numpy as np

    chosen = list(names)

    def saver(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            payload: dict[str, Any] = {name: np.asarray(arrays[name]) for name in chosen}
            np.savez(f, **payload)

    atomic_save(path, saver)


def read_run_npz(path: str | os.PathLike[str], file_name: str, hint: str) -> tuple[dict[str, Any], Path]:
    """The arrays of an .npz file, `path` itself or `file_name` in the run folder `path`, and the file's
    path. RunFolderError "FILE is missing (HINT)" when there is none, or naming the corruption."""
    from riemexp.errors import RunFolderError

    path = Path(path)
    if path.is_dir():
        path = path / file_name
    if not path.is_file():
        raise RunFolderError(f"{path} is missing ({hint})")
    return read_npz(path), path


def read_npz(path: Path) -> dict[str, Any]:
    """Every array of the .npz file at `path` (no pickles); RunFolderError when it is corrupt."""
    import numpy as np

    from riemexp.errors import RunFolderError, safe_reason

    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except Exception as err:  # zip, zlib and format errors come in many types
        raise RunFolderError(f"{path} is corrupt: {safe_reason(err)}") from None
