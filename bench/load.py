"""Training on a busy machine: ``python -m bench train-under-load``.

Trains the churn model on Online Retail II, quiet and with one busy process per core
running beside it, with the default thread setting (``[model] threads = 0``: the idle
cores, by the load average) against ``OMP_NUM_THREADS=1``, interleaved, each in a fresh
process. Prints the median seconds per case and the ratio of the default to one thread.
A busy process is a Python loop (``while True: pass``), the kind of neighbour a cron host
has; the load average is given a minute to see them before the first timed run.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from bench.common import DATA, ROOT, save
from bench.model import retail_store

TRAIN = (
    "import datetime as dt, sys; "
    "from crmkit.config.settings import FeatureConfig, ModelConfig; "
    "from crmkit.models.churn import train; from crmkit.store.core import Store; "
    "train(Store(sys.argv[1]), dt.date(2011, 9, 1), 90, ModelConfig(), FeatureConfig(), "
    "created=dt.datetime(2026, 1, 1))"
)


@contextmanager
def busy(cores: int) -> Iterator[None]:
    """One spinning process per core for the duration."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]
    try:
        time.sleep(60)  # let the one-minute load average see them
        yield
    finally:
        for p in spinners:
            p.kill()
        for p in spinners:
            p.wait()


def _train(store: str, one_thread: bool) -> float:
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    if one_thread:
        env["OMP_NUM_THREADS"] = "1"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", TRAIN, store], check=True, env=env, cwd=ROOT)
    return time.perf_counter() - start


def run(_rows: int = 0, repeat: int = 1) -> None:
    """Print and save the median training seconds per case."""
    store = str(retail_store())
    cores = os.cpu_count() or 1
    results: dict[str, dict[str, float]] = {}
    for load, context in (("quiet", None), ("busy", cores)):
        times: dict[str, list[float]] = {"default": [], "one thread": []}
        manager = busy(context) if context else _nothing()
        with manager:
            for _ in range(repeat):
                for name in times:  # interleaved
                    times[name].append(_train(store, name == "one thread"))
        results[load] = {k: statistics.median(v) for k, v in times.items()}
        ratio = results[load]["default"] / results[load]["one thread"]
        print(f"{load:>5}: default {results[load]['default']:6.1f} s, one thread "
              f"{results[load]['one thread']:6.1f} s, ratio {ratio:.2f}", flush=True)  # fmt: skip
    save("train-under-load", {"cores": cores, "repeat": repeat, "seconds": results,
                               "data": str(DATA)})  # fmt: skip


@contextmanager
def _nothing() -> Iterator[None]:
    yield
