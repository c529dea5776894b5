"""The working files of a bucketed scoring (:mod:`crmkit.models.bucketed`).

The first pass writes each bucket's per-customer totals (a large bucket in shares of its
customers, small ones then joined into groups); :func:`global_blocks` tells where a block
of customers in customer order lies in the files, each sorted by customer.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
import polars as pl

from crmkit import schema
from crmkit.config.settings import FeatureConfig
from crmkit.errors import StoreWriteError
from crmkit.features.customer import collect, customer_totals, with_derived
from crmkit.features.vocabulary import Vocabulary
from crmkit.progress import ProgressFn
from crmkit.store.executors import current_executor

if TYPE_CHECKING:
    from crmkit.models.bucketed import _Job

#: Transactions a first-pass task reads at most (a bucket above it is read in shares).
SHARE_ROWS: Final = 1_000_000
#: Customers a group of buckets holds at most for the later passes (unless one bucket has more).
GROUP_CUSTOMERS: Final = 200_000
#: Rows per row group of the working files: a block of predictions reads a few of them.
SPILL_ROW_GROUP: Final = 10_000


def spill_bucket(
    item: tuple[Sequence[str], str, int, int],
    as_of: dt.date,
    cfg: FeatureConfig,
    vocab: Vocabulary,
) -> int:
    """Write a share of a bucket's customers' own-history columns; return their number.

    ``item`` is ``(parts, file, shares, share)``: the customers whose id hashes to
    ``share`` modulo ``shares`` (every customer when ``shares`` is 1). Runs where the
    executor runs it (a Dask worker writes the file itself).
    """
    paths, out, shares, share = item
    scan = pl.scan_parquet(list(paths), schema=dict(schema.TRANSACTION_SCHEMA))
    if shares > 1:
        scan = scan.filter(pl.col(schema.CUSTOMER_ID).hash() % shares == share)
    totals = collect(customer_totals(scan, as_of, cfg, vocab)).sort(schema.CUSTOMER_ID)
    if totals.height:
        spill(with_derived(totals.lazy(), as_of, cfg, vocab).collect(), Path(out))
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
    many customers the store's fixed number of buckets holds. The shares change no value.
    """
    rows: dict[int, int] = {}
    for part in job.store.manifest().parts_of("transactions"):
        rows[part.bucket or 0] = rows.get(part.bucket or 0, 0) + part.rows
    items = []
    for i, (bucket, paths) in enumerate(zip(sorted(rows), job.store.bucket_paths(), strict=True)):
        shares = max(1, math.ceil(rows[bucket] / SHARE_ROWS))
        for j in range(shares):
            items.append((paths, str(job.root / f"derived-{i:04d}-{j:03d}.parquet"), shares, j))
    counts = current_executor().map(
        spill_bucket, items, job.as_of, job.cfg, job.vocab, progress=progress
    )
    files = [(Path(item[1]), n) for item, n in zip(items, counts, strict=True) if n]
    return _grouped(files, job.root)


def _grouped(files: list[tuple[Path, int]], root: Path) -> list[Path]:
    """Join consecutive files into files of about :data:`GROUP_CUSTOMERS` customers.

    The later passes then run once per group: a small store is one group, a large one's
    groups are each about one bucket.
    """
    groups: list[list[Path]] = [[]]
    held = 0
    for path, n in files:
        if groups[-1] and held + n > GROUP_CUSTOMERS:
            groups.append([])
            held = 0
        groups[-1].append(path)
        held += n
    out = []
    for k, group in enumerate(g for g in groups if g):
        if len(group) == 1:
            out.append(group[0])
            continue
        target = root / f"group-{k:04d}.parquet"
        spill(pl.concat([pl.read_parquet(p) for p in group]).sort(schema.CUSTOMER_ID), target)
        for path in group:
            path.unlink()
        out.append(target)
    return out


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
