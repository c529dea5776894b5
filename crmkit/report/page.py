"""A self-contained HTML report of segments, value, churn risk, validation and campaigns.

It shows value tiers, value concentration, churn risk, the model's validation and (with a
campaign) treatment against control. Charts are drawn with matplotlib (Agg) and embedded
as inline SVG; the page has no scripts, stylesheets or images from anywhere else, so it
opens without network access.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from crmkit.campaigns.evaluation import Evaluation
from crmkit.errors import UsageError
from crmkit.numbers import as_float
from crmkit.report.charts import (
    _figure_html,
    _table,
    chart_calibration,
    chart_campaign,
    chart_gain,
    chart_pareto,
    chart_risk,
    chart_tiers,
    estimates_table,
    policy_table,
    uplift_section,
)
from crmkit.report.gather import ReportData, mix_by_tier
from crmkit.segments.summary import value_concentration
from crmkit.store.files import atomic_write_bytes

_CSS: Final = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#1a202c;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2.5rem;border-bottom:1px solid #e2e8f0}
.kpis{display:flex;flex-wrap:wrap;gap:1rem}.kpi{background:#f7fafc;border:1px solid #e2e8f0;
border-radius:8px;padding:.75rem 1rem;min-width:11rem}.kpi b{display:block;font-size:1.4rem}
figure{margin:1.5rem 0}figcaption{color:#4a5568;font-size:.9rem}svg{max-width:100%;height:auto}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #e2e8f0;padding:.3rem .6rem;
text-align:right}th:first-child,td:first-child{text-align:left}.note{color:#975a16}
"""


def campaign_kpis(data: ReportData, ev: Evaluation) -> list[str]:
    """Uplift with its interval and significance, incremental customers, revenue, cost, ROI."""
    c = ev.overall
    if ev.status == "pending":
        return [_kpi("result", c["note"])]
    if "uplift" not in c:
        return [_kpi("treatment against control", c.get("note", "not measurable"))]
    verdict = (
        f"significant at 5% (p = {c['p_value']:.3g})"
        if c["significant"]
        else f"not significant (p = {c['p_value']:.2g})"
    )
    uplift = (
        f"{c['uplift'] * 100:+.1f} pp [{c['uplift_low'] * 100:+.1f}, {c['uplift_high'] * 100:+.1f}]"
    )
    revenue = float(c["incremental_revenue"])
    out = [
        _kpi(f"retention uplift, {verdict}", uplift),
        _kpi("incremental customers retained", f"{c['incremental_customers']:+,.1f}"),
        _kpi("incremental revenue", data.money(revenue)),
    ]
    if data.campaign_cost is None:
        out.append(_kpi("cost", "unknown: set [targeting.costs]"))
    else:
        out.append(_kpi("cost", data.money(data.campaign_cost)))
        if data.campaign_cost > 0:
            roi = (revenue - data.campaign_cost) / data.campaign_cost
            out.append(_kpi("return on cost", f"{roi:+.0%}"))
    return out


def _kpi(label: str, value: str) -> str:
    return f'<div class="kpi">{html.escape(label)}<b>{html.escape(value)}</b></div>'


def headline(data: ReportData) -> list[str]:
    """Return the key figures: customers, value and its concentration, and risk."""
    f = data.features
    kpis = [
        _kpi(f"customers (a purchase before {data.as_of})", f"{f.height:,}"),
        _kpi("net value", data.money(float(f["net_spend"].sum()))),
        _kpi("top 5% hold", f"{value_concentration(f['net_spend'], 0.05):.0%} of value"),
        _kpi("top 20% hold", f"{value_concentration(f['net_spend'], 0.20):.0%} of value"),
    ]
    if data.scores is not None:
        s = data.scores
        scored = f"scored (bought in the last {data.lookback_days} days)"
        kpis += [
            _kpi(scored, f"{s.height:,}"),
            _kpi("their mean churn probability", f"{as_float(s['churn_probability'].mean()):.0%}"),
            _kpi("expected value at risk", data.money(float(s["expected_value_at_risk"].sum()))),
        ]
    return kpis


def segments_section(data: ReportData) -> list[str]:
    """Return the segments: customers and value per tier, concentration, and the mix."""
    parts = [
        "<h2>Segments and value</h2>",
        _figure_html(
            "tiers", chart_tiers(data), "Share of customers and of net value per value tier."
        ),
        _table(data.tiers.to_dicts(), list(data.tiers.columns)),
        _figure_html(
            "pareto", chart_pareto(data), "How much of the value the most valuable customers hold."
        ),
    ]
    mix = mix_by_tier(data.features)
    if mix is not None:
        parts += [
            "<h2>What each tier buys</h2>",
            "<p>Mean distinct products and categories, units per order, and each tier's "
            "share of spend by category and channel (the store's most frequent ones).</p>",
            _table(mix.to_dicts(), list(mix.columns)),
        ]
    return parts


def risk_section(data: ReportData) -> list[str]:
    """Return the churn risk and the model's out-of-time validation, when scored."""
    if data.scores is None or data.card is None:
        return []
    card = data.card
    parts = [
        "<h2>Churn risk</h2>",
        _figure_html(
            "risk",
            chart_risk(data),
            f"Model {card['name']}:{card['version']}, {card['horizon_days']}-day horizon.",
        ),
    ]
    if "validation_curves" in card:
        parts += [
            "<h2>Model validation</h2>",
            f"<p>Out of time, on the snapshot of {html.escape(card['validation_snapshot'])}.</p>",
            _table(card["validation_metrics"], ["model", "roc_auc", "pr_auc", "brier", "ece"]),
            _figure_html("gain", chart_gain(card), "Gain and lift of the model on validation."),
            _figure_html(
                "calibration",
                chart_calibration(card),
                "Predicted probability against observed churn rate.",
            ),
        ]
    return parts


def campaign_section(data: ReportData) -> list[str]:
    """Return the campaign's evaluation, treatment against control, when one is asked for."""
    ev = data.evaluation
    if ev is None:
        return []
    parts = [
        f"<h2>Campaign {html.escape(ev.campaign)}</h2>",
        f"<div class='kpis'>{''.join(campaign_kpis(data, ev))}</div>",
        *(f"<p class='note'>{html.escape(w)}</p>" for w in ev.warnings),
    ]
    if ev.status == "pending":
        return [*parts, _table(ev.groups.to_dicts(), list(ev.groups.columns))]
    return [
        *parts,
        _figure_html("campaign", chart_campaign(ev), "Treatment against control, 95% intervals."),
        _table(ev.groups.to_dicts(), list(ev.groups.columns)),
        *estimates_table(ev),
        *policy_table(ev),
    ]


def _band(e: Mapping[str, float], digits: int) -> str:
    return f"{e['value']:+,.{digits}f} [{e['low']:+,.{digits}f}, {e['high']:+,.{digits}f}]"


def comparison_section(data: ReportData) -> list[str]:
    """Return the saved ``policy compare`` result of the campaign: policies side by side."""
    found = data.comparison
    if not found:
        return []
    rows = [
        {
            "policy": p["policy"],
            "contacts": f"{p['contacts']:,}",
            "cost": f"{p['cost']:,.2f}",
            "extra buyers (DR, 95%)": _band(p["incremental_customers"]["dr"], 1),
            "value less cost (DR, 95%)": _band(p["incremental_value"]["dr"], 0),
            "value less cost (IPS)": f"{p['incremental_value']['ips']['value']:+,.0f}",
        }
        for p in found["policies"]
    ]
    return [
        f"<h3>Policies replayed on campaign {html.escape(str(found['campaign']))}</h3>",
        (
            f"<p>What each policy would have achieved among the campaign's "
            f"{found['customers']:,} customers at a budget of {found['budget']:,.2f}, against "
            f"contacting nobody ({found['window_days']}-day window; uplift: "
            f"{html.escape(str(found['uplift_source']))}).</p>"
        ),
        _table(rows, list(rows[0])),
    ]


def render(data: ReportData) -> str:
    """Render the report as one HTML page."""
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>crmkit report {data.as_of}</title><style>{_CSS}</style></head><body>",
        f"<h1>Customer retention report, as of {data.as_of}</h1>",
        f"<p>Store <code>{html.escape(data.store)}</code>; transactions before {data.as_of}.</p>",
        f"<div class='kpis'>{''.join(headline(data))}</div>",
        *(f"<p class='note'>{html.escape(n)}</p>" for n in data.notes),
        *segments_section(data),
        *risk_section(data),
        *campaign_section(data),
        *comparison_section(data),
        *(uplift_section(data.uplift_card) if data.uplift_card is not None else []),
        "</body></html>",
    ]
    return "\n".join(parts)


def write_report(path: Path, data: ReportData) -> Path:
    """Render and write the report atomically.

    Raises
    ------
    UsageError
        When ``path`` does not end in ``.html``.
    """
    if path.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"{path}: the report is HTML; use a .html file name")
    atomic_write_bytes(path, render(data).encode("utf-8"))
    return path


__all__ = ["render", "write_report"]
