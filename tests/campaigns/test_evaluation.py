from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest
from scipy import stats

from crmkit.campaigns.evaluation import evaluate_campaign
from crmkit.campaigns.lists import write_targets
from crmkit.campaigns.stats import minimum_detectable, newcombe, two_proportion_p, welch, wilson
from crmkit.config.policy import TargetPolicy
from crmkit.config.settings import IngestConfig, SegmentConfig
from crmkit.errors import BadInputError
from crmkit.ingest import ingest_files
from crmkit.models.registry import ModelRef
from crmkit.models.scoring import score_customers
from crmkit.simulate.response import simulate_response
from tests.conftest import NOW, trained_sample_store


def test_wilson_published_and_by_hand():
    # Newcombe (1998), Statistics in Medicine 17:857-872, table I: 81/263 and 15/148
    assert tuple(round(x, 4) for x in wilson(81, 263)) == (0.2553, 0.3662)
    assert tuple(round(x, 4) for x in wilson(15, 148)) == (0.0624, 0.1605)
    z = stats.norm.ppf(0.975)
    for k, n in ((0, 10), (10, 10), (3, 7)):
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        assert wilson(k, n) == pytest.approx((centre - half, centre + half), abs=1e-12)
    assert all(math.isnan(x) for x in wilson(0, 0))


def test_newcombe_published_example():
    # Newcombe (1998), Statistics in Medicine 17:873-890, method 10: 56/70 - 48/80
    low, high = newcombe(56, 70, 48, 80)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


def test_two_proportion_p_matches_chi_square():
    table = np.array([[56, 14], [48, 32]])
    chi2 = stats.chi2_contingency(table, correction=False)
    assert two_proportion_p(56, 70, 48, 80) == pytest.approx(chi2.pvalue, rel=1e-9)


def test_welch_by_the_welch_satterthwaite_formula():
    rng = np.random.default_rng(3)
    a, b = rng.exponential(20, 300), rng.exponential(17, 200)
    diff, low, high, p = welch(a.tolist(), b.tolist())
    v1, v2 = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    df = (v1 + v2) ** 2 / (v1**2 / (a.size - 1) + v2**2 / (b.size - 1))
    se = math.sqrt(v1 + v2)
    q = stats.t.ppf(0.975, df)
    assert diff == pytest.approx(a.mean() - b.mean())
    assert (low, high) == pytest.approx((diff - q * se, diff + q * se), rel=1e-9)
    assert p == pytest.approx(2 * stats.t.sf(abs(diff / se), df), rel=1e-9)
    assert welch([1.0, 1.0], [3.0, 3.0]) == (-2.0, -2.0, -2.0, 0.0)


def test_minimum_detectable_by_hand():
    se = (0.4 * 0.6 * (1 / 1000 + 1 / 250)) ** 0.5
    assert minimum_detectable(0.4, 1000, 250) == pytest.approx((1.959964 + 0.841621) * se, rel=1e-5)


def test_interval_coverage_over_fixed_seeds():
    rng = np.random.default_rng(12345)
    n1, n2, p1, p2 = 1500, 500, 0.45, 0.40
    covered = 0
    sims = 400
    for _ in range(sims):
        k1, k2 = int(rng.binomial(n1, p1)), int(rng.binomial(n2, p2))
        low, high = newcombe(k1, n1, k2, n2)
        covered += low <= p1 - p2 <= high
    assert 0.92 <= covered / sims <= 0.98


def test_no_effect_is_rarely_significant():
    rng = np.random.default_rng(54321)
    sims, hits = 400, 0
    for _ in range(sims):
        k1, k2 = int(rng.binomial(1200, 0.4)), int(rng.binomial(300, 0.4))
        hits += two_proportion_p(k1, 1200, k2, 300) < 0.05
    assert hits / sims <= 0.05 + 0.03


@pytest.fixture(scope="module")
def campaign_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    store, registry = trained_sample_store(root)
    scores = score_customers(
        store, dt.date(2025, 1, 1), ModelRef("churn"), registry, SegmentConfig()
    )
    policy = TargetPolicy(min_churn_probability=0.0, exclude_tiers=(), control_fraction=0.4)
    targets = write_targets(scores.frame, store, "test", dt.date(2025, 1, 1), policy, root / "out")
    tx, truth = simulate_response(targets.frame, {"email": 0.15}, 60, seed=7)
    path = root / "response.csv"
    tx.write_csv(path, datetime_format="%Y-%m-%d %H:%M:%S")
    ingest_files([path], store, IngestConfig(), now=NOW)
    return store, truth


def test_evaluation_recovers_the_true_uplift(campaign_store):
    store, truth = campaign_store
    result = evaluate_campaign(store, "test", window_days=60)
    overall = result.overall
    assert overall["significant"]
    assert overall["uplift_low"] <= 0.15 <= overall["uplift_high"]
    assert abs(overall["uplift"] - 0.15) < 0.06
    # the simulated response follows the churn probability the ledger recorded: the
    # adjustment uses it, and its narrower interval still covers the true uplift
    adjusted = overall["adjusted"]
    assert adjusted["uplift_low"] <= 0.15 <= adjusted["uplift_high"]
    width = adjusted["uplift_high"] - adjusted["uplift_low"]
    assert width < overall["uplift_high"] - overall["uplift_low"]
    assert adjusted["variance_reduction"]["retention"] > 0.1
    groups = {g["group"]: g for g in result.groups.to_dicts()}
    listed = truth.group_by("group").len()
    assert {r["group"]: r["len"] for r in listed.to_dicts()} == {
        k: v["customers"] for k, v in groups.items()
    }
    bought = truth.filter(pl.col("group") == "treatment")["bought"].mean()
    assert groups["treatment"]["retention_rate"] == pytest.approx(bought)
    assert {row["by"] for row in result.by_segment} == {"segment", "value_tier"}
    subsets = [*result.by_treatment, *result.by_segment]
    tested = [c for c in subsets if "p_value" in c]
    assert len(tested) > 1
    for c in tested:  # Holm never lowers a p-value and caps at 1
        assert c["p_value"] <= c["p_value_holm"] <= 1
    smallest = min(tested, key=lambda c: c["p_value"])
    assert smallest["p_value_holm"] == pytest.approx(min(1, len(tested) * smallest["p_value"]))
    assert "p_value_holm" not in result.overall
    simulation, caution = result.warnings
    assert "from a simulation (channel 'simulation')" in simulation
    assert f"{len(tested)} subgroup comparisons" in caution


def test_holm_by_hand():
    from crmkit.campaigns.stats import holm

    adjusted = holm([0.01, 0.04, 0.03, 0.005, float("nan")])
    assert adjusted[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert math.isnan(adjusted[4])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_incomplete_windows_and_unknown_campaign(campaign_store):
    store, _ = campaign_store
    result = evaluate_campaign(store, "test", window_days=120)
    assert any("window has ended yet" in w for w in result.warnings)
    with pytest.raises(BadInputError, match="no assignments"):
        evaluate_campaign(store, "nothing")


def test_evaluate_before_any_window_ends_says_so_and_prints_no_figure(campaign_store, runner):
    from tests.conftest import invoke

    store, _ = campaign_store
    common = ["evaluate", "--campaign", "test", "--window", "120", "--store", str(store.root)]
    summary = invoke(runner, *common, "--json")
    assert summary["status"] == "pending"
    assert summary["by_treatment"] == []
    assert set(summary["groups"][0]) == {"group", "customers"}
    assert "no result yet" in summary["treatment_vs_control"]["note"]
    shown = invoke(runner, *common).stdout
    assert "no result yet: the first 120-day outcome window ends on" in shown
    assert "%" not in shown
    complete = invoke(runner, "evaluate", "--campaign", "test", "--window", "10", "--store",
                      str(store.root), "--json")  # fmt: skip
    assert complete["status"] in ("complete", "partial")
    assert "uplift" in complete["treatment_vs_control"]
