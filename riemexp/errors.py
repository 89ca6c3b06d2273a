"""Errors riemexp reports to people: one clear message, a non-zero exit, no traceback.

Core code raises these; the CLI layer (`riemexp.cli`) catches them, prints the message
and exits with the class's `exit_code`.
"""

from __future__ import annotations

import errno


class RiemexpError(Exception):
    """Base class of every error meant for the person running riemexp."""

    exit_code = 1


class ConfigError(RiemexpError):
    """A configuration value is unknown or out of range."""

    exit_code = 2


class DataError(RiemexpError):
    """A dataset could not be built or read."""

    exit_code = 2


class RunFolderError(RiemexpError):
    """A run folder is missing, incomplete or corrupt."""

    exit_code = 2


class OutputError(RiemexpError):
    """A file or folder could not be written (permissions, a full disk, a path through a file)."""

    exit_code = 2

    @classmethod
    def from_os_error(cls, err: OSError) -> OutputError:
        where = f" {err.filename}" if err.filename else ""
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            expected = "free some space, or write elsewhere"
        else:
            expected = "expected a writable folder"
        return cls(f"cannot write{where}: {err.strerror or err} ({expected})")


class FolderBusyError(RiemexpError):
    """Another live run writes into the folder (it holds the folder's lock, `riemexp.lock`)."""

    exit_code = 2


class MemoryNeedError(RiemexpError):
    """A stage would need more memory than the limit or than the machine has free."""

    exit_code = 2


class DivergedError(RiemexpError):
    """Training produced a non-finite loss, or one that exploded far above its starting value."""

    exit_code = 3


class GeometryError(RiemexpError):
    """Geometry extraction was refused or overflowed."""

    exit_code = 4


def safe_reason(err: BaseException) -> str:
    """One line on why a file could not be read, without a reader's advice to load it unsafely."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    first = lines[0] if lines else ""
    if any(word in first.lower() for word in ("pickle", "weights_only", "unsafe", "trust")):
        first = "not a file riemexp wrote (or damaged)"
    return f"{type(err).__name__}: {first}".rstrip(": ")
