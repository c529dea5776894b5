"""The thread policy: an upper limit, the environment, and the cores other processes leave."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from crmkit.models import threads as policy


def test_a_given_count_is_an_upper_limit(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    cores = os.cpu_count() or 1
    assert policy.openmp_threads(1024) == cores
    assert policy.openmp_threads(1) == 1
    assert policy.openmp_threads(0) == 1  # the environment's, for 0


def test_the_busy_cores_of_other_processes_are_seen(monkeypatch):
    """A spinning neighbour is counted; this process's own sleep is not."""
    monkeypatch.setattr(policy, "SAMPLE_SECONDS", 0.5)
    quiet = policy._busy_cores()
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        busy = policy._busy_cores()
    finally:
        spinner.kill()
        spinner.wait()
    assert quiet is not None
    assert busy is not None
    assert busy >= 0.7  # the neighbour's core (and whatever else runs)
    assert 0.0 <= quiet <= (os.cpu_count() or 1) + 0.5


def test_idle_cores_are_at_least_one_and_reused(monkeypatch):
    monkeypatch.setattr(policy, "_last", [])
    calls = []
    monkeypatch.setattr(policy, "_busy_cores", lambda: calls.append(1) or 7.0)
    assert policy.idle_cores(2) == 1  # never below one, however busy
    assert policy.idle_cores(2) == 1
    assert calls == [1]  # measured once within REUSE_SECONDS
    monkeypatch.setattr(policy, "_last", [])
    monkeypatch.setattr(policy, "_busy_cores", lambda: 0.4)
    assert policy.idle_cores(2) == 2
