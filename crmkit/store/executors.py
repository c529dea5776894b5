"""Where per-bucket work runs: in this process, or as tasks on a Dask cluster.

The store keeps customers in disjoint buckets, so the feature pipeline (and everything
built on it: training snapshots, scoring, uplift features) is a map over buckets followed
by one population step. An :class:`Executor` runs the map. :class:`LocalExecutor` runs it
here, one bucket after another; :class:`DaskExecutor` sends one task per bucket to a
``dask.distributed`` cluster, whose workers read their bucket's Parquet parts themselves.
Results come back in bucket order, so both give byte-identical outputs.

The cluster only reads: the store's lock and manifest stay with the one process that
writes. The store must therefore be on a filesystem every worker sees under the same path.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any, Final, Protocol, TypeVar

from crmkit.errors import ConfigError, UnavailableError

T = TypeVar("T")
R = TypeVar("R")
ProgressFn = Callable[[int, int, str], None]
EXECUTORS: Final = ("local", "dask")
#: Workers of the LocalCluster started when no scheduler is given.
DEFAULT_WORKERS: Final = 2


class Executor(Protocol):
    """Runs a function over items and returns the results in the items' order."""

    name: str

    def map(
        self,
        fn: Callable[..., R],
        items: Sequence[Any],
        *args: Any,  # noqa: ANN401
        progress: ProgressFn | None = None,
        label: str = "buckets",
    ) -> list[R]:
        """Return ``[fn(item, *args) for item in items]``."""
        ...


class LocalExecutor:
    """Runs every item in this process, in order."""

    name = "local"

    def map(
        self,
        fn: Callable[..., R],
        items: Sequence[Any],
        *args: Any,  # noqa: ANN401
        progress: ProgressFn | None = None,
        label: str = "buckets",
    ) -> list[R]:
        """Return ``[fn(item, *args) for item in items]``, reporting after each item."""
        out = []
        for i, item in enumerate(items):
            out.append(fn(item, *args))
            if progress is not None:
                progress(i + 1, len(items), label)
        return out


class DaskExecutor:
    """Runs every item as a task on a ``dask.distributed`` cluster.

    Parameters
    ----------
    client
        A connected ``distributed.Client``.
    """

    name = "dask"

    def __init__(self, client: Any) -> None:  # noqa: ANN401
        self.client = client

    def map(
        self,
        fn: Callable[..., R],
        items: Sequence[Any],
        *args: Any,  # noqa: ANN401
        progress: ProgressFn | None = None,
        label: str = "buckets",
    ) -> list[R]:
        """Submit one task per item; gather the results in the items' order.

        The shared arguments are sent to the cluster once. A task that fails raises its
        error here.
        """
        from distributed import as_completed
        from distributed.client import FutureCancelledError
        from distributed.scheduler import KilledWorker

        if not items:
            return []
        try:
            shared = [self.client.scatter(a, broadcast=True) for a in args]
            futures = [self.client.submit(fn, item, *shared, pure=False) for item in items]
            for done, _ in enumerate(as_completed(futures), start=1):  # type: ignore[no-untyped-call]
                if progress is not None:
                    progress(done, len(items), label)
            results: list[R] = self.client.gather(futures)
        except (KilledWorker, FutureCancelledError, OSError) as exc:
            raise UnavailableError(f"the Dask cluster failed to run {label}: {exc}") from exc
        return results


_CURRENT: ContextVar[Executor | None] = ContextVar("crmkit_executor", default=None)


def current_executor() -> Executor:
    """Return the executor set by :func:`using`, else a :class:`LocalExecutor`."""
    return _CURRENT.get() or LocalExecutor()


@contextlib.contextmanager
def using(executor: Executor) -> Iterator[Executor]:
    """Run the per-bucket work of the enclosed calls on ``executor``."""
    token = _CURRENT.set(executor)
    try:
        yield executor
    finally:
        _CURRENT.reset(token)


@contextlib.contextmanager
def open_executor(
    kind: str, scheduler: str | None = None, workers: int = DEFAULT_WORKERS
) -> Iterator[Executor]:
    """Yield the executor ``kind`` (``local`` or ``dask``) and close it afterwards.

    ``dask`` connects to ``scheduler`` (``tcp://host:8786``) or, when None, starts a
    ``LocalCluster`` of ``workers`` single-threaded worker processes on this machine.

    Raises
    ------
    ConfigError
        An unknown executor, or ``dask`` without the ``distributed`` package.
    StoreUnavailableError
        The scheduler cannot be reached.
    """
    if kind == "local":
        yield LocalExecutor()
        return
    if kind != "dask":
        raise ConfigError(f"unknown executor {kind!r}: use one of {', '.join(EXECUTORS)}")
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise ConfigError(
            "--executor dask needs the dask extra: pip install 'crmkit[dask]'"
        ) from exc
    with contextlib.ExitStack() as stack:
        if scheduler is None:
            cluster = stack.enter_context(
                LocalCluster(  # type: ignore[no-untyped-call]
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
            )
            client = stack.enter_context(Client(cluster))  # type: ignore[no-untyped-call]
        else:
            try:
                _reachable(scheduler)
                client = stack.enter_context(Client(scheduler, timeout="10s"))  # type: ignore[no-untyped-call]
            except OSError as exc:
                raise UnavailableError(
                    f"cannot reach the Dask scheduler at {scheduler}: {exc}"
                ) from exc
        yield DaskExecutor(client)


def _reachable(address: str, timeout: float = 5.0) -> None:
    """Raise OSError at once when nothing listens at a ``tcp://host:port`` address.

    The Dask client would retry a refused connection until its timeout.
    """
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme != "tcp" or parts.hostname is None or parts.port is None:
        return
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout):
        pass
