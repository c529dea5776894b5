from __future__ import annotations

from typing import Annotated, Any

import typer
from crmkit_cli.common import (
    DEFAULT_STORE,
    ConfigOpt,
    ExecutorOpt,
    JsonOpt,
    OutcomesOpt,
    QuietOpt,
    RegistryOpt,
    SchedulerOpt,
    StoreOpt,
    computing,
    emit_json,
    human,
    open_registry,
    outcomes_from,
    progress_bar,
    settings,
    user_errors,
    warn,
)
from crmkit_cli.tables import table

app = typer.Typer(help="Prove targeting policies on past campaigns.", no_args_is_help=True)


@app.command("compare")
def compare_command(
    campaign: Annotated[str, typer.Option("--campaign", metavar="ID", help="Campaign to replay.")],
    budget: Annotated[
        float, typer.Option("--budget", metavar="AMOUNT", help="Contact budget of every policy.")
    ],
    window: Annotated[
        int,
        typer.Option(
            "--window", metavar="DAYS", min=1, max=3650, help="Outcome window after assignment."
        ),
    ] = 60,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            metavar="NAME[:VERSION]",
            help="Uplift model trained on other campaigns (default: cross-fit on this one).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the models and bootstrap.")] = 0,
    outcomes: OutcomesOpt = None,
    executor: ExecutorOpt = None,
    scheduler: SchedulerOpt = None,
    registry: RegistryOpt = None,
    store: StoreOpt = DEFAULT_STORE,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Estimate what each targeting policy would have achieved on a randomised campaign.

    For value at risk, random, treat-all and uplift targeting at the same --budget: the
    incremental customers, revenue and value (revenue less contact cost) against
    contacting nobody, by inverse propensity (IPS) and doubly robust (DR) estimates with
    95% bootstrap intervals, over the campaign's treatment and control customers. Costs
    come from [targeting.costs]. The result is saved in the store for crmkit report.
    Exit 3: no control group, windows not passed, a model trained on the campaign.

    Example: crmkit policy compare --campaign spring --budget 2000 --model uplift
    """
    from crmkit.campaigns.policy_run import compare_campaign, save_comparison
    from crmkit.models.registry import parse_ref
    from crmkit.store.core import Store

    with user_errors():
        cfg = settings(config)
        chosen = None if model is None else (open_registry(cfg, registry), parse_ref(model))
        with (
            computing(cfg, executor, scheduler),
            outcomes_from(outcomes) as (extra, note),
            progress_bar("policy compare", disabled=quiet) as advance,
        ):
            result = compare_campaign(
                Store(store), campaign, window, cfg, budget=budget, model=chosen, extra=extra,
                seed=seed, progress=advance,
            )  # fmt: skip
        path = save_comparison(Store(store), result)
    for text in ([note] if note else []) + result.notes:
        warn(text, quiet=quiet, kind="note")
    if as_json:
        emit_json({**result.to_json(), "path": path})
    if not quiet:
        render_comparison(result.to_json())
        human.print(f"saved to {path}")


def _estimate(e: dict[str, float], money: bool) -> str:
    f = "{:+,.0f}" if money else "{:+,.1f}"
    return f"{f.format(e['value'])} [{f.format(e['low'])}, {f.format(e['high'])}]"


def render_comparison(result: dict[str, Any]) -> None:
    """Print the policies side by side: contacts, cost, DR estimates, and the IPS check."""
    rows = [
        [
            p["policy"],
            f"{p['contacts']:,}",
            f"{p['cost']:,.2f}",
            _estimate(p["incremental_customers"]["dr"], money=False),
            _estimate(p["incremental_value"]["dr"], money=True),
            f"{p['incremental_value']['ips']['value']:+,.0f}",
        ]
        for p in result["policies"]
    ]
    columns = ["policy", "contacts", "cost", "extra buyers (DR)", "value - cost (DR)", "IPS"]
    title = (
        f"Campaign {result['campaign']}: {result['customers']:,} customers, budget "
        f"{result['budget']:,.2f}, {result['window_days']}-day window (95% intervals)"
    )
    human.print(table(title, columns, rows))
    human.print(f"uplift policy: {result['uplift_source']}")
