"""The readers' lock: parts a compaction replaced stay on disk while a reader may need them.

A reader holds a shared lock on the store's ``.readers`` file from the first manifest it
reads until it is closed (or the process ends). A commit deletes the parts it replaces only
when it can take that lock exclusively, that is when no reader holds it; otherwise it lists
them as ``retired`` in the new manifest, and a later commit that finds no reader deletes
them. A reader therefore never finds that a file named by the manifest it read has gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

READERS: Final = ".readers"


class ReaderLock:
    """The shared lock one :class:`~crmkit.store.core.Store` object holds while it reads."""

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / READERS
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the shared lock."""
        return self._fd is not None

    def hold(self) -> None:
        """Take the shared lock (waiting only while a commit deletes retired parts).

        A store this process may not write and whose lock file does not exist yet is read
        without the lock: no crmkit process has compacted it while holding readers.
        """
        if self._fd is not None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return
        fcntl.flock(fd, fcntl.LOCK_SH)
        self._fd = fd

    def release(self) -> None:
        """Let go of the shared lock."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __getstate__(self) -> dict[str, object]:
        # a copy (a pickle for another process, say) holds no lock: the descriptor is ours
        return {"path": self.path, "_fd": None}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)

    def __del__(self) -> None:
        self.release()


@contextlib.contextmanager
def no_readers(root: Path) -> Iterator[bool]:
    """Try to take the readers' lock exclusively; yield whether that worked (no reader).

    While the lock is held new readers wait, so parts deleted inside the block are never
    named by a manifest a reader is using.
    """
    fd = os.open(Path(root) / READERS, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
