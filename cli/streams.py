"""Standard streams that cannot change what a command did: output lost is only lost.

A cron job's ``>> cron.log 2>&1`` on a full partition, or a closed pipe, makes every write
to stdout or stderr fail. The command's work (an ingest committed, a list written) and its
exit code must not depend on that: :func:`guard_streams` wraps both streams so that a
failed write or flush points the stream at ``/dev/null`` and carries on. What was lost is
lost; the run log in the store still holds every step.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import IO, Any


class GuardedStream:
    """A text stream whose writes never raise: after one fails, output goes nowhere."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self.lost = False

    def write(self, text: str) -> int:
        """Write and flush ``text``; on failure, lose it and everything after it."""
        if not self.lost:
            try:
                self._stream.write(text)
                self._stream.flush()
            except OSError:
                self._lose()
        return len(text)

    def flush(self) -> None:
        """Flush, losing the output on failure."""
        if not self.lost:
            try:
                self._stream.flush()
            except OSError:
                self._lose()

    def _lose(self) -> None:
        self.lost = True
        # the interpreter flushes the real stream at exit: whatever it still holds must go
        # somewhere that takes it, or the exit code becomes 120
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401
        return getattr(self._stream, name)


def guard_streams() -> None:
    """Wrap ``sys.stdout`` and ``sys.stderr`` in :class:`GuardedStream` (once)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, GuardedStream):
            setattr(sys, name, GuardedStream(stream))
