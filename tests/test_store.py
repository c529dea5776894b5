from __future__ import annotations

import json
import signal
import subprocess
import time

import polars as pl
import pytest

from crmkit.config import IngestConfig
from crmkit.errors import StoreCorruptError, StoreLockedError
from crmkit.ingest import ingest_files
from crmkit.simulate import SimulationConfig, write_sample
from crmkit.store import Store, store_info

from .conftest import CRMKIT, MESSY, NOW, subprocess_env


def test_empty_store_reads_as_empty(tmp_path):
    store = Store(tmp_path / "none")
    assert store.transactions().collect().height == 0
    with pytest.raises(StoreCorruptError, match="no crmkit store"):
        store_info(store)


def test_second_writer_is_refused(tmp_path):
    store = Store(tmp_path / "s")
    with store.lock(), pytest.raises(StoreLockedError, match="locked by another crmkit process"):
        ingest_files([MESSY / "bom_currency.csv"], store, IngestConfig(), now=NOW)


def test_concurrent_cli_writer_exits_4(tmp_path):
    store = Store(tmp_path / "s")
    with store.lock():
        proc = subprocess.run(
            [*CRMKIT, "ingest", str(MESSY / "bom_currency.csv"), "--store", str(store.root)],
            capture_output=True,
            text=True,
            env=subprocess_env(),
            check=False,
        )
    assert proc.returncode == 4
    assert "is locked by another crmkit process (pid" in proc.stderr


def test_missing_part_is_reported(tmp_path):
    store = Store(tmp_path / "s")
    ingest_files([MESSY / "bom_currency.csv"], store, IngestConfig(), now=NOW)
    next((tmp_path / "s" / "transactions").rglob("*.parquet")).unlink()
    with pytest.raises(StoreCorruptError, match="inconsistent"):
        store.manifest()
    (tmp_path / "s" / "manifest.json").write_text("{broken")
    with pytest.raises(StoreCorruptError, match="unreadable manifest"):
        store.manifest()


def test_compaction_keeps_every_row(tmp_path):
    store = Store(tmp_path / "s")
    for i in range(12):
        path = tmp_path / f"f{i}.csv"
        path.write_text(f"customer_id,ts,amount\nA,2024-01-{i + 1:02d},{i}\n")
        ingest_files([path], store, IngestConfig(), now=NOW)
    parts = store.manifest().parts_of("transactions")
    assert len(parts) <= 8
    assert store.transactions().collect()["amount"].sort().to_list() == [
        float(i) for i in range(12)
    ]
    on_disk = {p.relative_to(store.root).as_posix() for p in store.root.rglob("*.parquet")}
    assert on_disk == {
        p.path for k in ("transactions", "quarantine") for p in store.manifest().parts_of(k)
    }


def test_sigkill_midway_leaves_previous_state(tmp_path):
    store = Store(tmp_path / "s")
    ingest_files([MESSY / "bom_currency.csv"], store, IngestConfig(), now=NOW)
    manifest_before = (store.root / "manifest.json").read_bytes()
    big = write_sample(SimulationConfig(customers=80_000, seed=5), tmp_path / "big")
    proc = subprocess.Popen(
        [*CRMKIT, "ingest", str(big.transactions), "--store", str(store.root), "--quiet"],
        env=subprocess_env(),
    )
    staging = store.root / "staging"
    deadline = time.monotonic() + 60
    while not any(staging.rglob("*")) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, "ingest finished before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (store.root / "manifest.json").read_bytes() == manifest_before
    assert store.transactions().collect().height == 4
    # a re-run cleans the leftovers and completes
    report = ingest_files([big.transactions], store, IngestConfig(), now=NOW)
    assert report.rows_stored == big.rows
    assert store.transactions().collect().height == big.rows + 4
    assert not staging.exists() or not any(staging.rglob("*.parquet"))
    names = {p.path for p in store.manifest().parts_of("transactions")}
    assert {
        p.relative_to(store.root).as_posix()
        for p in (store.root / "transactions").rglob("*.parquet")
    } == names


def test_info_counts(tmp_path):
    store = Store(tmp_path / "s")
    ingest_files(
        [MESSY / "missing_ids.csv", MESSY / "duplicates.csv"], store, IngestConfig(), now=NOW
    )
    info = store_info(store)
    assert info.rows == 5
    assert info.customers == 5
    assert info.files_ingested == 2
    assert info.rows_quarantined == 7
    assert info.quarantine_reasons["missing_customer_id"] == 2
    assert json.loads(json.dumps(info.to_json()))["rows"] == 5
    tx = store.transactions().collect()
    assert tx.schema["ts"] == pl.Datetime("us")
