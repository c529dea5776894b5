"""Typed errors: each carries a user-facing message and the exit code the CLI uses.

:class:`ExitCode` is the one list of exit codes; a cron wrapper can act on each: retry
later on 4, call a person on 6, fix the command or settings on 2, the data on 3, the model
on 5. 1 is a bug.
"""

from __future__ import annotations

import enum
import errno
from typing import ClassVar


class ExitCode(enum.IntEnum):
    """What the exit code of a crmkit command tells a script, and what it should do."""

    #: Done.
    OK = 0
    #: An unexpected error: a bug in crmkit (report it).
    BUG = 1
    #: Invalid options or settings: fix the command line or ``crmkit.toml``.
    USAGE = 2
    #: Input data that cannot be used: the file, rows and problem are named.
    BAD_INPUT = 3
    #: Unavailable for now: the store is locked, a database or Dask scheduler is down.
    RETRY_LATER = 4
    #: A model is missing, incompatible or fails its integrity check: retrain or restore.
    MODEL = 5
    #: A person must look: a damaged store, a full or read-only disk, no permission.
    NEEDS_PERSON = 6


class CrmkitError(Exception):
    """Base class of every error crmkit reports to a user (exit code 1)."""

    exit_code: ClassVar[int] = ExitCode.BUG


class UsageError(CrmkitError):
    """Invalid options or configuration (exit code 2)."""

    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """A problem in ``crmkit.toml`` or a command-line override (exit code 2)."""


class BadInputError(CrmkitError):
    """Input data that cannot be used: wrong columns, unreadable file, rejected rows (exit 3)."""

    exit_code = ExitCode.BAD_INPUT


class StoreLockedError(CrmkitError):
    """Another process holds the store's lock (exit code 4: retry later)."""

    exit_code = ExitCode.RETRY_LATER


class StoreCorruptError(CrmkitError):
    """The store is missing files or its manifest cannot be read (exit code 6: a person)."""

    exit_code = ExitCode.NEEDS_PERSON


class ModelError(CrmkitError):
    """A model is missing, incompatible or fails its integrity check (exit code 5)."""

    exit_code = ExitCode.MODEL


class UnavailableError(CrmkitError):
    """A service crmkit needs cannot be reached: a Dask scheduler, a database (exit 4)."""

    exit_code = ExitCode.RETRY_LATER


class StoreWriteError(CrmkitError):
    """Files cannot be written: the disk is full or read-only, or permission is denied (6)."""

    exit_code = ExitCode.NEEDS_PERSON


#: errno values that mean the machine cannot take the write, not that the input is bad.
_NO_SPACE: frozenset[int] = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}
)
#: errno values that mean a path given by the user is of the wrong kind.
_WRONG_PATH: frozenset[int] = frozenset(
    {errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.ELOOP}
)


def from_os_error(exc: OSError) -> CrmkitError:
    """Classify an operating-system error by its errno, naming the file and the cause.

    Full, read-only or forbidden storage gives :class:`StoreWriteError` (exit 6); a path of
    the wrong kind (a file where a directory is needed, or the reverse) a
    :class:`UsageError` (exit 2); a missing file :class:`BadInputError` (exit 3); anything
    else :class:`StoreWriteError`.
    """
    where = f"{exc.filename}: " if exc.filename else ""
    # polars raises OSError subclasses without errno or strerror, the path in the text
    cause = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in _WRONG_PATH:
        out: CrmkitError = UsageError(f"{where}{cause} (a file where a directory is needed?)")
    elif exc.errno == errno.ENOENT:
        out = BadInputError(f"{where}{cause}")
    elif exc.errno in _NO_SPACE:
        out = StoreWriteError(f"{where}cannot write: {cause}")
    else:
        out = StoreWriteError(f"{where}{cause}")
    out.__cause__ = exc
    return out
