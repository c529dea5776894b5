"""Summaries of a segmentation: customers and value per segment, and value concentration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from crmkit.features.day import money_sum


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
            (pl.col("net_spend").clip(lower_bound=0.0) / pl.col("purchase_days"))
            .mean()
            .alias("mean_spend_per_purchase"),
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
