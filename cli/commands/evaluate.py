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


def _retention_row(label: str, c: dict[str, Any]) -> list[Any]:
    sizes = f"{c.get('treated', 0):,}/{c.get('control', 0):,}"
    if "uplift" not in c:
        return [label, sizes, "", "", "", ""]
    holm = c.get("p_value_holm")
    return [
        label,
        sizes,
        f"{c['retention_treatment'] * 100:.1f}/{c['retention_control'] * 100:.1f}",
        f"{_pp(c['uplift'])} [{_pp(c['uplift_low'])}, {_pp(c['uplift_high'])}]",
        f"{c['p_value']:.2g}",
        "" if holm is None else f"{holm:.2g}",
    ]


def _revenue_row(label: str, c: dict[str, Any]) -> list[Any]:
    if "uplift" not in c:
        return [label, "", ""]
    return [
        label,
        f"{c['incremental_customers']:+,.1f}",
        f"{c['revenue_uplift_per_customer']:+,.2f} "
        f"[{c['revenue_uplift_low']:+,.2f}, {c['revenue_uplift_high']:+,.2f}]",
    ]


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
    detectable uplift at the current group sizes.

    Example: crmkit evaluate --campaign winback --window 60 --json
    """
    from crmkit.campaigns.evaluation import evaluate_campaign, evaluate_with_outcomes
    from crmkit.store.core import Store

    with user_errors():
        settings(config)
        if outcomes is None:
            result = evaluate_campaign(Store(store), campaign, window)
        else:
            result = evaluate_with_outcomes(Store(store), campaign, window, outcomes, utc_now())
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
    subsets = _subsets(summary)
    cols = ["subset", "n t/c", "ret. %", "uplift pp [95% CI]", "p", "p adj"]
    rows = [_retention_row(label, c) for label, c in subsets]
    human.print(
        table("Retention, treatment against control (n, ret. %: treatment/control)", cols, rows)
    )
    cols = ["subset", "extra customers", "revenue uplift / customer [95% CI]"]
    rows = [_revenue_row(label, c) for label, c in subsets]
    human.print(table("Revenue, treatment against control", cols, rows))
    overall = summary["treatment_vs_control"]
    mde = overall.get("minimum_detectable_uplift")
    if mde is not None and mde == mde:  # NaN when undefined
        human.print(
            f"not significant at 5%: with these group sizes only an uplift of "
            f"{mde * 100:.1f} pp or more would be detected (80% power)"
        )
