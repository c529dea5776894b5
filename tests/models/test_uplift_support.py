"""Caution outside the training support, and the list's expected profit band."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from crmkit.campaigns.uplift_policy import profit_report
from crmkit.models.uplift_support import (
    apply_support,
    average_effect,
    support_warnings,
    training_support,
)

TRAINING = pl.DataFrame(
    {
        "customer_value": [10.0, 50.0, 200.0],
        "tenure_days": [30, 400, 900],
        "orders": [1, 4, 12],
        "recency_days": [3, 40, 300],
        "net_spend": [20.0, 300.0, 2500.0],
    }
)
ARMS = {
    "email": {
        "support": training_support(TRAINING),
        "average_effect": {"probability": 0.02, "revenue": 1.5},
    },
    "call": {},  # a card saved before supports were recorded
}


def _predictions(ids):
    return pl.DataFrame(
        {
            "customer_id": [c for c in ids for _ in ("call", "email")],
            "treatment": ["call", "email"] * len(ids),
            "uplift_probability": [0.3] * (2 * len(ids)),
            "uplift_spread": [0.01] * (2 * len(ids)),
            "uplift_revenue": [9.0] * (2 * len(ids)),
        }
    )


def _features():
    return pl.DataFrame(
        {
            "customer_id": ["inside", "rich", "new"],
            "customer_value": [60.0, 9000.0, 20.0],
            "tenure_days": [500, 800, 5],  # "new" joined after every campaign customer
            "orders": [3, 10, 1],
            "recency_days": [10, 20, 2],
            "net_spend": [400.0, 2000.0, 25.0],
        }
    )


def test_support_is_the_training_range():
    assert ARMS["email"]["support"]["customer_value"] == [10.0, 200.0]
    assert ARMS["email"]["support"]["tenure_days"] == [30.0, 900.0]
    y, t = np.array([1.0, 0.0, 1.0, 0.0]), np.array([True, True, False, False])
    assert average_effect(y, t, np.array([10.0, 0.0, 4.0, 0.0])) == {
        "probability": 0.0,
        "revenue": 3.0,
    }


def test_outside_customers_are_shrunk_to_the_arm_average():
    out = apply_support(_predictions(["inside", "rich", "new"]), _features(), ARMS, "shrink")
    email = {r["customer_id"]: r for r in out.filter(pl.col("treatment") == "email").to_dicts()}
    assert email["inside"]["uplift_probability"] == 0.3
    assert not email["inside"]["outside_support"]
    for name in ("rich", "new"):
        assert email[name]["outside_support"]
        assert email[name]["uplift_probability"] == pytest.approx(0.02)
        assert email[name]["uplift_revenue"] == pytest.approx(1.5)
    call = out.filter(pl.col("treatment") == "call")
    assert not call["outside_support"].any()  # no recorded support: never flagged
    assert (call["uplift_probability"] == 0.3).all()
    warnings = support_warnings(out, "shrink")
    assert warnings == [
        "arm email: 2 of 3 customers lie outside the training support (value, tenure, orders, "
        "recency or net spend beyond the campaign's range); their uplift is the arm's "
        "average effect"
    ]


@pytest.mark.parametrize("mode", ["exclude", "off"])
def test_other_modes_flag_without_changing(mode):
    out = apply_support(_predictions(["rich"]), _features(), ARMS, mode)
    assert (out["uplift_probability"] == 0.3).all()
    assert out.filter(pl.col("treatment") == "email")["outside_support"].to_list() == [True]


def test_profit_band_moves_every_uplift_together():
    rows = pl.DataFrame(
        {
            "group": ["treatment", "treatment", "control", "treatment"],
            "expected_profit": [10.0, 5.0, 99.0, None],
            "uplift_spread": [0.01, 0.02, 0.5, None],
            "customer_value": [100.0, 200.0, 1000.0, 50.0],
        }
    )
    band = profit_report(rows)["expected_profit"]
    width = 1.96 * (0.01 * 100 + 0.02 * 200)
    assert band == {"value": 15.0, "low": round(15 - width, 2), "high": round(15 + width, 2)}
    assert profit_report(rows.filter(pl.col("group") == "control").with_columns(
        pl.lit(None, dtype=pl.Float64).alias("expected_profit"))) == {}  # fmt: skip
