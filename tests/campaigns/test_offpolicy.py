"""Off-policy estimates: plain-Python references, refusals and coverage on simulated truth."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmkit.campaigns.offpolicy import bootstrap_weights, dr_terms, interval, ips_terms
from crmkit.campaigns.policy_compare import (
    Candidates,
    compare_policies,
    logged_actions,
    outcome_models,
    policies,
    uplift_profit,
)


def _ips_reference(y, action, policy, propensity):
    """IPS incremental total, one customer at a time."""
    total = 0.0
    for i in range(len(y)):
        if policy[i] == 0:
            continue
        if action[i] == policy[i]:
            total += y[i] / propensity[i][policy[i]]
        if action[i] == 0:
            total -= y[i] / propensity[i][0]
    return total


def _dr_reference(y, action, policy, propensity, mu):
    total = 0.0
    for i in range(len(y)):
        a = policy[i]
        if a == 0:
            continue
        total += mu[i][a] - mu[i][0]
        if action[i] == a:
            total += (y[i] - mu[i][a]) / propensity[i][a]
        if action[i] == 0:
            total -= (y[i] - mu[i][0]) / propensity[i][0]
    return total


@st.composite
def _campaigns(draw):
    arms = draw(st.integers(1, 3))
    n = draw(st.integers(1, 40))
    shares = draw(
        st.lists(st.floats(0.05, 1.0), min_size=arms + 1, max_size=arms + 1).map(
            lambda w: [x / sum(w) for x in w]
        )
    )
    propensity = np.tile(shares, (n, 1))
    action = np.array(draw(st.lists(st.integers(0, arms), min_size=n, max_size=n)))
    policy = np.array(draw(st.lists(st.integers(0, arms), min_size=n, max_size=n)))
    y = np.array(draw(st.lists(st.floats(-50, 500), min_size=n, max_size=n)))
    mu = np.array(
        draw(st.lists(st.floats(0, 300), min_size=n * (arms + 1), max_size=n * (arms + 1)))
    ).reshape(n, arms + 1)
    return y, action, policy, propensity, mu


@settings(max_examples=300, deadline=None)
@given(case=_campaigns())
def test_ips_and_dr_equal_plain_python(case):
    y, action, policy, propensity, mu = case
    ips = ips_terms(y, action, policy, propensity).sum()
    dr = dr_terms(y, action, policy, propensity, mu).sum()
    assert ips == pytest.approx(_ips_reference(y, action, policy, propensity), abs=1e-6)
    assert dr == pytest.approx(_dr_reference(y, action, policy, propensity, mu), abs=1e-6)


def test_an_action_the_campaign_never_risked_is_refused():
    propensity = np.array([[0.2, 0.8, 0.0], [0.2, 0.0, 0.8]])
    y, action = np.array([1.0, 0.0]), np.array([1, 2])
    with pytest.raises(ValueError, match="could not have been given"):
        ips_terms(y, action, np.array([2, 0]), propensity)
    assert ips_terms(y, action, np.array([1, 2]), propensity).sum() == pytest.approx(1 / 0.8)


def test_interval_is_the_sum_with_percentiles():
    terms = np.arange(10.0)
    weights = bootstrap_weights(10, 500, seed=1)
    assert (weights.sum(axis=1) == 10).all()
    est = interval(terms, weights)
    assert est.value == 45.0
    assert est.low < 45.0 < est.high


def test_logged_strata_and_shared_control():
    own = pl.DataFrame(
        {
            "group": ["treatment", "control", "treatment", "treatment", "control"],
            "treatment": ["email", "email", "sms", "sms", "sms"],
        }
    )
    logged = logged_actions(own)
    assert logged.actions == ("none", "email", "sms")
    assert not logged.shared
    assert logged.propensity[0].tolist() == [0.5, 0.5, 0.0]
    assert logged.propensity[2].tolist() == pytest.approx([1 / 3, 0.0, 2 / 3])
    shared = own.with_columns(
        pl.when(pl.col("group") == "control").then(None).otherwise("treatment").alias("treatment")
    )
    logged = logged_actions(shared)
    assert logged.shared
    assert logged.propensity[0].tolist() == pytest.approx([0.4, 0.2, 0.4])
    with pytest.raises(ValueError, match="control group"):
        logged_actions(own.filter(pl.col("group") == "treatment"))


def _simulated(seed: int, n: int = 1500):
    """One randomised campaign of one arm: true per-customer effects and outcomes."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    base = 0.15 + 0.1 / (1 + np.exp(-x[:, 0]))
    tau = np.clip(0.06 + 0.06 * x[:, 1], -0.05, 0.2)
    amount = np.exp(3 + 0.5 * x[:, 2])
    treated = rng.random(n) < 0.7
    bought = rng.random(n) < base + tau * treated
    frame = pl.DataFrame(
        {
            "customer_id": [f"c{seed}-{i}" for i in range(n)],
            "group": np.where(treated, "treatment", "control"),
            "treatment": ["email"] * n,
        }
    )
    return frame, x, tau, amount, bought.astype(float), bought * amount


def coverage(seeds) -> dict[tuple[str, str], float]:
    """Share of seeded campaigns whose DR interval covers each policy's true effect."""
    from crmkit.models.uplift_learners import customer_folds

    covered = {}
    for seed in seeds:
        frame, x, tau, amount, bought, revenue = _simulated(seed)
        logged = logged_actions(frame)
        y = {"customers": bought, "revenue": revenue}
        folds = customer_folds(frame["customer_id"])
        mu = outcome_models(x, y, logged, folds, seed)
        cost = np.array([0.0, 1.0])
        worth = (mu["customers"] - mu["customers"][:, :1]) * amount[:, None]
        candidates = Candidates(
            frame["customer_id"],
            amount,
            1 - mu["customers"][:, 0],
            uplift_profit(worth, cost, logged.propensity > 0),
        )
        chosen = policies(candidates, logged, cost, budget=500.0, salt="s")
        table = compare_policies(y, logged, mu, chosen, cost, seed, rounds=400)
        for row, (_, action) in zip(table, chosen.values(), strict=True):
            treats = action != 0
            truth = {
                "incremental_customers": float(tau[treats].sum()),
                "incremental_revenue": float((tau * amount)[treats].sum()),
            }
            for kind, true in truth.items():
                dr = row[kind]["dr"]
                covered.setdefault((row["policy"], kind), []).append(
                    dr["low"] <= true <= dr["high"]
                )
    return {name: float(np.mean(hits)) for name, hits in covered.items()}


def test_doubly_robust_intervals_cover_the_true_effect_of_each_policy():
    rates = coverage(range(40))
    assert {p for p, _ in rates} == {"value at risk", "random", "treat all", "uplift"}
    assert min(rates.values()) >= 0.9, rates
