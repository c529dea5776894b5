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
from collections.abc import Sequence
from typing import Final

import polars as pl
import polars.selectors

from crmkit import schema
from crmkit.config.settings import FeatureConfig
from crmkit.features.day import customer_id_of, daily_activity, day_lines, purchase_sequence
from crmkit.features.derived import derived, from_micro, projected_value
from crmkit.features.labels import churn_labels as churn_labels
from crmkit.features.labels import cutoff_of as cutoff_of
from crmkit.features.mix import channel_days, mix_derived, mix_totals
from crmkit.features.mix_lines import (
    absent_mix,
    customer_line_sums,
    day_line_sums,
    has_mix_values,
    mix_columns,
    quantity_column,
    units_of,
)
from crmkit.features.names import (
    _CODE,
    _FIRST,
    _GROSS,
    _ORDERS,
    _REFUNDS,
    _age,
    _day_of,
    _is_purchase,
    _net,
)
from crmkit.features.vocabulary import Vocabulary, learn_vocabulary, mix_schema


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


# --- customer level: aggregations over the daily frame ------------------------------------


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
    if not cfg.mix or not has_mix_values(tx, as_of):
        return _in_order(_without_mix_pass(tx, as_of, cfg, vocab, codes))
    # the lines are read once, into memory, for the day pass and every mix aggregation;
    # their customer codes mean nothing outside that collect, so the ids come with them
    lines = day_lines(tx, as_of, codes, pl.col(schema.CUSTOMER_ID), *mix_columns(vocab)).collect(
        engine="streaming"
    )
    ids = lines.lazy().select(_CODE, schema.CUSTOMER_ID).unique(_CODE, keep="any")
    totals = (
        _sequence_totals(daily_activity(lines.lazy(), vocab), cfg, as_of, vocab)
        .join(mix_totals(lines, cfg, vocab), on=_CODE, how="left")
        .join(ids, on=_CODE, how="left")
    )
    return _in_order(totals.drop(_CODE))


def _in_order(totals: pl.LazyFrame) -> pl.LazyFrame:
    """Put the customer id first, then the other columns by name: the same on every path.

    Buckets may take different paths and their totals are concatenated.
    """
    names = sorted(set(totals.collect_schema().names()) - {schema.CUSTOMER_ID})
    return totals.select(schema.CUSTOMER_ID, *names)


def _without_mix_pass(
    tx: pl.LazyFrame, as_of: dt.date, cfg: FeatureConfig, vocab: Vocabulary, codes: pl.Categories
) -> pl.LazyFrame:
    """Per customer: the day pass only, with the units of the mix when it is on.

    One lazy plan over the lines, which it reads once.
    """
    extra, sums = ([quantity_column()], day_line_sums()) if cfg.mix else ([], [])
    daily = daily_activity(day_lines(tx, as_of, codes, *extra), extra=sums)
    totals = _sequence_totals(daily, cfg, as_of, Vocabulary(), customer_line_sums() if sums else [])
    if cfg.mix:
        totals = units_of(totals).with_columns(absent_mix(cfg, vocab))
    return totals.with_columns(customer_id_of(codes).alias(schema.CUSTOMER_ID)).drop(_CODE)


def _sequence_totals(
    daily: pl.LazyFrame,
    cfg: FeatureConfig,
    as_of: dt.date,
    vocab: Vocabulary,
    extra: Sequence[pl.Expr] = (),
) -> pl.LazyFrame:
    """Per customer with a purchase day: the :func:`customer_aggregates` of its days."""
    return (
        purchase_sequence(daily)
        .group_by(_CODE)
        .agg(*customer_aggregates(cfg, as_of, vocab), *extra)
        .filter(pl.col("purchase_days") > 0)
    )


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


def _finish_columns(
    base: pl.LazyFrame, cfg: FeatureConfig, vocab: Vocabulary, *, projected: bool = False
) -> pl.LazyFrame:
    """Cast to the contract, with the projected value (already on ``base`` if ``projected``)."""
    columns = feature_schema(cfg, vocab)
    # without the mix (``[features] mix = false``) its columns are added here, as nulls
    absent = set(mix_schema(cfg, vocab)) if not cfg.mix else set()
    return (
        (base if projected else base.with_columns(projected_value(cfg)))
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
