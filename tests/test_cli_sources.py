"""`crmkit ingest`, `run` and `targets` against a real PostgreSQL server, end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import polars as pl
import pytest

from crmkit.store.core import Store
from tests.conftest import CRMKIT, SAMPLE_DATA, invoke, subprocess_env
from tests.pgserver import PASSWORD, running_server
from tests.sources import to_postgres, typed

CSV = SAMPLE_DATA / "transactions.csv"
#: Runs crmkit with the store's commit replaced by a SIGKILL of the process itself: the
#: process dies after it has read and staged every row, before anything is committed.
KILLED_AT_COMMIT = (
    "import os, signal, sys\n"
    "from crmkit.store.core import StoreWriter\n"
    "StoreWriter.commit = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
    "from crmkit_cli.main import main\n"
    "sys.argv = ['crmkit', *sys.argv[1:]]\n"
    "main()\n"
)


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def db_env(pg, monkeypatch):
    monkeypatch.setenv("CRMKIT_DB_URI", pg.uri())
    monkeypatch.setenv("CRMKIT_NOW", "2026-01-01T00:00:00")
    return pg


def features_csv(runner, store, out):
    invoke(
        runner, "features", "--as-of", "2025-01-01", "--out", str(out), "--store", str(store), "-q"
    )
    return out.read_bytes()


def test_three_daily_pulls_with_a_crash_store_each_row_once(runner, db_env, tmp_path):
    pg = db_env
    frame = typed(CSV).sort("ts")
    days = [
        frame.filter(pl.col("ts") < pl.datetime(2024, 1, 1)),
        frame.filter(
            pl.col("ts").is_between(pl.datetime(2024, 1, 1), pl.datetime(2024, 7, 1), closed="left")
        ),
        frame.filter(pl.col("ts") >= pl.datetime(2024, 7, 1)),
    ]
    table, store = unique("tx"), tmp_path / "s"
    pull = [
        "ingest",
        "${CRMKIT_DB_URI}",
        "--table",
        table,
        "--since-column",
        "ts",
        "--store",
        str(store),
    ]
    to_postgres(pg, days[0], table, tmp_path)
    first = invoke(runner, *pull, "--json")
    assert first["rows_stored"] == days[0].height
    manifest = (store / "manifest.json").read_bytes()
    mark = json.loads(manifest)["sources"]
    assert [m["high_water"]["value"] for m in mark.values()] == [days[0]["ts"].max().isoformat()]
    # day 2: the pull is killed after reading, before its commit: nothing changes
    to_postgres(pg, days[1], table, tmp_path)
    env = subprocess_env() | {"CRMKIT_DB_URI": pg.uri()}
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AT_COMMIT, *pull, "-q"], env=env, capture_output=True
    )
    assert killed.returncode == -9
    assert (store / "manifest.json").read_bytes() == manifest
    # the next pull reads the same rows again and stores them once
    second = invoke(runner, *pull, "--json")
    assert second["rows_stored"] == days[1].height
    assert second["rows_duplicate"] == days[0].filter(pl.col("ts") == days[0]["ts"].max()).height
    to_postgres(pg, days[2], table, tmp_path)
    third = invoke(runner, *pull, "--json")
    assert third["rows_stored"] == days[2].height
    info = invoke(runner, "store", "info", "--store", str(store), "--json")
    assert [s["high_water"]["value"] for s in info["sources"]] == [frame["ts"].max().isoformat()]
    assert info["sources"][0]["source"].startswith("postgresql://crmkit:***@")
    # the same rows and the same features as one ingest of the CSV export
    reference = tmp_path / "ref"
    invoke(runner, "ingest", str(CSV), "--store", str(reference), "-q")
    pulled = Store(store).transactions().collect().sort(pl.all())
    assert pulled.equals(Store(reference).transactions().collect().sort(pl.all()))
    assert features_csv(runner, store, tmp_path / "a.csv") == features_csv(
        runner, reference, tmp_path / "b.csv"
    )


def test_daily_run_pulls_and_writes_the_list_once_and_never_shows_the_password(
    runner, db_env, tmp_path
):
    pg = db_env
    table, store, registry = unique("tx"), tmp_path / "s", tmp_path / "models"
    to_postgres(pg, typed(CSV), table, tmp_path)
    common = ["--store", str(store), "--registry", str(registry)]
    invoke(runner, "ingest", "${CRMKIT_DB_URI}", "--table", table, "--store", str(store), "-q")
    invoke(
        runner,
        "train",
        "--as-of",
        "2025-01-01",
        "--horizon",
        "90",
        "--name",
        "churn",
        *common,
        "-q",
    )
    run = [
        "run", "--date", "2025-01-01", "--campaign", "winback", "--out", str(tmp_path / "out"),
        "--from", "${CRMKIT_DB_URI}", "--from-table", table, "--since-column", "ts",
        "--to", "${CRMKIT_DB_URI}", "--table", "crm_contacts", *common,
    ]  # fmt: skip
    outputs = []
    for _ in range(2):
        result = invoke(runner, *run, "--json")
        outputs.append(json.dumps(result))
    contacts = pl.read_csv(tmp_path / "out" / "winback" / "2025-01-01.contacts.csv")
    rows = pg.psql(
        "SELECT campaign_id, as_of, count(*), count(DISTINCT customer_id) FROM crm_contacts "
        "GROUP BY 1, 2"
    )
    assert rows.strip() == f"winback|2025-01-01|{contacts.height}|{contacts.height}"
    assert result["destination"]["replaced"] == contacts.height
    columns = pg.psql(
        "SELECT column_name || ':' || data_type FROM information_schema.columns "
        "WHERE table_name = 'crm_contacts' ORDER BY ordinal_position"
    ).split()
    assert columns[:3] == ["customer_id:text", "campaign_id:text", "as_of:date"]
    assert "rank:bigint" in columns
    # an amount beyond a double's range is quarantined, not a failed pull
    huge = unique("huge")
    pg.psql(
        f"CREATE TABLE {huge} AS SELECT * FROM {table} LIMIT 3; "  # noqa: S608 - test tables
        f"UPDATE {huge} SET amount = NULL; "
        f"ALTER TABLE {huge} ALTER COLUMN amount TYPE numeric; "
        f"UPDATE {huge} SET amount = 1e400 WHERE order_id = (SELECT min(order_id) FROM {huge}); "
        f"UPDATE {huge} SET amount = 5 WHERE amount IS NULL;"
    )
    pulled = invoke(
        runner, "ingest", "${CRMKIT_DB_URI}", "--table", huge, "--store", str(tmp_path / "h"),
        "--json",
    )  # fmt: skip
    assert (pulled["rows_stored"], pulled["quarantine_reasons"]) == (2, {"implausible_amount": 1})
    # failures print one masked line
    bad = runner.invoke(
        __import__("crmkit_cli.main").main.app,
        ["ingest", pg.uri(password="wrong" + PASSWORD), "--table", table, "--store", str(store)],
    )
    assert bad.exit_code == 3
    assert "credentials" in bad.stderr
    outputs += [bad.stdout, bad.stderr]
    log = (store / "logs" / "run.jsonl").read_text()
    assert "postgresql://crmkit:***@" in log
    for text in outputs:
        assert PASSWORD not in text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


def test_server_stopped_mid_read_leaves_the_store_unchanged(tmp_path):
    with running_server() as server:
        table, store = unique("tx"), tmp_path / "s"
        to_postgres(server, typed(CSV), table, tmp_path)
        subprocess.run(
            [*CRMKIT, "ingest", str(CSV), "--store", str(store), "-q"],
            env=subprocess_env(),
            check=True,
        )
        manifest = (store / "manifest.json").read_bytes()
        # a query that streams its rows slowly: one millisecond per row
        slow = (
            f"SELECT t.* FROM {table} t WHERE "  # noqa: S608 - a test table
            "(SELECT true FROM pg_sleep(0.001 + 0 * t.amount::float8))"
        )
        env = subprocess_env() | {"CRMKIT_DB_URI": server.uri()}
        proc = subprocess.Popen(
            [*CRMKIT, "ingest", "${CRMKIT_DB_URI}", "--query", slow, "--store", str(store)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while not (store / "staging").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(1.0)
        assert proc.poll() is None, "the pull ended before the server could be stopped"
        server.stop()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: postgresql://crmkit:***@"), err
    assert PASSWORD not in out + err
    assert (store / "manifest.json").read_bytes() == manifest
    assert not any((store / "staging").rglob("*.parquet"))
    assert any((store / "transactions").iterdir())
