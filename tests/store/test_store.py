from __future__ import annotations

import json
import signal
import subprocess
import time

import polars as pl
import pytest

from crmkit.config.settings import IngestConfig
from crmkit.errors import StoreCorruptError, StoreLockedError
from crmkit.ingest import ingest_files
from crmkit.simulate.history import SimulationConfig, write_sample
from crmkit.store.core import Store
from crmkit.store.info import store_info
from tests.conftest import CRMKIT, MESSY, NOW, subprocess_env


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


def _sample_store(tmp_path):
    store = Store(tmp_path / "s")
    ingest_files(
        [MESSY / "duplicates.csv", MESSY / "missing_ids.csv"], store, IngestConfig(), now=NOW
    )
    return store


def _files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_a_store_without_its_manifest_is_never_emptied(tmp_path, runner):
    from tests.conftest import invoke

    store = _sample_store(tmp_path)
    before = store_info(store)
    (store.root / "manifest.json").unlink()
    files = _files(store.root)
    bad = invoke(
        runner, "ingest", str(MESSY / "bom_currency.csv"), "--store", str(store.root), code=6
    )
    assert "has no manifest.json" in bad.stderr
    assert "store init --adopt" in bad.stderr
    assert _files(store.root) == files  # nothing deleted
    adopted = invoke(runner, "store", "init", "--adopt", "--store", str(store.root), "--json")
    assert adopted["status"] == "adopted"
    assert adopted["rows"]["transactions"] == before.rows
    after = store_info(store)
    assert (after.rows, after.customers, after.rows_quarantined) == (
        before.rows,
        before.customers,
        before.rows_quarantined,
    )
    invoke(runner, "store", "init", "--adopt", "--store", str(store.root), code=2)


def test_an_ordinary_directory_is_not_made_a_store(tmp_path, runner):
    from tests.conftest import invoke

    home = tmp_path / "home"
    for rel in ("staging/notes.txt", "transactions/data.parquet", "ledger/x.parquet", "a.txt"):
        (home / rel).parent.mkdir(parents=True, exist_ok=True)
        (home / rel).write_text("mine")
    files = _files(home)
    result = invoke(runner, "ingest", str(MESSY / "bom_currency.csv"), "--store", str(home), code=6)
    assert "not a crmkit store" in result.stderr
    assert _files(home) == files
    invoke(runner, "store", "init", "--store", str(home), code=6)
    # an empty directory, or one a failed first write left, becomes a store
    fresh = tmp_path / "fresh"
    (fresh / "logs").mkdir(parents=True)
    (fresh / "staging" / "g000001").mkdir(parents=True)
    (fresh / ".lock").write_text("")
    invoke(runner, "ingest", str(MESSY / "bom_currency.csv"), "--store", str(fresh))
    assert not (fresh / "staging" / "g000001").exists()


def test_foreign_files_beside_a_store_are_left_alone(tmp_path):
    store = _sample_store(tmp_path)
    mine = [store.root / "transactions" / "mine.parquet", store.root / "staging" / "keep.txt"]
    for path in mine:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("not crmkit's")
    orphan = store.root / "transactions" / "b000" / "g000099-0001.parquet"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"left by a killed write")
    ingest_files([MESSY / "bom_currency.csv"], store, IngestConfig(), now=NOW)
    assert all(path.exists() for path in mine)
    assert not orphan.exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: [], "not a JSON object"),
        (lambda m: {**m, "generation": "x"}, "generation or buckets"),
        (
            lambda m: {
                **m,
                "parts": {**m["parts"], "ledger": [{"path": "../x.parquet", "rows": 1}]},
            },
            "is not a part of this store",
        ),
        (
            lambda m: {
                **m,
                "parts": {**m["parts"], "quarantine": [{"path": "/etc/passwd", "rows": 1}]},
            },
            "is not a part of this store",
        ),
        (lambda m: {**m, "parts": []}, "parts or files are malformed"),
    ],
)
def test_malformed_manifests_exit_6(tmp_path, runner, change, message):
    from tests.conftest import invoke

    store = _sample_store(tmp_path)
    manifest = json.loads((store.root / "manifest.json").read_text())
    (store.root / "manifest.json").write_text(json.dumps(change(manifest)))
    for args in (["store", "info"], ["ingest", str(MESSY / "bom_currency.csv")]):
        result = invoke(runner, *args, "--store", str(store.root), code=6)
        assert message in result.stderr


def test_a_truncated_part_is_named_and_blocks_writes(tmp_path, runner):
    from tests.conftest import invoke

    store = _sample_store(tmp_path)
    part = store.root / store.manifest().parts_of("transactions")[0].path
    part.write_bytes(part.read_bytes()[:-20])
    for args in (
        ["store", "info"],
        ["features", "--as-of", "2025-01-01", "--out", str(tmp_path / "f.csv")],
        ["ingest", str(MESSY / "bom_currency.csv")],
    ):
        result = invoke(runner, *args, "--store", str(store.root), code=6)
        assert part.name in result.stderr
        assert "truncated" in result.stderr


def test_a_failed_first_write_leaves_a_directory_that_becomes_a_store(tmp_path):
    from crmkit.errors import BadInputError

    source = tmp_path / "a.csv"
    source.write_text("customer_id,ts,amount\nA,2024-01-01,1\nB,not a date,2\n")
    store = Store(tmp_path / "s")
    with pytest.raises(BadInputError, match="--strict"):
        ingest_files([source], store, IngestConfig(), now=NOW, strict=True)
    assert not store.exists()
    report = ingest_files([source], store, IngestConfig(), now=NOW)
    assert (report.rows_stored, report.rows_quarantined) == (1, 1)
    # a part directory that holds a file is not a failed first write
    (tmp_path / "t" / "transactions").mkdir(parents=True)
    (tmp_path / "t" / "transactions" / "x.parquet").write_bytes(b"PAR1")
    with pytest.raises(StoreCorruptError, match="not a crmkit store"):
        ingest_files([source], Store(tmp_path / "t"), IngestConfig(), now=NOW)
