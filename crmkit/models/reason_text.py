"""The model's reasons in plain words, with the customer's own values.

Each driver of :mod:`crmkit.models.explain` has a sentence built from the customer's
features. The "usual cycle" is only the customer's own when they have at least three
purchase days (two gaps); with fewer, a gap of a day or two says nothing of a rhythm,
and the sentence compares with the customers' median cycle instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import polars as pl

from crmkit.models.explain import DRIVERS
from crmkit.models.reasons import reason_window

MAX_REASONS: Final = 3


def _int(expr: pl.Expr) -> pl.Expr:
    return expr.round(0).cast(pl.Int64).cast(pl.String)


def _money(expr: pl.Expr) -> pl.Expr:
    """Two decimals, as a text: 420 -> ``420.00``."""
    cents = (expr.abs() * 100).round(0).cast(pl.Int64)
    sign = pl.when(expr < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    return pl.concat_str(
        sign, (cents // 100).cast(pl.String), pl.lit("."),
        (cents % 100).cast(pl.String).str.zfill(2),
    )  # fmt: skip


def driver_texts(windows: Sequence[int], median_cycle: float | None) -> dict[str, pl.Expr]:
    """One sentence per driver, from the feature columns."""
    w = reason_window(windows)
    n, recency = pl.col("purchase_days"), pl.col("recency_days")
    now, before = pl.col(f"spend_{w}"), pl.col(f"spend_prev_{w}")
    days_now, days_before = pl.col(f"days_{w}"), pl.col(f"days_prev_{w}")
    since = pl.concat_str(_int(recency), pl.lit(" days since last purchase"))
    typical = (
        pl.concat_str(since, pl.lit(f"; customers usually return within {median_cycle:.0f} days"))
        if median_cycle is not None
        else since
    )
    return {
        "recency": pl.when(n == 1)
        .then(pl.concat_str(_int(recency), pl.lit(" days since their only purchase"),
                            pl.lit("" if median_cycle is None else
                                   f"; customers usually return within {median_cycle:.0f} days")))
        .when(n >= 3)
        .then(pl.concat_str(since, pl.lit("; usually every "), _int(pl.col("mean_cycle_days")),
                            pl.lit(" days")))
        .otherwise(typical),
        "frequency": pl.when(n == 1)
        .then(pl.lit("one purchase so far"))
        .when(days_before > days_now)
        .then(pl.concat_str(_int(days_now), pl.lit(f" purchase days in the last {w} days, "),
                            _int(days_before), pl.lit(f" in the {w} before")))
        .otherwise(pl.concat_str(_int(n), pl.lit(" purchase days in "),
                                 _int(pl.col("tenure_days")), pl.lit(" days as a customer"))),
        "spend": pl.when((before > 0) & (now < before))
        .then(pl.concat_str(pl.lit(f"spend in the last {w} days fell from "), _money(before),
                            pl.lit(" to "), _money(now)))
        .when((now == 0) & (before == 0))
        .then(pl.lit(f"no spend in the last {2 * w} days"))
        .otherwise(pl.concat_str(pl.lit("spend "), _money(now),
                                 pl.lit(f" in the last {w} days, "), _money(before),
                                 pl.lit(f" in the {w} before"))),
        "refunds": pl.when(pl.col("refund_share").fill_null(0.0) == 0)
        .then(pl.lit("no refunds (the customers who stay often have some)"))
        .otherwise(pl.concat_str(_int(pl.col("refund_share") * 100),
                                 pl.lit("% of spend refunded"))),
        "mix": pl.lit("what they buy and how (product, channel and profile)"),
    }  # fmt: skip


def text_columns(windows: Sequence[int]) -> list[str]:
    """Return the columns the sentences read, with the id, probability and rules' reasons."""
    w = reason_window(windows)
    return [
        "customer_id", "purchase_days", "recency_days", "mean_cycle_days", "tenure_days",
        f"spend_{w}", f"spend_prev_{w}", f"days_{w}", f"days_prev_{w}", "refund_share",
        "churn_probability", "rule_reasons",
    ]  # fmt: skip


def median_cycle(frame: pl.DataFrame) -> float | None:
    """Return the customers' median cycle, over those with three purchase days or more."""
    cycles = frame.filter(pl.col("purchase_days") >= 3)["mean_cycle_days"].drop_nulls()
    return float(cycles.median()) if cycles.len() else None  # type: ignore[arg-type]


def with_model_reasons(
    frame: pl.DataFrame,
    shares: np.ndarray,
    reference_probability: float,
    windows: Sequence[int],
    cycle: float | None,
) -> pl.DataFrame:
    """Add ``reasons`` (top three drivers raising the risk, ``; ``-joined) and ``top_driver``.

    ``shares`` is ``frame.height x len(DRIVERS)`` (:func:`crmkit.models.explain.shapley_by_driver`),
    NaN for rows not explained, which keep the rules' ``rule_reasons``; ``frame`` has the
    features, ``churn_probability`` and ``rule_reasons``; ``cycle`` is the population's
    :func:`median_cycle`.
    """
    explained = pl.Series("__explained", ~np.isnan(shares).any(axis=1))
    shares = np.nan_to_num(shares, nan=0.0)
    texts = driver_texts(windows, cycle)
    order = np.argsort(-shares, axis=1, kind="stable")
    ranked = np.take_along_axis(shares, order, axis=1)
    picks = []
    for r in range(MAX_REASONS):
        index = pl.Series(f"__d{r}", order[:, r])
        positive = pl.Series(f"__p{r}", ranked[:, r] > 0)
        text = pl.lit(None, dtype=pl.String)
        for d, name in enumerate(DRIVERS):
            text = pl.when(pl.col(f"__d{r}") == d).then(texts[name]).otherwise(text)
        picks.append((index, positive, pl.when(pl.col(f"__p{r}")).then(text)))
    helper = [s for index, positive, _ in picks for s in (index, positive)]
    fallback = pl.concat_str(
        pl.lit("churn risk "),
        _int(pl.col("churn_probability") * 100),
        pl.lit(f"% is no higher than a typical staying customer's ({reference_probability:.0%})"),
    )
    listed = pl.concat_list([expr for _, _, expr in picks]).list.drop_nulls().list.join("; ")
    top = pl.Series("top_driver", np.asarray(DRIVERS, dtype=object)[order[:, 0]].astype(str))
    rules = pl.col("rule_reasons").fill_null("")
    unexplained = pl.concat_str(
        pl.lit("churn risk "), _int(pl.col("churn_probability") * 100),
        pl.lit("% (beyond [model] explain_rows: no rule fired)"),
    )  # fmt: skip
    return (
        frame.with_columns(*helper, explained)
        .with_columns(
            pl.when(~pl.col("__explained"))
            .then(pl.when(rules == "").then(unexplained).otherwise(rules))
            .when(listed == "")
            .then(fallback)
            .otherwise(listed)
            .alias("reasons"),
            pl.when(pl.col("__explained") & pl.col("__p0")).then(pl.lit(top)).alias("top_driver"),
        )
        .drop([*(s.name for s in helper), "__explained"])
    )
