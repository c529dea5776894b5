"""The segmenters: RFM scores, value tiers and k-means clusters, fitted on one date.

Each learns its thresholds (quintile or tertile edges, scaler and centroids) with ``fit``
on one as-of date and applies them with ``transform`` at any other. They are
scikit-learn estimators (``get_params``, ``clone``, ``fit`` returning the estimator,
:class:`~sklearn.exceptions.NotFittedError` before ``fit``) whose inputs and outputs are
polars frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal, Self

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from crmkit.errors import BadInputError
from crmkit.segments.rules import (
    _CYCLE_CLASSES,
    _QUINTILES,
    _RFM_BY_CODE,
    _SPEND_CLASSES,
    _TIER_BY_CODE,
    _edges,
    _require,
    _score,
)


class RFMScorer(TransformerMixin, BaseEstimator):  # type: ignore[misc]
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
        check_is_fitted(self, "edges_")
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


class ValueTiers(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """The 3x3 value grid of purchase cycle x spend per purchase, as of the date.

    Two rules make the grid say what a customer is worth *now*:

    * spend per purchase is **net** of refunds, ``max(net_spend, 0) / purchase_days``: a
      customer whose refunds match or exceed their purchases has spend 0 and is never
      platinum or gold;
    * the cycle is the customer's mean gap between purchase days **or the time since their
      last purchase, whichever is longer**: a customer who bought every week but has not
      bought for five months no longer has a short cycle.

    Cycle classes short/medium/long and spend classes small/medium/large are cut at
    tertiles (fit time) unless explicit edges are given: the cycle edges from the repeat
    buyers' mean gaps (their usual rhythm), the spend edges from every customer's net
    spend per purchase day. One-time buyers have no cycle: with ``one_time_buyers="long"``
    they sit in the long-cycle column (silver, development or adjust by spend), with
    ``"separate"`` they get the tier ``one_time``.

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
        _require(features, list(_TIER_INPUTS))
        for name, edges in (("cycle_edges", self.cycle_edges), ("spend_edges", self.spend_edges)):
            if edges and (len(edges) != 2 or edges[0] > edges[1]):
                raise BadInputError(f"{name} must be two increasing numbers, got {list(edges)}")
        tertiles = (1 / 3, 2 / 3)
        self.cycle_edges_ = list(self.cycle_edges) or _edges(features["mean_cycle_days"], tertiles)
        self.spend_edges_ = list(self.spend_edges) or _edges(
            features.select(_net_spend_per_day()).to_series(), tertiles
        )
        return self

    def transform(self, features: pl.DataFrame) -> pl.DataFrame:
        """Add ``cycle_class``, ``spend_class`` and ``value_tier``."""
        check_is_fitted(self, "cycle_edges_")
        _require(features, list(_TIER_INPUTS))
        c1, c2 = self.cycle_edges_
        s1, s2 = self.spend_edges_
        usual = pl.col("mean_cycle_days")
        cycle = pl.when(usual.is_not_null()).then(
            pl.max_horizontal(usual, pl.col("recency_days").cast(pl.Float64))
        )
        spend = _net_spend_per_day()
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


#: What the value grid reads (see :class:`ValueTiers`).
_TIER_INPUTS: Final = ("mean_cycle_days", "recency_days", "net_spend", "purchase_days")


def _net_spend_per_day() -> pl.Expr:
    """Net spend per purchase day, never below 0 (refunds larger than purchases: 0)."""
    days = pl.col("purchase_days").cast(pl.Float64)
    net = pl.col("net_spend").cast(pl.Float64).clip(lower_bound=0.0)
    return pl.when(days > 0).then(net / days).otherwise(0.0).alias("net_spend_per_day")


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


class KMeansSegments(TransformerMixin, BaseEstimator):  # type: ignore[misc]
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
        check_is_fitted(self, "model_")
        z = self.scaler_.transform(_kmeans_matrix(features, self.columns))
        labels = self.relabel_[self.model_.predict(z)]
        return features.with_columns(pl.Series("cluster", labels, dtype=pl.Int64))

    def fit_transform(self, features: pl.DataFrame, y: object = None) -> pl.DataFrame:
        """Fit, then transform the same frame."""
        return self.fit(features).transform(features)
