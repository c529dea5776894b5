"""Segmentations of the feature table: RFM scores, value tiers, k-means clusters.

Each is an estimator in the scikit-learn style: thresholds (quintile or tertile edges,
scaler and centroids) are learned by ``fit`` on one as-of date and applied by
``transform`` at any other, which makes "thresholds learned on the training date"
explicit. Inputs and outputs are polars frames (the feature table).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import polars as pl

from crmkit import schema
from crmkit.config.settings import SegmentConfig, Settings
from crmkit.errors import BadInputError
from crmkit.features.pipeline import store_features
from crmkit.numbers import as_float
from crmkit.segments.estimators import KMeansSegments, RFMScorer, ValueTiers
from crmkit.segments.summary import SegmentSummary, summarise, value_concentration
from crmkit.store.core import Store


def segment_frame(
    features: pl.DataFrame,
    by: Literal["rfm", "value", "kmeans"],
    cfg: SegmentConfig,
    k: int | Literal["auto"] = "auto",
) -> tuple[pl.DataFrame, SegmentSummary]:
    """Fit and apply one segmentation on a feature table; return (table, summary).

    Raises
    ------
    BadInputError
        When there are no customers or too few for the requested clusters.
    """
    if by == "rfm":
        out = RFMScorer().fit_transform(features)
        keep, column = ["r_score", "f_score", "m_score", "rfm_score", "rfm_segment"], "rfm_segment"
    elif by == "value":
        tiers = ValueTiers(cfg.cycle_edges, cfg.spend_edges, cfg.one_time_buyers)
        out = tiers.fit_transform(features)
        keep, column = ["cycle_class", "spend_class", "value_tier"], "value_tier"
    else:
        km = KMeansSegments(cfg.kmeans_features, k=k, max_k=cfg.max_k, random_state=cfg.seed)
        out = km.fit_transform(features)
        keep, column = [*cfg.kmeans_features, "cluster"], "cluster"
        profile = (
            out.group_by("cluster")
            .agg(pl.len().alias("customers"), *(pl.col(c).mean() for c in cfg.kmeans_features))
            .sort("cluster")
        )
    base = [
        schema.CUSTOMER_ID,
        "recency_days",
        "purchase_days",
        "net_spend",
        "mean_cycle_days",
        "mean_spend_per_day",
        "customer_value",
    ]
    summary = summarise(out, column)
    if by == "kmeans":
        summary = SegmentSummary(
            summary.by,
            summary.table,
            summary.top5_value_share,
            summary.top20_value_share,
            summary.customers,
            profile,
        )
    return out.select(list(dict.fromkeys([*base, *keep]))), summary


def with_segments(features: pl.DataFrame, cfg: SegmentConfig) -> pl.DataFrame:
    """Add RFM and value-tier columns, with edges fitted on ``features`` itself.

    Every command passes the whole feature table as of its date (every customer with a
    purchase before it), so ``features``, ``segment``, ``score``, ``targets`` and ``report``
    give each customer the same segment and tier for the same store and date; ``score``
    narrows to the eligible customers only afterwards.
    """
    if features.height == 0:
        return features.with_columns(
            pl.lit(None, dtype=pl.String).alias("rfm_segment"),
            pl.lit(None, dtype=pl.String).alias("value_tier"),
        )
    rfm = RFMScorer().fit_transform(features)
    tiers = ValueTiers(cfg.cycle_edges, cfg.spend_edges, cfg.one_time_buyers).fit_transform(rfm)
    return tiers.drop("cycle_class", "spend_class")


def _as_of_check(store: Store, as_of: dt.date) -> None:
    manifest = store.require()
    if not manifest.parts_of("transactions"):
        raise BadInputError(f"store {store.root} holds no transactions yet")


def feature_table(store: Store, as_of: dt.date, settings: Settings) -> pl.DataFrame:
    """Features as of ``as_of`` for every customer, with RFM and value-tier columns.

    Raises
    ------
    StoreCorruptError
        When there is no store.
    BadInputError
        When the store is empty.
    """
    _as_of_check(store, as_of)
    features = store_features(store, as_of, settings.features)
    return with_segments(features, settings.segments)


def segment_store(
    store: Store,
    as_of: dt.date,
    by: Literal["rfm", "value", "kmeans"],
    settings: Settings,
    k: int | Literal["auto"] = "auto",
) -> tuple[pl.DataFrame, SegmentSummary]:
    """Compute features as of ``as_of`` and one segmentation of them."""
    _as_of_check(store, as_of)
    features = store_features(store, as_of, settings.features)
    return segment_frame(features, by, settings.segments, k)


def feature_summary(frame: pl.DataFrame, as_of: dt.date, out: object) -> dict[str, Any]:
    """Headline numbers of a feature table for the ``features`` command."""
    n = frame.height
    return {
        "as_of": str(as_of),
        "out": str(out),
        "customers": n,
        "one_time_share": as_float(frame["is_one_time"].mean()) if n else 0.0,
        "median_recency_days": as_float(frame["recency_days"].median()) if n else 0.0,
        "median_purchase_days": as_float(frame["purchase_days"].median()) if n else 0.0,
        "net_spend": float(frame["net_spend"].sum()),
        "top5_value_share": value_concentration(frame["net_spend"], 0.05) if n else 0.0,
        "top20_value_share": value_concentration(frame["net_spend"], 0.20) if n else 0.0,
    }
