from __future__ import annotations

import datetime as dt
import re

import polars as pl
import pytest

from crmkit.config.settings import Settings
from crmkit.models.registry import ModelRef, Registry
from crmkit.report.gather import gather
from crmkit.report.page import write_report
from tests.campaigns.test_evaluation import campaign_store  # noqa: F401  # module-scoped fixture

TITLES = (
    "Segment sizes and value shares by value tier",
    "Value concentration (Pareto curve)",
    "Churn-risk distribution",
    "Cumulative gain (validation)",
    "Calibration (validation snapshot)",
    "Uplift, treatment - control (95% CI)",
)


def test_report_has_every_chart_and_needs_no_network(campaign_store, tmp_path):  # noqa: F811
    store, _ = campaign_store
    registry = Registry(store.root.parent / "models")
    data = gather(store, dt.date(2025, 1, 1), Settings(), registry, ModelRef("churn"), "test", 60)
    path = write_report(tmp_path / "report.html", data)
    text = path.read_text()
    assert text.count("<svg") == 6
    for title in TITLES:
        assert title in text, title
    # nothing is fetched: no scripts, stylesheets, images or links to other places
    assert "<script" not in text
    assert "<link" not in text
    assert "<img" not in text
    refs = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert refs
    assert all(ref.startswith("#") for ref in refs)
    assert "url(http" not in text


def test_mix_by_tier_weights_shares_by_spend():
    from crmkit.report.gather import mix_by_tier

    features = pl.DataFrame(
        {
            "value_tier": ["gold", "gold", "silver"],
            "gross_spend": [100.0, 300.0, 50.0],
            "distinct_products": [2, 4, 1],
            "category_share_shoes": [1.0, 0.0, 0.5],
            "channel_share_web": [None, 1.0, 0.2],
            "channel_switch_90": [True, False, None],
        }
    )
    rows = {r["segment"]: r for r in mix_by_tier(features).to_dicts()}
    assert rows["gold"]["customers"] == 2
    assert rows["gold"]["distinct_products"] == 3.0
    assert rows["gold"]["category_share_shoes"] == pytest.approx(100 / 400)
    assert rows["gold"]["channel_share_web"] == pytest.approx(1.0)  # of the spend with a channel
    assert rows["gold"]["channel_switch_90 share"] == 0.5
    assert list(rows) == ["gold", "silver"]
    plain = pl.DataFrame(
        {"value_tier": ["gold"], "gross_spend": [1.0], "distinct_products": [None]}
    )
    assert mix_by_tier(plain) is None


def test_report_without_model_or_campaign(campaign_store, tmp_path):  # noqa: F811
    store, _ = campaign_store
    data = gather(
        store, dt.date(2025, 1, 1), Settings(), Registry(tmp_path / "none"), ModelRef("churn")
    )
    text = write_report(tmp_path / "r.html", data).read_text()
    assert text.count("<svg") == 2
    assert "churn charts left out" in text


def test_report_of_a_campaign_without_outcomes_yet(campaign_store, tmp_path):  # noqa: F811
    import polars as pl

    from crmkit.campaigns.evaluation import evaluate_campaign
    from crmkit.campaigns.lists import write_targets
    from crmkit.config.policy import TargetPolicy

    store, _ = campaign_store
    registry = Registry(store.root.parent / "models")
    day = dt.date(2025, 6, 1)  # after every transaction: no outcome can be known
    scores = pl.DataFrame(
        {
            "customer_id": [f"Z{i}" for i in range(300)],
            "churn_probability": [0.5] * 300,
            "customer_value": [10.0] * 300,
            "expected_value_at_risk": [5.0] * 300,
            "rfm_segment": ["lost"] * 300,
            "value_tier": ["silver"] * 300,
            "recency_days": [30] * 300,
        }
    )
    policy = TargetPolicy(min_churn_probability=0.0, exclude_tiers=())
    write_targets(scores, store, "future", day, policy, tmp_path / "lists")
    evaluation = evaluate_campaign(store, "future", 30)
    # no result before there are results: the group sizes and a status, no figure
    assert evaluation.status == "pending"
    assert evaluation.to_json()["status"] == "pending"
    assert evaluation.groups.columns == ["group", "customers"]
    assert evaluation.groups["customers"].sum() == 300
    assert evaluation.by_treatment == []
    assert "no result yet" in evaluation.overall["note"]
    assert "2025-07-01" in evaluation.overall["note"]
    assert any("window has ended yet" in w for w in evaluation.warnings)
    data = gather(store, dt.date(2025, 1, 1), Settings(), registry, ModelRef("churn"), "future", 30)
    page = write_report(tmp_path / "future.html", data).read_text()
    assert page.count("<svg") == 5  # no campaign chart
    assert "no result yet" in page
    assert "return on cost" not in page
    assert "+0.0 pp" not in page


def test_campaign_section_has_uplift_significance_money_and_roi(campaign_store, tmp_path):  # noqa: F811
    import dataclasses

    from crmkit.config.policy import TargetPolicy
    from crmkit.config.settings import ReportConfig

    store, _ = campaign_store
    registry = Registry(store.root.parent / "models")
    policy = TargetPolicy(costs={"email": 0.5, "call": 4.0}, default_cost=1.0)
    settings = dataclasses.replace(Settings(), targeting=policy, report=ReportConfig(currency="£"))
    data = gather(store, dt.date(2025, 1, 1), settings, registry, ModelRef("churn"), "test", 60)
    overall = data.evaluation.overall
    assert data.campaign_cost is not None
    assert data.campaign_cost >= 0.5 * overall["treated"]
    text = write_report(tmp_path / "r.html", data).read_text()
    low, high = overall["uplift_low"] * 100, overall["uplift_high"] * 100
    assert f"[{low:+.1f}, {high:+.1f}]" in text
    assert "significant at 5%" in text
    assert f"£{abs(overall['incremental_revenue']):,.0f}" in text
    assert "return on cost" in text
    assert "10 = highest predicted risk" in text  # deciles count as in `score`
    assert f"scored (bought in the last {data.lookback_days} days)" in text
