"""Caution outside the training support: customers unlike anyone the campaigns randomised.

An uplift model learns from the treatment and control customers of its campaigns. For a
customer beyond their range (more valuable, older, more frequent, more recent or bigger
spenders than any of them) the model extrapolates, and a confident-looking uplift times a
large value would top the list on no evidence. Each arm's card keeps the range of its
training rows over :data:`SUPPORT_COLUMNS` and the arm's average effect; scoring flags the
customers outside it (``outside_support``) and, by ``[targeting] uplift_outside``:

* ``shrink`` (default): their uplift is the arm's average effect (in probability and in
  revenue), what the campaign says about a customer it says nothing specific about;
* ``exclude``: the uplift policy never gives them that arm;
* ``off``: predictions are kept, only flagged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import polars as pl

from crmkit import schema

SUPPORT_COLUMNS: Final = ("customer_value", "tenure_days", "orders", "recency_days", "net_spend")
MODES: Final = ("shrink", "exclude", "off")


def training_support(data: pl.DataFrame) -> dict[str, list[float]]:
    """Return the range ``[min, max]`` of each support column over an arm's training rows."""
    present = [c for c in SUPPORT_COLUMNS if c in data.columns]
    bounds = data.select(
        *(pl.col(c).cast(pl.Float64).min().alias(f"lo_{c}") for c in present),
        *(pl.col(c).cast(pl.Float64).max().alias(f"hi_{c}") for c in present),
    ).row(0, named=True)
    return {
        c: [float(bounds[f"lo_{c}"]), float(bounds[f"hi_{c}"])]
        for c in present
        if bounds[f"lo_{c}"] is not None
    }


def average_effect(y: np.ndarray, t: np.ndarray, revenue: np.ndarray) -> dict[str, float]:
    """Return the arm's average effect: treated minus control, in purchase rate and revenue."""
    return {
        "probability": float(y[t].mean() - y[~t].mean()),
        "revenue": float(revenue[t].mean() - revenue[~t].mean()),
    }


def _outside(bounds: Mapping[str, list[float]], columns: Sequence[str]) -> pl.Expr:
    out = pl.lit(value=False)
    for name, (low, high) in bounds.items():
        if name in columns:
            beyond = (pl.col(f"__s_{name}") < low) | (pl.col(f"__s_{name}") > high)
            out = out | beyond.fill_null(value=False)
    return out


def apply_support(
    predictions: pl.DataFrame,
    features: pl.DataFrame,
    arms: Mapping[str, Any],
    mode: str = "shrink",
) -> pl.DataFrame:
    """Flag (``outside_support``) the predictions outside each arm's range; shrink them.

    Only ``mode = "shrink"`` changes predictions; ``exclude`` is the uplift policy's to
    apply (:func:`support_warnings` counts first).

    ``predictions`` has one row per customer and arm
    (:meth:`crmkit.models.uplift_learners.UpliftModel.predict_uplift`), ``features`` the
    customers' features, ``arms`` the card's arms. Arms without a recorded support are never
    flagged; a card without any gives the predictions back as they are.
    """
    if not any(info.get("support") for info in arms.values()):
        return predictions  # a model saved before supports were recorded: as it was
    present = [c for c in SUPPORT_COLUMNS if c in features.columns]
    joined = predictions.join(
        features.select(schema.CUSTOMER_ID, *(pl.col(c).alias(f"__s_{c}") for c in present)),
        on=schema.CUSTOMER_ID,
        how="left",
    )
    flag = pl.lit(value=False)
    probability, revenue = pl.col("uplift_probability"), pl.col("uplift_revenue")
    for arm, info in sorted(arms.items()):
        bounds, effect = info.get("support"), info.get("average_effect")
        if not bounds or not effect:
            continue
        here = (pl.col("treatment") == arm) & _outside(bounds, present)
        flag = flag | here
        probability = pl.when(here).then(pl.lit(effect["probability"])).otherwise(probability)
        revenue = pl.when(here).then(pl.lit(effect["revenue"])).otherwise(revenue)
    shrunk = [probability.alias("uplift_probability"), revenue.alias("uplift_revenue")]
    out = joined.with_columns(
        flag.alias("outside_support"), *(shrunk if mode == "shrink" else [])
    ).drop(f"__s_{c}" for c in present)
    return out


def support_warnings(predictions: pl.DataFrame, mode: str) -> list[str]:
    """One warning per arm with customers outside its training support, with the count."""
    if "outside_support" not in predictions.columns:
        return []
    counts = (
        predictions.group_by("treatment")
        .agg(pl.col("outside_support").sum().alias("n"), pl.len().alias("of"))
        .filter(pl.col("n") > 0)
        .sort("treatment")
    )
    done = {
        "shrink": "their uplift is the arm's average effect",
        "exclude": "they are left out of the arm",
        "off": 'predicted anyway ([targeting] uplift_outside = "off")',
    }[mode]
    return [
        f"arm {r['treatment']}: {r['n']:,} of {r['of']:,} customers lie outside the training "
        f"support (value, tenure, orders, recency or net spend beyond the campaign's range); "
        f"{done}"
        for r in counts.iter_rows(named=True)
    ]
