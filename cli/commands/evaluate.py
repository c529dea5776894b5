from __future__ import annotations

from typing import Annotated, Any

import typer
from crmkit_cli.common import (
    DEFAULT_STORE,
    ConfigOpt,
    JsonOpt,
    OutcomesOpt,
    QuietOpt,
    StoreOpt,
    emit_json,
    human,
    settings,
    user_errors,
    utc_now,
    warn,
)
from crmkit_cli.tables import table

app = typer.Typer()


def _pp(value: float) -> str:
    return f"{value * 100:+.1f}"


def _band(c: dict[str, Any] | None, key: str, low: str, high: str, money: bool) -> str:
    """``+1.2 [+0.3, +2.1]``: pp for retention, currency for revenue; blank without it."""
    if not c or key not in c:
        return ""
    if money:
        return f"{c[key]:+,.2f} [{c[low]:+,.2f}, {c[high]:+,.2f}]"
    return f"{_pp(c[key])} [{_pp(c[low])}, {_pp(c[high])}]"


def _extra(c: dict[str, Any], kinds: list[str], money: bool) -> list[str]:
    keys = (
        ("revenue_uplift_per_customer", "revenue_uplift_low", "revenue_uplift_high")
        if money
        else ("uplift", "uplift_low", "uplift_high")
    )
    return [_band(c.get(kind), *keys, money) for kind in kinds]


def _retention_row(label: str, c: dict[str, Any], kinds: list[str]) -> list[Any]:
    sizes = f"{c.get('treated', 0):,}/{c.get('control', 0):,}"
    if "uplift" not in c:
        return [label, sizes, "", "", "", "", *("" for _ in kinds)]
    holm = c.get("p_value_holm")
    return [
        label,
        sizes,
        f"{c['retention_treatment'] * 100:.1f}/{c['retention_control'] * 100:.1f}",
        _band(c, "uplift", "uplift_low", "uplift_high", money=False),
        f"{c['p_value']:.2g}",
        "" if holm is None else f"{holm:.2g}",
        *_extra(c, kinds, money=False),
    ]


def _revenue_row(label: str, c: dict[str, Any], kinds: list[str]) -> list[Any]:
    if "uplift" not in c:
        return [label, "", "", *("" for _ in kinds)]
    return [
        label,
        f"{c['incremental_customers']:+,.1f}",
        _band(c, "revenue_uplift_per_customer", "revenue_uplift_low", "revenue_uplift_high", True),
        *_extra(c, kinds, money=True),
    ]


#: Column heads of the added estimates.
_HEADS = {"adjusted": "adjusted [95% CI]", "sequential": "always valid [95% CS]"}


def _subsets(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    short = {"segment": "seg", "value_tier": "tier"}
    return [
        ("all", summary["treatment_vs_control"]),
        *((f"treat {c['treatment']}", c) for c in summary["by_treatment"]),
        *((f"{short.get(c['by'], c['by'])} {c['segment']}", c) for c in summary["by_segment"]),
        *((f"policy {c['policy']}", c) for c in summary.get("by_policy", [])),
    ]


@app.command()
def evaluate(
    campaign: Annotated[str, typer.Option("--campaign", metavar="ID", help="Campaign id.")],
    window: Annotated[
        int,
        typer.Option(
            "--window", metavar="DAYS", min=1, max=3650, help="Days after assignment that count."
        ),
    ] = 60,
    outcomes: OutcomesOpt = None,
    sequential: Annotated[
        bool | None,
        typer.Option(
            "--sequential/--fixed-horizon",
            help="Add always-valid intervals, for a campaign looked at every day "
            "(default: [evaluate] sequential).",
        ),
    ] = None,
    adjust: Annotated[
        bool | None,
        typer.Option(
            "--adjust/--no-adjust",
            help="Add estimates adjusted by each customer's earlier purchases "
            "(default: [evaluate] adjust, on).",
        ),
    ] = None,
    store: StoreOpt = DEFAULT_STORE,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Evaluate a campaign: treatment against control, with 95% CIs.

    Retention and revenue of the treatment group against the control group.

    Outcome of each assignment: a purchase within WINDOW days after its date, and the
    revenue in that window. Differences use Newcombe/Wilson intervals (retention) and
    Welch intervals (revenue); a result that is not significant shows the minimum
    detectable uplift at the current group sizes. Beside them: the same differences
    adjusted by each customer's purchases before the assignment (CUPED: narrower
    intervals), and with --sequential intervals that stay valid however often you look.

    Example: crmkit evaluate --campaign winback --window 60 --sequential --json
    """
    from crmkit.campaigns.estimates import analysis_of
    from crmkit.campaigns.evaluation import evaluate_campaign, evaluate_with_outcomes
    from crmkit.store.core import Store

    with user_errors():
        analysis = analysis_of(settings(config).evaluate, adjust, sequential)
        if outcomes is None:
            result = evaluate_campaign(Store(store), campaign, window, analysis=analysis)
        else:
            result = evaluate_with_outcomes(
                Store(store), campaign, window, outcomes, utc_now(), analysis
            )
    summary = result.to_json()
    if as_json:
        emit_json(summary)
    for warning in result.warnings:
        warn(warning, quiet=quiet)
    if not quiet:
        render_evaluation(summary, campaign, window)


def render_evaluation(summary: dict[str, Any], campaign: str, window: int) -> None:
    """Print outcomes per group and treatment against control overall and per subset."""
    if summary["status"] == "pending":
        sizes = ", ".join(f"{g['group']} {g['customers']:,}" for g in summary["groups"])
        human.print(f"Campaign {campaign}: {summary['treatment_vs_control']['note']}")
        human.print(f"groups: {sizes}")
        return
    keys = ("group", "customers", "retained", "retention_rate", "revenue_per_customer")
    human.print(
        table(
            f"Campaign {campaign}: outcomes within {window} days",
            ["group", "customers", "retained", "retention", "revenue / customer"],
            [[g[k] for k in keys] for g in summary["groups"]],
        )
    )
    render_comparisons(summary)
    overall = summary["treatment_vs_control"]
    human.print(estimates_note(overall))
    mde = overall.get("minimum_detectable_uplift")
    if mde is not None and mde == mde:  # NaN when undefined
        human.print(
            f"not significant at 5%: with these group sizes only an uplift of "
            f"{mde * 100:.1f} pp or more would be detected (80% power)"
        )


def render_comparisons(summary: dict[str, Any]) -> None:
    """Print retention and revenue, treatment against control, with the added estimates."""
    subsets = _subsets(summary)
    kinds = [k for k in ("adjusted", "sequential") if summary["estimates"][k]]
    heads = [_HEADS[k] for k in kinds]
    cols = ["subset", "n t/c", "ret. %", "uplift pp [95% CI]", "p", "p adj", *heads]
    rows = [_retention_row(label, c, kinds) for label, c in subsets]
    human.print(
        table("Retention, treatment against control (n, ret. %: treatment/control)", cols, rows)
    )
    cols = ["subset", "extra customers", "revenue uplift / customer [95% CI]", *heads]
    rows = [_revenue_row(label, c, kinds) for label, c in subsets]
    human.print(table("Revenue, treatment against control", cols, rows))


def estimates_note(overall: dict[str, Any]) -> str:
    """Say what the adjusted and always-valid columns are, with the variance removed."""
    notes = ["plain: Newcombe (retention) and Welch (revenue) 95% intervals, for one look"]
    adjusted = overall.get("adjusted", {})
    if "variance_reduction" in adjusted:
        vr = adjusted["variance_reduction"]
        notes.append(
            f"adjusted: by each customer's purchases before the assignment, "
            f"{vr['retention'] * 100:.0f}% of the variance of retention and "
            f"{vr['revenue'] * 100:.0f}% of revenue removed"
        )
    elif "note" in adjusted:
        notes.append(f"adjusted: {adjusted['note']}")
    if "sequential" in overall:
        notes.append(
            "always valid: a confidence sequence around the "
            f"{overall['sequential']['basis']} estimate, valid however often it is looked at"
        )
    return "\n".join(notes)
