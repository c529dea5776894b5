"""Plans against statsmodels' power calculations, and campaigns run at the planned size."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from statsmodels.stats.power import NormalIndPower

from crmkit.campaigns.planning import (
    Baseline,
    balanced_size,
    control_fraction,
    detectable_effect,
    plan_campaign,
    power,
    r_squared,
    store_baseline,
)
from crmkit.campaigns.sequential import half_width, rho
from crmkit.errors import BadInputError
from crmkit.simulate.injected import Customers, detection_rate
from crmkit.store.core import Store


@given(
    st.floats(0.01, 2.0),
    st.integers(10, 200_000),
    st.floats(0.05, 5.0),
    st.sampled_from([0.01, 0.05, 0.1]),
)
def test_power_is_normal_ind_power(d, n_t, ratio, alpha):
    ours = power(d * 3.0, 3.0, n_t, n_t * ratio, alpha)
    assert ours == pytest.approx(NormalIndPower().power(d, n_t, alpha, ratio), rel=1e-9)


@pytest.mark.parametrize(
    ("effect", "sigma", "size"), [(0.03, 0.49, 20_000), (5.0, 80.0, 9_000), (0.1, 0.3, 900)]
)
def test_planned_sizes_reproduce_statsmodels(effect, sigma, size):
    f = control_fraction(effect, sigma, size)
    n_c = f * size
    n_t = size - n_c
    solved = NormalIndPower().solve_power(
        effect / sigma, nobs1=n_t, alpha=0.05, power=None, ratio=n_c / n_t
    )
    assert solved == pytest.approx(0.8, rel=1e-6)
    # the statsmodels size of a 50/50 split, to 1%
    half = NormalIndPower().solve_power(
        effect / sigma, nobs1=None, alpha=0.05, power=0.8, ratio=1.0
    )
    assert balanced_size(effect, sigma) == pytest.approx(2 * half, rel=0.01)
    mde = detectable_effect(sigma, round(n_t), round(n_c))
    assert mde == pytest.approx(effect, rel=0.01)
    # too small a campaign: no split reaches the power
    assert control_fraction(effect, sigma, int(balanced_size(effect, sigma) * 0.9)) is None


def test_sequence_half_width_by_hand_and_narrowest_at_the_tuning_size():
    a = -2 * math.log(0.05)
    assert rho(5000) == pytest.approx(math.sqrt((a + math.log(a + 1)) / 5000))
    n, v = 5000, 0.25 / 2500
    r2 = rho(5000) ** 2
    by_hand = math.sqrt(n * v) * math.sqrt(
        2 * (n * r2 + 1) / (n * n * r2) * math.log(math.sqrt(n * r2 + 1) / 0.05)
    )
    assert half_width(n, v) == pytest.approx(by_hand)
    widths = {t: half_width(n, v, tuning=t) for t in (500, 2000, 5000, 12_000, 50_000)}
    assert min(widths, key=widths.__getitem__) == 5000
    assert half_width(n, v) > 1.96 * math.sqrt(v)  # wider than one look's interval
    assert math.isnan(half_width(1, v))


def test_r_squared_by_hand():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 2))
    y = 2 * x[:, 0] + rng.normal(size=2000)
    assert r_squared(y, x) == pytest.approx(4 / 5, abs=0.03)
    assert r_squared(y, np.ones((2000, 1))) == 0.0


def test_store_baseline_and_a_campaign_at_the_planned_size_detects_the_effect(retail):
    store, _, frame = retail
    baseline = store_baseline(store, dt.date(2011, 10, 1), 60, 365)
    assert baseline.base == dt.date(2011, 8, 2)
    assert baseline.customers == frame.height
    assert baseline.mean["retention"] == pytest.approx(frame["retained"].mean())
    assert baseline.sd["revenue"] == pytest.approx(frame["revenue"].std())
    assert 0 < baseline.explained["revenue"] < 1
    plan = plan_campaign(baseline, 3000, metric="retention", effect=0.08)
    plain, adjusted = plan.estimates["plain"], plan.estimates["adjusted"]
    assert adjusted["control"] < plain["control"]  # the adjustment needs fewer controls
    customers = Customers.of(frame, 60)
    for kind, e in (("plain", plain), ("adjusted", adjusted)):
        assert e["achieved_power"] == pytest.approx(0.8, abs=0.002)
        seen = detection_rate(customers, 3000, e["control"], "retention", 0.08, 300, seed=5)
        assert seen[kind] == pytest.approx(0.8, abs=0.07)
    mde = plan_campaign(baseline, 3000, control_share=0.1)
    assert mde.estimates["plain"]["control"] == 300
    assert (
        mde.estimates["adjusted"]["minimum_detectable_effect"]
        < mde.estimates["plain"]["minimum_detectable_effect"]
    )


def test_plan_needs_history(tmp_path):
    with pytest.raises(BadInputError, match="no transactions"):
        store_baseline(Store(tmp_path / "empty"), dt.date(2024, 1, 1), 60, 365)


def test_a_too_small_campaign_says_what_a_balanced_one_needs():
    b = Baseline(
        dt.date(2024, 1, 1), 60, 1000, {"retention": 0.4}, {"retention": 0.49}, {"retention": 0.2}
    )
    plan = plan_campaign(b, 500, effect=0.02)
    assert plan.estimates["plain"]["control_fraction"] is None
    assert plan.estimates["plain"]["balanced_size"] == balanced_size(0.02, 0.49)
    assert plan.to_json()["plain"]["balanced_size"] > 500
