"""What real exports do to ingest: amounts that are no numbers, dates whose order flips."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from crmkit.config.settings import IngestConfig
from crmkit.errors import BadInputError
from crmkit.ingest import ingest_files
from crmkit.store.core import Store
from tests.conftest import NOW


def write(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["customer_id,date,amount", *(",".join(f'"{v}"' for v in r) for r in rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def ingest(paths, store: Path, cfg: IngestConfig | None = None):
    return ingest_files([str(p) for p in paths], Store(store), cfg or IngestConfig(), now=NOW)


def stored(store: Path) -> pl.DataFrame:
    return Store(store).transactions().sort("customer_id", "ts").collect()


def test_text_around_digits_is_quarantined_never_stored(tmp_path):
    rows = [
        ("a", "2024-01-02", "SKU123"),
        ("b", "2024-01-02", "ca. 12"),
        ("c", "2024-01-02", "12:30"),
        ("d", "2024-01-02", "1/2"),
        ("e", "2024-01-02", "3x4"),
        ("f", "2024-01-02", "12kg"),
        ("g", "2024-01-02", "£1,234.50"),
        ("h", "2024-01-02", "(5.00)"),
    ]
    report = ingest([write(tmp_path / "in.csv", rows)], tmp_path / "s")
    assert report.rows_read == 8
    assert dict(report.files[0].reasons) == {"unparseable_amount": 6}
    assert stored(tmp_path / "s")["amount"].to_list() == [1234.5, -5.0]


def test_plain_file_with_one_bad_amount_late_in_the_file(tmp_path):
    rows = [(f"c{i}", "2024-01-02", f"{i}.50") for i in range(50)] + [("z", "2024-01-02", "SKU9")]
    report = ingest([write(tmp_path / "in.csv", rows)], tmp_path / "s")
    assert dict(report.files[0].reasons) == {"unparseable_amount": 1}
    assert report.rows_stored == 50


def daily(tmp_path: Path, day: str, dates: list[str]) -> Path:
    rows = [(f"c{i}", d, "10") for i, d in enumerate(dates)]
    return write(tmp_path / "inbox" / f"sales_{day}.csv", rows)


def test_day_first_source_remembered_for_an_ambiguous_next_file(tmp_path):
    store = tmp_path / "s"
    ingest([daily(tmp_path, "20240325", ["25/03/2024"])], store)
    report = ingest([daily(tmp_path, "20240305", ["05/03/2024", "06/03/2024"])], store)
    assert "earlier files of this source" in report.files[0].notes[0]
    days = stored(store).filter(pl.col("customer_id") == "c0")["ts"].dt.date().to_list()
    assert sorted(days) == [dt.date(2024, 3, 5), dt.date(2024, 3, 25)]
    sources = Store(store).require().sources
    assert [v["dayfirst"] for v in sources.values() if v.get("kind") == "file"] == [True]


def test_memory_also_holds_within_one_call(tmp_path):
    store = tmp_path / "s"
    first = daily(tmp_path, "20240325", ["25/03/2024"])
    second = daily(tmp_path, "20240305", ["05/03/2024"])
    ingest([first, second], store)
    assert dt.date(2024, 3, 5) in stored(store)["ts"].dt.date().to_list()


def test_contradicting_file_is_refused_naming_the_flags(tmp_path):
    store = tmp_path / "s"
    ingest([daily(tmp_path, "20240325", ["25/03/2024"])], store)
    before = (store / "manifest.json").read_bytes()
    with pytest.raises(BadInputError, match="--dayfirst or --monthfirst") as err:
        ingest([daily(tmp_path, "20240326", ["03/26/2024"])], store)
    assert err.value.exit_code == 3
    assert "sales_20240326.csv" in str(err.value)
    assert (store / "manifest.json").read_bytes() == before
    # told, the file is read month-first and the source remembers that from now on
    ingest([daily(tmp_path, "20240326", ["03/26/2024"])], store, IngestConfig(dayfirst=False))
    ingest([daily(tmp_path, "20240401", ["04/01/2024"])], store)
    assert dt.date(2024, 4, 1) in stored(store)["ts"].dt.date().to_list()


def test_ambiguous_new_source_refused_when_store_holds_day_first(tmp_path):
    store = tmp_path / "s"
    ingest([daily(tmp_path, "20240325", ["25/03/2024"])], store)
    other = write(tmp_path / "crm" / "orders.csv", [("x", "05/03/2024", "3")])
    with pytest.raises(BadInputError, match="already holds day-first"):
        ingest([other], store)
    ingest([other], store, IngestConfig(dayfirst=True))
    assert dt.date(2024, 3, 5) in stored(store)["ts"].dt.date().to_list()


def test_ambiguous_file_in_a_month_first_store_still_reads_month_first(tmp_path):
    store = tmp_path / "s"
    ingest([write(tmp_path / "a" / "us.csv", [("x", "03/25/2024", "3")])], store)
    report = ingest([write(tmp_path / "b" / "us.csv", [("y", "03/05/2024", "3")])], store)
    assert report.rows_stored == 1
    assert dt.date(2024, 3, 5) in stored(store)["ts"].dt.date().to_list()


def test_dotted_dates_are_day_first(tmp_path):
    store = tmp_path / "s"
    rows = [("x", "05.03.2024", "3"), ("y", "01.02.2024", "1")]
    ingest([write(tmp_path / "de.csv", rows)], store)
    assert stored(store)["ts"].dt.date().to_list() == [dt.date(2024, 3, 5), dt.date(2024, 2, 1)]


def test_an_ambiguous_first_file_remembers_nothing(tmp_path):
    store = tmp_path / "s"
    ingest([daily(tmp_path, "20240305", ["05/03/2024"])], store)
    assert not [v for v in Store(store).require().sources.values() if v.get("kind") == "file"]
    # a later file that shows day-first is not refused: nothing was known before it
    report = ingest([daily(tmp_path, "20240325", ["25/03/2024"])], store)
    assert report.rows_stored == 1
