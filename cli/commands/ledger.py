from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from crmkit_cli.commands.targets import CampaignOpt
from crmkit_cli.common import (
    DEFAULT_STORE,
    ConfigOpt,
    JsonOpt,
    QuietOpt,
    StoreOpt,
    emit_json,
    human,
    settings,
    user_errors,
)

app = typer.Typer(help="Import experiments run elsewhere into the ledger.", no_args_is_help=True)


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(help="Assignment file (CSV/TSV).", dir_okay=False)],
    campaign: CampaignOpt,
    column_map: Annotated[
        str | None,
        typer.Option(
            "--map", metavar="PAIRS", help="Columns: customer_id=NAME,as_of=NAME,group=NAME,..."
        ),
    ] = None,
    dayfirst: Annotated[
        bool | None,
        typer.Option("--dayfirst/--monthfirst", help="Read 01/02/2024 as 1 Feb (or 2 Jan)."),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace the campaign's rows in the ledger.")
    ] = False,
    store: StoreOpt = DEFAULT_STORE,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Import a past campaign's assignments into the ledger.

    Columns customer_id, as_of and group (treatment or control), optionally treatment (the
    arm's name). Any invalid row (unknown group, a customer twice on one date or in both
    groups, an id the store does not know, an unreadable date) exits 3 and imports nothing,
    as does a campaign already in the ledger with other rows (without --replace) or one
    that `crmkit targets` recorded. The same file again changes nothing ("unchanged").
    `crmkit evaluate` then measures the campaign.

    Example: crmkit ledger import spring_2024.csv --campaign spring-2024
    """
    from crmkit.campaigns.ledger_import import import_assignments
    from crmkit.config.loading import split_pairs
    from crmkit.store.core import Store

    with user_errors():
        columns = dict(split_pairs(column_map or "", "--map", "name=column"))
        if dayfirst is None:
            dayfirst = settings(config).ingest.dayfirst
        report = import_assignments(
            Store(store), path, campaign, columns=columns, replace=replace, dayfirst=dayfirst
        )
    if as_json:
        emit_json(report.summary())
    if not quiet:
        arms = ", ".join(f"{k} {v:,}" for k, v in report.treatments.items())
        human.print(
            ("unchanged: " if report.status == "unchanged" else "")
            + f"campaign {report.campaign}: {report.rows:,} assignments from {report.dates[0]} to "
            f"{report.dates[1]}; treatment {report.groups['treatment']:,} ({arms}), control "
            f"{report.groups['control']:,}"
            + (f"; {report.replaced:,} earlier rows replaced" if report.replaced else "")
        )
