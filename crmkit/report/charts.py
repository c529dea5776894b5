"""The report's charts, drawn with matplotlib and embedded as inline SVG."""

from __future__ import annotations

import html
import io
from collections.abc import Mapping
from typing import Any, Final

from crmkit.campaigns.evaluation import Evaluation
from crmkit.campaigns.stats import wilson
from crmkit.report.gather import TIER_ORDER, ReportData
from crmkit.segments.summary import value_concentration

#: The report's colours: the main series, a second one, and context.
BLUE, ORANGE, GREY = "#2b6cb0", "#dd6b20", "#718096"


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


def chart_gain(card: Mapping[str, Any]) -> str:
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


def chart_calibration(card: Mapping[str, Any]) -> str:
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


def chart_qini(card: Mapping[str, Any], arm: str) -> str:
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


def uplift_section(card: Mapping[str, Any]) -> list[str]:
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


#: The report's label of each interval.
INTERVALS: Final = {
    "plain": "plain (95% CI, valid at one look)",
    "adjusted": "adjusted by earlier purchases (95% CI)",
    "sequential": "always valid (95% confidence sequence, any number of looks)",
}


def estimates_table(ev: Evaluation) -> list[str]:
    """Every interval of the overall comparison, each labelled, with the variance removed."""
    c = ev.overall
    if "uplift" not in c:
        return []
    found = [("plain", c)] + [
        (k, c[k]) for k in ("adjusted", "sequential") if "uplift" in c.get(k, {})
    ]

    def band(e: dict[str, Any], prefix: str, key: str, scale: float, digits: int) -> str:
        low, high = e[f"{prefix}_low"] * scale, e[f"{prefix}_high"] * scale
        return f"{e[key] * scale:+,.{digits}f} [{low:+,.{digits}f}, {high:+,.{digits}f}]"

    rows = [
        {
            "interval": INTERVALS[kind],
            "retention uplift, pp": band(e, "uplift", "uplift", 100, 1),
            "revenue uplift per customer": band(
                e, "revenue_uplift", "revenue_uplift_per_customer", 1, 2
            ),
            "variance removed (retention / revenue)": (
                "{retention:.0%} / {revenue:.0%}".format(**e["variance_reduction"])
                if "variance_reduction" in e and kind != "plain"
                else ""
            ),
        }
        for kind, e in found
    ]
    return ["<h3>Estimates</h3>", _table(rows, list(rows[0]))]


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
