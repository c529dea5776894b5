from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import typer
from crmkit_cli.common import (
    DEFAULT_STORE,
    AsOfOpt,
    ConfigOpt,
    JsonOpt,
    QuietOpt,
    StoreOpt,
    emit_json,
    human,
    parse_date,
    settings,
    user_errors,
)
from crmkit_cli.tables import table

if TYPE_CHECKING:
    from crmkit.campaigns.planning import Plan

app = typer.Typer()


@app.command()
def plan(
    as_of: AsOfOpt,
    campaign_size: Annotated[
        int,
        typer.Option(
            "--campaign-size", metavar="N", min=4, help="Customers in the campaign, all groups."
        ),
    ],
    effect: Annotated[
        float | None,
        typer.Option(
            "--effect",
            metavar="PP",
            help="Effect to detect: retention points (2 = +2 pp), or revenue per customer.",
        ),
    ] = None,
    metric: Annotated[
        Literal["retention", "revenue"], typer.Option("--metric", help="Outcome to power for.")
    ] = "retention",
    power: Annotated[
        float, typer.Option("--power", min=0.5, max=0.999, help="Chance to detect the effect.")
    ] = 0.8,
    control_fraction: Annotated[
        float | None,
        typer.Option(
            "--control-fraction",
            metavar="F",
            min=0.001,
            max=0.999,
            help="Without --effect: the split whose minimum detectable effect to give.",
        ),
    ] = None,
    window: Annotated[
        int, typer.Option("--window", metavar="DAYS", min=1, max=3650, help="Outcome window.")
    ] = 60,
    store: StoreOpt = DEFAULT_STORE,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Plan a campaign: the control group it needs, with and without the adjustment.

    The baseline is the store's own: customers eligible WINDOW days before --as-of (a
    purchase within [model] lookback_days) and what they did in the WINDOW days after.
    With --effect: the smallest control fraction of --campaign-size that detects it with
    --power at 5% (two-sided), for the plain estimate and for the one adjusted by earlier
    purchases. Without: the minimum detectable effect at --control-fraction (default 0.5).

    Example: crmkit plan --as-of 2011-09-01 --campaign-size 2000 --effect 5
    """
    from crmkit.campaigns.planning import plan_campaign, store_baseline
    from crmkit.store.core import Store

    with user_errors():
        cfg = settings(config)
        date = parse_date(as_of, "--as-of")
        baseline = store_baseline(Store(store), date, window, cfg.model.lookback_days)
        scale = 100 if metric == "retention" else 1
        absolute = None if effect is None else effect / scale
        result = plan_campaign(
            baseline, campaign_size, metric=metric, effect=absolute,
            control_share=control_fraction, target=power,
        )  # fmt: skip
    if as_json:
        emit_json(result.to_json())
    if not quiet:
        render_plan(result)


def render_plan(result: Plan) -> None:
    """Print the baseline and, per estimate, the split or the detectable effect."""
    b = result.baseline
    mean = (
        f"{b.mean['retention'] * 100:.1f}% retained"
        if result.metric == "retention"
        else f"{b.mean['revenue']:,.2f} revenue per customer"
    )
    human.print(
        f"Baseline: {b.customers:,} eligible customers on {b.base}, {mean} within "
        f"{b.window_days} days (sd {b.sd[result.metric]:,.3g})"
    )
    if result.effect is None:
        cols = ["estimate", "variance removed", "control", "minimum detectable effect"]
        title = f"{result.metric}: effect detected with {result.power:.0%} power"
    else:
        cols = ["estimate", "variance removed", "control (fraction)", "treatment"]
        title = (
            f"{result.metric} {_amount(result, result.effect)}: control needed for "
            f"{result.power:.0%} power"
        )
    human.print(table(f"Plan of {result.size:,} customers, {title}", cols, _plan_rows(result)))


def _amount(result: Plan, value: float) -> str:
    """Write an effect in points of retention, or in money."""
    return f"{value * 100:.2f} pp" if result.metric == "retention" else f"{value:,.2f}"


def _plan_rows(result: Plan) -> list[list[str]]:
    """One row per estimate: the variance removed and the split, or the detectable effect."""
    rows = []
    for kind, e in result.estimates.items():
        explained = result.baseline.explained[result.metric]
        removed = f"{explained * 100:.0f}%" if kind == "adjusted" else "0%"
        if "minimum_detectable_effect" in e:
            mde = _amount(result, e["minimum_detectable_effect"])
            rows.append([kind, removed, f"{e['control']:,}", mde])
        elif e["control_fraction"] is None:
            need = e["balanced_size"]
            rows.append([kind, removed, "too few customers", f"50/50 needs {need:,} in all"])
        else:
            share = f"{e['control_fraction'] * 100:.1f}%"
            rows.append([kind, removed, f"{e['control']:,} ({share})", f"{e['treatment']:,}"])
    return rows
