"""Why a customer is at risk, in plain words: reason codes from their features.

Each reason is a rule on features the churn model also sees, written the way an analyst
would say it ("92 days since last purchase, 3.1x their usual cycle"). They explain a
listing; they are not the model's own attributions. Reasons are ordered by how strongly
they usually signal churn, and a target list keeps the first three.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import polars as pl

#: A customer is overdue when their recency is this many times their usual cycle.
OVERDUE: Final = 1.5
#: Spend in the recent window this far below the window before counts as a drop.
SPEND_DROP: Final = 0.3
REFUNDS: Final = 0.2
MAX_REASONS: Final = 3


def _num(expr: pl.Expr, decimals: int = 0) -> pl.Expr:
    rounded = expr.round(decimals)
    return (rounded.cast(pl.Int64) if decimals == 0 else rounded).cast(pl.String)


def reason_window(windows: Sequence[int]) -> int:
    """Return the trailing window the reasons compare: 90 days, else the middle one."""
    return 90 if 90 in windows else sorted(windows)[len(windows) // 2]


def reasons_expr(windows: Sequence[int]) -> pl.Expr:
    """Return the reasons of each row as one text, ``; ``-separated (empty when none)."""
    w = reason_window(windows)
    recency, n = pl.col("recency_days"), pl.col("purchase_days")
    overdue = pl.col("overdue_ratio")
    now, before = pl.col(f"spend_{w}"), pl.col(f"spend_prev_{w}")
    days_now, days_before = pl.col(f"days_{w}"), pl.col(f"days_prev_{w}")
    rules = [
        pl.when(overdue >= OVERDUE).then(
            pl.concat_str(
                _num(recency), pl.lit(" days since last purchase, "), _num(overdue, 1),
                pl.lit("x their usual cycle"),
            )
        ),
        pl.when((n == 1) & (recency >= 30)).then(
            pl.concat_str(pl.lit("one purchase so far, "), _num(recency), pl.lit(" days ago"))
        ),
        pl.when((before > 0) & (now < (1 - SPEND_DROP) * before)).then(
            pl.concat_str(
                pl.lit(f"spend in the last {w} days down "), _num((1 - now / before) * 100),
                pl.lit("%"),
            )
        ),
        pl.when(days_now < days_before).then(
            pl.concat_str(
                _num(days_now), pl.lit(f" purchase days in the last {w}, "), _num(days_before),
                pl.lit(f" in the {w} before"),
            )
        ),
        pl.when(pl.col("refund_share") >= REFUNDS).then(
            pl.concat_str(_num(pl.col("refund_share") * 100), pl.lit("% of spend refunded"))
        ),
    ]  # fmt: skip
    listed = pl.concat_list(rules).list.drop_nulls()
    return listed.list.head(MAX_REASONS).list.join("; ").alias("reasons")
