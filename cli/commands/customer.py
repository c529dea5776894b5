from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from crmkit_cli.common import (
    DEFAULT_STORE,
    ConfigOpt,
    JsonOpt,
    QuietOpt,
    RegistryOpt,
    StoreOpt,
    emit_json,
    err,
    human,
    open_registry,
    parse_date,
    settings,
    user_errors,
)
from crmkit_cli.tables import fmt, table

if TYPE_CHECKING:
    from crmkit.report.customer import CustomerView

app = typer.Typer()


@app.command()
def customer(
    customer_id: Annotated[str, typer.Argument(help="The customer's id, as stored.")],
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            metavar="DATE",
            help="As-of date YYYY-MM-DD (default: the day after the last transaction).",
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", metavar="NAME[:VERSION]", help="Churn model.")
    ] = None,
    registry: RegistryOpt = None,
    store: StoreOpt = DEFAULT_STORE,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Show one customer: history, segment, churn risk and why, campaigns.

    The segment and tier are those every command gives the customer on that date; the
    churn probability comes from the model (when there is one and it scores the
    customer); the reasons are the model's own (its drivers' exact Shapley shares, in
    words with the customer's values: "spend in the last 90 days fell from 420.00 to
    35.00"), or plain rules without a model; campaigns are the customer's rows in the
    ledger, with the planned treatment and what was sent (nothing to a control).

    Example: crmkit customer 12346 --as-of 2011-12-10
    """
    from crmkit.models.registry import parse_ref
    from crmkit.report.customer import customer_view, default_as_of
    from crmkit.store.core import Store

    with user_errors():
        cfg = settings(config)
        st = Store(store)
        date = parse_date(as_of, "--as-of") if as_of else default_as_of(st)
        ref = parse_ref(model or cfg.model.name)
        view = customer_view(st, customer_id, date, cfg, open_registry(cfg, registry), ref)
    if as_json:
        emit_json(view.summary())
    if not quiet:
        render_customer(view)


def render_customer(view: CustomerView) -> None:
    """Print the headline, the main features, the reasons and the campaign history."""
    from crmkit.report.customer import SHOWN

    f = view.features
    risk = "no churn probability" if view.churn_probability is None else (
        f"churn probability {view.churn_probability:.0%} ({view.model})"
    )  # fmt: skip
    human.print(f"customer {view.customer_id} as of {view.as_of}: {risk}")
    rows: list[list[Any]] = [[name.replace("_", " "), fmt(f.get(name))] for name in SHOWN]
    err.print(table("Features", ["", "value"], rows))
    for reason in view.reasons or ["no churn model, and no rule fired"]:
        human.print(f"- {reason}")
    for note in view.notes:
        err.print(f"note: {note}")
    if view.campaigns:
        keys = ["campaign_id", "as_of", "group", "planned_treatment", "sent"]
        human.print(table("Campaigns", keys, [[c[k] for k in keys] for c in view.campaigns]))
    else:
        human.print("no campaign has listed this customer")
