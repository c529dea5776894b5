"""Freed C-heap memory goes back to the system (glibc's malloc_trim)."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import pytest

from crmkit.models.memory import give_back


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_give_back_returns_the_holes_a_pass_leaves_in_the_heap() -> None:
    # 64 KB blocks come from the heap; keeping every tenth leaves holes it cannot shrink
    blocks = [np.ones(8_192) for _ in range(3_000)]
    kept = blocks[::10]
    del blocks
    before = _rss_mb()
    assert give_back() is True
    after = _rss_mb()
    assert before - after > 80, (before, after)
    assert all(float(b.sum()) == 8_192.0 for b in kept)
