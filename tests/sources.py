"""The same transactions in every kind of source: CSV, Parquet, SQLite, DuckDB, PostgreSQL."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import polars as pl

from tests.pgserver import PgServer

#: Typed columns of the sample transactions in each database.
COLUMNS = (
    ("order_id", "TEXT"),
    ("customer_id", "TEXT"),
    ("ts", "TIMESTAMP"),
    ("amount", "NUMERIC(12,2)"),
    ("channel", "TEXT"),
    ("category", "TEXT"),
    ("product", "TEXT"),
    ("quantity", "INTEGER"),
)


def typed(csv: Path) -> pl.DataFrame:
    """The CSV's rows with typed columns, as another system would hold them."""
    return pl.read_csv(
        csv,
        try_parse_dates=True,
        schema_overrides={"customer_id": pl.String, "order_id": pl.String},
    )


def to_sqlite(frame: pl.DataFrame, path: Path, table: str) -> None:
    """Write ``frame`` to a SQLite table (timestamps as ISO text, as SQLite keeps them)."""
    columns = ", ".join(f"{n} {'REAL' if t.startswith('NUMERIC') else t}" for n, t in COLUMNS)
    with sqlite3.connect(path) as con:
        con.execute(f"CREATE TABLE {table} ({columns})")
        rows = frame.with_columns(pl.col("ts").dt.strftime("%Y-%m-%d %H:%M:%S")).rows()
        marks = ", ".join("?" * len(COLUMNS))
        con.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)  # noqa: S608 - test table


def to_duckdb(frame: pl.DataFrame, path: Path, table: str) -> None:
    """Write ``frame`` to a DuckDB table with DECIMAL amounts."""
    import duckdb

    with duckdb.connect(str(path)) as con:
        columns = ", ".join(f"{n} {t.replace('NUMERIC', 'DECIMAL')}" for n, t in COLUMNS)
        con.execute(f"CREATE TABLE {table} ({columns})")
        con.register("frame", frame.to_arrow())
        con.execute(f"INSERT INTO {table} SELECT * FROM frame")  # noqa: S608 - test table


def to_postgres(server: PgServer, frame: pl.DataFrame, table: str, tmp: Path) -> None:
    """Create ``table`` on the server (if missing) and append ``frame`` with COPY."""
    columns = ", ".join(f"{n} {t}" for n, t in COLUMNS)
    server.psql(f"CREATE TABLE IF NOT EXISTS {table} ({columns});")
    path = tmp / f"{table}-copy.csv"
    frame.write_csv(path)
    subprocess.run(
        [str(server.bin / "psql"), "-X", "-q", "-d", server.uri(), "-v", "ON_ERROR_STOP=1",
         "-c", f"\\copy {table} FROM '{path}' CSV HEADER"],
        check=True,
        capture_output=True,
    )  # fmt: skip
