"""The budget allocation against a brute-force optimum on small problems."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmkit.campaigns.allocation import allocate


def brute_force(gain, cost, pays, budget, size):
    """Best total net value over every assignment of at most one option per customer."""
    n, t = gain.shape
    best = 0.0
    for choice in itertools.product(range(-1, t), repeat=n):
        spend = sum(cost[c] for i, c in enumerate(choice) if c >= 0 and pays[i])
        listed = sum(c >= 0 for c in choice)
        if (budget is not None and spend > budget + 1e-9) or (size is not None and listed > size):
            continue
        if any(c >= 0 and np.isnan(gain[i, c]) for i, c in enumerate(choice)):
            continue
        best = max(best, sum(gain[i, c] - cost[c] for i, c in enumerate(choice) if c >= 0))
    return best


def net_of(result, gain, cost):
    return sum(gain[i, c] - cost[c] for i, c in enumerate(result.chosen) if c >= 0)


problems = st.integers(1, 5).flatmap(
    lambda n: st.tuples(
        st.lists(
            st.lists(st.one_of(st.just(float("nan")), st.floats(-5, 30)), min_size=3, max_size=3),
            min_size=n,
            max_size=n,
        ),
        st.lists(st.sampled_from([0.0, 0.1, 1.0, 5.0, 8.0]), min_size=3, max_size=3),
        st.lists(st.booleans(), min_size=n, max_size=n),
        st.one_of(st.none(), st.floats(0, 20)),
        st.one_of(st.none(), st.integers(0, 5)),
    )
)


@settings(max_examples=300, deadline=None)
@given(problems)
def test_allocation_keeps_the_budget_and_comes_close_to_the_optimum(problem):
    rows, costs, pays, budget, size = problem
    gain, cost, pays = np.array(rows), np.array(costs), np.array(pays)
    result = allocate(gain, cost, pays, budget, size)
    chosen = result.chosen
    spend = sum(cost[c] for i, c in enumerate(chosen) if c >= 0 and pays[i])
    assert spend == pytest.approx(result.spent)
    if budget is not None:
        assert spend <= budget + 1e-9  # never over the budget
    if size is not None:
        assert (chosen >= 0).sum() <= size
    for i, c in enumerate(chosen):
        if c >= 0:
            assert not np.isnan(gain[i, c])
            assert gain[i, c] - cost[c] > 0  # nobody contacted at an expected loss
    # who is listed does not depend on one's own group (the controls stay comparable), so
    # the optimum is that of everyone paying: the same list with every contact paid
    paid = allocate(gain, cost, np.ones_like(pays), budget, size)
    optimum = brute_force(gain, cost, np.ones_like(pays), budget, size)
    got = net_of(paid, gain, cost)
    assert got <= optimum + 1e-9
    # the LP greedy loses at most one option's net value against the optimum
    biggest = np.nanmax(np.where(np.isnan(gain), -np.inf, gain - cost[None, :]), initial=0.0)
    assert got >= optimum - max(biggest, 0.0) - 1e-9
    if budget is None and size is None:
        assert got == pytest.approx(optimum)


def test_cheap_treatments_reach_more_customers_than_dear_ones_first():
    # the case of the report: email 0.10, voucher 5, call 8 and a budget of 20
    rng = np.random.default_rng(0)
    at_risk = rng.lognormal(5, 1, 400)
    effects = np.array([0.03, 0.08, 0.12])
    cost = np.array([0.1, 5.0, 8.0])
    gain = at_risk[:, None] * effects[None, :]
    result = allocate(gain, cost, np.ones(400, dtype=bool), 20.0)
    picked = result.chosen[result.chosen >= 0]
    assert (picked == 0).sum() >= 150  # emails to many
    net = net_of(result, gain, cost)
    # against "the dearest treatment first, by value at risk, until the money runs out"
    order = np.argsort(-at_risk)
    dear = sum(gain[i, 2] - 8.0 for i in order[: int(20.0 // 8.0)])
    assert net > 1.3 * dear
    assert result.marginal_return is not None
    assert result.marginal_return > 0


def test_ties_and_row_order_give_the_same_choice():
    gain = np.array([[5.0, 5.0], [5.0, 5.0], [5.0, 5.0]])
    cost = np.array([1.0, 1.0])
    a = allocate(gain, cost, np.ones(3, dtype=bool), 2.0)
    assert a.chosen.tolist() == [0, 0, -1]  # the first customers, the first equal option
