"""Threads of a fit: OpenMP for the trees, one BLAS thread for the linear model."""

from __future__ import annotations

import os
from typing import Any


def threads(n: int) -> Any:  # noqa: ANN401
    """Context manager: ``n`` OpenMP threads (0: see :func:`openmp_threads`), one BLAS thread.

    Measured on 2 cores with 68 features: gradient boosting fits in 0.77 s instead of
    1.22 s on 5,000 rows with two threads, 20.3 s instead of 40.0 s on 500,000; the
    logistic regression is slower with two BLAS threads at every size (12.1 s against
    10.5 s on 500,000 rows), so it keeps one.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits={"openmp": openmp_threads(n), "blas": 1})


def openmp_threads(n: int) -> int:
    """Return ``n``, or for 0 the ``OMP_NUM_THREADS`` of the environment, else the idle cores.

    Idle cores: every core less the one-minute load average (rounded), at least one.
    OpenMP threads spin while they wait for a core, so on a busy machine threads beyond
    the idle cores cost more than they bring: the model's explanation of 2.3k customers
    took 8.5 s on one thread and 4.1 s on two on a quiet 2-core machine, but 12.0 s on one
    and 14.4 s on two beside two busy processes.
    """
    if n > 0:
        return n
    given = os.environ.get("OMP_NUM_THREADS", "").strip()
    if given.isdigit() and int(given) > 0:
        return int(given)
    cores = max(1, os.cpu_count() or 1)
    try:
        busy = round(os.getloadavg()[0])
    except OSError:  # no load average on this platform
        busy = 0
    return max(1, min(cores, cores - busy))
