from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmkit.models.uplift_metrics import (
    Ranked,
    auuc,
    curve,
    qini_coefficient,
    uplift_at_k,
    uplift_report,
    uplift_reports,
)


def reference_curve(y, t, score, kind):
    """Plain Python: add customers one distinct score at a time, highest first."""
    xs, vs = [0.0], [0.0]
    nt = nc = rt = rc = 0
    for value in sorted(set(score), reverse=True):
        for i in range(len(y)):
            if score[i] == value:
                if t[i]:
                    nt, rt = nt + 1, rt + y[i]
                else:
                    nc, rc = nc + 1, rc + y[i]
        if kind == "qini":
            v = rt - rc * nt / nc if nc else 0.0
        else:
            v = (rt / nt - rc / nc) * (nt + nc) if nt and nc else 0.0
        xs.append(float(nt + nc))
        vs.append(v)
    return xs, vs


def reference_area(xs, vs):
    return sum((xs[i + 1] - xs[i]) * (vs[i + 1] + vs[i]) / 2 for i in range(len(xs) - 1))


def reference_normalised(y, t, score, kind):
    xs, vs = reference_curve(y, t, score, kind)
    random = xs[-1] * vs[-1] / 2
    perfect = [y[i] * (1 if t[i] else -1) for i in range(len(y))]
    best = reference_area(*reference_curve(y, t, perfect, kind)) - random
    if best <= 0:
        return math.nan
    return (reference_area(xs, vs) - random) / best


def reference_uplift_at_k(y, t, score, k):
    n = max(1, math.ceil(k * len(y)))
    order = sorted(range(len(y)), key=lambda i: -score[i])[:n]
    treated = [y[i] for i in order if t[i]]
    control = [y[i] for i in order if not t[i]]
    if not treated or not control:
        return math.nan
    return sum(treated) / len(treated) - sum(control) / len(control)


def same(a, b):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def test_hand_computed_example():
    y = np.array([1, 0, 1, 0, 1, 0])
    t = np.array([1, 1, 0, 0, 1, 0])
    score = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    x, q = curve(y, t, score, "qini")
    assert x.tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert q.tolist() == [0, 0, 0, -1, 0, 0.5, 1]
    _, u = curve(y, t, score, "uplift")
    assert u == pytest.approx([0, 0, 0, -1.5, 0, 5 / 6, 2])
    # area 0, random 3, perfect 4.5 (treated responders first, the control responder last)
    assert qini_coefficient(y, t, score) == pytest.approx((0 - 3) / (4.5 - 3))
    assert uplift_at_k(y, t, score, 0.5) == pytest.approx(0.5 - 1.0)
    # the perfect ranking itself scores 1
    perfect = y * np.where(t == 1, 1, -1)
    assert qini_coefficient(y, t, perfect) == pytest.approx(1.0)


def test_ties_enter_together():
    y = np.array([1, 0, 0, 1])
    t = np.array([1, 0, 1, 0])
    x, _ = curve(y, t, np.array([1.0, 1.0, 0.0, 0.0]))
    assert x.tolist() == [0, 2, 4]
    a = qini_coefficient(y, t, np.array([1.0, 1.0, 0.0, 0.0]))
    b = qini_coefficient(y[[1, 0, 3, 2]], t[[1, 0, 3, 2]], np.array([1.0, 1.0, 0.0, 0.0]))
    assert same(a, b)


cases = st.integers(2, 40).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 1), min_size=n, max_size=n),
        st.lists(st.booleans(), min_size=n, max_size=n),
        st.lists(st.integers(0, 6).map(lambda v: v / 4), min_size=n, max_size=n),
    )
)


@given(cases)
def test_curves_and_areas_equal_the_reference(case):
    y, t, score = case
    ya, ta, sa = np.array(y), np.array(t), np.array(score)
    for kind in ("qini", "uplift"):
        x, v = curve(ya, ta, sa, kind)
        rx, rv = reference_curve(y, t, score, kind)
        assert x.tolist() == rx
        assert np.allclose(v, rv, atol=1e-12)
        assert same(_normalised(ya, ta, sa, kind), reference_normalised(y, t, score, kind))
    for k in (0.1, 0.3, 0.5, 1.0):
        assert same(uplift_at_k(ya, ta, sa, k), reference_uplift_at_k(y, t, score, k))


def _normalised(y, t, s, kind):
    return qini_coefficient(y, t, s) if kind == "qini" else auuc(y, t, s)


def test_bootstrap_interval_covers_a_true_effect():
    rng = np.random.default_rng(0)
    n = 4000
    x = rng.uniform(0, 1, n)
    t = rng.uniform(0, 1, n) < 0.5
    # true uplift grows with x: 0 to 0.4
    y = (rng.uniform(0, 1, n) < 0.2 + 0.4 * x * t).astype(int)
    report = uplift_report(y, t, x, rounds=100)
    assert report["qini"].low > 0
    assert report["qini"].low <= report["qini"].value <= report["qini"].high
    assert report["uplift_at_10"].value > report["uplift_at_30"].value > 0
    noise = rng.uniform(0, 1, n)
    assert uplift_report(y, t, noise, rounds=100)["qini"].low < 0.1


def _campaign(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A randomised campaign: persuadables (x > 0.6, +25 points), sleeping dogs (x < 0.15,
    -15 points), the rest unmoved; the score is a noisy view of x, as a model's would be."""
    x = rng.uniform(0, 1, n)
    t = rng.uniform(0, 1, n) < 0.5
    tau = np.where(x > 0.6, 0.25, np.where(x < 0.15, -0.15, 0.0))
    y = (rng.uniform(0, 1, n) < 0.3 + tau * t).astype(int)
    return y, t, x + rng.normal(0, 0.2, n)


def test_qini_interval_covers_the_true_qini():
    # the true Qini of this ranking: its value on a population 200 times the sample
    truth = qini_coefficient(*_campaign(np.random.default_rng(12345), 800_000))
    covered = 0
    repetitions = 50
    for seed in range(repetitions):
        y, t, score = _campaign(np.random.default_rng(seed), 4000)
        interval = uplift_report(y, t, score, rounds=100, seed=seed)["qini"]
        covered += interval.low <= truth <= interval.high
    assert covered >= 0.9 * repetitions


@given(st.integers(0, 10_000), st.integers(2, 60))
def test_weighted_resample_equals_the_resampled_rows(seed, n):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    t = rng.uniform(0, 1, n) < 0.5
    score = rng.integers(0, 5, n).astype(float)  # many ties
    drawn = rng.integers(0, n, n)
    w = np.bincount(drawn, minlength=n).astype(float)
    ranked = Ranked.of(y, t, score)
    for kind in ("qini", "uplift"):
        x_w, v_w = ranked.curve(w, kind)
        x_r, v_r = curve(y[drawn], t[drawn], score[drawn], kind)
        # the weighted curve has a point for every tie run of the sample, drawn or not
        keep = np.r_[True, np.diff(x_w) > 0]
        np.testing.assert_allclose(x_w[keep], x_r)
        np.testing.assert_allclose(v_w[keep], v_r, atol=1e-9)


def test_rankings_share_their_resamples():
    rng = np.random.default_rng(3)
    n = 2000
    y = rng.integers(0, 2, n)
    t = rng.uniform(0, 1, n) < 0.5
    s = rng.uniform(0, 1, n)
    both = uplift_reports(y, t, {"a": s, "b": s.copy()}, rounds=50, seed=1)
    assert both["a"] == both["b"]
    alone = uplift_report(y, t, s, rounds=50, seed=1)
    assert alone == both["a"]
    assert set(alone) == {"qini", "auuc", "uplift_at_10", "uplift_at_20", "uplift_at_30"}
