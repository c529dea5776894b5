from __future__ import annotations

import datetime as dt
import re

from crmkit.config import Settings
from crmkit.registry import ModelRef, Registry
from crmkit.report import gather, write_report

from .test_evaluation import campaign_store  # noqa: F401  # module-scoped fixture

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


def test_report_without_model_or_campaign(campaign_store, tmp_path):  # noqa: F811
    store, _ = campaign_store
    data = gather(
        store, dt.date(2025, 1, 1), Settings(), Registry(tmp_path / "none"), ModelRef("churn")
    )
    text = write_report(tmp_path / "r.html", data).read_text()
    assert text.count("<svg") == 2
    assert "churn charts left out" in text
