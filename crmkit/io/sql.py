"""Reading from databases: connections, batched queries, high-water marks, driver errors.

PostgreSQL is read through ADBC (``adbc-driver-postgresql``): Arrow record batches over
libpq's binary protocol, streamed, so a large pull holds one batch at a time. It loaded
2M rows in 1.3 s against connectorx's 2.0 s here (``python -m bench sources`` has the
figures at 10M rows). DuckDB files are read through the ``duckdb`` package, also as Arrow
batches, and SQLite files through the standard library, every value cast to text by
SQLite itself: a SQLite column may hold values of any type, row by row.

Every driver error becomes a one-line :class:`~crmkit.errors.CrmkitError` naming the
source with its password masked: a server that cannot be reached or that drops the
connection is :class:`~crmkit.errors.UnavailableError` (exit 4); wrong credentials, a
failing query or a missing column are :class:`~crmkit.errors.BadInputError` (exit 3).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import polars as pl

from crmkit.errors import BadInputError, CrmkitError, UnavailableError, UsageError
from crmkit.io.uri import Database, column_name, table_name

BATCH_ROWS: Final = 100_000
#: A DB-API connection of one of the drivers (ADBC, duckdb, sqlite3).
Connection: TypeAlias = Any
#: A pyarrow object (record batch, schema), typed loosely: pyarrow ships no type hints.
Arrow: TypeAlias = Any
INSTALL_HINT: Final = "install crmkit's database support: pip install 'crmkit[sql]'"
#: SQLSTATE classes of a connection that failed or was cut (08, 57P0x) and of resources.
_UNAVAILABLE_STATES: Final = re.compile(r"^(08|57P0|53|58)")
_UNAVAILABLE_WORDS: Final = re.compile(
    r"(?i)connection refused|could not connect|failed to connect|server closed the connection|"
    r"terminating connection|no connection to the server|connection to server .* failed|"
    r"could not translate host name|timeout expired|database is locked|could not set lock|"
    r"conflicting lock|unable to open database|broken pipe|connection reset|io error"
)
_CREDENTIALS_WORDS: Final = re.compile(
    r"(?i)password authentication failed|authentication failed|no password supplied|"
    r"role .* does not exist|database .* does not exist|pg_hba\.conf"
)


@dataclass(frozen=True)
class Query:
    """What to read from a database: a query or a table, and the high-water mark column."""

    database: Database
    sql: str
    since_column: str | None = None

    @property
    def key(self) -> str:
        """The source's identity in the store: masked URI and the query text."""
        return f"{self.database.label} {self.sql}"


def query_for(db: Database, query: str | None, table: str | None, since: str | None) -> Query:
    """Build what to read from ``--query`` or ``--table`` (exactly one of them).

    Raises
    ------
    UsageError
        Neither or both given, an empty query, or a table or column that is not a plain name.
    """
    if (query is None) == (table is None):
        raise UsageError(f"{db.label}: give exactly one of --query and --table")
    if table is not None:
        sql = f"SELECT * FROM {table_name(table)}"  # noqa: S608 - the user's own query; names are checked identifiers
    else:
        sql = (query or "").strip().rstrip(";").strip()
        if not sql:
            raise UsageError("--query is empty")
    if since is not None:
        column_name(since, "--since-column")
    return Query(db, sql, since)


def failure(db: Database, doing: str, exc: BaseException) -> CrmkitError:
    """Classify a driver error as unavailable (exit 4) or bad input (exit 3), on one line."""
    text = str(exc).strip()
    first = db.scrub(text.splitlines()[0] if text else type(exc).__name__)
    state = str(getattr(exc, "sqlstate", "") or "")
    message = f"{db.label}: {doing} failed: {first}"
    if _CREDENTIALS_WORDS.search(text) or state.startswith("28"):
        return BadInputError(f"{db.label}: {doing} failed: the server refused the credentials")
    if _UNAVAILABLE_STATES.match(state) or _UNAVAILABLE_WORDS.search(text):
        return UnavailableError(message)
    return BadInputError(message)


def _driver_errors(engine: str) -> tuple[type[BaseException], ...]:
    if engine == "postgresql":
        import adbc_driver_manager

        return (adbc_driver_manager.Error, OSError)
    if engine == "duckdb":
        import duckdb

        return (duckdb.Error, OSError)
    import sqlite3

    return (sqlite3.Error, OSError)


@contextlib.contextmanager
def translated(db: Database, doing: str) -> Iterator[None]:
    """Within the block, a driver error becomes :func:`failure`'s error."""
    errors = _driver_errors(db.engine)
    try:
        yield
    except errors as exc:
        raise failure(db, doing, exc) from None


@contextlib.contextmanager
def connect(db: Database, *, read_only: bool) -> Iterator[Any]:
    """Open a DB-API connection (transactions on, autocommit off); close it after.

    Raises
    ------
    UsageError
        The driver is not installed.
    BadInputError
        A SQLite or DuckDB file to read that does not exist.
    UnavailableError
        The server cannot be reached.
    """
    if read_only and db.path is not None and not db.path.is_file():
        raise BadInputError(f"{db.label}: no such database file")
    try:
        with translated(db, "connecting"):
            connection = _open(db, read_only=read_only)
    except ImportError as exc:
        raise UsageError(f"{db.label}: {INSTALL_HINT} ({exc.name} is missing)") from None
    try:
        yield connection
    finally:
        with contextlib.suppress(Exception):
            connection.close()


def _open(db: Database, *, read_only: bool) -> Connection:
    if db.engine == "postgresql":
        import adbc_driver_postgresql.dbapi as driver

        return driver.connect(db.uri)
    path = str(db.path)
    if db.engine == "duckdb":
        import duckdb

        return duckdb.connect(path, read_only=read_only)
    import sqlite3

    # transactions are begun explicitly (BEGIN IMMEDIATE) where a write needs one
    # check_same_thread: rows are fetched in a second thread while the first writes them
    return sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)


def placeholders(db: Database, n: int) -> list[str]:
    """Parameter markers of the engine: ``$1, $2`` for PostgreSQL, ``?`` otherwise."""
    return [f"${i + 1}" if db.engine == "postgresql" else "?" for i in range(n)]


def _fetch_one(db: Database, connection: Connection, sql: str, params: Sequence[Any]) -> object:
    cursor = connection.cursor()
    try:
        cursor.execute(sql, tuple(params)) if params else cursor.execute(sql)
        row = cursor.fetchone()
    finally:
        with contextlib.suppress(Exception):
            cursor.close()
    return None if row is None else row[0]


def upper_mark(
    query: Query,
    connection: Connection,
    low: object | None,
) -> object | None:
    """Return the highest value of the since column at or above ``low`` (None: no rows)."""
    column = column_name(query.since_column or "", "--since-column")
    sql = f"SELECT MAX({column}) FROM ({query.sql}) AS crmkit_source"  # noqa: S608 - the user's own query; names are checked identifiers
    params: list[object] = []
    if low is not None:
        sql += f" WHERE {column} >= {placeholders(query.database, 1)[0]}"
        params.append(low)
    with translated(query.database, "reading the high-water mark"):
        return _fetch_one(query.database, connection, sql, params)


def null_marks(query: Query, connection: Connection) -> int:
    """Count the rows whose since column is null: a pull by that column never reads them."""
    column = column_name(query.since_column or "", "--since-column")
    sql = f"SELECT COUNT(*) FROM ({query.sql}) AS crmkit_source WHERE {column} IS NULL"  # noqa: S608 - the user's own query; names are checked identifiers
    with translated(query.database, "counting rows without a high-water value"):
        count = _fetch_one(query.database, connection, sql, [])
    return count if isinstance(count, int) else 0


def bounded_sql(query: Query, low: object | None, high: object | None) -> tuple[str, list[object]]:
    """Return the query restricted to ``low <= since_column <= high`` (each bound when given)."""
    if query.since_column is None or high is None:
        return query.sql, []
    column = column_name(query.since_column, "--since-column")
    bounds = [(">=", low)] if low is not None else []
    bounds.append(("<=", high))
    marks = placeholders(query.database, len(bounds))
    conditions = [f"{column} {op} {m}" for (op, _), m in zip(bounds, marks, strict=True)]
    params = [value for _, value in bounds]
    sql = f"SELECT * FROM ({query.sql}) AS crmkit_source WHERE {' AND '.join(conditions)}"  # noqa: S608 - the user's own query; names are checked identifiers
    return sql, params


def record_batches(
    db: Database,
    connection: Connection,
    sql: str,
    params: Sequence[object],
) -> Iterator[pl.DataFrame]:
    """Run ``sql`` and yield its rows as polars frames of at most :data:`BATCH_ROWS` rows.

    SQLite values arrive as text (SQLite casts them); other engines keep their types.
    """
    if db.engine == "sqlite":
        yield from _sqlite_batches(db, connection, sql, params)
        return
    with translated(db, "running the query"):
        cursor = connection.cursor()
        if db.engine == "duckdb":
            relation = cursor.sql(sql, params=list(params) or None)
            # duckdb 2 names it to_arrow_reader; 1.x fetch_arrow_reader
            to_reader = getattr(relation, "to_arrow_reader", None) or relation.fetch_arrow_reader
            reader = to_reader(BATCH_ROWS)
        else:
            cursor.execute(sql, tuple(params)) if params else cursor.execute(sql)
            reader = cursor.fetch_record_batch()
    try:
        with translated(db, "reading rows"):
            empty = True
            for batch in reader:
                empty = False
                yield _polars(db, batch)
            if empty:
                yield _polars(db, _empty_batch(reader.schema))
    finally:
        with contextlib.suppress(Exception):
            cursor.close()


def _plain(batch: Arrow) -> tuple[Arrow, list[str]]:
    """Make a record batch polars can take, its values unchanged; name its UUID columns.

    An extension column (PostgreSQL ``numeric`` and ``uuid`` arrive as ones) becomes its
    storage, and an interval (which polars cannot import) its text.
    """
    import pyarrow as pa

    arrays, uuids, changed = [], [], False
    for field, column in zip(batch.schema, batch.columns, strict=True):
        kind = field.type
        if isinstance(kind, pa.BaseExtensionType):
            if "uuid" in kind.extension_name:
                uuids.append(field.name)
            column, changed = column.storage, True
        if pa.types.is_interval(column.type):
            text = [None if v is None else str(v) for v in column.to_pylist()]
            column, changed = pa.array(text, pa.string()), True
        arrays.append(column)
    if changed:
        batch = pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)
    return batch, uuids


_UUID_PARTS: Final = ((0, 8), (8, 4), (12, 4), (16, 4), (20, 12))


def uuid_text(column: pl.Expr) -> pl.Expr:
    """Return the canonical text (``8-4-4-4-12`` hex digits) of 16-byte UUIDs."""
    hexed = column.bin.encode("hex")
    parts = [hexed.str.slice(start, length) for start, length in _UUID_PARTS]
    return pl.concat_str(parts, separator="-")


def _polars(db: Database, batch: Arrow) -> pl.DataFrame:
    try:
        plain, uuids = _plain(batch)
        frame: pl.DataFrame = pl.from_arrow(plain)  # type: ignore[assignment]
    except pl.exceptions.PolarsError as exc:
        kinds = ", ".join(f"{f.name} {f.type}" for f in batch.schema)
        raise BadInputError(
            f"{db.label}: the query's columns cannot be read ({kinds}); select the columns "
            "you need, cast to text where needed"
        ) from exc
    return frame.with_columns(uuid_text(pl.col(n)).alias(n) for n in uuids) if uuids else frame


def _empty_batch(schema: Arrow) -> Arrow:
    import pyarrow as pa

    return pa.RecordBatch.from_arrays(
        [pa.array([], type=f.type) for f in schema], names=schema.names
    )


def _sqlite_batches(
    db: Database,
    connection: Connection,
    sql: str,
    params: Sequence[object],
) -> Iterator[pl.DataFrame]:
    with translated(db, "running the query"):
        probe = connection.execute(f"SELECT * FROM ({sql}) AS crmkit_source LIMIT 0", params)  # noqa: S608 - the user's own query; names are checked identifiers
        names = [d[0] for d in probe.description]
        quoted = ['"' + n.replace('"', '""') + '"' for n in names]
        text = ", ".join(f"CAST({q} AS TEXT) AS {q}" for q in quoted)
        cursor = connection.execute(f"SELECT {text} FROM ({sql}) AS crmkit_source", params)  # noqa: S608 - the user's own query; names are checked identifiers
    schema = dict.fromkeys(names, pl.String)
    with translated(db, "reading rows"):
        empty = True
        while rows := cursor.fetchmany(BATCH_ROWS):
            empty = False
            yield pl.DataFrame(rows, schema=schema, orient="row")
    if empty:
        yield pl.DataFrame(schema=schema)


def encode_mark(value: object) -> dict[str, str]:
    """Return a high-water mark as JSON: its type and its text."""
    if isinstance(value, dt.datetime):
        return {"type": "timestamp", "value": value.isoformat()}
    if isinstance(value, dt.date):
        return {"type": "date", "value": value.isoformat()}
    if isinstance(value, bool):
        raise BadInputError("--since-column: a boolean column cannot be a high-water mark")
    if isinstance(value, int):
        return {"type": "integer", "value": str(value)}
    if isinstance(value, float):
        return {"type": "float", "value": repr(value)}
    if isinstance(value, decimal.Decimal):
        return {"type": "decimal", "value": str(value)}
    if isinstance(value, str):
        return {"type": "text", "value": value}
    raise BadInputError(
        f"--since-column: values of type {type(value).__name__} cannot be a high-water mark; "
        "use a timestamp, date, number or text column"
    )


def decode_mark(mark: dict[str, str]) -> object:
    """Return the value of a mark written by :func:`encode_mark`."""
    kind, text = mark["type"], mark["value"]
    if kind == "timestamp":
        return dt.datetime.fromisoformat(text)
    if kind == "date":
        return dt.date.fromisoformat(text)
    if kind == "integer":
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "decimal":
        return decimal.Decimal(text)
    return text
