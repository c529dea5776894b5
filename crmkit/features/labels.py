"""Churn labels: what customers did after the as-of date, never before it."""

from __future__ import annotations

import datetime as dt

import polars as pl

from crmkit import schema


def cutoff_of(as_of: dt.date) -> dt.datetime:
    """Return the instant that starts ``as_of``: features see only ``ts`` before it."""
    return dt.datetime.combine(as_of, dt.time())


def churn_labels(
    tx: pl.LazyFrame, customers: pl.LazyFrame, as_of: dt.date, horizon_days: int
) -> pl.LazyFrame:
    """Label ``customers``: ``churned`` = no purchase in ``[as_of, as_of + horizon)``.

    Only transactions inside that window are read, so labels never see the features' past
    and features never see the label window.
    """
    start = cutoff_of(as_of)
    end = start + dt.timedelta(days=horizon_days)
    buyers = (
        tx.filter(
            (pl.col(schema.TS) >= start) & (pl.col(schema.TS) < end) & (pl.col(schema.AMOUNT) > 0)
        )
        .select(schema.CUSTOMER_ID)
        .unique()
        .with_columns(pl.lit(value=False).alias("churned"))
    )
    return (
        customers.select(schema.CUSTOMER_ID)
        .join(buyers, on=schema.CUSTOMER_ID, how="left")
        .with_columns(pl.col("churned").fill_null(value=True))
    )
