from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from crmkit_cli.common import (
    DEFAULT_STORE,
    ConfigOpt,
    JsonOpt,
    QueryOpt,
    QuietOpt,
    SinceOpt,
    StoreOpt,
    emit_json,
    err,
    human,
    parse_date,
    progress_bar,
    settings,
    user_errors,
    utc_now,
)
from crmkit_cli.tables import table

if TYPE_CHECKING:
    from crmkit.config.settings import Settings
    from crmkit.features.attributes import AttributeReport
    from crmkit.ingest import IngestReport

app = typer.Typer()


class Kind(enum.StrEnum):
    """What an ingested file holds."""

    transactions = "transactions"
    customers = "customers"


@app.command()
def ingest(
    paths: Annotated[
        list[str],
        typer.Argument(
            help="Files (CSV, TSV, gzip, Parquet), directories or glob patterns; or one "
            "database URI (postgresql://, sqlite:///, duckdb:///) with --query or --table."
        ),
    ],
    column_map: Annotated[
        str | None,
        typer.Option(
            "--map",
            metavar="PAIRS",
            help="Column mapping, canonical=source pairs: customer_id=Client,...",
        ),
    ] = None,
    date_format: Annotated[
        str | None,
        typer.Option("--date-format", metavar="FORMAT", help="strftime format of the date column."),
    ] = None,
    dayfirst: Annotated[
        bool | None,
        typer.Option("--dayfirst/--monthfirst", help="Read 01/02/2024 as 1 Feb (or 2 Jan)."),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail (exit 3, store nothing) on any rejected row.")
    ] = False,
    kind: Annotated[
        Kind, typer.Option("--kind", help="transactions, or a customers attribute table.")
    ] = Kind.transactions,
    known_from: Annotated[
        str | None,
        typer.Option(
            "--known-from",
            metavar="DATE",
            help="customers: the date the values were known (default: now).",
        ),
    ] = None,
    query: QueryOpt = None,
    source_table: Annotated[
        str | None,
        typer.Option("--table", metavar="NAME", help="Database source: the table to read."),
    ] = None,
    since: SinceOpt = None,
    store: StoreOpt = DEFAULT_STORE,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Ingest transactions from CSV/TSV (.gz too) or Parquet files, or a database.

    Rows that cannot be used go to the quarantine with file, line and reason; rows already
    stored are counted as duplicates; a file ingested before is skipped.

    With --kind customers, each file is a table keyed by customer_id whose other columns
    are customer attributes (see [features] attributes); a newer load replaces older
    values from the day after it is known.

    A database source is one URI with --query or --table; with --since-column the store
    keeps the highest value pulled (committed with the rows), and the next pull reads only
    rows at or above it. Write a password as '${VAR}' to read it from the environment.

    Example: crmkit ingest exports/*.csv --map customer_id=ClientRef --dayfirst

    Example: crmkit ingest 'postgresql://crm:${PGPASSWORD}@db/shop' --table orders
    --since-column created_at
    """
    if kind is Kind.customers:
        ingest_customers(paths, column_map, known_from, dayfirst, store, config, as_json, quiet)
        return
    from crmkit.config.loading import ingest_overrides
    from crmkit.io.uri import is_uri

    with user_errors():
        cfg = ingest_overrides(settings(config), column_map, date_format, dayfirst)
        if any(is_uri(p) or "${" in p for p in paths) or query or source_table or since:
            report = ingest_database(paths, query, source_table, since, cfg, store, strict)
        else:
            report = None
    if report is None:
        ingest_paths(paths, cfg, store, strict, as_json, quiet)
        return
    if as_json:
        emit_json(report.to_json())
    if not quiet:
        render_ingest(report, store)


def ingest_database(
    paths: list[str],
    query: str | None,
    source_table: str | None,
    since: str | None,
    cfg: Settings,
    store: Path,
    strict: bool,
) -> IngestReport:
    """Pull one database source (``ingest URI --query/--table``) into the store."""
    from crmkit.errors import UsageError
    from crmkit.ingest.core import ingest_query
    from crmkit.io.sql import query_for
    from crmkit.io.uri import database
    from crmkit.store.core import Store

    if len(paths) != 1:
        raise UsageError("a database source is one URI: ingest files and databases separately")
    source = query_for(database(paths[0], "source"), query, source_table, since)
    return ingest_query(
        source, Store(Path(store)), cfg.ingest, now=utc_now(), strict=strict, store_config=cfg.store
    )


def ingest_paths(
    paths: list[str], cfg: Settings, store: Path, strict: bool, as_json: bool, quiet: bool
) -> None:
    """Ingest files, directories or globs, and print the reconciliation."""
    from crmkit.ingest import ingest_files
    from crmkit.store.core import Store

    with user_errors(), progress_bar("ingest", disabled=quiet) as advance:
        report = ingest_files(
            paths,
            Store(Path(store)),
            cfg.ingest,
            now=utc_now(),
            strict=strict,
            store_config=cfg.store,
            progress=advance,
        )
    if as_json:
        emit_json(report.to_json())
    if not quiet:
        render_ingest(report, store)


def render_ingest(report: IngestReport, store: Path) -> None:
    """Print the per-file reconciliation table, the totals and a quarantine warning."""
    from crmkit.io.uri import is_uri

    def name(source: str) -> str:
        return source if is_uri(source) else Path(source).name

    counts = ("rows_read", "rows_stored", "rows_duplicate", "rows_quarantined")
    rows = [[name(f.source), *(getattr(f, k) for k in counts)] for f in report.files]
    rows.append(["total", *(getattr(report, k) for k in counts)])
    cols = ["file", "read", "stored", "duplicate", "quarantined"]
    human.print(table(f"Ingest into {store}", cols, rows))
    for f in report.files:
        details = [f"{k} {v:,}" for k, v in f.reasons.items()] + list(f.notes)
        if f.status != "ingested":
            details.insert(0, f.status)
        if details:
            human.print(f"{name(f.source)}: {'; '.join(details)}")
    human.print(
        f"rows_read {report.rows_read:,} = stored {report.rows_stored:,} + duplicate "
        f"{report.rows_duplicate:,} + quarantined {report.rows_quarantined:,}"
    )
    if report.rows_quarantined:
        err.print(
            f"[yellow]warning:[/yellow] {report.rows_quarantined:,} row(s) quarantined; "
            f"see `crmkit store quarantine --store {store}`"
        )


def ingest_customers(
    paths: list[str],
    column_map: str | None,
    known_from: str | None,
    dayfirst: bool | None,
    store: Path,
    config: Path | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Load customer attribute files (``ingest --kind customers``) and print what they did."""
    from crmkit.config.loading import split_pairs
    from crmkit.features.attributes import load_attributes
    from crmkit.ingest.sniff import expand_inputs
    from crmkit.store.core import Store

    with user_errors():
        known = parse_date(known_from, "--known-from") if known_from else None
        columns = dict(split_pairs(column_map or "", "--map", "customer_id=column"))
        first = settings(config).ingest.dayfirst if dayfirst is None else dayfirst
        reports = [
            load_attributes(
                Store(Path(store)),
                path,
                now=utc_now(),
                known_from=known,
                id_column=columns.get("customer_id"),
                dayfirst=first,
            )
            for path in expand_inputs(paths)
        ]
    if as_json:
        emit_json([r.to_json() for r in reports])
    if not quiet:
        render_customers(reports, store)


def render_customers(reports: list[AttributeReport], store: Path) -> None:
    """Print the reconciliation table and each file's detected types and rejections."""
    counts = ("rows_read", "rows_stored", "rows_duplicate", "rows_quarantined")
    rows = [[Path(r.source).name, r.status, *(getattr(r, k) for k in counts)] for r in reports]
    cols = ["file", "status", "read", "stored", "duplicate", "quarantined"]
    human.print(table(f"Customer attributes into {store}", cols, rows))
    for r in reports:
        kinds = ", ".join(f"{name} {kind}" for name, kind in r.types.items())
        details = [f"{k} {v:,}" for k, v in r.reasons.items()]
        if kinds:
            human.print(
                f"{Path(r.source).name}: {kinds}" + (f"; {'; '.join(details)}" if details else "")
            )
