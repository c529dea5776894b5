"""Parquet and database sources, lists into tables: real SQLite, DuckDB and PostgreSQL."""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import uuid

import duckdb
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmkit.config.settings import IngestConfig
from crmkit.errors import BadInputError, UnavailableError
from crmkit.ingest import ingest_files
from crmkit.ingest.core import ingest_query
from crmkit.ingest.tables import as_text
from crmkit.io.destination import write_list
from crmkit.io.sql import decode_mark, encode_mark, query_for
from crmkit.io.uri import database
from crmkit.store.core import Store
from tests.conftest import NOW, SAMPLE_DATA
from tests.sources import to_duckdb, to_postgres, to_sqlite, typed

CSV = SAMPLE_DATA / "transactions.csv"


def stored(store: Store) -> pl.DataFrame:
    return store.transactions().collect().sort(pl.all())


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def test_typed_values_become_the_text_a_csv_would_hold():
    frame = pl.DataFrame(
        {
            "ts": [dt.datetime(2024, 1, 2, 3, 4, 5), dt.datetime(2024, 1, 2, 3, 4, 5, 250_000)],
            "day": [dt.date(2024, 1, 2), None],
            "amount": [2.55, 1e-7],
            "id": [12346.0, None],
            "n": [1, 2],
        }
    ).with_columns(pl.col("ts").dt.replace_time_zone("Europe/Paris").alias("aware"))
    out = as_text(frame, "t").collect()
    assert out["ts"].to_list() == ["2024-01-02 03:04:05", "2024-01-02 03:04:05.250"]
    assert out["aware"].to_list() == ["2024-01-02 02:04:05", "2024-01-02 02:04:05.250"]
    assert out["day"].to_list() == ["2024-01-02", None]
    assert [float(v) for v in out["amount"]] == [2.55, 1e-7]
    assert out["id"].to_list() == ["12346.0", None]
    assert out["n"].to_list() == ["1", "2"]
    other = pl.DataFrame({"l": [[1, 2], None], "b": [b"\x01\xff", None], "s": [{"x": 1}, None]})
    assert as_text(other, "t").collect().rows() == [
        ("[1,2]", "01ff", '{"x":1}'),
        (None, None, None),
    ]
    with pytest.raises(BadInputError, match="column 'l' is of type List"):
        as_text(pl.DataFrame({"l": [[[1]]]}), "t")


@pytest.mark.parametrize(
    "value",
    [dt.datetime(2024, 1, 2, 3, 4, 5, 6), dt.date(2024, 1, 2), 42, 2.5, "2024-01-02 03:04"],
)
def test_marks_round_trip(value):
    assert decode_mark(encode_mark(value)) == value


def test_every_source_stores_the_same_rows(tmp_path, pg):
    frame = typed(CSV)
    frame.write_parquet(tmp_path / "tx.parquet")
    to_sqlite(frame, tmp_path / "tx.db", "tx")
    to_duckdb(frame, tmp_path / "tx.duckdb", "tx")
    table = unique("tx")
    to_postgres(pg, frame, table, tmp_path)
    reference = Store(tmp_path / "csv")
    ingest_files([CSV], reference, IngestConfig(), now=NOW)
    expected = stored(reference)
    assert expected.height == frame.height
    pq = Store(tmp_path / "pq")
    report = ingest_files([tmp_path / "tx.parquet"], pq, IngestConfig(), now=NOW)
    assert report.files[0].encoding == "parquet"
    assert report.rows_stored == frame.height
    assert stored(pq).equals(expected)
    for name, uri, tab in (
        ("sqlite", f"sqlite:///{tmp_path}/tx.db", "tx"),
        ("duckdb", f"duckdb:///{tmp_path}/tx.duckdb", "tx"),
        ("postgresql", pg.uri(), table),
    ):
        store = Store(tmp_path / name)
        query = query_for(database(uri, "t"), None, tab, None)
        report = ingest_query(query, store, IngestConfig(), now=NOW)
        assert (report.rows_read, report.rows_stored) == (frame.height, frame.height), name
        assert stored(store).equals(expected), name


def test_bad_rows_in_a_table_are_quarantined_with_their_key(tmp_path):
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE orders (order_no INTEGER, client TEXT, day TEXT, total REAL)")
        con.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?)",
            [
                (1, "A", "2024-01-02", 10.0),
                (2, None, "2024-01-03", 5.0),
                (3, "B", "not a date", 7.5),
                (4, "C", "2024-01-04", "n/a"),  # SQLite keeps text in a REAL column
                (5, "C", "2024-01-05", 1.25),
            ],
        )
    cfg = IngestConfig(columns={"customer_id": "client", "ts": "day", "amount": "total"})
    store = Store(tmp_path / "s")
    query = query_for(
        database(f"sqlite:///{path}", "t"), "SELECT * FROM orders ORDER BY order_no", None, None
    )
    report = ingest_query(query, store, cfg, now=NOW)
    assert (report.rows_read, report.rows_stored, report.rows_quarantined) == (5, 2, 3)
    quarantine = store.quarantine().sort("line")
    assert quarantine["line"].to_list() == [2, 3, 4]
    assert quarantine["reason"].to_list() == [
        "missing_customer_id",
        "unparseable_date",
        "unparseable_amount",
    ]
    assert '"order_no":"2"' in quarantine["raw"][0]
    assert all(s.startswith("sqlite:///") for s in quarantine["source_file"])


def test_missing_column_and_failing_query_are_bad_input(tmp_path):
    path = tmp_path / "x.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE t (client VARCHAR, amount DOUBLE)")
    db = database(f"duckdb:///{path}", "t")
    store = Store(tmp_path / "s")
    with pytest.raises(BadInputError, match="ts"):
        ingest_query(query_for(db, None, "t", None), store, IngestConfig(), now=NOW)
    with pytest.raises(BadInputError, match="running the query failed"):
        ingest_query(
            query_for(db, "SELECT nope FROM t", None, None), store, IngestConfig(), now=NOW
        )
    with pytest.raises(BadInputError, match="no such database file"):
        ingest_query(
            query_for(database("sqlite:///nowhere.db", "t"), None, "t", None),
            store,
            IngestConfig(),
            now=NOW,
        )
    assert not store.exists() or store_rows(store) == 0


def store_rows(store: Store) -> int:
    return sum(p.rows for p in store.manifest().parts_of("transactions"))


def test_since_column_reads_only_new_rows(tmp_path):
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE tx (customer_id TEXT, ts TEXT, amount REAL)")
        con.executemany(
            "INSERT INTO tx VALUES (?, ?, ?)",
            [("A", "2024-01-01 10:00:00", 1.0), ("B", "2024-01-02 10:00:00", 2.0)],
        )
    store = Store(tmp_path / "s")
    query = query_for(database(f"sqlite:///{path}", "t"), None, "tx", "ts")
    with sqlite3.connect(path) as con:
        con.execute("INSERT INTO tx VALUES ('N', NULL, 9.0)")
    first = ingest_query(query, store, IngestConfig(), now=NOW)
    assert (first.rows_read, first.rows_stored) == (2, 2)
    assert "1 row(s) with a null ts are never read" in first.files[0].notes
    mark = store.manifest().sources[query.key]
    assert mark["high_water"] == {"type": "text", "value": "2024-01-02 10:00:00"}
    with sqlite3.connect(path) as con:
        con.execute("INSERT INTO tx VALUES ('C', '2024-01-03 09:00:00', 3.0)")
    second = ingest_query(query, store, IngestConfig(), now=NOW)
    # the row at the mark is read again and found stored; only C is new
    assert (second.rows_read, second.rows_stored, second.rows_duplicate) == (2, 1, 1)
    third = ingest_query(query, store, IngestConfig(), now=NOW)
    assert (third.rows_read, third.rows_stored) == (1, 0)
    assert store_rows(store) == 3


@pytest.mark.parametrize("engine", ["sqlite", "duckdb"])
def test_list_into_a_table_twice_gives_one_copy(tmp_path, engine):
    db = database(f"{engine}:///{tmp_path}/lists.{engine}", "--to")
    day = dt.date(2025, 1, 1)
    contacts = pl.DataFrame(
        {
            "customer_id": ["A", "B"],
            "campaign_id": ["winback"] * 2,
            "as_of": [day] * 2,
            "treatment": ["email", "call"],
            "segment": ["x", None],
            "value_tier": ["core", "top"],
            "rank": [1, 2],
        }
    )
    first = write_list(db, "contacts", contacts, "winback", day)
    again = write_list(db, "contacts", contacts.head(1), "winback", day)
    later = day + dt.timedelta(days=1)
    other = write_list(db, "contacts", contacts.with_columns(as_of=pl.lit(later)), "winback", later)
    assert (first.created, first.inserted, again.replaced, again.inserted) == (True, 2, 2, 1)
    assert not other.created
    rows = read_all(
        engine,
        tmp_path / f"lists.{engine}",
        "SELECT customer_id, as_of FROM contacts ORDER BY 2, 1",
    )
    assert [r[0] for r in rows] == ["A", "A", "B"]


def read_all(engine: str, path, sql: str) -> list[tuple]:
    if engine == "sqlite":
        with sqlite3.connect(path) as con:
            return con.execute(sql).fetchall()
    with duckdb.connect(str(path)) as con:
        return con.execute(sql).fetchall()


def test_incompatible_table_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "lists.db"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE contacts (customer_id INTEGER, note TEXT)")
        con.execute("INSERT INTO contacts VALUES (1, 'keep')")
    contacts = pl.DataFrame(
        {"customer_id": ["A"], "campaign_id": ["w"], "as_of": [dt.date(2025, 1, 1)]}
    )
    with pytest.raises(BadInputError, match="does not fit the contact list"):
        write_list(
            database(f"sqlite:///{path}", "t"), "contacts", contacts, "w", dt.date(2025, 1, 1)
        )
    assert read_all("sqlite", path, "SELECT * FROM contacts") == [(1, "keep")]


def test_unreachable_server_is_unavailable(tmp_path):
    from tests.pgserver import free_port

    db = database(f"postgresql://u:pw@127.0.0.1:{free_port()}/db", "t")
    with pytest.raises(UnavailableError) as excinfo:
        ingest_query(query_for(db, None, "t", None), Store(tmp_path / "s"), IngestConfig(), now=NOW)
    assert "pw@" not in str(excinfo.value)
    assert "***" in str(excinfo.value)
    assert not (tmp_path / "s" / "manifest.json").exists()


def test_parquet_with_aware_timestamps_and_integer_amounts(tmp_path):
    frame = pl.DataFrame(
        {
            "client": ["A", "B"],
            "paid_at": [dt.datetime(2024, 3, 1, 12, 0), dt.datetime(2024, 3, 2, 8, 30, 0, 500)],
            "total": [12, 7],
        }
    ).with_columns(pl.col("paid_at").dt.replace_time_zone("America/New_York"))
    frame.write_parquet(tmp_path / "x.parquet")
    store = Store(tmp_path / "s")
    cfg = IngestConfig(columns={"customer_id": "client", "ts": "paid_at", "amount": "total"})
    report = ingest_files([tmp_path / "x.parquet"], store, cfg, now=NOW)
    assert report.rows_stored == 2
    rows = stored(store)
    assert rows["ts"].to_list() == [
        dt.datetime(2024, 3, 1, 17, 0),
        dt.datetime(2024, 3, 2, 13, 30, 0, 500),
    ]
    assert rows["amount"].to_list() == [12.0, 7.0]


@settings(max_examples=25)
@given(
    rows=st.lists(
        st.tuples(
            st.datetimes(dt.datetime(1995, 1, 1), dt.datetime(2025, 12, 31)),
            st.floats(-1e6, 1e6, allow_nan=False).filter(lambda v: abs(v) > 1e-9),
            st.integers(1, 10),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_parquet_and_csv_of_the_same_values_store_the_same_rows(rows):
    import tempfile
    from pathlib import Path

    frame = pl.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(len(rows))],
            "ts": [r[0] for r in rows],
            "amount": [r[1] for r in rows],
            "quantity": [r[2] for r in rows],
        },
        schema_overrides={"ts": pl.Datetime("us")},
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        frame.write_parquet(root / "x.parquet")
        frame.write_csv(root / "x.csv", datetime_format="%Y-%m-%d %H:%M:%S%.f")
        from_parquet, from_csv = Store(root / "p"), Store(root / "c")
        ingest_files([root / "x.parquet"], from_parquet, IngestConfig(), now=NOW)
        ingest_files([root / "x.csv"], from_csv, IngestConfig(), now=NOW)
        stored_parquet = stored(from_parquet)
        assert stored_parquet.equals(stored(from_csv))
        assert stored_parquet["amount"].sort().to_list() == sorted(r[1] for r in rows)
        assert stored_parquet["ts"].sort().to_list() == sorted(r[0] for r in rows)


def test_a_file_that_is_not_parquet_is_bad_input(tmp_path):
    junk, cut = tmp_path / "junk.parquet", tmp_path / "cut.parquet"
    junk.write_bytes(b"customer_id,ts,amount\n")
    typed(CSV).head(100).write_parquet(tmp_path / "whole.parquet")
    cut.write_bytes((tmp_path / "whole.parquet").read_bytes()[:-100])
    store = Store(tmp_path / "s")
    for path in (junk, cut):
        with pytest.raises(BadInputError, match="not a readable Parquet file"):
            ingest_files([path], store, IngestConfig(), now=NOW)
    assert not store.exists()


@settings(max_examples=40)
@given(data=st.binary(max_size=2_000), keep=st.integers(0, 3_000))
def test_any_bytes_named_parquet_are_bad_input_or_rows(data, keep):
    import tempfile
    from pathlib import Path

    from crmkit.features.attributes import load_attributes

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        whole = root / "whole.parquet"
        typed(CSV).head(50).write_parquet(whole)
        # random bytes, or a real file cut short and followed by random bytes
        for name, content in (("a", data), ("b", whole.read_bytes()[:keep] + data)):
            path = root / f"{name}.parquet"
            path.write_bytes(content)
            try:
                report = ingest_files([path], Store(root / f"s{name}"), IngestConfig(), now=NOW)
            except BadInputError:
                continue
            assert report.rows_read == report.rows_stored + report.rows_quarantined
            with contextlib.suppress(BadInputError):
                load_attributes(Store(root / f"c{name}"), path, now=NOW)


def test_postgres_columns_of_every_common_type(tmp_path, pg):
    table = unique("odd")
    pg.psql(
        f"CREATE TABLE {table} (customer_id uuid, ts timestamptz, amount numeric, note jsonb, "  # noqa: S608 - a test table
        "blob bytea, tags int[], wait interval, vip boolean); "
        f"INSERT INTO {table} VALUES "
        "('8c9e6c1e-4f3a-4b7e-9d2a-1f0e5b6c7d8e', '2024-05-01 12:00+02', 19.99, "
        "'{\"a\": 1}', '\\x00ff', '{1,2}', '2 days', true), "
        "(NULL, '2024-05-02 00:00+00', 5, NULL, NULL, NULL, NULL, NULL);"
    )
    store = Store(tmp_path / "s")
    query = query_for(database(pg.uri(), "t"), None, table, "ts")
    report = ingest_query(query, store, IngestConfig(), now=NOW)
    assert (report.rows_read, report.rows_stored, report.rows_quarantined) == (2, 1, 1)
    row = stored(store).row(0, named=True)
    assert row["customer_id"] == "8c9e6c1e-4f3a-4b7e-9d2a-1f0e5b6c7d8e"
    assert row["ts"] == dt.datetime(2024, 5, 1, 10, 0)
    assert row["amount"] == 19.99
    quarantined = store.quarantine()
    assert quarantined["reason"].to_list() == ["missing_customer_id"]
    assert '"blob":null' in quarantined["raw"][0]
    assert store.manifest().sources[query.key]["high_water"]["type"] == "timestamp"


def test_a_failed_list_write_leaves_the_previous_list(tmp_path, pg):
    day = dt.date(2025, 1, 1)
    contacts = pl.DataFrame(
        {
            "customer_id": ["A", "B"],
            "campaign_id": ["w", "w"],
            "as_of": [day, day],
            "treatment": ["email", "call"],
            "rank": [1, 2],
        }
    )
    table = unique("lists")
    db = database(pg.uri(), "--to")
    write_list(db, table, contacts, "w", day)
    # a column the list does not fill, required by whoever owns the table: the insert
    # fails after the day's rows were deleted, and the transaction is rolled back
    pg.psql(f"ALTER TABLE {table} ADD COLUMN approved_by text NOT NULL DEFAULT 'x'; "
            f"ALTER TABLE {table} ALTER COLUMN approved_by DROP DEFAULT;")  # fmt: skip
    with pytest.raises(BadInputError, match="approved_by"):
        write_list(db, table, contacts.head(1), "w", day)
    assert pg.psql(f"SELECT customer_id FROM {table} ORDER BY 1").split() == ["A", "B"]  # noqa: S608


def test_daily_run_from_config_with_sqlite_source_and_destination(runner, tmp_path, monkeypatch):
    from tests.conftest import invoke

    shop = tmp_path / "shop.db"
    to_sqlite(typed(CSV), shop, "orders")
    monkeypatch.setenv("SHOP_DB", f"sqlite:///{shop}")
    monkeypatch.setenv("CRMKIT_NOW", "2026-01-01T00:00:00")
    config = tmp_path / "crmkit.toml"
    config.write_text(
        '[source]\nuri = "${SHOP_DB}"\ntable = "orders"\nsince_column = "ts"\n\n'
        '[targeting]\ndestination = "${SHOP_DB}"\ndestination_table = "contacts"\n'
    )
    common = ["--store", str(tmp_path / "s"), "--registry", str(tmp_path / "m")]
    common += ["--config", str(config)]
    invoke(runner, "ingest", "${SHOP_DB}", "--table", "orders", *common[:2], "-q")
    invoke(runner, "train", "--as-of", "2025-01-01", "--horizon", "90", *common, "-q")
    out = ["--out", str(tmp_path / "out")]
    first = invoke(
        runner, "run", "--date", "2025-01-01", "--campaign", "w", *out, *common, "--json"
    )
    assert first["destination"]["created"] is True
    with sqlite3.connect(shop) as con:
        (rows,) = con.execute("SELECT COUNT(*) FROM contacts").fetchone()
    assert rows == first["contacts"] > 0
    log = (tmp_path / "s" / "logs" / "run.jsonl").read_text()
    assert '"source_rows_read"' in log
