"""Ingest of typed sources: Parquet files and database queries, staged first.

A Parquet file or a query's result is written into the write's staging area
(:mod:`crmkit.ingest.tables`): the timestamp and float or integer amounts as they are,
every other column as text. It then goes through the same mapping, parsing, validation,
quarantine and de-duplication as a CSV file (:func:`crmkit.ingest.split.process`). A
quarantined row's ``line`` is its row number in the file or in the query's result.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import polars as pl

from crmkit import schema
from crmkit.config.settings import IngestConfig
from crmkit.ingest import sniff
from crmkit.ingest.plan import ROW, SAMPLE_ROWS, detect_plan
from crmkit.ingest.report import FileReport
from crmkit.ingest.split import Staged, process
from crmkit.ingest.tables import (
    as_text,
    keeps_type,
    parquet_schema,
    stage_batches,
    stage_parquet,
)
from crmkit.io.sql import (
    Connection,
    Query,
    bounded_sql,
    connect,
    encode_mark,
    null_marks,
    record_batches,
    upper_mark,
)
from crmkit.store.writer import StoreWriter

PARQUET_SUFFIX: Final = ".parquet"


def kept_types(cfg: IngestConfig, label: str, types: dict[str, pl.DataType]) -> dict[str, str]:
    """Return the source columns taken as they are (:func:`keeps_type`), with their canonical."""
    mapping = sniff.resolve_columns(list(types), cfg.columns, Path(label))
    return {raw: c for c, raw in mapping.items() if keeps_type(c, types[raw])}


def typed_config(cfg: IngestConfig, label: str, types: dict[str, pl.DataType]) -> IngestConfig:
    """Return the parsing rules for a typed source.

    A numeric column was written as text with a decimal point and a timestamp column in ISO
    form, whatever ``[ingest] decimal`` and ``date_format`` say about the CSV exports.
    """
    mapping = sniff.resolve_columns(list(types), cfg.columns, Path(label))
    numeric = [types[mapping[c]] for c in schema.NUMERIC_COLUMNS if c in mapping]
    changes: dict[str, Any] = {}
    if numeric and all(t.is_numeric() for t in numeric):
        changes["decimal"] = "."
    if schema.TS in mapping and keeps_type(schema.TS, types[mapping[schema.TS]]):
        changes["date_format"] = None
    return dataclasses.replace(cfg, **changes) if changes else cfg


def ingest_staged(
    label: str,
    files: Sequence[str],
    header: list[str],
    cfg: IngestConfig,
    writer: StoreWriter,
    now: dt.datetime,
    stage: Path,
    kept: dict[str, str],
) -> tuple[FileReport, dict[str, str]]:
    """Ingest staged rows; return the report (without a hash) and the column mapping.

    ``kept`` names the staged columns that are typed (source column -> canonical).
    """
    if files:
        rows = pl.scan_parquet(list(files)).with_row_index(ROW)
        sample = as_text(pl.scan_parquet(list(files)).head(SAMPLE_ROWS), label).collect()
    else:
        rows = pl.LazyFrame(schema=dict.fromkeys(header, pl.String)).with_row_index(ROW)
        sample = pl.DataFrame(schema=dict.fromkeys(header, pl.String))
        kept = {}
    plan, detection = detect_plan(Path(label), sample, cfg, ",")
    plan = dataclasses.replace(plan, typed=frozenset(kept.values()))
    outcome = process(Staged(label, rows, header, 1), plan, detection, writer, cfg, now, stage)
    report = outcome.report(
        source=label,
        sha256="",
        columns=dict(plan.mapping),
        decimal=plan.decimal,
        date_formats=tuple(f.fmt for f in plan.dates),
        notes=(detection.note,),
    )
    return report, dict(plan.mapping)


def ingest_parquet(
    path: Path, writer: StoreWriter, cfg: IngestConfig, now: dt.datetime, work: Path
) -> FileReport:
    """Ingest one Parquet file (its hash is the caller's to add)."""
    work.mkdir(parents=True, exist_ok=True)
    staged = work / "rows.parquet"
    types = parquet_schema(path)
    kept = kept_types(cfg, str(path), types)
    header = stage_parquet(path, staged, frozenset(kept))
    rules = typed_config(cfg, str(path), types)
    report, _ = ingest_staged(
        str(path), [str(staged)], header, rules, writer, now, work / "stage", kept
    )
    return dataclasses.replace(report, encoding="parquet")


@dataclasses.dataclass(frozen=True)
class Pulled:
    """One pull of a query: its report and the high-water mark it reached (None: none kept)."""

    report: FileReport
    high_water: dict[str, str] | None


def numerics_as_float(
    connection: Connection,
    query: Query,
    sql: str,
    params: Sequence[object],
    cfg: IngestConfig,
    label: str,
) -> str:
    """Return ``sql`` with PostgreSQL ``numeric`` amounts, quantities and prices as float8.

    The driver hands ``numeric`` over as text, which costs a quarter of a pull's read
    time and is parsed again; PostgreSQL converts it to the nearest double, the value
    ingest would parse from that text, so the stored rows are the same.
    """
    probe = f"SELECT * FROM ({sql}) AS crmkit_probe LIMIT 0"  # noqa: S608 - the user's own query
    types = dict(next(record_batches(query.database, connection, probe, params)).schema)
    mapping = sniff.resolve_columns(list(types), cfg.columns, Path(label))
    numeric = {
        raw
        for canonical, raw in mapping.items()
        if canonical in schema.NUMERIC_COLUMNS and isinstance(types[raw], pl.BaseExtension)
    }
    if not numeric:
        return sql
    columns = []
    for name in types:
        quoted = '"' + name.replace('"', '""') + '"'
        columns.append(f"{_as_float(quoted)} AS {quoted}" if name in numeric else quoted)
    return f"SELECT {', '.join(columns)} FROM ({sql}) AS crmkit_source"  # noqa: S608 - the user's own query


def _as_float(column: str) -> str:
    """Return SQL for a numeric column as float8, an infinity beyond a double's range.

    Ingest quarantines an infinity (or NaN's) as an implausible amount, where a plain cast
    would fail the whole query.
    """
    return (
        f"CASE WHEN abs({column}) <= 1e300 THEN {column}::float8 "
        f"WHEN {column} > 0 THEN 'Infinity'::float8 "
        f"WHEN {column} < 0 THEN '-Infinity'::float8 END"
    )


def pull_query(
    query: Query,
    label: str,
    low: object | None,
    writer: StoreWriter,
    cfg: IngestConfig,
    now: dt.datetime,
    work: Path,
) -> Pulled:
    """Read the query's rows (those at or above ``low`` when it has a since column); ingest them.

    With a since column, the pull reads up to the highest value found when it starts, so
    rows written meanwhile wait for the next pull; rows at ``low`` are read again and
    count as duplicates, so a row written at the mark's instant after the last pull is
    not missed.
    """
    db = query.database
    with connect(db, read_only=True) as connection:
        high = upper_mark(query, connection, low) if query.since_column else None
        unread = ""
        if query.since_column and low is None and (nulls := null_marks(query, connection)):
            unread = f"{nulls:,} row(s) with a null {query.since_column} are never read"
        if query.since_column and high is None:
            notes = tuple(n for n in ("no new rows", unread) if n)
            return Pulled(FileReport(label, "", "ingested", notes=notes), None)
        sql, params = bounded_sql(query, low, high)
        if db.engine == "postgresql":
            sql = numerics_as_float(connection, query, sql, params, cfg, label)
        batches = record_batches(db, connection, sql, params)
        first = next(batches)
        types = dict(first.schema)

        def every() -> Any:  # noqa: ANN401
            yield first
            yield from batches

        kept = kept_types(cfg, label, types)
        header, files = stage_batches(every(), work / "rows", label, frozenset(kept))
    rules = typed_config(cfg, label, types)
    report, _ = ingest_staged(label, files, header, rules, writer, now, work / "stage", kept)
    notes = (*report.notes, unread) if unread else report.notes
    report = dataclasses.replace(report, encoding=db.engine, notes=notes)
    return Pulled(report, encode_mark(high) if high is not None else None)
