"""Why the model gives a customer their churn probability: exact Shapley values by driver.

The model's features are put in five drivers (:data:`DRIVERS`): recency, frequency
(with tenure), spend, refunds and mix (what, where and who: categories, channels,
attributes, season). For each customer, each driver's share of the difference between
their probability and a reference customer's is its exact Shapley value over the drivers
(*baseline Shapley*, Sundararajan & Najmi 2020): the model is evaluated on all 32 mixes
of the customer's and the reference's drivers, so the shares are the calibrated model's
own (the blend of gradient boosting and logistic regression, and the calibration map,
whatever the classifier), and they sum to the difference exactly.

The reference is the typical customer who stays: per feature, the median (the most
frequent code for a text attribute) of the scored customers whose churn probability is
below the median. A positive share raises the customer's risk above the reference's.

The drivers that raise it most, at most three, are written in plain words with the
customer's own values (:mod:`crmkit.models.reason_text`); a customer whom no driver
puts above the reference gets that said instead, so every scored customer has a reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import TYPE_CHECKING, Any, Final

import numpy as np

if TYPE_CHECKING:
    pass

#: The drivers, in the order of their bits in a coalition mask.
DRIVERS: Final = ("recency", "frequency", "spend", "refunds", "mix")
_RECENCY: Final = ("recency_days", "overdue_ratio", "mean_cycle_days", "std_cycle_days")
_FREQUENCY_PREFIX: Final = ("days_", "distinct_products", "distinct_categories")
_FREQUENCY: Final = ("purchase_days", "orders", "is_one_time", "lines_per_order",
                     "units_per_order")  # fmt: skip
_SPEND_PREFIX: Final = ("spend_",)
_SPEND: Final = ("gross_spend", "first_day_spend", "net_spend", "mean_order_value",
                 "mean_spend_per_day", "historical_value", "customer_value",
                 "mean_unit_price")  # fmt: skip
_REFUNDS: Final = ("refunds", "refund_share", "category_refund_share_max")
_TENURE: Final = ("tenure_days", "signup_date_age_days")
#: Rows whose 32 mixes are evaluated at a time (a sixth driver would double the work:
#: 2.3k customers took 8.5 s with six on one thread, the gradient boosting's 300 trees
#: being most of it).
CHUNK_ROWS: Final = 2_000


def driver_of(feature: str) -> str:
    """Return the driver a model feature belongs to (anything not named here: ``mix``)."""
    if feature in _RECENCY:
        return "recency"
    if feature in _REFUNDS:
        return "refunds"
    if feature in _TENURE or feature.endswith("_age_days"):
        return "frequency"
    if feature in _FREQUENCY or feature.startswith(_FREQUENCY_PREFIX):
        return "frequency"
    if feature in _SPEND or feature.startswith(_SPEND_PREFIX):
        return "spend"
    return "mix"


def typical(values: np.ndarray, categorical: bool) -> float:
    """Return a column's typical value: the median (codes: the most common); NaN if none.

    The reference customer takes, per matrix column, the typical value over the
    lower-risk half of the scored customers (:func:`crmkit.models.bucketed_stats.explainer_of`).
    """
    column = values[~np.isnan(values)]
    if column.size == 0:
        return float("nan")
    if categorical:
        kinds, counts = np.unique(column, return_counts=True)
        return float(kinds[np.argmax(counts)])
    return float(np.median(column))


def _weights(k: int) -> dict[int, float]:
    """Shapley weight of a coalition of size s among k players, per s."""
    return {s: math.factorial(s) * math.factorial(k - s - 1) / math.factorial(k) for s in range(k)}


def shapley_by_driver(
    predict: Any,  # noqa: ANN401
    x: np.ndarray,
    reference: np.ndarray,
    groups: Sequence[int],
    k: int = len(DRIVERS),
) -> np.ndarray:
    """Exact baseline Shapley values, ``len(x) x k``, of ``predict`` over the groups.

    ``groups[j]`` is the driver index of column ``j``; ``predict`` maps a matrix to
    probabilities.
    """
    member = np.array([[groups[j] == g for j in range(x.shape[1])] for g in range(k)])
    masks = range(2**k)
    weights = _weights(k)
    out = np.zeros((len(x), k))
    for start in range(0, len(x), CHUNK_ROWS):
        block = x[start : start + CHUNK_ROWS]
        rows = block.shape[0]
        stacked = np.empty((2**k * rows, x.shape[1]), dtype=x.dtype)
        for mask in masks:
            own = np.any(member[[g for g in range(k) if mask >> g & 1]], axis=0) if mask else (
                np.zeros(x.shape[1], dtype=bool))  # fmt: skip
            stacked[mask * rows : (mask + 1) * rows] = np.where(own[None, :], block, reference)
        value = np.asarray(predict(stacked)).reshape(2**k, rows)
        for g in range(k):
            others = [h for h in range(k) if h != g]
            for size in range(k):
                for coalition in combinations(others, size):
                    without = sum(1 << h for h in coalition)
                    gain = value[without | (1 << g)] - value[without]
                    out[start : start + rows, g] += weights[size] * gain
    return out


def driver_groups(features: Sequence[str]) -> list[int]:
    """Return the driver index of each model feature, in matrix column order."""
    return [DRIVERS.index(driver_of(f)) for f in features]


def categorical_mask(features: Sequence[str], categories: Mapping[str, Any]) -> list[bool]:
    """Return which model features are coded text attributes."""
    return [f in categories for f in features]
