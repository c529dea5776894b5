"""Training snapshots: who is eligible at each cutoff, their features and labels, sampled.

Cutoffs ``T_k = as_of - horizon - k * step`` for ``k = 0 .. snapshots - 1``. At each
cutoff the *eligible* customers are those with a purchase before ``T_k`` whose last
purchase is at most ``lookback_days`` before it; their features come from the shared
pipeline as of ``T_k`` and their label is ``churned = no purchase in [T_k, T_k + horizon)``.
Every label window ends by ``as_of``, so only fully observed outcomes are used. Two
season features (day of year of the cutoff, as sine and cosine) let the model learn how
the base rate moves through the year. Above ``[model] max_training_rows`` each snapshot
is a sample (:func:`sample_snapshot`) read from a few store buckets.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from crmkit import schema
from crmkit.config.settings import FeatureConfig, ModelConfig
from crmkit.errors import BadInputError
from crmkit.features.eligibility import eligible, season_columns
from crmkit.features.labels import churn_labels
from crmkit.features.pipeline import active_per_bucket, buckets_for, features_of_buckets
from crmkit.features.vocabulary import Vocabulary
from crmkit.hashing import add_stable_hash
from crmkit.models.clv import with_clv
from crmkit.store.core import Store

ProgressFn = Callable[[int, int, str], None]


def cutoffs(as_of: dt.date, horizon: int, cfg: ModelConfig) -> list[dt.date]:
    """Return the training cutoffs, newest first."""
    return [as_of - dt.timedelta(days=horizon + k * cfg.step_days) for k in range(cfg.snapshots)]


@dataclass(frozen=True)
class TrainingSet:
    """Stacked labelled snapshots, newest first, and how they were sampled."""

    frame: pl.DataFrame
    sample: dict[str, Any]


def training_set(
    store: Store,
    as_of: dt.date,
    horizon: int,
    cfg: ModelConfig,
    features: FeatureConfig,
    progress: ProgressFn | None = None,
    vocab: Vocabulary | None = None,
) -> TrainingSet:
    """Stack labelled snapshots, newest first: ``snapshot``, the features, season, ``churned``.

    Every snapshot uses the same category vocabulary ``vocab`` (none when None), so that
    its columns are those of the model. With ``[model] max_training_rows``, each snapshot
    keeps at most an equal share of it (see :func:`sample_snapshot`), and its features are
    computed only for the store buckets that supply that share.

    Raises
    ------
    BadInputError
        When the store's data ends before ``as_of`` (labels would be incomplete) or no
        cutoff has eligible customers.
    """
    first = _check_span(store, as_of)
    points = [t for t in cutoffs(as_of, horizon, cfg) if t > first]
    quota = cfg.max_training_rows // len(points) if cfg.max_training_rows and points else 0
    paths = store.bucket_paths()
    active = active_per_bucket(store, points, cfg.lookback_days) if quota else []
    frames, report = [], []
    for i, cutoff in enumerate(points):
        chosen = buckets_for(len(paths), active[i], quota, cfg.seed, i) if quota else None
        parts = paths if chosen is None else [paths[b] for b in chosen]
        everyone = features_of_buckets(store, parts, cutoff, features, vocab or Vocabulary())
        if cfg.clv_features:
            everyone = with_clv(everyone, cutoff, horizon, features)
        snap = eligible(everyone, cfg.lookback_days)
        if snap.height:
            tx = store.transactions() if chosen is None else _scan_parts(parts)
            kept = _labelled(snap, tx, cutoff, horizon, quota, cfg.seed)
            frames.append(kept)
            report.append({"snapshot": str(cutoff), "buckets": len(parts),
                           "eligible": snap.height, "kept": kept.height})  # fmt: skip
        if progress is not None:
            progress(i + 1, len(points), f"snapshot {cutoff}")
    if not frames:
        raise BadInputError(f"no eligible customers at any cutoff before {as_of}")
    sample = {
        "max_training_rows": cfg.max_training_rows,
        "store_buckets": len(paths),
        "seed": cfg.seed,
        "snapshots": report,
    }
    return TrainingSet(pl.concat(frames), sample)


def _labelled(
    snap: pl.DataFrame, tx: pl.LazyFrame, cutoff: dt.date, horizon: int, quota: int, seed: int
) -> pl.DataFrame:
    """Label a snapshot's customers (churned in the horizon after it), add its season."""
    labels = churn_labels(tx, snap.lazy(), cutoff, horizon).collect()
    frame = snap.join(labels, on=schema.CUSTOMER_ID, how="left").with_columns(
        pl.lit(cutoff).alias("snapshot"), *season_columns(cutoff)
    )
    return sample_snapshot(frame, quota, seed) if quota else frame


def _check_span(store: Store, as_of: dt.date) -> dt.date:
    store.require()
    span = (
        store.transactions()
        .select(pl.col(schema.TS).min().alias("first"), pl.col(schema.TS).max().alias("last"))
        .collect()
    )
    first, last = span["first"][0], span["last"][0]
    if first is None:
        raise BadInputError(f"store {store.root} holds no transactions")
    if last.date() < as_of - dt.timedelta(days=7):
        raise BadInputError(
            f"the store's transactions end on {last.date()}, before --as-of {as_of}: "
            "labels up to the as-of date would be incomplete"
        )
    day: dt.date = first.date()
    return day


def _scan_parts(parts: Sequence[Sequence[str]]) -> pl.LazyFrame:
    paths = [path for bucket in parts for path in bucket]
    return pl.scan_parquet(paths, schema=dict(schema.TRANSACTION_SCHEMA))


def sample_snapshot(frame: pl.DataFrame, quota: int, seed: int) -> pl.DataFrame:
    """Keep ``quota`` rows of one snapshot (all when it has fewer), stratified by label.

    Each label keeps its share of the quota (largest remainders); within a label the rows
    with the smallest salted hash of the customer id are kept, so the sample depends on
    the seed and the snapshot only, never on row order. The order of ``frame`` is kept.
    """
    if frame.height <= quota:
        return frame
    counts = frame.group_by("churned").len().sort("churned")
    labels, sizes = counts["churned"].to_list(), counts["len"].to_list()
    exact = [quota * n / frame.height for n in sizes]
    keep = [math.floor(e) for e in exact]
    by_remainder = sorted(range(len(keep)), key=lambda i: (keep[i] - exact[i], i))
    for i in by_remainder[: quota - sum(keep)]:
        keep[i] += 1
    snapshot = frame["snapshot"][0]
    hashed = add_stable_hash(
        frame.lazy(), schema.CUSTOMER_ID, "_sample_hash", salt=f"training|{seed}|{snapshot}"
    )
    limit = pl.col("churned").replace_strict(labels, keep, return_dtype=pl.UInt32)
    return (
        hashed.filter(pl.col("_sample_hash").rank("ordinal").over("churned") <= limit)
        .drop("_sample_hash")
        .collect()
    )
