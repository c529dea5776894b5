"""Derived customer features: from integer micro-units to currency, ratios, and projected value."""

from __future__ import annotations

import datetime as dt
from typing import Final

import polars as pl
import polars.selectors

from crmkit.config.settings import FeatureConfig
from crmkit.features.labels import churn_labels as churn_labels
from crmkit.features.labels import cutoff_of as cutoff_of
from crmkit.features.names import _PER_MICRO

# --- derived columns ----------------------------------------------------------------------


def money_columns(cfg: FeatureConfig) -> list[str]:
    """Return the aggregates held in micro-units until :func:`from_micro` converts them."""
    windows = [f"{kind}_{w}" for w in cfg.windows for kind in ("spend", "spend_prev")]
    return [
        "gross_spend",
        "first_day_spend",
        "refunds",
        *windows,
        "spend_ly_next",
        "historical_value",
    ]


def from_micro(cfg: FeatureConfig) -> list[pl.Expr]:
    """Turn the micro-unit aggregates back into currency (Float64)."""
    return [(pl.col(c) * _PER_MICRO).alias(c) for c in money_columns(cfg)]


def _days_between(later: pl.Expr, earlier: pl.Expr) -> pl.Expr:
    return (later - earlier).dt.total_days().cast(pl.Int64)


def derived(as_of: dt.date, cfg: FeatureConfig) -> list[pl.Expr]:
    """Ratios, cycles and trends computed from the aggregates."""
    n = pl.col("purchase_days")
    gross = pl.col("gross_spend")
    span = _days_between(pl.col("last_purchase"), pl.col("first_purchase"))
    mean_cycle = pl.when(n > 1).then(span / (n - 1))
    recency = _days_between(pl.lit(as_of), pl.col("last_purchase"))
    out = [
        std_cycle_days(),
        _days_between(pl.lit(as_of), pl.col("first_purchase")).alias("tenure_days"),
        recency.alias("recency_days"),
        (n == 1).alias("is_one_time"),
        (gross - pl.col("refunds")).alias("net_spend"),
        (pl.min_horizontal(pl.col("refunds"), gross) / gross).alias("refund_share"),
        (gross / pl.col("orders")).alias("mean_order_value"),
        (gross / n).alias("mean_spend_per_day"),
        mean_cycle.alias("mean_cycle_days"),
        (recency / mean_cycle).alias("overdue_ratio"),
    ]
    for w in cfg.windows:
        now, prev = pl.col(f"spend_{w}"), pl.col(f"spend_prev_{w}")
        scale = now.abs() + prev.abs()
        out += [
            (pl.col(f"days_{w}") - pl.col(f"days_prev_{w}")).alias(f"days_change_{w}"),
            (now - prev).alias(f"spend_change_{w}"),
            pl.when(scale > 0).then((now - prev) / scale).otherwise(0.0).alias(f"spend_trend_{w}"),
        ]
    return out


#: Pseudo purchase days of the population's typical spend that every customer's spend per
#: purchase day is shrunk toward (see :func:`projected_value`).
SPEND_PRIOR_DAYS: Final = 1.0


def projected_value(cfg: FeatureConfig) -> pl.Expr:
    """Projected value over the horizon: shrunk spend per purchase day / cycle, discounted.

    ``p_repeat * spend / cycle * horizon / (1 + annual_rate) ** (horizon / 730)``, with

    * spend: net spend per purchase day (never below 0), shrunk toward the population's
      median with :data:`SPEND_PRIOR_DAYS` pseudo-days on the log scale, like the
      Gamma-Gamma posterior: ``exp((k log1p(median) + n log1p(spend)) / (k + n)) - 1``
      for ``n`` purchase days. One large first order no longer projects a large order
      every cycle; a customer with many purchase days keeps their own level;
    * cycle: the customer's mean gap shrunk toward the median cycle of the repeat buyers
      with one pseudo-gap, ``(span + median) / (gaps + 1)``, floored at one day;
      one-time buyers (no gap) get the median;
    * p_repeat: 1 for repeat buyers; for one-time buyers, the share of customers who came
      back for a second purchase day among those who had at least a median cycle to do
      so (all as of the same date): what repeat behaviour supports for them.
    """
    n = pl.col("purchase_days").cast(pl.Float64)
    gaps = n - 1.0
    span = pl.col("mean_cycle_days").fill_null(0.0) * gaps
    median_cycle = pl.col("mean_cycle_days").median()
    cycle = pl.max_horizontal((span + median_cycle) / (gaps + 1.0), pl.lit(1.0))
    horizon = cfg.projection_horizon_days
    factor = horizon / (1.0 + cfg.annual_discount_rate) ** (horizon / 730.0)
    spend = pl.max_horizontal(pl.col("net_spend"), pl.lit(0.0)) / n
    k = SPEND_PRIOR_DAYS
    shrunk = ((k * spend.median().log1p() + n * spend.log1p()) / (k + n)).exp() - 1.0
    had_time = pl.col("tenure_days") >= median_cycle.fill_null(0.0)
    repeat_rate = (n >= 2).filter(had_time).mean().fill_null(0.0)
    p_repeat = pl.when(n >= 2).then(pl.lit(1.0)).otherwise(repeat_rate)
    projected: pl.Expr = (p_repeat * shrunk / cycle * factor).fill_null(spend)
    return projected.alias("projected_value")


def std_cycle_days() -> pl.Expr:
    """Return the sample standard deviation of the gaps between purchase days.

    From the gap count n, their sum (last - first purchase day) and their sum of squares;
    null below two gaps (three purchase days).
    """
    n = pl.col("_gaps").cast(pl.Float64)
    total = _days_between(pl.col("last_purchase"), pl.col("first_purchase")).cast(pl.Float64)
    variance = (pl.col("_gap_sq").cast(pl.Float64) - total * total / n) / (n - 1.0)
    return pl.when(n >= 2).then(variance.clip(lower_bound=0.0).sqrt()).alias("std_cycle_days")
