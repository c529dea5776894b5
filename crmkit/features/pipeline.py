"""The feature pipeline over a store, one customer bucket per task.

A store keeps its customers in disjoint hash buckets. :func:`bucket_totals` runs the
per-customer part of the pipeline (:func:`crmkit.features.customer.customer_totals`) on one bucket's
Parquet parts; an executor (:mod:`crmkit.store.executors`) maps it over the buckets, here or on a
Dask cluster (small neighbouring buckets joined into one task, :func:`join_small`), and the
population step (the medians behind the projected value) then runs once on the
per-customer rows. :func:`store_features` does this for every bucket;
:func:`sampled_features` for the buckets a training snapshot needs.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from typing import Final, TypeVar

import numpy as np
import polars as pl

from crmkit import schema
from crmkit.config.settings import FeatureConfig
from crmkit.features.attributes import with_attributes
from crmkit.features.customer import (
    _finish_columns,
    collect,
    customer_features,
    customer_totals,
    with_derived,
)
from crmkit.features.labels import cutoff_of
from crmkit.features.vocabulary import Vocabulary, learn_vocabulary
from crmkit.progress import ProgressFn
from crmkit.store.core import Store
from crmkit.store.executors import Executor, current_executor

#: Buckets are chosen for a sampled snapshot so that they hold this many times its quota.
SAMPLE_MARGIN: Final = 1.15
#: Transactions one task of the map reads at most when it takes several small buckets.
JOIN_ROWS: Final = 250_000
T = TypeVar("T")


def join_small(sized: Iterable[tuple[list[T], int]], limit: int) -> list[list[T]]:
    """Join consecutive ``(items, rows)`` into lists of at most ``limit`` rows, in order.

    An entry above ``limit`` stays alone. Buckets hold disjoint customers and every
    per-customer total depends on that customer's rows alone, so one task over several
    small buckets gives the rows of one task each: on a small store it saves a plan, a
    scan and a sort per bucket (about 20 ms each, 16 buckets, for every feature table).
    """
    out: list[list[T]] = []
    held = 0
    for items, rows in sized:
        if out and held + rows <= limit:
            out[-1].extend(items)
            held += rows
        else:
            out.append(list(items))
            held = rows
    return out


def joined_buckets(
    store: Store, buckets: Sequence[Sequence[str]], limit: int | None = None
) -> list[list[str]]:
    """Return ``buckets`` (lists of Parquet paths), small neighbours joined (:func:`join_small`).

    At most :data:`JOIN_ROWS` transactions a task, or ``limit`` if lower: a store's buckets
    above that (a large store's are) stay one task each, so a task's memory does not grow.
    """
    rows = store.part_rows()
    sized = ((list(paths), sum(rows.get(p, 0) for p in paths)) for paths in buckets)
    return join_small(sized, JOIN_ROWS if limit is None else min(limit, JOIN_ROWS))


def bucket_totals(
    paths: Sequence[str],
    as_of: dt.date,
    cfg: FeatureConfig,
    vocab: Vocabulary,
    customers: pl.Series | None = None,
) -> pl.DataFrame:
    """Per-customer totals of one bucket's transaction parts, sorted by customer.

    Only the ``customers`` given (all when None). Reads the Parquet parts itself, so that
    it can run on a Dask worker.
    """
    scan = pl.scan_parquet(list(paths), schema=dict(schema.TRANSACTION_SCHEMA))
    if customers is not None:
        scan = scan.filter(pl.col(schema.CUSTOMER_ID).is_in(customers.implode()))
    return collect(customer_totals(scan, as_of, cfg, vocab)).sort(schema.CUSTOMER_ID)


def sort_by_customer(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """Concatenate frames of disjoint customers, each sorted by id, into one sorted frame.

    Each part is sorted while it is small enough for its gather to stay in cache; the
    final gather then reads the parts as sorted runs, almost sequentially. Together this
    is about twice as fast as one sort of the concatenation. The parts are not copied into
    one block first: that would cost a copy of the table.
    """
    runs = pl.concat(parts, rechunk=False)
    parts.clear()
    order = runs.select(pl.col(schema.CUSTOMER_ID).arg_sort()).to_series()
    return runs[order]


def features_of_buckets(
    store: Store,
    buckets: Sequence[Sequence[str]],
    as_of: dt.date,
    cfg: FeatureConfig,
    vocab: Vocabulary,
    executor: Executor | None = None,
    progress: ProgressFn | None = None,
    customers: pl.Series | None = None,
) -> pl.DataFrame:
    """Features of the customers of ``buckets`` (lists of Parquet paths), sorted by id.

    Only the ``customers`` given, when not None. The population step sees only these
    customers: on a sample of buckets, the medians behind ``projected_value`` are those of
    the sample. The buckets run on ``executor`` (default :func:`current_executor`).
    """
    run = executor or current_executor()
    args = (as_of, cfg, vocab) if customers is None else (as_of, cfg, vocab, customers)
    parts = run.map(bucket_totals, joined_buckets(store, buckets), *args, progress=progress)
    parts = [p for p in parts if p.height]
    if not parts:
        empty = collect(customer_features(store.transactions().head(0), as_of, cfg, vocab))
        return with_attributes(store, empty, as_of, cfg)
    totals = sort_by_customer(parts)
    derived = with_derived(totals.lazy(), as_of, cfg, vocab)
    return with_attributes(store, _finish_columns(derived, cfg, vocab).collect(), as_of, cfg)


def store_features(
    store: Store,
    as_of: dt.date,
    cfg: FeatureConfig,
    progress: ProgressFn | None = None,
    vocab: Vocabulary | None = None,
    executor: Executor | None = None,
) -> pl.DataFrame:
    """Compute :func:`~crmkit.features.customer.customer_features` over a store, bucket by bucket.

    Buckets hold disjoint customers, so each bucket's plan is small (its hash tables fit in
    cache and memory stays bounded by the largest bucket) and the results concatenate;
    the population step then runs once on the per-customer rows. ``vocab`` (learned from
    the store as of ``as_of`` when None) names the category and channel share columns.
    """
    vocab = learn_vocabulary(store.transactions(), as_of, cfg) if vocab is None else vocab
    return features_of_buckets(store, store.bucket_paths(), as_of, cfg, vocab, executor, progress)


def active_per_bucket(store: Store, cutoffs: Sequence[dt.date], lookback_days: int) -> list[int]:
    """Estimated customers with a purchase in the ``lookback_days`` before each cutoff, per bucket.

    Counted exactly in the first bucket and scaled by the number of buckets (hashing spreads
    customers evenly): what one bucket adds to a snapshot, read in one pass over one bucket.
    """
    paths = store.bucket_paths()
    if not paths:
        return [0 for _ in cutoffs]
    scan = pl.scan_parquet(paths[0], schema=dict(schema.TRANSACTION_SCHEMA)).filter(
        pl.col(schema.AMOUNT) > 0
    )
    counts = []
    for cutoff in cutoffs:
        end = cutoff_of(cutoff)
        start = end - dt.timedelta(days=lookback_days)
        window = (pl.col(schema.TS) >= start) & (pl.col(schema.TS) < end)
        counts.append(pl.col(schema.CUSTOMER_ID).filter(window).n_unique().alias(str(cutoff)))
    row = scan.select(counts).collect().row(0)
    return [int(n) for n in row]


def buckets_for(
    n_buckets: int, per_bucket: int, quota: int, seed: int, index: int
) -> list[int] | None:
    """Return the buckets a snapshot reads to fill ``quota`` rows; None for all of them.

    Snapshot ``index`` starts at its own place in a seeded order of the buckets, so that
    consecutive snapshots read different customers when each needs only a few buckets.
    """
    if per_bucket <= 0:
        return None
    need = math.ceil(quota * SAMPLE_MARGIN / per_bucket)
    if need >= n_buckets:
        return None
    order = np.random.default_rng(seed).permutation(n_buckets)
    start = (index * need) % n_buckets
    return sorted(int(order[(start + j) % n_buckets]) for j in range(need))
