"""A self-contained HTML report of segments, value, churn risk, validation and campaigns.

It shows value tiers, value concentration, churn risk, the model's validation and (with a
campaign) treatment against control. Charts are drawn with matplotlib (Agg) and embedded
as inline SVG; the page has no scripts, stylesheets or images from anywhere else, so it
opens without network access.
"""

from __future__ import annotations

import datetime as dt
import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import polars as pl

from crmkit.campaigns.evaluation import Evaluation, evaluate_campaign, wilson
from crmkit.campaigns.ledger import arm, read_ledger
from crmkit.config.policy import TargetPolicy
from crmkit.config.settings import Settings
from crmkit.errors import CrmkitError, UsageError
from crmkit.features.pipeline import store_features
from crmkit.models.registry import ModelRef, Registry, parse_ref
from crmkit.models.scoring import score_customers
from crmkit.numbers import as_float
from crmkit.segments.apply import with_segments
from crmkit.segments.summary import summarise, value_concentration
from crmkit.store.core import Store
from crmkit.store.files import atomic_write_bytes

TIER_ORDER: Final = ("platinum", "gold", "silver", "development", "adjust", "one_time")
BLUE, ORANGE, GREY = "#2b6cb0", "#dd6b20", "#718096"


@dataclass
class ReportData:
    """Everything the report shows, computed by the library."""

    as_of: dt.date
    store: str
    features: pl.DataFrame
    tiers: pl.DataFrame
    scores: pl.DataFrame | None = None
    card: dict[str, Any] | None = None
    evaluation: Evaluation | None = None
    notes: list[str] = field(default_factory=list)
    currency: str = ""
    campaign_cost: float | None = None
    lookback_days: int | None = None
    uplift_card: dict[str, Any] | None = None

    def money(self, value: float) -> str:
        """Format an amount with the configured currency, to the unit."""
        sign = "-" if value < 0 else ""
        return f"{sign}{self.currency}{abs(value):,.0f}"


def gather(
    store: Store,
    as_of: dt.date,
    settings: Settings,
    registry: Registry,
    model: ModelRef,
    campaign: str | None = None,
    window_days: int = 60,
) -> ReportData:
    """Compute the report's content.

    A missing model becomes a note; a model that fails its integrity check is an error.

    Raises
    ------
    CrmkitError
        No store, an empty store, or a model file that does not match its card.
    """
    store.require()
    features = with_segments(store_features(store, as_of, settings.features), settings.segments)
    if features.height == 0:
        raise UsageError(f"no customer has a purchase before {as_of}: nothing to report")
    data = ReportData(as_of, str(store.root), features, summarise(features, "value_tier").table)
    data.currency = settings.report.currency
    if registry.versions(model.name):
        scored = score_customers(store, as_of, model, registry, settings.segments)
        data.scores, data.card = scored.frame, scored.card
        data.lookback_days = int(scored.card["lookback_days"])
    else:
        data.notes.append(f"no model {model.name!r} in {registry.root}: churn charts left out")
    uplift_ref = parse_ref(settings.targeting.uplift_model)
    if registry.versions(uplift_ref.name):
        card = registry.card(uplift_ref)
        data.uplift_card = card if card.get("kind") == "uplift" else None
    if campaign:
        data.evaluation = evaluate_campaign(store, campaign, window_days)
        data.campaign_cost = campaign_cost(store, campaign, settings.targeting)
    return data


_MIX_MEANS: Final = ("distinct_products", "distinct_categories", "units_per_order")


def mix_by_tier(features: pl.DataFrame) -> pl.DataFrame | None:
    """Tabulate what each value tier buys: breadth, and spend shares by category and channel.

    Shares are weighted by gross spend: the tier's spend in a category over its spend.
    None when the store has no product, category, channel or quantity columns.
    """
    shares = [c for c in features.columns if c.startswith(("category_share_", "channel_share_"))]
    means = [
        c
        for c in _MIX_MEANS
        if c in features.columns and features[c].null_count() < features.height
    ]
    if not shares and not means:
        return None
    gross = pl.col("gross_spend")
    weighted = [
        ((pl.col(c) * gross).sum() / gross.filter(pl.col(c).is_not_null()).sum()).alias(c)
        for c in shares
    ]
    switch = [c for c in features.columns if c.startswith("channel_switch_")]
    table = features.group_by(pl.col("value_tier").alias("segment")).agg(
        pl.len().alias("customers"),
        *(pl.col(c).mean() for c in means),
        *weighted,
        *(pl.col(c).cast(pl.Float64).mean().alias(f"{c} share") for c in switch if shares),
    )
    order = {t: i for i, t in enumerate(TIER_ORDER)}
    return table.sort(pl.col("segment").replace_strict(order, default=len(order)))


def campaign_cost(store: Store, campaign: str, policy: TargetPolicy) -> float | None:
    """Return the cost of a campaign's treatment groups by ``[targeting.costs]``, or None."""
    rows = read_ledger(store).filter(
        (pl.col("campaign_id") == campaign) & (pl.col("group") == "treatment")
    )
    total = 0.0
    for name, count in rows.group_by(arm().alias("arm")).len().iter_rows():
        cost = policy.costs.get(name, policy.default_cost)
        if cost is None:
            return None
        total += cost * count
    return total


def _svg(fig: Any) -> str:  # noqa: ANN401
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _pyplot() -> Any:  # noqa: ANN401
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 11, "svg.fonttype": "none", "svg.hashsalt": "crmkit"})
    return plt


def _figure(width: float = 7.0, height: float = 4.0) -> tuple[Any, Any]:
    fig, ax = _pyplot().subplots(figsize=(width, height))
    ax.grid(alpha=0.3)
    return fig, ax


def chart_tiers(data: ReportData) -> str:
    """Draw customers and value share per value tier (grouped bars)."""
    import numpy as np

    table = data.tiers
    order = [t for t in TIER_ORDER if t in set(table["segment"])]
    rows = {r["segment"]: r for r in table.to_dicts()}
    x = np.arange(len(order))
    fig, ax = _figure()
    ax.bar(
        x - 0.2,
        [rows[t]["customer_share"] * 100 for t in order],
        0.4,
        label="customers",
        color=BLUE,
    )
    ax.bar(x + 0.2, [rows[t]["value_share"] * 100 for t in order], 0.4, label="value", color=ORANGE)
    ax.set_xticks(x, order)
    ax.set_title("Segment sizes and value shares by value tier")
    ax.set_xlabel("value tier")
    ax.set_ylabel("share (%)")
    ax.legend()
    return _svg(fig)


def chart_pareto(data: ReportData) -> str:
    """Cumulative share of value against share of customers, most valuable first."""
    import numpy as np

    values = np.sort(data.features["net_spend"].clip(lower_bound=0).to_numpy())[::-1]
    total = values.sum() or 1.0
    y = np.concatenate([[0.0], np.cumsum(values) / total]) * 100
    x = np.linspace(0, 100, len(y))
    fig, ax = _figure()
    ax.plot(x, y, color=BLUE, label="customers, most valuable first")
    ax.plot([0, 100], [0, 100], color=GREY, linestyle="--", label="equal shares")
    for share in (5, 20):
        v = value_concentration(data.features["net_spend"], share / 100) * 100
        ax.annotate(
            f"top {share}%: {v:.0f}% of value",
            (share, v),
            textcoords="offset points",
            xytext=(10, -15),
        )
        ax.plot([share], [v], "o", color=ORANGE)
    ax.set_title("Value concentration (Pareto curve)")
    ax.set_xlabel("share of customers (%)")
    ax.set_ylabel("share of net value (%)")
    ax.legend(loc="lower right")
    return _svg(fig)


def chart_risk(data: ReportData) -> str:
    """Histogram of churn probabilities."""
    assert data.scores is not None  # noqa: S101
    fig, ax = _figure()
    ax.hist(data.scores["churn_probability"].to_numpy(), bins=20, range=(0, 1), color=BLUE)
    ax.set_title(f"Churn-risk distribution as of {data.as_of}")
    ax.set_xlabel("churn probability")
    ax.set_ylabel("customers")
    return _svg(fig)


def chart_gain(card: dict[str, Any]) -> str:
    """Cumulative gain and lift per decile of the model's validation."""
    curves = card["validation_curves"]
    shares = [0.0, *curves["shares"]]
    gain = [0.0, *curves["gain"]]
    fig, (left, right) = _pyplot().subplots(1, 2, figsize=(10, 4))
    left.plot(
        [s * 100 for s in shares], [g * 100 for g in gain], marker="o", color=BLUE, label="model"
    )
    left.plot([0, 100], [0, 100], linestyle="--", color=GREY, label="random")
    left.set_title("Cumulative gain (validation)")
    left.set_xlabel("share of customers targeted, highest risk first (%)")
    left.set_ylabel("share of churners reached (%)")
    left.legend()
    left.grid(alpha=0.3)
    lift = curves["lift_by_decile"]  # highest predicted risk first
    right.bar(range(len(lift), 0, -1), lift, color=ORANGE)
    right.axhline(1.0, color=GREY, linestyle="--")
    right.set_title("Lift by risk decile (validation)")
    right.set_xlabel("risk decile (10 = highest predicted risk, as in `score`)")
    right.set_ylabel("churn rate / average churn rate")
    right.grid(alpha=0.3)
    return _svg(fig)


def chart_calibration(card: dict[str, Any]) -> str:
    """Observed churn rate against mean predicted probability per bin."""
    bins = card["validation_curves"]["calibration"]
    fig, ax = _figure(5.5, 5.0)
    ax.plot([0, 1], [0, 1], linestyle="--", color=GREY, label="perfect calibration")
    ax.plot(
        [b["predicted"] for b in bins],
        [b["observed"] for b in bins],
        marker="o",
        color=BLUE,
        label="model",
    )
    ax.set_title("Calibration (validation snapshot)")
    ax.set_xlabel("mean predicted churn probability")
    ax.set_ylabel("observed churn rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend()
    return _svg(fig)


def chart_qini(card: dict[str, Any], arm: str) -> str:
    """Cross-fitted Qini curves of one arm: the model against the baseline rankings."""
    curves = card["arms"][arm]["qini_curves"]
    shares = [s * 100 for s in curves["shares"]]
    fig, ax = _figure()
    colours = {"random": GREY, "churn risk": ORANGE, "value at risk": "#805ad5"}
    chosen = f"{card['arms'][arm]['learner']}-learner"
    for name, values in curves.items():
        if name == "shares":
            continue
        style: dict[str, Any] = {"linewidth": 2.5 if name == chosen else 1.2}
        if name == chosen or name in colours:
            style["color"] = BLUE if name == chosen else colours[name]
        ax.plot(shares, values, label=name + (" (chosen)" if name == chosen else ""), **style)
    ax.set_title(f"Qini curves, treatment {arm} (cross-fitted)")
    ax.set_xlabel("share of customers targeted, highest score first (%)")
    ax.set_ylabel("incremental buyers among the treated")
    ax.legend()
    ax.grid(alpha=0.3)
    return _svg(fig)


def uplift_section(card: dict[str, Any]) -> list[str]:
    """Render the uplift model's Qini curves and cross-fitted metrics per treatment arm."""
    parts = [
        f"<h2>Uplift model {html.escape(card['name'])}:{card['version']}</h2>",
        f"<p>Learned from campaign(s) {html.escape(', '.join(card['campaigns']))} with a "
        f"{card['window_days']}-day window; every ranking is scored on the same rows, each "
        "row by models that never saw its customer.</p>",
    ]
    for name_of_arm, info in sorted(card["arms"].items()):
        rows = [
            {
                "ranking": name,
                "qini": r["qini"]["value"],
                "qini_low": r["qini"]["low"],
                "qini_high": r["qini"]["high"],
                "uplift_top_10%": r["uplift_at_10"]["value"],
                "uplift_top_30%": r["uplift_at_30"]["value"],
            }
            for name, r in info["rankings"].items()
        ]
        if "qini_curves" in info:
            parts.append(
                _figure_html(
                    f"qini {name_of_arm}",
                    chart_qini(card, name_of_arm),
                    f"{info['treated']:,} treated and {info['controls']:,} controls.",
                )
            )
        parts.append(_table(rows, list(rows[0])))
    return parts


def policy_table(ev: Evaluation) -> list[str]:
    """Treatment against control for each targeting policy of the campaign."""
    if not ev.by_policy:
        return []
    keys = ["policy", "treated", "control", "uplift", "uplift_low", "uplift_high", "p_value"]
    rows = [{k: c.get(k) for k in keys} for c in ev.by_policy]
    return [
        "<h3>By targeting policy</h3>",
        "<p>Each policy's part of the list against its own randomised controls.</p>",
        _table(rows, keys),
    ]


def chart_campaign(evaluation: Evaluation) -> str:
    """Retention per group with 95% Wilson intervals, and uplift per treatment."""
    groups = evaluation.groups.to_dicts()
    fig, (left, right) = _pyplot().subplots(1, 2, figsize=(10, 4))
    names, rates, lows, highs = [], [], [], []
    for g in groups:
        lo, hi = wilson(int(g["retained"]), int(g["customers"]))
        names.append(g["group"])
        rates.append(g["retention_rate"] * 100)
        lows.append(max(0.0, g["retention_rate"] - lo) * 100)  # float noise at rate 0 or 1
        highs.append(max(0.0, hi - g["retention_rate"]) * 100)
    left.bar(names, rates, yerr=[lows, highs], capsize=6, color=[BLUE, GREY, ORANGE][: len(names)])
    left.set_title(f"Retention within {evaluation.window_days} days (95% CI)")
    left.set_xlabel("group")
    left.set_ylabel("retained (%)")
    left.grid(alpha=0.3)
    rows = [("all", evaluation.overall)] + [(c["treatment"], c) for c in evaluation.by_treatment]
    rows = [(n, c) for n, c in rows if "uplift" in c]
    for i, (_, c) in enumerate(rows):
        right.errorbar(
            c["uplift"] * 100,
            i,
            xerr=[
                [(c["uplift"] - c["uplift_low"]) * 100],
                [(c["uplift_high"] - c["uplift"]) * 100],
            ],
            fmt="o",
            color=BLUE,
            capsize=6,
        )
    right.axvline(0, color=GREY, linestyle="--")
    right.set_yticks(range(len(rows)), [n for n, _ in rows])
    right.set_title("Uplift, treatment - control (95% CI)")
    right.set_xlabel("retention uplift (percentage points)")
    right.set_ylabel("treatment")
    right.grid(alpha=0.3)
    return _svg(fig)


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


def _figure_html(title: str, svg: str, caption: str) -> str:
    return (
        f"<figure><!-- {html.escape(title)} -->{svg}"
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def cell(v: Any) -> str:  # noqa: ANN401
        if isinstance(v, float):
            return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.0f}"
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def render(data: ReportData) -> str:
    """Render the report as one HTML page."""
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
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>crmkit report {data.as_of}</title><style>{_CSS}</style></head><body>",
        f"<h1>Customer retention report, as of {data.as_of}</h1>",
        f"<p>Store <code>{html.escape(data.store)}</code>; transactions before {data.as_of}.</p>",
        f"<div class='kpis'>{''.join(kpis)}</div>",
        *(f"<p class='note'>{html.escape(n)}</p>" for n in data.notes),
        "<h2>Segments and value</h2>",
        _figure_html(
            "tiers", chart_tiers(data), "Share of customers and of net value per value tier."
        ),
        _table(data.tiers.to_dicts(), list(data.tiers.columns)),
        _figure_html(
            "pareto", chart_pareto(data), "How much of the value the most valuable customers hold."
        ),
    ]
    mix = mix_by_tier(f)
    if mix is not None:
        parts += [
            "<h2>What each tier buys</h2>",
            "<p>Mean distinct products and categories, units per order, and each tier's "
            "share of spend by category and channel (the store's most frequent ones).</p>",
            _table(mix.to_dicts(), list(mix.columns)),
        ]
    if data.scores is not None and data.card is not None:
        card = data.card
        parts += [
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
                "<p>Out of time, on the snapshot of "
                f"{html.escape(card['validation_snapshot'])}.</p>",
                _table(card["validation_metrics"], ["model", "roc_auc", "pr_auc", "brier", "ece"]),
                _figure_html("gain", chart_gain(card), "Gain and lift of the model on validation."),
                _figure_html(
                    "calibration",
                    chart_calibration(card),
                    "Predicted probability against observed churn rate.",
                ),
            ]
    if data.evaluation is not None:
        ev = data.evaluation
        parts += [
            f"<h2>Campaign {html.escape(ev.campaign)}</h2>",
            f"<div class='kpis'>{''.join(campaign_kpis(data, ev))}</div>",
            *(f"<p class='note'>{html.escape(w)}</p>" for w in ev.warnings),
            _figure_html(
                "campaign", chart_campaign(ev), "Treatment against control, 95% intervals."
            ),
            _table(ev.groups.to_dicts(), list(ev.groups.columns)),
            *policy_table(ev),
        ]
    if data.uplift_card is not None:
        parts += uplift_section(data.uplift_card)
    parts.append("</body></html>")
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


__all__ = ["CrmkitError", "ReportData", "gather", "render", "write_report"]
