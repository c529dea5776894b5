from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from crmkit_cli.commands.targets import (
    CampaignOpt,
    DryRunOpt,
    Format,
    FormatOpt,
    OutDirOpt,
    PolicyOpt,
    ReplaceOpt,
    render_targets,
)
from crmkit_cli.common import (
    DEFAULT_STORE,
    ConfigOpt,
    ExecutorOpt,
    JsonOpt,
    QueryOpt,
    QuietOpt,
    RegistryOpt,
    SchedulerOpt,
    SinceOpt,
    StoreOpt,
    ToOpt,
    ToTableOpt,
    computing,
    destination,
    emit_json,
    human,
    parse_date,
    progress_bar,
    registry_path,
    settings,
    source_query,
    user_errors,
    utc_now,
)

app = typer.Typer()


@app.command()
def run(
    date: Annotated[
        str, typer.Option("--date", metavar="DATE", help="The day of the run (YYYY-MM-DD).")
    ],
    campaign: CampaignOpt,
    inbox: Annotated[
        Path | None,
        typer.Option("--inbox", metavar="DIR", help="Directory of new export files to ingest."),
    ] = None,
    out: OutDirOpt = Path("out"),
    model: Annotated[
        str | None, typer.Option("--model", metavar="NAME[:VERSION]", help="NAME or NAME:VERSION.")
    ] = None,
    policy: PolicyOpt = None,
    fmt: FormatOpt = Format.csv,
    replace: ReplaceOpt = False,
    dry_run: DryRunOpt = False,
    source: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="URI",
            help="Database to pull new transactions from ([source] uri), with --query or "
            "--from-table.",
        ),
    ] = None,
    query: QueryOpt = None,
    source_table: Annotated[
        str | None, typer.Option("--from-table", metavar="NAME", help="Table of --from.")
    ] = None,
    since: SinceOpt = None,
    to: ToOpt = None,
    to_table: ToTableOpt = None,
    executor: ExecutorOpt = None,
    scheduler: SchedulerOpt = None,
    registry: RegistryOpt = None,
    store: StoreOpt = DEFAULT_STORE,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run the daily job: ingest, score and write the list.

    Ingests the inbox and pulls the database source (--from or [source]), scores with the
    latest model and writes the day's list (and into a table with --to).

    One lock covers the whole run (a concurrent run exits 4 at once); every step is
    logged as a JSON line in STORE/logs/run.jsonl; re-running a day is safe.

    Example: crmkit run --date 2025-01-01 --campaign winback --inbox inbox --out lists
    """
    from crmkit.campaigns.daily import RunOptions, run_daily
    from crmkit.config.loading import overlay
    from crmkit.store.core import Store

    with user_errors():
        cfg = overlay(settings(config), "targeting", policy=policy.value if policy else None)
        options = RunOptions(
            date=parse_date(date, "--date"),
            campaign=campaign,
            inbox=inbox,
            out_dir=out,
            registry=registry_path(cfg, registry),
            model=model,
            fmt=fmt.value,
            replace=replace,
            dry_run=dry_run,
            pull=source_query(cfg, source, query, source_table, since),
            destination=destination(cfg, to, to_table),
        )
        with computing(cfg, executor, scheduler), progress_bar("run", disabled=quiet) as step:
            result = run_daily(Store(store), options, cfg, utc_now, step)
    summary = result.summary()
    if as_json:
        emit_json(summary)
    render_targets(summary, quiet=quiet)
    if not quiet:
        human.print(
            f"run {summary['date']}: {len(result.ingested_files)} file(s) ingested, "
            f"{result.scored:,} customers scored with {result.model}"
        )
