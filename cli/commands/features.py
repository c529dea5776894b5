from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from crmkit_cli.common import (
    DEFAULT_STORE,
    AsOfOpt,
    ConfigOpt,
    ExecutorOpt,
    JsonOpt,
    QuietOpt,
    SchedulerOpt,
    StoreOpt,
    computing,
    emit_json,
    human,
    parse_date,
    settings,
    user_errors,
)
from crmkit_cli.tables import table

app = typer.Typer()


@app.command()
def features(
    as_of: AsOfOpt,
    out: Annotated[
        Path, typer.Option("--out", metavar="PATH", help="Output file (.csv or .parquet).")
    ],
    executor: ExecutorOpt = None,
    scheduler: SchedulerOpt = None,
    store: StoreOpt = DEFAULT_STORE,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Write per-customer features as of a date.

    Only transactions before the date are used.

    Recency, frequency, monetary, purchase cycle, trailing 30/90/365-day windows and their
    change, refunds share, discounted historical and projected value, RFM and value tier.

    Example: crmkit features --as-of 2024-07-01 --out features.parquet
    """
    from crmkit.io.export import write_table
    from crmkit.segments.apply import feature_summary, feature_table
    from crmkit.store.core import Store

    with user_errors():
        date = parse_date(as_of, "--as-of")
        cfg = settings(config)
        with computing(cfg, executor, scheduler):
            frame = feature_table(Store(store), date, cfg)
        write_table(frame, out)
        summary = feature_summary(frame, date, out)
    if as_json:
        emit_json(summary)
    if not quiet:
        rows = [[k.replace("_", " "), v] for k, v in summary.items() if k != "out"]
        human.print(table(f"Features as of {date} -> {out}", ["", "value"], rows))
