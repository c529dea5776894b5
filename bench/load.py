"""Training on a busy machine: ``python -m bench train-under-load``.

Trains the churn model on Online Retail II (as of 2011-09-01) and on a simulated store of
100,000 customers (as of 2024-10-01, the store of ``bench scale``), quiet and with one busy
process per core running beside it, with the default thread setting (``[model]
threads = 0``: the idle cores, crmkit.models.threads) against ``OMP_NUM_THREADS=1``,
interleaved, each in a fresh process. Prints the median seconds per case and the ratio of
the default to one thread. A busy process is a Python loop (``while True: pass``), the
kind of neighbour a cron host has; the neighbours run a minute before the first timed run.
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
    "train(Store(sys.argv[1]), dt.date.fromisoformat(sys.argv[2]), 90, ModelConfig(), "
    "FeatureConfig(), created=dt.datetime(2026, 1, 1))"
)
SIMULATED = 100_000


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


def _train(store: str, as_of: str, one_thread: bool) -> float:
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    if one_thread:
        env["OMP_NUM_THREADS"] = "1"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", TRAIN, store, as_of], check=True, env=env, cwd=ROOT)
    return time.perf_counter() - start


def run(_rows: int = 0, repeat: int = 1) -> None:
    """Print and save the median training seconds per store and case."""
    from bench.scale import dataset

    stores = {
        "Online Retail II": (str(retail_store()), "2011-09-01"),
        f"simulated, {SIMULATED:,} customers": (str(dataset(SIMULATED)[0]), "2024-10-01"),
    }
    cores = os.cpu_count() or 1
    results: dict[str, dict[str, dict[str, float]]] = {name: {} for name in stores}
    for load, context in (("quiet", None), ("busy", cores)):
        with busy(context) if context else _nothing():
            for name, (store, as_of) in stores.items():
                times: dict[str, list[float]] = {"default": [], "one thread": []}
                for _ in range(repeat):
                    for case in times:  # interleaved
                        times[case].append(_train(store, as_of, case == "one thread"))
                row = {k: statistics.median(v) for k, v in times.items()}
                results[name][load] = row
                ratio = row["default"] / row["one thread"]
                print(f"{name}, {load}: default {row['default']:6.1f} s, one thread "
                      f"{row['one thread']:6.1f} s, ratio {ratio:.2f}", flush=True)  # fmt: skip
    save("train-under-load", {"cores": cores, "repeat": repeat, "seconds": results,
                               "data": str(DATA)})  # fmt: skip


@contextmanager
def _nothing() -> Iterator[None]:
    yield
