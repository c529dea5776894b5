"""Day level: one row per customer and day, from the transaction lines (the first pass)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl
import polars.selectors

from crmkit import schema
from crmkit.features.labels import churn_labels as churn_labels
from crmkit.features.labels import cutoff_of as cutoff_of
from crmkit.features.mix import day_channels
from crmkit.features.names import (
    _AGE,
    _BUY,
    _CODE,
    _FIRST,
    _GROSS,
    _HALF,
    _KEY,
    _MICRO,
    _NET,
    _OKEY,
    _ORDERS,
    _PER_MICRO,
    _REFUNDS,
    _SHIFT,
    MICRO,
    _age,
    _is_purchase,
)
from crmkit.features.vocabulary import Vocabulary

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


def _order_key() -> pl.Expr:
    """64-bit hash of a line's order: its order id, or its timestamp when it has none.

    Distinct integers are several times faster to count per group than strings, and two
    orders of one customer on one day sharing a hash has a chance of about 1e-19.
    """
    order_id = pl.col(schema.ORDER_ID)
    return pl.when(order_id.is_null()).then(pl.col(schema.TS).hash()).otherwise(order_id.hash())


def day_lines(
    tx: pl.LazyFrame, as_of: dt.date, categories: pl.Categories, *extra: pl.Expr
) -> pl.LazyFrame:
    """Select the lines before ``as_of`` with what the day pass reads, and ``extra`` columns.

    ``_code`` (:func:`customer_code`), ``_age`` (days before ``as_of``: 1 for the day
    before), ``_micro`` (the amount in Int64 micro-units) and ``_okey`` (:func:`_order_key`).
    """
    return tx.filter(pl.col(schema.TS) < cutoff_of(as_of)).select(
        customer_code(categories).alias(_CODE),
        _age_of(as_of).cast(pl.Int32).alias(_AGE),
        to_micro(pl.col(schema.AMOUNT)).alias(_MICRO),
        _order_key().alias(_OKEY),
        *extra,
    )


def daily_activity(
    lines: pl.LazyFrame, vocab: Vocabulary | None = None, extra: Sequence[pl.Expr] = ()
) -> pl.LazyFrame:
    """Roll :func:`day_lines` up to one row per customer and day.

    Columns: ``_code``, ``_age``, ``gross`` (sum of positive amounts), ``refunds`` (sum of
    negative amounts, as a positive number) -- both Int64 micro-units --, ``orders``
    (distinct order keys of positive lines: lines without an order id count one order per
    timestamp), the :func:`day_columns` and the ``extra`` aggregations. Customer and day
    are packed into one integer group key.
    """
    micro = pl.col(_MICRO)
    positive = micro > 0
    key = pl.col(_CODE) * _SHIFT + pl.col(_AGE).cast(pl.UInt64)
    return (
        lines.group_by(key.alias(_KEY))
        .agg(
            pl.when(positive).then(micro).otherwise(0).sum().alias(_GROSS),
            pl.when(positive).then(0).otherwise(-micro).sum().alias(_REFUNDS),
            pl.when(positive).then(pl.col(_OKEY)).drop_nulls().n_unique().cast(pl.Int64)
            .alias(_ORDERS),
            *day_channels(vocab or Vocabulary()),
            *extra,
        )
        .select(
            (pl.col(_KEY) // _SHIFT).alias(_CODE),
            (pl.col(_KEY) % _SHIFT).cast(pl.Int32).alias(_AGE),
            _GROSS,
            _REFUNDS,
            _ORDERS,
            pl.selectors.starts_with("_day_"),
            *(e.meta.output_name() for e in extra),
        )
        .with_columns(day_columns())
    )  # fmt: skip


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
