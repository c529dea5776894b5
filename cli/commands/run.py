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
    QuietOpt,
    RegistryOpt,
    SchedulerOpt,
    StoreOpt,
    computing,
    emit_json,
    err,
    parse_date,
    registry_path,
    settings,
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
    executor: ExecutorOpt = None,
    scheduler: SchedulerOpt = None,
    registry: RegistryOpt = None,
    store: StoreOpt = DEFAULT_STORE,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run the daily job: ingest, score and write the list.

    Ingests the inbox, scores with the latest model and writes the day's list.

    One lock covers the whole run (a concurrent run exits 4 at once); every step is
    logged as a JSON line in STORE/logs/run.jsonl; re-running a day is safe.

    Example: crmkit run --date 2025-01-01 --campaign winback --inbox inbox --out lists
    """
    from crmkit.config import overlay
    from crmkit.daily import RunOptions, run_daily
    from crmkit.store import Store

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
        )
        with computing(cfg, executor, scheduler):
            result = run_daily(Store(store), options, cfg, utc_now)
    summary = result.summary()
    if as_json:
        emit_json(summary)
    render_targets(summary, quiet=quiet)
    if not quiet:
        err.print(
            f"run {summary['date']}: {len(result.ingested_files)} file(s) ingested, "
            f"{result.scored:,} customers scored with {result.model}"
        )
