"""Value that is alive, and the model's reasons: exact Shapley shares by driver."""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmkit.models.alive import RETAIN, WIN_BACK, with_alive_value
from crmkit.models.explain import DRIVERS, driver_of, shapley_by_driver
from crmkit.models.reason_text import with_model_reasons

AS_OF = dt.date(2025, 1, 1)


def population(n: int = 400, seed: int = 0) -> pl.DataFrame:
    """Weekly-ish buyers, most still buying, a tenth gone silent for a year, some one-timers."""
    rng = np.random.default_rng(seed)
    first = [AS_OF - dt.timedelta(days=int(d)) for d in rng.integers(400, 700, n)]
    days = rng.integers(5, 40, n)
    gone = np.arange(n) % 10 == 0
    one = np.arange(n) % 7 == 0
    last = [AS_OF - dt.timedelta(days=365 if g else int(rng.integers(1, 20))) for g in gone]
    # the last customer bought once, yesterday
    first[-1] = AS_OF - dt.timedelta(days=1)
    one[-1] = True
    frame = pl.DataFrame(
        {
            "customer_id": [f"C{i:04d}" for i in range(n)],
            "first_purchase": first,
            "last_purchase": [f if o else la for f, la, o in zip(first, last, one, strict=True)],
            "purchase_days": np.where(one, 1, days),
            "customer_value": np.full(n, 100.0),
            "gross_spend": np.full(n, 500.0),
            "first_day_spend": np.full(n, 20.0),
        }
    )
    span = (pl.col("last_purchase") - pl.col("first_purchase")).dt.total_days()
    return frame.with_columns(
        (pl.lit(AS_OF) - pl.col("first_purchase")).dt.total_days().alias("tenure_days"),
        (pl.lit(AS_OF) - pl.col("last_purchase")).dt.total_days().alias("recency_days"),
        pl.when(pl.col("purchase_days") > 1)
        .then(span / (pl.col("purchase_days") - 1))
        .alias("mean_cycle_days"),
    )


def test_a_regular_buyer_gone_silent_is_win_back_and_worth_little():
    frame, warnings = with_alive_value(population(), AS_OF, 0.1)
    assert warnings == []
    gone = frame.filter((pl.arange(0, pl.len()) % 10 == 0) & (pl.col("purchase_days") > 1))
    active = frame.filter((pl.arange(0, pl.len()) % 10 != 0) & (pl.col("purchase_days") > 1))
    assert (gone["lifecycle"] == WIN_BACK).mean() > 0.9
    assert (active["lifecycle"] == RETAIN).mean() > 0.95
    assert gone["alive_value"].median() < 1.0  # a hundred if active, pennies now
    assert frame["value_if_active"].to_list() == [100.0] * frame.height
    # one purchase, long after every repeat buyer's usual gap: gone; yesterday: alive
    one_time = frame.filter(pl.col("purchase_days") == 1)
    assert (one_time["recency_days"] > 300).sum() == one_time.height - 1
    assert (one_time.filter(pl.col("recency_days") > 300)["lifecycle"] == WIN_BACK).all()
    assert one_time.filter(pl.col("recency_days") == 1)["p_alive"].item() == pytest.approx(1.0)


def test_without_a_fit_the_value_stays_unweighted_and_says_so():
    tiny = population(3)
    frame, warnings = with_alive_value(
        tiny.with_columns(pl.lit(1).alias("purchase_days")), AS_OF, 0.1
    )
    assert frame["alive_value"].to_list() == frame["customer_value"].to_list()
    assert len(warnings) <= 1


def shapley_reference(f, x, ref, groups, k):
    """Plain Shapley values over k players by enumeration of every order."""
    out = [0.0] * k
    orders = list(itertools.permutations(range(k)))
    for order in orders:
        current = ref.copy()
        before = f(current[None, :])[0]
        for g in order:
            current = np.where(np.array(groups) == g, x, current)
            after = f(current[None, :])[0]
            out[g] += (after - before) / len(orders)
            before = after
    return out


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-3, 3), min_size=7, max_size=7), st.integers(0, 10))
def test_shapley_shares_match_the_definition_and_sum_to_the_difference(values, seed):
    rng = np.random.default_rng(seed)
    groups = [0, 1, 2, 3, 4, 4, 0]
    w = rng.normal(size=7)

    def f(m):
        z = m @ w + 0.5 * m[:, 0] * m[:, 2] - 0.3 * np.maximum(m[:, 5], 0) * m[:, 1]
        return 1 / (1 + np.exp(-z))

    x = np.array(values)
    ref = rng.normal(size=7)
    shares = shapley_by_driver(f, x[None, :], ref, groups)[0]
    assert shares == pytest.approx(shapley_reference(f, x, ref, groups, 5), abs=1e-9)
    assert shares.sum() == pytest.approx(f(x[None, :])[0] - f(ref[None, :])[0], abs=1e-9)


def test_features_fall_in_their_drivers():
    assert driver_of("recency_days") == "recency"
    assert driver_of("days_prev_90") == "frequency"
    assert driver_of("spend_change_90") == "spend"
    assert driver_of("refund_share") == "refunds"
    assert driver_of("signup_date_age_days") == "frequency"
    assert driver_of("channel_share_web") == "mix"


def reason_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "purchase_days": [2, 12, 5],
            "recency_days": [18, 92, 10],
            "mean_cycle_days": [1.0, 30.0, 20.0],
            "tenure_days": [19, 400, 120],
            "spend_90": [35.0, 0.0, 50.0],
            "spend_prev_90": [420.0, 300.0, 40.0],
            "days_90": [2, 0, 2],
            "days_prev_90": [0, 3, 2],
            "refund_share": [0.0, 0.0, 0.4],
            "churn_probability": [0.7, 0.9, 0.1],
            "rule_reasons": ["", "", ""],
        }
    )


def test_reasons_say_the_drivers_with_the_customers_values():
    shares = np.zeros((3, len(DRIVERS)))
    shares[0, DRIVERS.index("spend")] = 0.2
    shares[0, DRIVERS.index("recency")] = 0.1
    shares[1, DRIVERS.index("recency")] = 0.5
    shares[2] = -0.05  # less risky than the reference on every driver
    out = with_model_reasons(reason_frame(), shares, 0.3, (30, 90, 365), 36.0)
    first, second, third = out["reasons"].to_list()
    assert first.startswith("spend in the last 90 days fell from 420.00 to 35.00; 18 days")
    # two purchase days a day apart are no rhythm: no "18.0x their usual cycle"
    assert "usual cycle" not in first
    assert "customers usually return within" in first
    assert second == "92 days since last purchase; usually every 30 days"
    assert third == "churn risk 10% is no higher than a typical staying customer's (30%)"
    assert out["top_driver"].to_list() == ["spend", "recency", None]
    assert all(r for r in out["reasons"].to_list())


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 6), st.integers(0, 400), st.integers(0, 400)),
        min_size=1,
        max_size=30,
    )
)
def test_one_time_alive_matches_a_plain_reference(rows):
    from crmkit.models.alive import one_time_alive

    days = [d for d, _, _ in rows]
    recency = [r for _, r, _ in rows]
    tenure = [r + extra for _, r, extra in rows]
    cycle = [
        None if d == 1 else (t - r) / (d - 1) for d, r, t in zip(days, recency, tenure, strict=True)
    ]
    frame = pl.DataFrame(
        {"purchase_days": days, "recency_days": recency, "tenure_days": tenure,
         "mean_cycle_days": cycle},
        schema={"purchase_days": pl.Int64, "recency_days": pl.Int64, "tenure_days": pl.Int64,
                "mean_cycle_days": pl.Float64},
    )  # fmt: skip
    got = one_time_alive(frame)
    gaps = sorted(c for c in cycle if c is not None)
    if not gaps:
        assert got.tolist() == [1.0] * len(rows)
        return
    cut = float(np.quantile(gaps, 0.9))
    had = [d for d, t in zip(days, tenure, strict=True) if t > cut]
    rho = sum(d >= 2 for d in had) / len(had) if had else 1.0
    for value, r in zip(got, recency, strict=True):
        s = sum(g > r for g in gaps) / len(gaps)
        below = rho * s + 1 - rho
        assert value == pytest.approx(s / below if below > 0 else 0.0)
        assert 0.0 <= value <= 1.0 + 1e-12
