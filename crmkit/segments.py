"""Segmentations of the feature table: RFM scores, value tiers, k-means clusters.

Each is an estimator in the scikit-learn style: thresholds (quintile or tertile edges,
scaler and centroids) are learned by ``fit`` on one as-of date and applied by
``transform`` at any other, which makes "thresholds learned on the training date"
explicit. Inputs and outputs are polars frames (the feature table).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Self

import numpy as np
import polars as pl

from crmkit import schema
from crmkit.config.settings import SegmentConfig, Settings
from crmkit.errors import BadInputError
from crmkit.features.day import money_sum
from crmkit.features.pipeline import store_features
from crmkit.numbers import as_float
from crmkit.store.core import Store

#: RFM segment rules, evaluated in order; the first match names the customer.
#: Each rule: (name, R range, F range, M range), ranges inclusive on 1..5 scores.
RFM_RULES: Final[tuple[tuple[str, tuple[int, int], tuple[int, int], tuple[int, int]], ...]] = (
    ("champions", (4, 5), (4, 5), (4, 5)),
    ("loyal", (3, 5), (4, 5), (1, 5)),
    ("cannot_lose", (1, 1), (4, 5), (4, 5)),
    ("at_risk", (1, 2), (3, 5), (1, 5)),
    ("potential_loyalist", (4, 5), (2, 3), (1, 5)),
    ("new_customers", (4, 5), (1, 1), (1, 5)),
    ("need_attention", (3, 3), (3, 3), (1, 5)),
    ("promising", (3, 3), (1, 2), (1, 5)),
    ("hibernating", (2, 2), (1, 2), (1, 5)),
    ("lost", (1, 1), (1, 2), (1, 5)),
)
RFM_SEGMENTS: Final = tuple(rule[0] for rule in RFM_RULES)


def _rfm_segment(r: int, f: int, m: int) -> str | None:
    for name, rr, fr, mr in RFM_RULES:
        if rr[0] <= r <= rr[1] and fr[0] <= f <= fr[1] and mr[0] <= m <= mr[1]:
            return name
    return None


#: The first matching rule of every score combination, by code ``100 r + 10 f + m``.
_RFM_BY_CODE: Final = {
    100 * r + 10 * f + m: _rfm_segment(r, f, m)
    for r in range(1, 6)
    for f in range(1, 6)
    for m in range(1, 6)
}

VALUE_GRID: Final[dict[tuple[str, str], str]] = {
    ("large", "short"): "platinum",
    ("large", "medium"): "gold",
    ("large", "long"): "silver",
    ("medium", "short"): "gold",
    ("medium", "medium"): "silver",
    ("medium", "long"): "development",
    ("small", "short"): "silver",
    ("small", "medium"): "development",
    ("small", "long"): "adjust",
}
VALUE_TIERS: Final = ("platinum", "gold", "silver", "development", "adjust", "one_time")
_CYCLE_CLASSES: Final = {0: "short", 1: "medium", 2: "long"}
_SPEND_CLASSES: Final = {0: "small", 1: "medium", 2: "large"}
#: Tier by code ``3 * spend class + cycle class`` (classes numbered as above).
_TIER_BY_CODE: Final = {
    3 * s + c: VALUE_GRID[(spend, cycle)]
    for s, spend in _SPEND_CLASSES.items()
    for c, cycle in _CYCLE_CLASSES.items()
}

_QUINTILES: Final = (0.2, 0.4, 0.6, 0.8)


def _require(frame: pl.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise BadInputError(f"feature table lacks column(s) {', '.join(missing)}")
    if frame.height == 0:
        raise BadInputError("no customers to segment (no purchases before the as-of date)")


def _edges(values: pl.Series, quantiles: Sequence[float]) -> list[float]:
    clean = values.drop_nulls().drop_nans() if values.dtype.is_float() else values.drop_nulls()
    if clean.len() == 0:
        return [0.0 for _ in quantiles]
    # one sort, then every quantile from it (linear interpolation, like Series.quantile)
    ordered = clean.cast(pl.Float64).sort()
    n = ordered.len()
    out = []
    for q in quantiles:
        pos = q * (n - 1)
        lo = int(pos)
        hi = min(lo + 1, n - 1)
        a, b = float(ordered[lo]), float(ordered[hi])
        out.append(a + (b - a) * (pos - lo))
    return out


def _score(column: str, edges: Sequence[float], *, reverse: bool) -> pl.Expr:
    """1 + number of edges strictly below the value (5 - that for ``reverse``).

    A value-based score: equal values always get equal scores, whatever their order.
    """
    below = pl.sum_horizontal([(pl.col(column) > e).cast(pl.Int8) for e in edges])
    score = (len(edges) + 1 - below) if reverse else (below + 1)
    return score.cast(pl.Int8)


def _check_fitted(estimator: object, attribute: str) -> None:
    if not hasattr(estimator, attribute):
        name = type(estimator).__name__
        raise RuntimeError(f"{name} is not fitted yet: call fit first")


class RFMScorer:
    """Quintile R, F, M scores (1-5) and named segments from :data:`RFM_RULES`.

    R uses ``recency_days`` (recent = 5), F ``purchase_days``, M ``net_spend``. Edges are
    the 20/40/60/80% quantiles at fit time; a score counts the edges a value exceeds, so
    tied values share a score (with many one-time buyers F starts above 1 for repeaters).

    Parameters
    ----------
    recency, frequency, monetary
        Feature columns used for R, F and M.
    """

    def __init__(
        self,
        recency: str = "recency_days",
        frequency: str = "purchase_days",
        monetary: str = "net_spend",
    ) -> None:
        self.recency = recency
        self.frequency = frequency
        self.monetary = monetary

    def fit(self, features: pl.DataFrame, y: object = None) -> Self:
        """Learn the quintile edges."""
        _require(features, [self.recency, self.frequency, self.monetary])
        self.edges_ = {
            "r": _edges(features[self.recency], _QUINTILES),
            "f": _edges(features[self.frequency], _QUINTILES),
            "m": _edges(features[self.monetary], _QUINTILES),
        }
        return self

    def transform(self, features: pl.DataFrame) -> pl.DataFrame:
        """Add ``r_score``, ``f_score``, ``m_score``, ``rfm_score`` and ``rfm_segment``."""
        _check_fitted(self, "edges_")
        _require(features, [self.recency, self.frequency, self.monetary])
        scored = features.with_columns(
            _score(self.recency, self.edges_["r"], reverse=True).alias("r_score"),
            _score(self.frequency, self.edges_["f"], reverse=False).alias("f_score"),
            _score(self.monetary, self.edges_["m"], reverse=False).alias("m_score"),
        )
        code = (
            pl.col("r_score").cast(pl.Int16) * 100
            + pl.col("f_score").cast(pl.Int16) * 10
            + pl.col("m_score").cast(pl.Int16)
        )
        return scored.with_columns(code.alias("rfm_score")).with_columns(
            pl.col("rfm_score").cast(pl.String),
            pl.col("rfm_score")
            .replace_strict(_RFM_BY_CODE, default=None, return_dtype=pl.String)
            .alias("rfm_segment"),
        )

    def fit_transform(self, features: pl.DataFrame, y: object = None) -> pl.DataFrame:
        """Fit, then transform the same frame."""
        return self.fit(features).transform(features)


class ValueTiers:
    """The 3x3 value grid of mean purchase cycle x mean spend per purchase.

    Cycle classes short/medium/long and spend classes small/medium/large are cut at
    tertiles of the repeat buyers (fit time) unless explicit edges are given.
    One-time buyers have no cycle: with ``one_time_buyers="long"`` they sit in the
    long-cycle column (silver, development or adjust by spend), with ``"separate"`` they
    get the tier ``one_time``.

    Parameters
    ----------
    cycle_edges, spend_edges
        Two explicit thresholds each, or empty for tertiles.
    one_time_buyers
        ``"long"`` or ``"separate"``.
    """

    def __init__(
        self,
        cycle_edges: Sequence[float] = (),
        spend_edges: Sequence[float] = (),
        one_time_buyers: Literal["long", "separate"] = "long",
    ) -> None:
        self.cycle_edges = cycle_edges
        self.spend_edges = spend_edges
        self.one_time_buyers = one_time_buyers

    def fit(self, features: pl.DataFrame, y: object = None) -> Self:
        """Learn tertile edges (from repeat buyers for the cycle)."""
        _require(features, ["mean_cycle_days", "mean_spend_per_day"])
        for name, edges in (("cycle_edges", self.cycle_edges), ("spend_edges", self.spend_edges)):
            if edges and (len(edges) != 2 or edges[0] > edges[1]):
                raise BadInputError(f"{name} must be two increasing numbers, got {list(edges)}")
        tertiles = (1 / 3, 2 / 3)
        self.cycle_edges_ = list(self.cycle_edges) or _edges(features["mean_cycle_days"], tertiles)
        self.spend_edges_ = list(self.spend_edges) or _edges(
            features["mean_spend_per_day"], tertiles
        )
        return self

    def transform(self, features: pl.DataFrame) -> pl.DataFrame:
        """Add ``cycle_class``, ``spend_class`` and ``value_tier``."""
        _check_fitted(self, "cycle_edges_")
        c1, c2 = self.cycle_edges_
        s1, s2 = self.spend_edges_
        cycle = pl.col("mean_cycle_days")
        spend = pl.col("mean_spend_per_day")
        one_time = 2 if self.one_time_buyers == "long" else None
        cycle_index = (
            pl.when(cycle.is_null())
            .then(pl.lit(one_time, dtype=pl.Int8))
            .when(cycle <= c1)
            .then(pl.lit(0, dtype=pl.Int8))
            .when(cycle <= c2)
            .then(pl.lit(1, dtype=pl.Int8))
            .otherwise(pl.lit(2, dtype=pl.Int8))
        )
        spend_index = (
            pl.when(spend > s2)
            .then(pl.lit(2, dtype=pl.Int8))
            .when(spend > s1)
            .then(pl.lit(1, dtype=pl.Int8))
            .otherwise(pl.lit(0, dtype=pl.Int8))
        )
        indexed = features.with_columns(
            cycle_index.alias("cycle_class"), spend_index.alias("spend_class")
        )
        tier = (pl.col("spend_class") * 3 + pl.col("cycle_class")).replace_strict(
            _TIER_BY_CODE, default="one_time", return_dtype=pl.String
        )
        return indexed.with_columns(
            pl.col("cycle_class").replace_strict(_CYCLE_CLASSES, return_dtype=pl.String),
            pl.col("spend_class").replace_strict(_SPEND_CLASSES, return_dtype=pl.String),
            tier.fill_null("one_time").alias("value_tier"),
        )

    def fit_transform(self, features: pl.DataFrame, y: object = None) -> pl.DataFrame:
        """Fit, then transform the same frame."""
        return self.fit(features).transform(features)


def _kmeans_matrix(features: pl.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """Signed log1p of the columns, nulls as 0, as a float64 matrix in ``columns`` order."""
    exprs = [
        (pl.col(c).cast(pl.Float64).sign() * pl.col(c).cast(pl.Float64).abs().log1p())
        .fill_null(0.0)
        .fill_nan(0.0)
        .alias(c)
        for c in columns
    ]
    return features.select(exprs).to_numpy().astype(np.float64)


class KMeansSegments:
    """k-means on log-scaled, standardised features, with deterministic cluster numbers.

    Clusters are renumbered by descending mean ``net_spend`` so that cluster 0 is always
    the most valuable one, whatever order k-means found them in.

    Parameters
    ----------
    columns
        Feature columns to cluster.
    k
        Number of clusters, or ``"auto"``: the k in ``2..max_k`` with the best silhouette
        on a sample of at most ``silhouette_sample`` customers.
    max_k, silhouette_sample
        Search range and sample size of ``"auto"``.
    random_state
        Seed of k-means and of the silhouette sample.
    """

    def __init__(
        self,
        columns: Sequence[str],
        k: int | Literal["auto"] = "auto",
        max_k: int = 8,
        silhouette_sample: int = 5_000,
        random_state: int = 0,
    ) -> None:
        self.columns = columns
        self.k = k
        self.max_k = max_k
        self.silhouette_sample = silhouette_sample
        self.random_state = random_state

    def fit(self, features: pl.DataFrame, y: object = None) -> Self:
        """Scale, choose k (for ``"auto"``), fit k-means and order the clusters."""
        from sklearn.cluster import KMeans
        from sklearn.metrics import silhouette_score
        from sklearn.preprocessing import StandardScaler

        _require(features, [*self.columns, "net_spend"])
        text = [c for c in self.columns if not features.schema[c].is_numeric()
                and features.schema[c] != pl.Boolean]  # fmt: skip
        if text:
            raise BadInputError(
                f"k-means needs numbers; {', '.join(text)} hold text ([segments] kmeans_features)"
            )
        empty = [c for c in self.columns if features[c].null_count() == features.height]
        if empty and features.height:
            raise BadInputError(
                f"k-means features {', '.join(empty)} hold no value for any customer (the "
                "export lacks their column, or [features] mix = false): choose others in "
                "[segments] kmeans_features"
            )
        x = _kmeans_matrix(features, self.columns)
        self.scaler_ = StandardScaler().fit(x)
        z = self.scaler_.transform(x)
        n = z.shape[0]
        if self.k == "auto":
            candidates = [k for k in range(2, self.max_k + 1) if k < n]
            if not candidates:
                raise BadInputError(f"k-means needs at least 3 customers, got {n}")
            rng = np.random.default_rng(self.random_state)
            idx = rng.choice(n, size=min(n, self.silhouette_sample), replace=False)
            scores = {}
            for k in candidates:
                model = KMeans(n_clusters=k, n_init=4, random_state=self.random_state).fit(z)
                labels = model.labels_[idx]
                scores[k] = (
                    float(silhouette_score(z[idx], labels)) if len(set(labels)) > 1 else -1.0
                )
            self.silhouette_ = scores
            self.k_ = max(scores, key=lambda k: (scores[k], -k))
        else:
            if not 1 <= self.k < n:
                raise BadInputError(f"--k {self.k} needs more than {self.k} customers, got {n}")
            self.k_ = int(self.k)
            self.silhouette_ = {}
        model = KMeans(n_clusters=self.k_, n_init=10, random_state=self.random_state).fit(z)
        value = features["net_spend"].to_numpy()
        means = [float(value[model.labels_ == c].mean()) for c in range(self.k_)]
        order = sorted(range(self.k_), key=lambda c: -means[c])
        self.relabel_ = np.empty(self.k_, dtype=np.int64)
        self.relabel_[order] = np.arange(self.k_)
        self.model_ = model
        return self

    def transform(self, features: pl.DataFrame) -> pl.DataFrame:
        """Add ``cluster`` (0 = highest mean net spend)."""
        _check_fitted(self, "model_")
        z = self.scaler_.transform(_kmeans_matrix(features, self.columns))
        labels = self.relabel_[self.model_.predict(z)]
        return features.with_columns(pl.Series("cluster", labels, dtype=pl.Int64))

    def fit_transform(self, features: pl.DataFrame, y: object = None) -> pl.DataFrame:
        """Fit, then transform the same frame."""
        return self.fit(features).transform(features)


@dataclass(frozen=True)
class SegmentSummary:
    """Per-segment profile plus the value concentration of the whole base."""

    by: str
    table: pl.DataFrame
    top5_value_share: float
    top20_value_share: float
    customers: int
    profile: pl.DataFrame | None = None

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        out: dict[str, Any] = {
            "by": self.by,
            "customers": self.customers,
            "top5_value_share": self.top5_value_share,
            "top20_value_share": self.top20_value_share,
            "segments": self.table.to_dicts(),
        }
        if self.profile is not None:
            out["profile"] = self.profile.to_dicts()
        return out


def value_concentration(values: pl.Series, share: float) -> float:
    """Share of the total held by the top ``share`` of customers (ties by position)."""
    positive = values.fill_null(0.0).clip(lower_bound=0.0).sort(descending=True)
    total = float(positive.sum())
    if total <= 0:
        return 0.0
    top = max(1, round(share * positive.len()))
    return float(positive.head(top).sum()) / total


def summarise(frame: pl.DataFrame, column: str, value: str = "net_spend") -> SegmentSummary:
    """Profile each segment: customers, shares of customers and value, mean R and F."""
    total_value = float(frame.select(money_sum(pl.col(value).clip(lower_bound=0.0))).item()) or 1.0
    table = (
        frame.group_by(column)
        .agg(
            pl.len().alias("customers"),
            money_sum(pl.col(value).clip(lower_bound=0.0)).alias("value"),
            pl.col("recency_days").mean().alias("mean_recency_days"),
            pl.col("purchase_days").mean().alias("mean_frequency"),
            pl.col("mean_spend_per_day").mean().alias("mean_spend_per_purchase"),
        )
        .with_columns(
            (pl.col("customers") / frame.height).alias("customer_share"),
            (pl.col("value") / total_value).alias("value_share"),
        )
        .sort(["value", column], descending=[True, False])
        .rename({column: "segment"})
        .with_columns(pl.col("segment").cast(pl.String))
        .select(
            "segment",
            "customers",
            "customer_share",
            "value_share",
            "mean_recency_days",
            "mean_frequency",
            "mean_spend_per_purchase",
        )
    )
    return SegmentSummary(
        by=column,
        table=table,
        top5_value_share=value_concentration(frame[value], 0.05),
        top20_value_share=value_concentration(frame[value], 0.20),
        customers=frame.height,
    )


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
