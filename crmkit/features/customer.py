"""The shared feature pipeline: per-customer features as of a date, point in time.

Every command that needs features (``features``, ``segment``, ``train``, ``score``,
``targets``) calls :func:`customer_features`. It builds one lazy plan:

1. transactions with ``ts < as_of`` (midnight starting the as-of day) are rolled up to one
   row per customer and day (:func:`daily_activity`): gross spend (positive amounts),
   refunds (negative amounts), orders. Customers are read once into dense integer codes
   (:func:`customer_code`), so that grouping and sorting never compare strings;
2. each customer's days are put in order once (:func:`purchase_sequence`) for the gaps
   between purchase days;
3. the days are aggregated per customer by small functions that each return a ``pl.Expr``;
4. derived ratios, trends and values are added.

A *purchase day* is a day with a positive gross spend; a *purchase* in cycle and spend
measures means a purchase day, so that several invoices on one day count once. The
plan is collected once, by the caller, with polars' streaming engine.

Money is summed as exact integers of micro-units (1e-6 of the currency) and turned back
into floats after aggregation: float sums depend on the order in which parallel workers
combine them, integer sums do not, so the same input always gives the same bytes.

Feature contract (version :data:`FEATURE_VERSION`): names and dtypes in
:data:`FEATURE_SCHEMA`. Changing a definition means a new version: model cards record it
and ``score`` refuses a model trained on another one.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import polars as pl
import polars.selectors

from crmkit import schema
from crmkit.config.settings import FeatureConfig
from crmkit.features.labels import churn_labels as churn_labels
from crmkit.features.labels import cutoff_of as cutoff_of
from crmkit.features.mix import (
    Vocabulary,
    channel_days,
    day_channels,
    learn_vocabulary,
    mix_derived,
    mix_schema,
    mix_totals,
)

FEATURE_VERSION: Final = 3

_EPOCH: Final = dt.date(1970, 1, 1)
MICRO: Final = 1_000_000
# Multiply, never divide, by constants: polars may turn `x / c` into `x * (1 / c)` on some
# chunks and not others, which changes the last bit of a result from run to run.
_PER_MICRO: Final = 1e-6
_GROSS: Final = "gross"
_REFUNDS: Final = "refunds"
_ORDERS: Final = "orders"
_BUY: Final = "_buy"
_NET: Final = "_net"
_AGE: Final = "_age"
_CODE: Final = "_code"
_KEY: Final = "_key"
_FIRST: Final = "_first"
# customer code in the high 32 bits of a sort or group key, the day in the low 32
_SHIFT: Final = 2**32
_HALF: Final = 2**31


def _schema(cfg: FeatureConfig, vocab: Vocabulary) -> dict[str, pl.DataType]:
    out: dict[str, pl.DataType] = {
        schema.CUSTOMER_ID: pl.String(),
        "first_purchase": pl.Date(),
        "last_purchase": pl.Date(),
        "tenure_days": pl.Int64(),
        "recency_days": pl.Int64(),
        "purchase_days": pl.Int64(),
        "orders": pl.Int64(),
        "is_one_time": pl.Boolean(),
        "gross_spend": pl.Float64(),
        "first_day_spend": pl.Float64(),
        "refunds": pl.Float64(),
        "net_spend": pl.Float64(),
        "refund_share": pl.Float64(),
        "mean_order_value": pl.Float64(),
        "mean_spend_per_day": pl.Float64(),
        "mean_cycle_days": pl.Float64(),
        "std_cycle_days": pl.Float64(),
        "overdue_ratio": pl.Float64(),
    }
    for w in cfg.windows:
        out |= {
            f"days_{w}": pl.Int64(),
            f"spend_{w}": pl.Float64(),
            f"days_prev_{w}": pl.Int64(),
            f"spend_prev_{w}": pl.Float64(),
            f"days_change_{w}": pl.Int64(),
            f"spend_change_{w}": pl.Float64(),
            f"spend_trend_{w}": pl.Float64(),
        }
    out |= {
        "days_ly_next": pl.Int64(),
        "spend_ly_next": pl.Float64(),
        "historical_value": pl.Float64(),
        "projected_value": pl.Float64(),
        "customer_value": pl.Float64(),
    }
    return out | mix_schema(cfg, vocab)


#: Names and dtypes of the feature table for the default settings and no vocabulary.
FEATURE_SCHEMA: Final = _schema(FeatureConfig(), Vocabulary())


def feature_schema(cfg: FeatureConfig, vocab: Vocabulary | None = None) -> dict[str, pl.DataType]:
    """Return the feature table's names and dtypes for ``cfg`` and a category vocabulary."""
    return _schema(cfg, vocab or Vocabulary())


# --- day level ---------------------------------------------------------------------------


def to_micro(expr: pl.Expr) -> pl.Expr:
    """Money as Int64 micro-units, for exact, order-independent sums."""
    return (expr * MICRO).round().cast(pl.Int64)


def money_sum(expr: pl.Expr) -> pl.Expr:
    """Sum money exactly (via micro-units) and return it as Float64."""
    return to_micro(expr).sum() * _PER_MICRO


def customer_code(categories: pl.Categories) -> pl.Expr:
    """Map each distinct customer id to a dense integer (UInt64, below 2**32).

    The ids are read once into ``categories``; every later step groups and sorts these
    integers instead of strings, which is several times faster. Codes are exact (one per
    id) and are turned back into ids by :func:`customer_id_of`. Their values depend on the
    order in which rows arrive, so nothing may depend on them but grouping and the order
    of one customer's own rows.
    """
    return pl.col(schema.CUSTOMER_ID).cast(pl.Categorical(categories)).to_physical().cast(pl.UInt64)


def customer_id_of(categories: pl.Categories) -> pl.Expr:
    """Return the customer id of a :func:`customer_code` column."""
    return pl.col(_CODE).cast(pl.UInt32).cat.to(pl.Categorical(categories)).cast(pl.String)


def _age_of(as_of: dt.date) -> pl.Expr:
    """Days from a transaction's day to the as-of date: 1 for the day before it."""
    return (pl.lit(as_of) - pl.col(schema.TS).dt.date()).dt.total_days()


def _orders(positive: pl.Expr) -> pl.Expr:
    """Distinct orders among positive lines; lines without an order id count per timestamp.

    Counted over 64-bit hashes of the order key (the order id, or the timestamp when there
    is none): distinct integers are several times faster to count per group than strings,
    and two orders of one customer on one day sharing a hash has a chance of about 1e-19.
    """
    order_id = pl.col(schema.ORDER_ID)
    key = pl.when(order_id.is_null()).then(pl.col(schema.TS).hash()).otherwise(order_id.hash())
    return pl.when(positive).then(key).drop_nulls().n_unique().cast(pl.Int64)


def daily_activity(
    tx: pl.LazyFrame,
    as_of: dt.date,
    categories: pl.Categories | None = None,
    vocab: Vocabulary | None = None,
) -> pl.LazyFrame:
    """Roll transactions before ``as_of`` up to one row per customer and day.

    Columns: ``_code`` (:func:`customer_code`), ``_age`` (days before ``as_of``: 1 for the
    day before), ``gross`` (sum of positive amounts), ``refunds`` (sum of negative amounts,
    as a positive number) -- both Int64 micro-units --, ``orders`` (distinct order ids of
    positive lines; lines without an order id count one order per timestamp), and the
    :func:`day_columns`. Customer and day are packed into one integer group key.
    """
    codes = pl.Categories.random() if categories is None else categories
    positive = pl.col(schema.AMOUNT) > 0
    micro = to_micro(pl.col(schema.AMOUNT))
    key = customer_code(codes) * _SHIFT + _age_of(as_of).cast(pl.UInt64)
    return (
        tx.filter(pl.col(schema.TS) < cutoff_of(as_of))
        .group_by(key.alias(_KEY))
        .agg(
            pl.when(positive).then(micro).otherwise(0).sum().alias(_GROSS),
            pl.when(positive).then(0).otherwise(-micro).sum().alias(_REFUNDS),
            _orders(positive).alias(_ORDERS),
            *day_channels(vocab or Vocabulary()),
        )
        .select(
            (pl.col(_KEY) // _SHIFT).alias(_CODE),
            (pl.col(_KEY) % _SHIFT).cast(pl.Int32).alias(_AGE),
            _GROSS,
            _REFUNDS,
            _ORDERS,
            pl.selectors.starts_with("_day_"),
        )
        .with_columns(day_columns())
    )


def day_columns() -> list[pl.Expr]:
    """Columns every aggregation reads, computed once per customer-day row.

    ``_buy`` (a purchase day: positive gross spend) and ``_net`` (gross - refunds,
    micro-units).
    """
    return [
        (pl.col(_GROSS) > 0).alias(_BUY),
        (pl.col(_GROSS) - pl.col(_REFUNDS)).alias(_NET),
    ]


def purchase_sequence(daily: pl.LazyFrame) -> pl.LazyFrame:
    """Order each customer's days and mark what needs that order.

    Sorted by one integer: customer, then purchase days by date, then the other days.
    ``gap`` is the days since the customer's previous purchase day (null on the first);
    ``_first`` marks the first purchase day, whose gross spend is ``first_day_spend``.
    """
    code, buy, age = pl.col(_CODE), _is_purchase(), _age()
    order = (
        code * _SHIFT
        + pl.when(buy).then(pl.lit(0, pl.UInt64)).otherwise(pl.lit(_HALF, pl.UInt64))
        + (pl.lit(_HALF - 1, pl.UInt64) - age.cast(pl.UInt64))
    )
    follows = (code == code.shift()) & buy.shift()
    return daily.sort(order).with_columns(
        pl.when(buy & follows).then((age.shift() - age).cast(pl.Int64)).alias("gap"),
        (buy & ~follows.fill_null(value=False)).alias(_FIRST),
    )


# --- customer level: aggregations over the daily frame ------------------------------------


def _is_purchase() -> pl.Expr:
    return pl.col(_BUY)


def _net() -> pl.Expr:
    return pl.col(_NET)


def _age() -> pl.Expr:
    return pl.col(_AGE)


def _day_of(age: pl.Expr, as_of: dt.date) -> pl.Expr:
    """Return the date ``age`` days before ``as_of``."""
    return (pl.lit((as_of - _EPOCH).days, pl.Int32) - age).cast(pl.Date)


def first_purchase(as_of: dt.date) -> pl.Expr:
    """First purchase day."""
    return _day_of(pl.when(_is_purchase()).then(_age()).max(), as_of).alias("first_purchase")


def last_purchase(as_of: dt.date) -> pl.Expr:
    """Last purchase day before the as-of date."""
    return _day_of(pl.when(_is_purchase()).then(_age()).min(), as_of).alias("last_purchase")


def purchase_days() -> pl.Expr:
    """Distinct days with a purchase (the frequency measure)."""
    return _is_purchase().sum().cast(pl.Int64).alias("purchase_days")


def orders() -> pl.Expr:
    """Distinct orders."""
    return pl.col(_ORDERS).sum().cast(pl.Int64).alias("orders")


def gross_spend() -> pl.Expr:
    """Sum of positive amounts."""
    return pl.col(_GROSS).sum().alias("gross_spend")


def refunds() -> pl.Expr:
    """Sum of refunds and cancellations, as a positive number."""
    return pl.col(_REFUNDS).sum().alias("refunds")


def cycle_moments() -> list[pl.Expr]:
    """Per customer: gap count, sum of squared gaps and first-day spend.

    Read from the columns of :func:`purchase_sequence`. The sums are exact integers, so
    :func:`std_cycle_days` does not depend on evaluation order; repeat spend is gross
    spend minus ``first_day_spend`` (micro-units).
    """
    gap = pl.col("gap")
    return [
        (gap * gap).sum().alias("_gap_sq"),
        gap.count().alias("_gaps"),
        pl.when(pl.col(_FIRST)).then(pl.col(_GROSS)).otherwise(0).sum().alias("first_day_spend"),
    ]


def std_cycle_days() -> pl.Expr:
    """Return the sample standard deviation of the gaps between purchase days.

    From the gap count n, their sum (last - first purchase day) and their sum of squares;
    null below two gaps (three purchase days).
    """
    n = pl.col("_gaps").cast(pl.Float64)
    total = _days_between(pl.col("last_purchase"), pl.col("first_purchase")).cast(pl.Float64)
    variance = (pl.col("_gap_sq").cast(pl.Float64) - total * total / n) / (n - 1.0)
    return pl.when(n >= 2).then(variance.clip(lower_bound=0.0).sqrt()).alias("std_cycle_days")


def window_activity(days: int) -> list[pl.Expr]:
    """Purchase days and net spend in ``[as_of - days, as_of)`` and in the window before."""
    this = _age() <= days
    before = (_age() > days) & (_age() <= 2 * days)
    return [
        (_is_purchase() & this).sum().cast(pl.Int64).alias(f"days_{days}"),
        pl.when(this).then(_net()).otherwise(0).sum().alias(f"spend_{days}"),
        (_is_purchase() & before).sum().cast(pl.Int64).alias(f"days_prev_{days}"),
        pl.when(before).then(_net()).otherwise(0).sum().alias(f"spend_prev_{days}"),
    ]


def same_season_last_year(cfg: FeatureConfig) -> list[pl.Expr]:
    """Purchase days and net spend in ``[as_of - 365, as_of - 365 + season_window_days)``.

    What the customer did in the period ahead, one year earlier: the strongest single
    signal of seasonal buying (a shop that stocks up every autumn).
    """
    inside = (_age() <= 365) & (_age() > 365 - min(cfg.season_window_days, 365))
    return [
        (_is_purchase() & inside).sum().cast(pl.Int64).alias("days_ly_next"),
        pl.when(inside).then(_net()).otherwise(0).sum().alias("spend_ly_next"),
    ]


def historical_value(cfg: FeatureConfig) -> pl.Expr:
    """Discounted historical value ``CV = sum_i S_i / (1 + r) ** i``.

    ``S_i`` is the net spend in period ``i`` counted back from the as-of date (period 0 is
    the ``value_period_days`` before it) and ``r`` is ``value_discount_rate``.
    """
    period = (_age() - 1) // cfg.value_period_days
    weight = pl.lit(1.0 + cfg.value_discount_rate).pow(-period.cast(pl.Float64))
    return (_net() * weight).round().cast(pl.Int64).sum().alias("historical_value")


def customer_aggregates(
    cfg: FeatureConfig, as_of: dt.date, vocab: Vocabulary | None = None
) -> list[pl.Expr]:
    """All per-customer aggregations of the :func:`purchase_sequence` frame."""
    windows = [e for w in cfg.windows for e in window_activity(w)]
    return [
        first_purchase(as_of),
        last_purchase(as_of),
        purchase_days(),
        orders(),
        gross_spend(),
        refunds(),
        *windows,
        *same_season_last_year(cfg),
        historical_value(cfg),
        *cycle_moments(),
        *channel_days(vocab or Vocabulary()),
    ]


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


def customer_totals(
    tx: pl.LazyFrame, as_of: dt.date, cfg: FeatureConfig, vocab: Vocabulary
) -> pl.LazyFrame:
    """Per customer with a purchase before ``as_of``: the aggregates, money in micro-units.

    Depends on the customer's own history only, so it can run on any subset of customers,
    e.g. one store bucket at a time; :func:`with_derived` adds the ratios and trends. The
    mix aggregates (:mod:`crmkit.features.mix`) are joined on the same customer codes, unless
    ``[features] mix`` is off: then :func:`finish_features` adds the mix features as nulls.
    """
    codes = pl.Categories.random()
    totals = (
        purchase_sequence(daily_activity(tx, as_of, codes, vocab))
        .group_by(_CODE)
        .agg(customer_aggregates(cfg, as_of, vocab))
        .filter(pl.col("purchase_days") > 0)
    )
    if cfg.mix:
        mix = mix_totals(tx, as_of, cfg, vocab, customer_code(codes))
        totals = totals.join(mix, on=_CODE, how="left")
    return totals.select(customer_id_of(codes).alias(schema.CUSTOMER_ID), pl.exclude(_CODE))


def with_derived(
    totals: pl.LazyFrame, as_of: dt.date, cfg: FeatureConfig, vocab: Vocabulary
) -> pl.LazyFrame:
    """Turn :func:`customer_totals` into currency and add the derived and mix columns."""
    return (
        totals.with_columns(from_micro(cfg))
        .with_columns(derived(as_of, cfg))
        .with_columns(mix_derived(cfg, vocab) if cfg.mix else [])
    )


def base_features(
    tx: pl.LazyFrame, as_of: dt.date, cfg: FeatureConfig, vocab: Vocabulary
) -> pl.LazyFrame:
    """Build every per-customer feature that depends on the customer's own history only.

    The rest (:func:`finish_features`) needs the whole population (the median cycle).
    """
    return with_derived(customer_totals(tx, as_of, cfg, vocab), as_of, cfg, vocab)


def _finish_columns(base: pl.LazyFrame, cfg: FeatureConfig, vocab: Vocabulary) -> pl.LazyFrame:
    columns = feature_schema(cfg, vocab)
    # without the mix (``[features] mix = false``) its columns are added here, as nulls
    absent = set(mix_schema(cfg, vocab)) if not cfg.mix else set()
    return (
        base.with_columns(projected_value(cfg))
        .with_columns(pl.col("projected_value").alias("customer_value"))
        .select(
            [
                pl.lit(None, dtype).alias(name) if name in absent else pl.col(name).cast(dtype)
                for name, dtype in columns.items()
            ]
        )
    )


def finish_features(base: pl.LazyFrame, cfg: FeatureConfig, vocab: Vocabulary) -> pl.LazyFrame:
    """Add the population-dependent values, cast to the contract and sort by customer."""
    return _finish_columns(base, cfg, vocab).sort(schema.CUSTOMER_ID)


def customer_features(
    tx: pl.LazyFrame, as_of: dt.date, cfg: FeatureConfig, vocab: Vocabulary | None = None
) -> pl.LazyFrame:
    """Build the lazy feature plan for every customer with a purchase before ``as_of``.

    Parameters
    ----------
    tx
        Transactions in the canonical schema.
    as_of
        Features see only transactions with ``ts`` before the start of this day.
    cfg
        Windows and value parameters.
    vocab
        The categories and channels that get share columns; learned from ``tx`` as of
        ``as_of`` when None.

    Returns
    -------
    pl.LazyFrame
        One row per customer, columns :func:`feature_schema`, sorted by customer id.
    """
    vocab = learn_vocabulary(tx, as_of, cfg) if vocab is None else vocab
    return finish_features(base_features(tx, as_of, cfg, vocab), cfg, vocab)


def collect(plan: pl.LazyFrame) -> pl.DataFrame:
    """Collect a feature plan with the streaming engine (data larger than memory)."""
    return plan.collect(engine="streaming")
