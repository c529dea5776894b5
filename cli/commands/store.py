from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
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
from crmkit_cli.tables import table

app = typer.Typer(help="Create or inspect the store.", no_args_is_help=True)


@app.command("init")
def init(
    adopt: Annotated[
        bool,
        typer.Option(
            "--adopt", help="Rebuild the lost manifest of a store from its own part files."
        ),
    ] = False,
    buckets: Annotated[
        int,
        typer.Option(
            "--buckets", metavar="N", min=1, max=4096, help="Customer buckets of the store."
        ),
    ] = 16,
    store: StoreOpt = DEFAULT_STORE,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Create an empty store, or adopt one that lost its manifest.

    crmkit never writes into a non-empty directory without a manifest.json; --adopt takes
    every part file named as the store names them as committed and leaves anything else.

    Example: crmkit store init --adopt --store crm-store
    """
    from crmkit.store.core import Store
    from crmkit.store.recovery import init_store

    with user_errors():
        result = init_store(Store(Path(store)), buckets=buckets, adopt=adopt)
    if as_json:
        emit_json(result.summary())
    if not quiet:
        parts = ", ".join(
            f"{k} {v:,} part(s), {result.rows[k]:,} rows" for k, v in result.parts.items()
        )
        human.print(f"store {result.path}: {result.status} ({parts})")


@app.command("info")
def info(
    store: StoreOpt = DEFAULT_STORE,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Summarise the store: rows, customers, dates, quarantine.

    Example: crmkit store info --store crm-store --json
    """
    from crmkit.store.core import Store
    from crmkit.store.info import store_info

    with user_errors():
        settings(config)  # checked like every command's, though a summary needs none
        summary = store_info(Store(Path(store)))
    if as_json:
        emit_json(summary.to_json())
    if quiet:
        return
    rows = [
        ["transactions", summary.rows],
        ["customers", summary.customers],
        ["first transaction", summary.first_ts or "-"],
        ["last transaction", summary.last_ts or "-"],
        ["files ingested", summary.files_ingested],
        ["rows quarantined", summary.rows_quarantined],
        *[[f"  {k}", v] for k, v in summary.quarantine_reasons.items()],
        ["buckets / parts", f"{summary.buckets} / {summary.parts}"],
    ]
    for source in summary.sources:
        mark = source.get("high_water") or {}
        rows.append(["source", source.get("source", "?")])
        rows.append(
            [
                f"  {source.get('since_column')} at",
                f"{mark.get('value')} ({source.get('pulled_at')})",
            ]
        )
    human.print(table(f"Store {summary.path}", ["", "value"], rows))


@app.command("quarantine")
def quarantine(
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="PATH", help="Write every quarantined row (.csv/.parquet)."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", metavar="N", min=0, max=10**9, help="Rows to show.")
    ] = 20,
    store: StoreOpt = DEFAULT_STORE,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Show or export quarantined rows with file, line and reason.

    Example: crmkit store quarantine --out rejected.csv
    """
    from crmkit.io.export import write_table
    from crmkit.store.core import Store

    with user_errors():
        settings(config)
        st = Store(Path(store))
        st.require()
        rows = st.quarantine()
        if out is not None:
            write_table(rows, out)
    if quiet:
        return
    if out is not None:
        human.print(f"{rows.height:,} quarantined row(s) written to {out}")
        return
    shown = rows.sort("source_file", "line").head(limit)
    human.print(
        table(
            f"Quarantine ({rows.height:,} rows)",
            ["file", "line", "reason", "raw"],
            [
                [r["source_file"], r["line"], r["reason"], r["raw"]]
                for r in shown.iter_rows(named=True)
            ],
        )
    )
