"""Writing the day's contact list into a database table, whole or not at all.

``crmkit targets --to URI --table NAME`` (and ``run``, and ``[targeting] destination``)
writes the contact list (the treatment group: who to contact, with which treatment) into
a table that a sending system reads. In one transaction the rows of that campaign and day
are deleted and the new ones inserted, so a re-run never duplicates the list and a failure
leaves the previous content. A missing table is created with typed columns and a primary
key (campaign_id, as_of, customer_id); an existing table must have every column of the
list with a compatible type, or nothing is written (exit 3).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from typing import Final

import polars as pl

from crmkit.errors import BadInputError
from crmkit.io.sql import Connection, connect, placeholders, translated
from crmkit.io.uri import Database, table_name

#: SQL type of each polars type, per engine; a family groups the types a column may have.
_TYPES: Final[dict[str, dict[str, str]]] = {
    "text": {"postgresql": "TEXT", "duckdb": "VARCHAR", "sqlite": "TEXT"},
    "integer": {"postgresql": "BIGINT", "duckdb": "BIGINT", "sqlite": "INTEGER"},
    "real": {"postgresql": "DOUBLE PRECISION", "duckdb": "DOUBLE", "sqlite": "REAL"},
    "date": {"postgresql": "DATE", "duckdb": "DATE", "sqlite": "TEXT"},
}
#: Declared types a table's column may have for each family (lower case, prefixes).
_ACCEPTED: Final[dict[str, tuple[str, ...]]] = {
    "text": ("text", "varchar", "character varying", "char", "character", "string", "clob"),
    "integer": ("bigint", "integer", "int", "smallint", "numeric", "decimal", "hugeint"),
    "real": ("double", "real", "float", "numeric", "decimal"),
    "date": ("date", "timestamp", "text", "varchar"),
}
KEY: Final = ("campaign_id", "as_of", "customer_id")


@dataclass(frozen=True)
class Written:
    """What a list write did: rows inserted, rows of the same day replaced, table created."""

    table: str
    inserted: int
    replaced: int
    created: bool

    def to_json(self) -> dict[str, object]:
        """Return a JSON-ready dict."""
        return dict(self.__dict__)


def family(dtype: pl.DataType) -> str:
    """Return the column family of a polars type: text, integer, real or date."""
    if dtype.is_integer():
        return "integer"
    if dtype.is_float():
        return "real"
    if dtype == pl.Date:
        return "date"
    return "text"


def write_list(
    db: Database, table: str, frame: pl.DataFrame, campaign: str, as_of: dt.date
) -> Written:
    """Replace the rows of (``campaign``, ``as_of``) in ``table`` by ``frame``, in one transaction.

    Raises
    ------
    UsageError
        A table name that is not a plain identifier; no driver installed.
    BadInputError
        A table whose columns do not fit the list (exit 3); a failing statement.
    UnavailableError
        The server cannot be reached or drops the connection (exit 4).
    """
    quoted = table_name(table, "--table")
    days = frame.select("campaign_id", "as_of").unique().rows()
    if days and days != [(campaign, as_of)]:
        raise ValueError(f"the list holds {days}, not only ({campaign}, {as_of})")
    families = {name: family(dtype) for name, dtype in frame.schema.items()}
    with (
        connect(db, read_only=False) as connection,
        translated(db, f"writing table {table}"),
        contextlib.ExitStack() as stack,
    ):
        _begin(db, connection)
        try:
            existing = _columns(db, connection, table)
            if existing is None:
                _create(db, connection, quoted, families)
            else:
                _check(db, table, existing, families)
            cursor = stack.enter_context(contextlib.closing(connection.cursor()))
            marks = placeholders(db, len(frame.columns))
            where = placeholders(db, 2)
            day = f"WHERE campaign_id = {where[0]} AND as_of = {where[1]}"
            key = (campaign, _date(db, as_of))
            cursor.execute(f"SELECT COUNT(*) FROM {quoted} {day}", key)  # noqa: S608 - a checked table name
            replaced = int(cursor.fetchone()[0])
            cursor.execute(f"DELETE FROM {quoted} {day}", key)  # noqa: S608 - a checked table name
            names = ", ".join(f'"{n}"' for n in frame.columns)
            rows = [tuple(_value(db, v) for v in row) for row in frame.rows()]
            if rows:
                cursor.executemany(
                    f"INSERT INTO {quoted} ({names}) VALUES ({', '.join(marks)})",  # noqa: S608 - a checked table name
                    rows,
                )
            connection.commit() if db.engine != "sqlite" else connection.execute("COMMIT")
        except BaseException:
            _rollback(db, connection)
            raise
    return Written(table, len(rows), replaced, existing is None)


def _begin(db: Database, connection: Connection) -> None:
    if db.engine == "sqlite":
        connection.execute("BEGIN IMMEDIATE")
    elif db.engine == "duckdb":
        connection.begin()


def _rollback(db: Database, connection: Connection) -> None:
    try:
        if db.engine == "sqlite":
            connection.execute("ROLLBACK")
        else:
            connection.rollback()
    except Exception:  # noqa: S110 - the connection is gone; nothing was committed
        pass


def _date(db: Database, day: dt.date) -> object:
    return day.isoformat() if db.engine == "sqlite" else day


def _value(db: Database, value: object) -> object:
    return _date(db, value) if isinstance(value, dt.date) else value


def _columns(db: Database, connection: Connection, table: str) -> dict[str, str] | None:
    """Return the table's columns and declared types (lower case); None: no such table."""
    parts = table.split(".")
    with contextlib.closing(connection.cursor()) as cursor:
        return _read_columns(db, cursor, parts)


def _read_columns(db: Database, cursor: Connection, parts: list[str]) -> dict[str, str] | None:
    if db.engine == "sqlite":
        schema = f'"{parts[0]}".' if len(parts) == 2 else ""
        cursor.execute(f'PRAGMA {schema}table_info("{parts[-1]}")')
        found = {str(r[1]): str(r[2]).lower() for r in cursor.fetchall()}
    else:
        mark = placeholders(db, 2)
        in_schema = mark[1] if len(parts) == 2 else "current_schema()"
        sql = " ".join(
            (
                "SELECT column_name, data_type FROM information_schema.columns",
                f"WHERE table_name = {mark[0]} AND table_schema = {in_schema}",
            )
        )
        params = (parts[-1], parts[0]) if len(parts) == 2 else (parts[-1],)
        cursor.execute(sql, params)
        found = {str(r[0]): str(r[1]).lower() for r in cursor.fetchall()}
    return found or None


def _create(db: Database, connection: Connection, quoted: str, families: dict[str, str]) -> None:
    columns = [f'"{n}" {_TYPES[f][db.engine]}' for n, f in families.items()]
    key = ", ".join(f'"{k}"' for k in KEY if k in families)
    sql = f"CREATE TABLE {quoted} ({', '.join(columns)}, PRIMARY KEY ({key}))"
    with contextlib.closing(connection.cursor()) as cursor:
        cursor.execute(sql)


def _check(db: Database, table: str, existing: dict[str, str], families: dict[str, str]) -> None:
    missing = [n for n in families if n not in existing]
    wrong = [
        f"{n} is {existing[n]}, the list needs {_TYPES[f][db.engine].lower()}"
        for n, f in families.items()
        if n in existing and not existing[n].startswith(_ACCEPTED[f])
    ]
    if missing or wrong:
        problems = ([f"missing column(s) {', '.join(missing)}"] if missing else []) + wrong
        raise BadInputError(
            f"{db.label}: table {table} does not fit the contact list: {'; '.join(problems)}; "
            "nothing was written (write to a new table, or fix its columns)"
        )
