from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from crmkit_cli.common import (
    DEFAULT_STORE,
    AsOfOpt,
    ConfigOpt,
    OutcomesOpt,
    QuietOpt,
    RegistryOpt,
    StoreOpt,
    human,
    open_registry,
    outcomes_from,
    parse_date,
    progress_bar,
    settings,
    user_errors,
    warn,
)

app = typer.Typer()


@app.command()
def report(
    as_of: AsOfOpt,
    out: Annotated[Path, typer.Option("--out", metavar="PATH", help="Report file (.html).")],
    campaign: Annotated[
        str | None, typer.Option("--campaign", metavar="ID", help="Add this campaign's evaluation.")
    ] = None,
    window: Annotated[
        int,
        typer.Option("--window", metavar="DAYS", min=1, max=3650, help="Campaign outcome days."),
    ] = 60,
    model: Annotated[
        str | None, typer.Option("--model", metavar="NAME[:VERSION]", help="NAME or NAME:VERSION.")
    ] = None,
    outcomes: OutcomesOpt = None,
    registry: RegistryOpt = None,
    store: StoreOpt = DEFAULT_STORE,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Write an HTML report: segments, value, risk, campaign.

    The page is self-contained and opens offline.

    Charts: segment sizes and value shares, the value concentration (Pareto) curve, the
    churn-risk distribution, the model's gain/lift and calibration from its validation,
    and with --campaign, treatment against control with 95% intervals (--outcomes counts
    a file's purchases as outcomes without ingesting it) and the policies of the
    campaign's last `crmkit policy compare`.

    Example: crmkit report --as-of 2025-01-01 --campaign winback --out report.html
    """
    from crmkit.models.registry import parse_ref
    from crmkit.report.gather import gather
    from crmkit.report.page import write_report
    from crmkit.store.core import Store

    with (
        user_errors(),
        outcomes_from(outcomes) as (extra, note),
        progress_bar("report", disabled=quiet) as advance,
    ):
        cfg = settings(config)
        date, ref = parse_date(as_of, "--as-of"), parse_ref(model or cfg.model.name)
        data = gather(
            Store(store), date, cfg, open_registry(cfg, registry), ref, campaign, window, extra,
            progress=advance,
        )  # fmt: skip
        if note:
            data.notes.insert(0, note)
        path = write_report(out, data)
    for text in data.notes:
        warn(text, quiet=quiet, kind="note")
    if not quiet:
        human.print(f"report written to {path}")
