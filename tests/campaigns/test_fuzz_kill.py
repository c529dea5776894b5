"""Kills at any moment of a daily list: afterwards list == ledger == destination table.

Each case starts ``crmkit targets`` (list files, ledger and a SQLite destination table,
with an opt-out file), kills it with SIGKILL after a random delay, checks that the store
still reads, then runs the same command to the end and checks that the contact file, the
assignment file, the ledger's rows for that day and the destination table hold the same
customers, and no opted-out one. A case may first record the day in full, so that the
killed run is a re-run of a recorded day. Each case works on its own copy of one trained
store. ``make fuzz`` multiplies the count by ``CRMKIT_FUZZ_SCALE``.
"""

from __future__ import annotations

import datetime as dt
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmkit.campaigns.ledger import read_ledger
from crmkit.store.core import Store
from tests.conftest import CRMKIT, subprocess_env, trained_sample_store

from .test_fuzz_optouts import settings_for


@pytest.fixture(scope="module")
def daily(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("kill-fuzz")
    store, registry = trained_sample_store(root)
    ids = store.transactions().select("customer_id").unique().sort("customer_id").collect()
    optouts = root / "optouts.txt"
    optouts.write_text("\n".join(ids["customer_id"].gather_every(7).to_list()) + "\n")
    return store.root, registry.root, optouts


def _command(daily: tuple[Path, Path, Path], day: dt.date, size: int) -> list[str]:
    store, registry, optouts = daily
    config = store.parent / "kill.toml"
    config.write_text(f'[targeting]\noptouts = "{optouts}"\nmin_churn_probability = 0.0\n')
    return [
        *CRMKIT, "targets", "--as-of", day.isoformat(), "--campaign", "nightly",
        "--out", str(store.parent / "out"), "--store", str(store), "--registry", str(registry),
        "--to", f"sqlite:///{store.parent / 'dest.db'}", "--table", "contacts",
        "--size", str(size), "--config", str(config), "--quiet",
    ]  # fmt: skip


def _ids(path: Path) -> set[str]:
    return set(pl.read_csv(path, schema_overrides={"customer_id": pl.String})["customer_id"])


def _copy(daily: tuple[Path, Path, Path]) -> tuple[Path, Path, Path]:
    store, registry, optouts = daily
    case = Path(tempfile.mkdtemp(dir=store.parent.parent))
    shutil.copytree(store, case / "s")
    return case / "s", registry, optouts


@settings_for(4)
@given(delay=st.floats(0.0, 2.6), day=st.integers(0, 6), recorded=st.booleans())
def test_a_kill_at_any_moment_then_a_rerun_leaves_everything_in_step(daily, delay, day, recorded):
    case = _copy(daily)
    store, _, optouts = case
    as_of = dt.date(2025, 1, 1) + dt.timedelta(days=day)
    size = (50, 120, 300)[day % 3]
    command = _command(case, as_of, size)
    if recorded:
        first = subprocess.run(command, capture_output=True, env=subprocess_env(), check=False)
        assert first.returncode == 0, first.stderr
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=subprocess_env()
    )
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    _, stderr = proc.communicate(timeout=120)
    assert b"Traceback" not in stderr
    assert proc.returncode in (-signal.SIGKILL, 0)
    Store(store).manifest()  # the store still reads
    done = subprocess.run(
        command, capture_output=True, text=True, env=subprocess_env(), check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    ledger = read_ledger(Store(store)).filter(
        (pl.col("campaign_id") == "nightly") & (pl.col("as_of") == as_of)
    )
    out = store.parent / "out" / "nightly"
    contacts = _ids(out / f"{as_of}.contacts.csv")
    assigned = _ids(out / f"{as_of}.assignments.csv")
    treated = set(ledger.filter(pl.col("group") == "treatment")["customer_id"])
    with sqlite3.connect(store.parent / "dest.db") as con:
        rows = con.execute(
            "SELECT customer_id FROM contacts WHERE campaign_id = 'nightly' AND as_of = ?",
            (as_of.isoformat(),),
        ).fetchall()
    table = {r[0] for r in rows}
    assert assigned == set(ledger["customer_id"])
    assert contacts == treated == table
    assert len(rows) == len(table)
    assert not contacts & set(optouts.read_text().split())
    assert 0 < ledger.height <= size
    shutil.rmtree(store.parent)
