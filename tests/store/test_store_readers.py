"""A reader keeps what it read while another process compacts the store."""

from __future__ import annotations

import json
import subprocess

import pytest

from crmkit.config.settings import IngestConfig
from crmkit.errors import StoreWriteError, from_os_error
from crmkit.ingest import ingest_files
from crmkit.store.core import Store
from tests.conftest import CRMKIT, NOW, subprocess_env


def _daily(tmp_path, store, days):
    for i in days:
        path = tmp_path / f"day{i:02d}.csv"
        path.write_text(
            f"customer_id,ts,amount\nA,2024-01-{i + 1:02d},{i}\nB,2024-02-{i + 1:02d},1\n"
        )
        ingest_files([path], store, IngestConfig(), now=NOW)


def _on_disk(store):
    return {p.relative_to(store.root).as_posix() for p in store.root.rglob("*.parquet")}


def _named(store):
    manifest = store.manifest()
    return {p.path for k in ("transactions", "quarantine") for p in manifest.parts_of(k)}


def test_a_lazy_read_survives_a_compaction_by_another_process(tmp_path):
    root = tmp_path / "s"
    writer = Store(root)
    _daily(tmp_path, writer, range(7))
    reader = Store(root)
    lazy = reader.transactions()
    before = reader.manifest().parts_of("transactions")
    for i in range(7, 12):
        path = tmp_path / f"day{i:02d}.csv"
        path.write_text(f"customer_id,ts,amount\nA,2024-01-{i + 1:02d},{i}\n")
        proc = subprocess.run(
            [*CRMKIT, "ingest", str(path), "--store", str(root), "--quiet"],
            capture_output=True,
            text=True,
            env=subprocess_env(),
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
    manifest = json.loads((root / "manifest.json").read_text())
    # the other process compacted: the parts this reader uses are retired, not deleted
    assert set(manifest["retired"]) >= {p.path for p in before} - _named(Store(root))
    assert manifest["retired"]
    frame = lazy.collect()
    assert sorted(frame["amount"].to_list()) == sorted([float(i) for i in range(7)] + [1.0] * 7)
    # once the reader is closed, the next commit deletes what was retired
    reader.close()
    _daily(tmp_path, writer, [20])
    assert json.loads((root / "manifest.json").read_text())["retired"] == []
    assert _on_disk(writer) == _named(writer)
    assert writer.transactions().collect().height == 7 * 2 + 5 + 2


def test_cli_reader_during_compaction_keeps_its_parts(tmp_path):
    """A `features` process that has read the manifest holds its parts until it ends."""
    root = tmp_path / "s"
    store = Store(root)
    _daily(tmp_path, store, range(8))
    store.close()
    holder = subprocess.Popen(  # a reader process that keeps its store open
        [
            *CRMKIT[:-2],
            "-c",
            "import sys; from crmkit.store.core import Store; s = Store(sys.argv[1]); s.manifest();"
            " print('ready', flush=True); sys.stdin.read()",
            str(root),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        held = _named(Store(root))
        _daily(tmp_path, Store(root), range(8, 12))
        assert held <= _on_disk(Store(root))
        assert json.loads((root / "manifest.json").read_text())["retired"]
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)
        if holder.stdout is not None:
            holder.stdout.close()
    _daily(tmp_path, Store(root), [20])
    assert _on_disk(Store(root)) == _named(Store(root))


def test_a_part_that_vanished_all_the_same_is_named(tmp_path):
    """A reader that closed its store and collects later gets the path, not a class name."""
    root = tmp_path / "s"
    store = Store(root)
    _daily(tmp_path, store, range(2))
    lazy = store.transactions()
    gone = sorted(_named(store))[0]
    (root / gone).unlink()
    with pytest.raises(OSError, match=gone.split("/")[-1]) as caught:
        lazy.collect()
    error = from_os_error(caught.value)
    assert isinstance(error, StoreWriteError)
    assert gone in str(error)


def test_a_copy_of_a_store_holds_no_lock_and_closes_nothing(tmp_path):
    import copy

    store = Store(tmp_path / "s")
    _daily(tmp_path, store, range(1))
    store.manifest()
    assert store.readers.held
    twin = copy.deepcopy(store)  # as a pickle for another process would be
    assert not twin.readers.held
    del twin  # must not close the original's descriptor
    assert store.readers.held
    assert store.transactions().collect().height == 2
    store.close()
    assert not store.readers.held
