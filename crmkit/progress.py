"""Progress of long library calls: ``progress(done, total, text)`` callbacks.

Every long step of the library takes an optional callback with this signature; the CLI
passes one that draws a bar on a terminal and prints a line per step with the elapsed
time elsewhere (``crmkit_cli.common.progress_bar``).
"""

from __future__ import annotations

from collections.abc import Callable

ProgressFn = Callable[[int, int, str], None]


class Steps:
    """Report numbered steps of an expected total to a :data:`ProgressFn` (or to nothing).

    The total may grow when work turns out larger than expected, never shrink below what
    is done.
    """

    def __init__(self, progress: ProgressFn | None, total: int = 0) -> None:
        self.progress = progress
        self.total = total
        self.done = 0

    def __call__(self, text: str) -> None:
        """Count one step done and report it."""
        self.done += 1
        self.total = max(self.total, self.done)
        if self.progress is not None:
            self.progress(self.done, self.total, text)

    def within(self, part: str) -> Callable[[str], None]:
        """Return a step reporter that names ``part`` before each step's text."""

        def step(text: str) -> None:
            self(f"{part}: {text}")

        return step


def prefixed(progress: ProgressFn | None, part: str) -> ProgressFn | None:
    """Return ``progress`` with ``part`` named before each text (None stays None)."""
    if progress is None:
        return None
    report = progress

    def step(done: int, total: int, text: str) -> None:
        report(done, total, f"{part}: {text}")

    return step
