"""The working files of a bucketed scoring (:mod:`crmkit.models.bucketed`).

The first pass writes each bucket's per-customer totals (a large bucket in shares of its
customers, small ones then joined into groups); :func:`global_blocks` tells where a block
of customers in customer order lies in the files, each sorted by customer.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar

import numpy as np
import polars as pl

from crmkit import schema
from crmkit.config.settings import FeatureConfig
from crmkit.errors import StoreWriteError
from crmkit.features.customer import collect, customer_totals, with_derived
from crmkit.features.pipeline import joined_buckets
from crmkit.features.vocabulary import Vocabulary
from crmkit.progress import ProgressFn
from crmkit.store.executors import current_executor

if TYPE_CHECKING:
    from crmkit.models.bucketed import _Job

T = TypeVar("T")

#: Transactions a first-pass task reads at most (a bucket above it is read in shares).
SHARE_ROWS: Final = 1_000_000
#: Customers a group of buckets holds at most for the later passes (unless one bucket has more).
GROUP_CUSTOMERS: Final = 200_000
#: Rows per row group of the working files: a block of predictions reads a few of them.
SPILL_ROW_GROUP: Final = 10_000


def own_history(
    item: tuple[Sequence[str], str, int, int],
    as_of: dt.date,
    cfg: FeatureConfig,
    vocab: Vocabulary,
) -> pl.DataFrame:
    """Return a share of a bucket's customers' totals (:func:`customer_totals`), by id.

    ``item`` is ``(parts, file, shares, share)``: the customers whose id hashes to
    ``share`` modulo ``shares`` (every customer when ``shares`` is 1).
    """
    paths, _, shares, share = item
    scan = pl.scan_parquet(list(paths), schema=dict(schema.TRANSACTION_SCHEMA))
    if shares > 1:
        scan = scan.filter(pl.col(schema.CUSTOMER_ID).hash() % shares == share)
    return collect(customer_totals(scan, as_of, cfg, vocab)).sort(schema.CUSTOMER_ID)


def spill_bucket(
    item: tuple[Sequence[str], str, int, int],
    as_of: dt.date,
    cfg: FeatureConfig,
    vocab: Vocabulary,
) -> int:
    """Write :func:`own_history` of ``item``, with its derived columns, to its file.

    Returns its customers. Runs where the executor runs it (a Dask worker writes the
    file itself).
    """
    totals = own_history(item, as_of, cfg, vocab)
    if totals.height:
        spill(with_derived(totals.lazy(), as_of, cfg, vocab).collect(), Path(item[1]))
    return totals.height


def spill(frame: pl.DataFrame, path: Path) -> None:
    """Write a working file of the scoring; a full or read-only disk is named with its cure.

    Raises
    ------
    StoreWriteError
        The file cannot be written (exit 6).
    """
    try:
        frame.write_parquet(path, row_group_size=SPILL_ROW_GROUP)
    except (OSError, pl.exceptions.PolarsError) as exc:
        path.unlink(missing_ok=True)
        raise StoreWriteError(
            f"scoring cannot write its working files in {path.parent.parent} "
            f"({type(exc).__name__}: the disk may be full or read-only); free space there or "
            "set TMPDIR to a directory on a disk with room"
        ) from exc


def first_pass(job: _Job, progress: ProgressFn | None) -> list[Path]:
    """Spill each bucket's own-history columns; return the files that hold customers.

    A bucket of more than :data:`SHARE_ROWS` transactions is read in shares of its
    customers (by a hash of the id), so that the memory of one task stays bounded however
    many customers the store's fixed number of buckets holds; smaller neighbouring buckets
    are read together (:func:`~crmkit.features.pipeline.joined_buckets`, at most that many).
    Neither changes a value.
    """
    held = job.store.part_rows()
    items = []
    for i, paths in enumerate(joined_buckets(job.store, job.store.bucket_paths(), SHARE_ROWS)):
        shares = max(1, math.ceil(sum(held[p] for p in paths) / SHARE_ROWS))
        for j in range(shares):
            items.append((paths, str(job.root / f"derived-{i:04d}-{j:03d}.parquet"), shares, j))
    run = current_executor()
    if run.name == "local":  # no file per bucket: the groups are written from memory
        groups = _groups((f, f.height) for f in _own_histories(job, items, progress))
        return [_write_totals(g, job, k) for k, g in enumerate(groups)]
    counts = run.map(spill_bucket, items, job.as_of, job.cfg, job.vocab, progress=progress)
    files = ((Path(item[1]), n) for item, n in zip(items, counts, strict=True))
    return [_write_group(g, job.root, k) for k, g in enumerate(_groups(files))]


def _own_histories(
    job: _Job, items: Sequence[tuple[Sequence[str], str, int, int]], progress: ProgressFn | None
) -> Iterator[pl.DataFrame]:
    """Yield each item's own-history columns in this process, reporting each to ``progress``."""
    for k, item in enumerate(items):
        frame = own_history(item, job.as_of, job.cfg, job.vocab)
        if progress is not None:
            progress(k + 1, len(items), "buckets")
        yield frame


def _groups(sized: Iterable[tuple[T, int]]) -> Iterator[list[T]]:
    """Join consecutive non-empty items into groups of about :data:`GROUP_CUSTOMERS` customers.

    The later passes then run once per group: a small store is one group, a large one's
    groups are each about one bucket.
    """
    pending: list[T] = []
    held = 0
    for item, n in sized:
        if not n:
            continue
        if pending and held + n > GROUP_CUSTOMERS:
            yield pending
            pending, held = [], 0
        pending.append(item)
        held += n
    if pending:
        yield pending


def _write_totals(group: list[pl.DataFrame], job: _Job, k: int) -> Path:
    """Write a group's totals with their derived columns, sorted by customer, to one file."""
    totals = pl.concat(group).sort(schema.CUSTOMER_ID)
    target = job.root / f"group-{k:04d}.parquet"
    spill(with_derived(totals.lazy(), job.as_of, job.cfg, job.vocab).collect(), target)
    return target


def _write_group(group: list[Path], root: Path, k: int) -> Path:
    """Join a group's files, sorted by customer, into one (a lone file stays as it is)."""
    if len(group) == 1:
        return group[0]
    target = root / f"group-{k:04d}.parquet"
    spill(pl.concat([pl.read_parquet(g) for g in group]).sort(schema.CUSTOMER_ID), target)
    for g in group:
        g.unlink()
    return target


def global_blocks(parts: pl.Series, rows: int) -> Iterator[tuple[int, list[tuple[int, int, int]]]]:
    """Cut the customer-ordered rows into blocks of ``rows``; say where each block lies.

    ``parts`` gives, in customer order, the bucket file of each row (each file sorted by
    customer). Yields each block's first row and its ``(file, first row, end row)`` ranges.
    """
    index = parts.to_numpy()
    seen = np.zeros(int(index.max()) + 1 if index.size else 0, dtype=np.int64)
    for start in range(0, index.size, rows):
        block = index[start : start + rows]
        counts = np.bincount(block, minlength=seen.size)
        ranges = [(int(f), int(seen[f]), int(seen[f] + counts[f])) for f in np.flatnonzero(counts)]
        seen += counts
        yield start, ranges
