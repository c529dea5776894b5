"""Threads of a fit: OpenMP for the trees, one BLAS thread for the linear model.

Measured on 2 cores with 72 features (gradient boosting, 300 trees at most):

============  ===================  ===================  =====================
rows          quiet, 1 / 2 threads  beside 2 busy, 1 / 2  predict 10k rows, busy
============  ===================  ===================  =====================
1,000         1.19 / 0.63 s        1.60 / 2.29 s        39 / 64 ms (1k rows)
10,000        1.87 / 1.23 s        2.97 / 6.26 s        290 / 624 ms
100,000       9.52 / 5.12 s        12.70 / 26.55 s      190 / 279 ms
============  ===================  ===================  =====================

On a quiet machine two threads are faster at every size, fits and predicts alike, so no
row count below which one thread wins was found; beside busy processes a second thread
doubles the time at every size, because OpenMP threads spin while they wait for a core.
What matters is therefore the idle cores, which :func:`idle_cores` measures each time a
fit or a batch of predictions starts.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any, Final

import numpy as np

#: Seconds over which the other processes' use of the cores is measured.
SAMPLE_SECONDS: Final = 0.2
#: How long a measurement of the idle cores is reused.
REUSE_SECONDS: Final = 10.0
_last: list[tuple[float, int]] = []


def threads(n: int) -> Any:  # noqa: ANN401
    """Context manager: ``n`` OpenMP threads (0: see :func:`openmp_threads`), one BLAS thread.

    The logistic regression is slower with two BLAS threads at every size (12.1 s against
    10.5 s on 500,000 rows), so it keeps one.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits={"openmp": openmp_threads(n), "blas": 1})


def openmp_threads(n: int) -> int:
    """Return ``n``, or for 0 the ``OMP_NUM_THREADS`` of the environment, else the idle cores.

    ``n`` is an upper limit: never more than the machine's cores.
    """
    cores = max(1, os.cpu_count() or 1)
    if n > 0:
        return min(n, cores)
    given = os.environ.get("OMP_NUM_THREADS", "").strip()
    if given.isdigit() and int(given) > 0:
        return int(given)
    return idle_cores(cores)


def idle_cores(cores: int) -> int:
    """Cores the other processes leave idle, at least one.

    Read from ``/proc/stat`` over :data:`SAMPLE_SECONDS` while this process waits, so that
    its own work never counts (the load average would count it, and lags a minute
    behind); elsewhere, the cores less the one-minute load average. A measurement is
    reused for :data:`REUSE_SECONDS`.
    """
    now = time.monotonic()
    if _last and now - _last[0][0] < REUSE_SECONDS:
        return _last[0][1]
    busy = _busy_cores()
    if busy is None:
        try:
            busy = os.getloadavg()[0]
        except OSError:  # no load average on this platform
            busy = 0.0
    idle = max(1, min(cores, cores - round(busy)))
    _last[:] = [(now, idle)]
    return idle


def _busy_cores() -> float | None:
    """Cores busy with other processes over a short sleep of this one; None without /proc."""
    first = _cpu_ticks()
    if first is None:
        return None
    start = time.monotonic()
    time.sleep(SAMPLE_SECONDS)
    second = _cpu_ticks()
    elapsed = time.monotonic() - start
    if second is None or elapsed <= 0:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return max(0.0, (second - first) / ticks / elapsed)


def _cpu_ticks() -> int | None:
    """Busy clock ticks of all cores since boot (every state but idle and I/O wait)."""
    try:
        fields = Path("/proc/stat").read_text(encoding="ascii").split("\n", 1)[0].split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [int(v) for v in fields[1:9]]
    return sum(values) - values[3] - values[4]  # user nice system idle iowait irq softirq steal


def pin_fit_threads(model: object) -> None:
    """Clear the thread counts gradient boosting records at fit, in ``model`` and its parts.

    scikit-learn's histogram binning keeps the OpenMP threads its fit ran with; with
    threads chosen from the idle cores, the same training would otherwise save different
    bytes on a busy and on a quiet machine. The count is only read by a fit (a predict
    chooses its own threads), so ``None`` (decide when it runs) changes no prediction.
    """
    seen: set[int] = set()
    stack: list[object] = [model]
    while stack:
        obj = stack.pop()
        if obj is None or id(obj) in seen or isinstance(obj, _LEAVES):
            continue
        seen.add(id(obj))
        if type(obj).__name__ == "_BinMapper" and hasattr(obj, "n_threads"):
            obj.n_threads = None
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            stack.extend(obj)
        elif hasattr(obj, "__dict__"):
            stack.extend(vars(obj).values())


#: Objects :func:`pin_fit_threads` does not look inside.
_LEAVES: Final = (str, bytes, int, float, complex, type, np.ndarray, ModuleType, FunctionType)
