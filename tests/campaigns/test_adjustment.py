"""Adjusted (CUPED/ANCOVA) estimates: by hand, against statsmodels, and on real customers."""

from __future__ import annotations

import datetime as dt
import math
import statistics

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from crmkit.campaigns.adjustment import (
    RECENCY_CAP,
    adjusted_difference,
    assignment_covariates,
    covariate_names,
    welch_interval,
)
from crmkit.campaigns.stats import welch
from crmkit.config.settings import IngestConfig
from crmkit.ingest import ingest_files
from crmkit.simulate.injected import Customers, aa_false_alarms, coverage
from crmkit.store.core import Store
from tests.conftest import NOW


def test_the_estimate_is_the_ancova_coefficient_of_statsmodels():
    rng = np.random.default_rng(4)
    n = 800
    x = np.column_stack([rng.gamma(2, 50, n), rng.poisson(2, n).astype(float)])
    treated = rng.uniform(size=n) < 0.3
    y = 0.8 * x[:, 0] + 5 * x[:, 1] + rng.normal(0, 30, n) + 12 * treated
    found = adjusted_difference(y, x, treated)
    ols = sm.OLS(y, sm.add_constant(np.column_stack([treated.astype(float), x]))).fit()
    assert found.difference == pytest.approx(ols.params[1], rel=1e-9)
    # the covariates explain most of the noise: the interval is far narrower than Welch's
    plain = welch(y[treated].tolist(), y[~treated].tolist())
    assert found.high - found.low < 0.5 * (plain[2] - plain[1])
    assert found.variance_reduction == pytest.approx(
        1
        - found.variance
        / (y[treated].var(ddof=1) / treated.sum() + y[~treated].var(ddof=1) / (~treated).sum())
    )
    assert 0.7 < found.variance_reduction < 1


def test_no_adjustment_without_covariates_or_customers():
    rng = np.random.default_rng(1)
    y, treated = rng.normal(size=100), np.arange(100) < 50
    assert adjusted_difference(y, np.empty((100, 0)), treated) is None
    assert adjusted_difference(y[:30], rng.normal(size=(30, 2)), treated[:30]) is None


@given(
    st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=2, max_size=30),
    st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=2, max_size=30),
)
def test_welch_interval_of_arrays_by_the_welch_satterthwaite_formula(a, b):
    y = np.array(a + b)
    treated = np.arange(y.size) < len(a)
    diff, low, high = welch_interval(y, treated)
    ref = statistics.fmean(a) - statistics.fmean(b)
    v1, v2 = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    assert diff == pytest.approx(ref, abs=1e-6)
    if v1 + v2 < 1e-9:
        return
    df = (v1 + v2) ** 2 / (v1**2 / (len(a) - 1) + v2**2 / (len(b) - 1))
    half = float(stats.t.ppf(0.975, df)) * math.sqrt(v1 + v2)
    assert (low, high) == pytest.approx((ref - half, ref + half), rel=1e-6, abs=1e-6)


def test_covariates_see_only_what_came_before_each_assignment(tmp_path):
    store = Store(tmp_path / "store")
    csv = tmp_path / "tx.csv"
    csv.write_text(
        "order_id,customer_id,ts,amount\n"
        "o1,A,2024-01-10 10:00:00,10.00\n"
        "o2,A,2024-02-20 10:00:00,20.00\n"
        "o3,A,2024-03-01 09:00:00,500.00\n"
        "o4,B,2023-01-05 10:00:00,7.50\n"
    )
    ingest_files([csv], store, IngestConfig(), now=NOW)
    entries = pl.DataFrame(
        {
            "customer_id": ["A", "A", "B", "C"],
            "as_of": [
                dt.date(2024, 3, 1),
                dt.date(2024, 3, 2),
                dt.date(2024, 3, 1),
                dt.date(2024, 3, 1),
            ],
        }
    )
    got = {
        (r["customer_id"], str(r["as_of"])): r
        for r in assignment_covariates(store, entries, 30).to_dicts()
    }
    # on 2024-03-01 the 500.00 of that morning is not yet seen; the next day it is
    assert got[("A", "2024-03-01")]["spend_30"] == 20.0
    assert got[("A", "2024-03-01")]["spend_prev_30"] == 10.0
    assert got[("A", "2024-03-01")]["days_365"] == 2
    assert got[("A", "2024-03-02")]["spend_30"] == 520.0
    assert got[("A", "2024-03-01")]["recency_days"] == 10
    assert got[("B", "2024-03-01")]["recency_days"] == 421
    assert got[("B", "2024-03-01")]["spend_365"] == 0.0
    assert got[("C", "2024-03-01")]["recency_days"] == RECENCY_CAP
    assert all(got[("C", "2024-03-01")][n] == 0 for n in covariate_names(30) if n != "recency_days")


def test_adjusted_intervals_cover_an_injected_effect_on_the_simulator_too(simulated):
    _, base, frame = simulated
    assert base == dt.date(2024, 11, 2)
    found = coverage(Customers.of(frame, 60), 400, seed=3)
    for metric in ("retention", "revenue"):
        assert 0.93 <= found.covered[f"adjusted_{metric}"] <= 0.97
        assert found.width[f"adjusted_{metric}"] < found.width[f"plain_{metric}"]


def test_adjusted_intervals_cover_an_injected_effect_on_real_customers(retail):
    _, base, frame = retail
    customers = Customers.of(frame, 60)
    assert base == dt.date(2011, 8, 2)
    assert customers.retained.size > 400
    found = coverage(customers, 400, seed=1)
    for metric in ("retention", "revenue"):
        assert 0.93 <= found.covered[f"adjusted_{metric}"] <= 0.97
    # real next-60-day revenue: the adjusted interval is over a third narrower
    assert found.width["adjusted_revenue"] <= 0.65 * found.width["plain_revenue"]
    assert found.width["adjusted_retention"] < found.width["plain_retention"]


def test_looking_every_day_the_sequence_keeps_its_promise(retail):
    customers = Customers.of(retail[2], 60)
    alarms = aa_false_alarms(customers, 100, 30, seed=2)
    for metric in ("retention", "revenue"):
        assert alarms[f"sequential_{metric}"] <= 0.05
        assert alarms[f"fixed_{metric}"] >= 0.12  # the fixed interval, read daily, does not
