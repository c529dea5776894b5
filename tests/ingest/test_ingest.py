from __future__ import annotations

import csv
import datetime as dt
import io
import os
import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from crmkit.config.loading import load_settings
from crmkit.config.settings import CancellationRule, IngestConfig
from crmkit.errors import BadInputError, CrmkitError
from crmkit.ingest import ingest_files
from crmkit.store.core import Store
from crmkit.store.info import store_info
from tests.conftest import MESSY, NOW, RETAIL_CONFIG, RETAIL_SAMPLE

DEFAULT = IngestConfig()


def ingest(paths, store_dir, cfg=DEFAULT, **kw):
    return ingest_files([str(p) for p in paths], Store(store_dir), cfg, now=NOW, **kw)


def stored(store_dir) -> pl.DataFrame:
    return Store(store_dir).transactions().sort("customer_id", "ts").collect()


@pytest.mark.parametrize(
    ("name", "read", "stored_rows", "duplicate", "reasons"),
    [
        ("bom_currency.csv", 4, 4, 0, {}),
        ("latin1.csv", 3, 3, 0, {}),
        ("mixed_dates.csv", 7, 7, 0, {}),
        ("duplicates.csv", 6, 3, 3, {}),
        ("us_quantity_price.tsv", 3, 3, 0, {}),
        (
            "missing_ids.csv",
            9,
            2,
            0,
            {
                "missing_customer_id": 2,
                "unparseable_date": 1,
                "unparseable_amount": 1,
                "implausible_date": 1,
                "missing_date": 1,
                "missing_amount": 1,
            },
        ),
    ],
)
def test_messy_files(tmp_path, name, read, stored_rows, duplicate, reasons):
    report = ingest([MESSY / name], tmp_path / "s")
    (f,) = report.files
    assert (f.rows_read, f.rows_stored, f.rows_duplicate) == (read, stored_rows, duplicate)
    assert dict(f.reasons) == reasons
    assert f.rows_read == f.rows_stored + f.rows_duplicate + f.rows_quarantined
    assert stored(tmp_path / "s").height == stored_rows
    assert Store(tmp_path / "s").quarantine().height == sum(reasons.values())


def test_quarantine_keeps_file_line_reason_and_raw(tmp_path):
    ingest([MESSY / "missing_ids.csv"], tmp_path / "s")
    q = Store(tmp_path / "s").quarantine().sort("line")
    assert q["line"].to_list() == [3, 4, 5, 6, 7, 8, 9]
    assert q["reason"].to_list() == [
        "missing_customer_id",
        "missing_customer_id",
        "unparseable_date",
        "unparseable_amount",
        "implausible_date",
        "missing_date",
        "missing_amount",
    ]
    assert q["source_file"].str.ends_with("missing_ids.csv").all()
    assert '"ts":"not a date"' in q["raw"][2]


def test_decimal_comma_semicolon_with_mapping(tmp_path):
    cfg = IngestConfig(columns={"customer_id": "Kundennummer", "ts": "Datum", "amount": "Betrag"})
    report = ingest([MESSY / "semicolon_decimal_comma.csv"], tmp_path / "s", cfg)
    assert report.files[0].delimiter == ";"
    assert report.files[0].decimal == ","
    tx = stored(tmp_path / "s")
    assert tx["amount"].to_list() == [1234.5, 89.9, 12.0, -45.0, 2000.0]
    assert tx["ts"].to_list()[:2] == [dt.datetime(2024, 1, 3), dt.datetime(2024, 2, 17)]
    assert tx["order_id"].null_count() == 5  # "Bestellnummer" is no alias and was not mapped


def test_bom_currency_values(tmp_path):
    ingest([MESSY / "bom_currency.csv"], tmp_path / "s")
    tx = stored(tmp_path / "s")
    assert tx["customer_id"].to_list() == ["1001", "1001", "1002", "1003"]
    assert tx["amount"].to_list() == [1234.0, -20.0, 89.99, 12000.5]
    assert tx["order_id"].to_list() == ["A1", "A4", "A2", "A3"]


def test_latin1_text_is_transcoded(tmp_path):
    report = ingest([MESSY / "latin1.csv"], tmp_path / "s")
    assert report.files[0].encoding == "cp1252"
    tx = stored(tmp_path / "s")
    assert tx["product"].to_list() == ["Crème brûlée", "Café au lait", "Piñata"]
    assert tx["country"].to_list() == ["España", "Österreich", "Curaçao"]


def test_mixed_dates_values(tmp_path):
    ingest([MESSY / "mixed_dates.csv"], tmp_path / "s")
    ts = stored(tmp_path / "s")["ts"].to_list()
    assert ts == [
        dt.datetime(2024, 2, 10),
        dt.datetime(2024, 2, 13),
        dt.datetime(2024, 2, 14, 9, 30),
        dt.datetime(2024, 2, 15, 8),
        dt.datetime(2024, 2, 16),
        dt.datetime(2024, 2, 17, 7),
        dt.datetime(2024, 2, 17, 14, 5),
    ]


def test_quantity_times_price_and_us_dates(tmp_path):
    ingest([MESSY / "us_quantity_price.tsv"], tmp_path / "s")
    tx = stored(tmp_path / "s")
    assert tx["amount"].to_list() == [9.0, -4.5, 1250.0]
    assert tx["ts"][0] == dt.datetime(2024, 1, 15, 15, 4)
    assert tx["product"].to_list() == ["P1", "P1", "P2"]


def test_wrong_columns_lists_what_was_found(tmp_path):
    with pytest.raises(BadInputError) as info:
        ingest([MESSY / "wrong_columns.csv"], tmp_path / "s")
    message = str(info.value)
    assert "wrong_columns.csv" in message
    assert "customer_id" in message
    assert "'sku', 'description', 'stock_level'" in message
    assert not Store(tmp_path / "s").exists()


def test_empty_file_and_missing_file(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(BadInputError, match=r"empty\.csv: file is empty"):
        ingest([empty], tmp_path / "s")
    with pytest.raises(BadInputError, match="no such file"):
        ingest([tmp_path / "nope.csv"], tmp_path / "s")
    with pytest.raises(BadInputError, match="matches no file"):
        ingest([tmp_path / "*.csv.gz"], tmp_path / "s")


def test_ragged_row_names_the_line(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("customer_id,ts,amount\nA,2024-01-01,1\nB,2024-01-02,2,extra\n")
    with pytest.raises(BadInputError, match=r"ragged\.csv line 3: 4 fields where the header has 3"):
        ingest([path], tmp_path / "s")


def test_header_only_file_is_fine(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("customer_id,ts,amount\n")
    report = ingest([path], tmp_path / "s")
    assert report.rows_read == 0
    assert Store(tmp_path / "s").exists()


def test_reingest_is_a_no_op(tmp_path):
    first = ingest([MESSY / "bom_currency.csv"], tmp_path / "s")
    manifest = (tmp_path / "s" / "manifest.json").read_bytes()
    again = ingest([MESSY / "bom_currency.csv"], tmp_path / "s")
    assert first.files[0].status == "ingested"
    assert again.files[0].status == "skipped"
    assert again.rows_read == 0
    assert (tmp_path / "s" / "manifest.json").read_bytes() == manifest
    assert stored(tmp_path / "s").height == 4


def test_overlapping_files_count_duplicates(tmp_path):
    header = "order_id,customer_id,ts,amount\n"
    rows = [f"O{i},C{i % 4},2024-01-{i + 1:02d},{i}.50\n" for i in range(15)]
    (tmp_path / "a.csv").write_text(header + "".join(rows[:10]))
    (tmp_path / "b.csv").write_text(header + "".join(rows[5:]))
    report = ingest([tmp_path / "a.csv", tmp_path / "b.csv"], tmp_path / "s")
    a, b = report.files
    assert (a.rows_stored, a.rows_duplicate) == (10, 0)
    assert (b.rows_stored, b.rows_duplicate) == (5, 5)
    # the same overlap across two separate calls
    report2 = ingest([tmp_path / "a.csv"], tmp_path / "t")
    report3 = ingest([tmp_path / "b.csv"], tmp_path / "t")
    assert report2.rows_stored + report3.rows_stored == 15
    assert report3.rows_duplicate == 5
    assert stored(tmp_path / "t").height == 15


def test_strict_stores_nothing(tmp_path):
    ingest([MESSY / "bom_currency.csv"], tmp_path / "s")
    before = (tmp_path / "s" / "manifest.json").read_bytes()
    with pytest.raises(
        BadInputError, match=r"--strict: 7 row\(s\) rejected.*line 3: missing_customer_id"
    ):
        ingest([MESSY / "missing_ids.csv"], tmp_path / "s", strict=True)
    assert (tmp_path / "s" / "manifest.json").read_bytes() == before
    assert stored(tmp_path / "s").height == 4
    leftovers = list((tmp_path / "s").rglob("*.parquet"))
    assert len(leftovers) == len(Store(tmp_path / "s").manifest().parts_of("transactions"))


def test_cancellation_status_column(tmp_path):
    path = tmp_path / "status.csv"
    path.write_text(
        "customer_id,ts,amount,status\nA,2024-01-01,10,paid\nA,2024-01-02,10,Refunded\n"
    )
    cfg = IngestConfig(
        cancellations=CancellationRule(status_column="status", status_values=("refunded",))
    )
    ingest([path], tmp_path / "s", cfg)
    assert stored(tmp_path / "s")["amount"].to_list() == [10.0, -10.0]


def test_online_retail_sample_reconciles(tmp_path):
    cfg = load_settings(RETAIL_CONFIG).ingest
    report = ingest([RETAIL_SAMPLE], tmp_path / "s", cfg)
    (f,) = report.files
    assert f.rows_read == 100_816
    assert f.rows_read == f.rows_stored + f.rows_duplicate + f.rows_quarantined
    assert set(f.reasons) == {"missing_customer_id", "excluded_by_rule"}
    # every anonymous row is quarantined for exactly that reason
    raw = pl.read_csv(RETAIL_SAMPLE, infer_schema=False)
    assert f.reasons["missing_customer_id"] == raw["Customer ID"].is_null().sum()
    tx = stored(tmp_path / "s")
    products = raw.filter(
        pl.col("Customer ID").is_not_null()
        & ~pl.col("StockCode").str.contains(cfg.exclude["product"])
    )
    assert (
        f.reasons["excluded_by_rule"]
        == raw.height - products.height - f.reasons["missing_customer_id"]
    )
    assert tx["customer_id"].n_unique() == products["Customer ID"].n_unique() == 591
    cancelled = tx.filter(pl.col("order_id").str.starts_with("C"))
    assert cancelled.height > 0
    assert (cancelled["amount"] <= 0).all()
    assert (cancelled["quantity"] < 0).all()
    assert not tx["product"].str.contains("^(POST|DOT|M|BANK CHARGES)$").any()
    info = store_info(Store(tmp_path / "s"))
    assert info.rows == f.rows_stored
    assert info.rows_quarantined == f.rows_quarantined


safe_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters='\r\n"\x00'),
    max_size=12,
)
row = st.tuples(
    st.one_of(safe_text, st.sampled_from(["", "C1", "C2", " C3 "])),
    st.one_of(safe_text, st.sampled_from(["2024-01-05", "05/01/2024", "", "1700000000", "x"])),
    st.one_of(safe_text, st.sampled_from(["10", "-3.5", "£1,000.00", "", "nan", "1e400"])),
)


@hsettings(suppress_health_check=[HealthCheck.too_slow], max_examples=40)
@given(st.lists(row, max_size=25))
def test_arbitrary_rows_are_accounted_for_exactly_once(rows):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.csv"
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL)
        writer.writerow(["customer_id", "ts", "amount"])
        writer.writerows(rows)
        path.write_text(buf.getvalue(), encoding="utf-8")
        report = ingest([path], Path(tmp) / "s")
        (f,) = report.files
        assert f.rows_read == len(rows)
        assert f.rows_read == f.rows_stored + f.rows_duplicate + f.rows_quarantined
        store = Store(Path(tmp) / "s")
        lines = store.quarantine()["line"].to_list() if store.exists() else []
        assert len(set(lines)) == len(lines) == f.rows_quarantined
        assert all(2 <= line <= len(rows) + 1 for line in lines)
        if store.exists():
            tx = store.transactions().collect()
            assert tx.height == f.rows_stored
            assert tx["customer_id"].null_count() == 0
            assert tx["amount"].is_finite().all()


@hsettings(suppress_health_check=[HealthCheck.too_slow], max_examples=40)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.csv"
        path.write_bytes(b"customer_id,ts,amount\n" + data)
        try:
            report = ingest([path], Path(tmp) / "s")
        except CrmkitError as exc:
            message = str(exc)
            report = None
        if report is None:
            assert "in.csv" in message
            return
        assert (
            report.rows_read == report.rows_stored + report.rows_duplicate + report.rows_quarantined
        )


def test_formats_after_the_sample_are_rescued(tmp_path, monkeypatch):
    from crmkit.ingest import core

    monkeypatch.setattr(core, "SAMPLE_ROWS", 5)
    lines = [f"A{i},2024-01-{i + 1:02d} 10:00:00,{i}.5" for i in range(8)]
    lines += ["B1,13/02/2024,£1,000.00", "B2,2024-02-14T09:30:00Z,7", "B3,later,1"]
    path = tmp_path / "late.csv"
    path.write_text(
        "customer_id,ts,amount\n" + "\n".join(lines).replace(",£1,000.00", ',"£1,000.00"') + "\n"
    )
    report = ingest([path], tmp_path / "s")
    (f,) = report.files
    assert f.date_formats == ("%Y-%m-%d %H:%M:%S",)
    assert (f.rows_read, f.rows_stored, f.rows_quarantined) == (11, 10, 1)
    tx = stored(tmp_path / "s").filter(pl.col("customer_id").str.starts_with("B"))
    assert tx["ts"].to_list() == [dt.datetime(2024, 2, 13), dt.datetime(2024, 2, 14, 9, 30)]
    assert tx["amount"].to_list() == [1000.0, 7.0]
    q = Store(tmp_path / "s").quarantine()
    assert q["line"].to_list() == [12]
    assert q["reason"].to_list() == ["unparseable_date"]


def test_ids_longer_than_the_sample_go_to_their_own_bucket(tmp_path, monkeypatch):
    """The fast plan hashes as many words as the sample's longest id; longer ids are rescued."""
    from crmkit.hashing import stable_hash_py
    from crmkit.ingest import core

    monkeypatch.setattr(core, "SAMPLE_ROWS", 4)
    ids = [f"C{i}" for i in range(5)] + ["C" * 13, "é" * 7, "L" * 200, " padded-customer-7 "]
    lines = [f"{c},2024-01-{i + 1:02d},{i + 1}" for i, c in enumerate(ids)]
    path = tmp_path / "long.csv"
    path.write_text("customer_id,ts,amount\n" + "\n".join(lines) + "\n")
    report = ingest([path], tmp_path / "s")
    assert (report.rows_read, report.rows_stored, report.rows_quarantined) == (9, 9, 0)
    store = Store(tmp_path / "s")
    where = {}
    for part in store.require().parts_of("transactions"):
        for cid in pl.read_parquet(store.root / part.path)["customer_id"]:
            where[cid] = part.bucket
    want = [c.strip() for c in ids]
    assert sorted(where) == sorted(want)
    assert all(where[c] == stable_hash_py(c) % 16 for c in want)


def test_float_ids_after_the_sample_are_cleaned(tmp_path, monkeypatch):
    from crmkit.ingest import core

    monkeypatch.setattr(core, "SAMPLE_ROWS", 4)
    lines = [f"{100 + i},2024-01-0{i + 1},1" for i in range(5)]
    lines += ["12346.0,2024-02-01,2", "A.B,2024-02-02,3", " 77.00 ,2024-02-03,4", ".,2024-02-04,5"]
    path = tmp_path / "ids.csv"
    path.write_text("customer_id,ts,amount\n" + "\n".join(lines) + "\n")
    report = ingest([path], tmp_path / "s")
    assert (report.rows_read, report.rows_stored, report.rows_quarantined) == (9, 9, 0)
    tx = stored(tmp_path / "s").sort("amount")
    assert tx["customer_id"].to_list() == [
        "100",
        "101",
        "102",
        "103",
        "104",
        "12346",
        "A.B",
        "77",
        ".",
    ]


def test_date_cache_follows_how_often_the_sample_repeats_dates(tmp_path):
    from crmkit.ingest import parse
    from crmkit.ingest import plan as plan_module

    stamps = [f"2024-01-{d:02d} 10:{m:02d}:00" for d in range(1, 29) for m in range(60)]
    distinct = pl.DataFrame({"customer_id": "C1", "ts": stamps, "amount": "1"})
    repeated = distinct.with_columns(pl.col("ts").str.slice(0, 10))
    plan, _ = plan_module.detect_plan(tmp_path / "a.csv", distinct, DEFAULT, ",")
    assert plan.cache_dates is False
    plan, _ = plan_module.detect_plan(tmp_path / "b.csv", repeated, DEFAULT, ",")
    assert plan.cache_dates is True
    fmts = plan.dates
    got = [
        repeated.select(parse.parse_datetime(pl.col("ts"), fmts, cache=c)).to_series()
        for c in (True, False)
    ]
    assert got[0].equals(got[1])
    assert got[0].null_count() == 0


def test_csv_chunks_sets_and_restores_polars_setting(monkeypatch):
    from crmkit.ingest import files

    monkeypatch.delenv("POLARS_CSV_CHUNK_SIZE", raising=False)
    with files.csv_chunks(12345):
        assert os.environ["POLARS_CSV_CHUNK_SIZE"] == "12345"
    assert "POLARS_CSV_CHUNK_SIZE" not in os.environ
    monkeypatch.setenv("POLARS_CSV_CHUNK_SIZE", "999999")
    with files.csv_chunks(12345):
        assert os.environ["POLARS_CSV_CHUNK_SIZE"] == "999999"
    assert os.environ["POLARS_CSV_CHUNK_SIZE"] == "999999"


def test_rows_and_lines_across_small_read_chunks(tmp_path, monkeypatch):
    """Files read in chunks far smaller than the file (and than one of its rows) lose no
    row, and quarantined rows keep their line numbers across chunk boundaries and quoted
    line breaks."""
    monkeypatch.setenv("POLARS_CSV_CHUNK_SIZE", str(16 * 1024))
    big = "x" * 100_000
    lines = []
    for i in range(3000):
        amount = "n/a" if i % 997 == 5 else f"{i}.25"
        product = f'"{big}\nline two"' if i == 1500 else f"p{i % 7}"
        lines.append(f"C{i % 400},2024-03-{1 + i % 28:02d} 08:{i % 60:02d}:00,{amount},{product}")
    path = tmp_path / "chunks.csv"
    path.write_text("customer_id,ts,amount,product\n" + "\n".join(lines) + "\n")
    report = ingest([path], tmp_path / "s")
    bad = [i for i in range(3000) if i % 997 == 5]
    assert (report.rows_read, report.rows_stored, report.rows_quarantined) == (
        3000,
        3000 - len(bad),
        len(bad),
    )
    q = Store(tmp_path / "s").quarantine()
    # the line where the row starts: header, rows before, the quoted line break of row 1500
    assert q["line"].to_list() == [i + 2 + (i > 1500) for i in bad]
    text = path.read_text().split("\n")
    assert [text[line - 1].split(",")[2] for line in q["line"]] == ["n/a"] * len(bad)
    assert set(q["reason"]) == {"unparseable_amount"}
    tx = stored(tmp_path / "s")
    assert tx.filter(pl.col("product").str.len_bytes() > 1000)["product"].to_list() == [
        f"{big}\nline two"
    ]
    assert tx["amount"].sum() == pytest.approx(sum(i + 0.25 for i in range(3000) if i not in bad))


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("trailing", [True, False])
def test_quarantine_lines_count_quoted_breaks_and_blank_lines(tmp_path, newline, trailing):
    rows = [
        'C1,2024-01-01,1,"two\nlines"',
        "C2,2024-01-02,oops,p",
        "",
        'C3,2024-01-03,3,"three\n\nlines"',
        ",2024-01-04,4,p",
        "C5,2024-01-05,x,p",
    ]
    body = "\n".join(['customer_id,ts,amount,"product\nname"', *rows]).replace("\n", newline)
    path = tmp_path / "breaks.csv"
    path.write_bytes((body + (newline if trailing else "")).encode())
    report = ingest([path], tmp_path / "s")
    # the blank line is not a row: skipped and counted, never quarantined
    assert (report.rows_read, report.rows_stored, report.rows_quarantined) == (5, 2, 3)
    assert "1 blank line(s) skipped" in report.files[0].notes
    q = Store(tmp_path / "s").quarantine()
    assert q["reason"].to_list() == [
        "unparseable_amount",
        "missing_customer_id",
        "unparseable_amount",
    ]
    lines = path.read_bytes().decode().splitlines()
    assert q["line"].to_list() == [5, 10, 11]
    assert [lines[i - 1][:3] for i in q["line"]] == ["C2,", ",20", "C5,"]


def test_distinct_check_hashes_key_columns_then_all(tmp_path):
    from crmkit import schema
    from crmkit.ingest import dedupe

    def staged(name, rows):
        frame = pl.DataFrame(rows, schema=schema.TRANSACTION_SCHEMA, orient="row")
        path = tmp_path / f"{name}.parquet"
        frame.write_parquet(path)
        return [path], frame.height

    t = dt.datetime(2024, 1, 1, 9)
    base = ["O1", 1.0, 10.0, None, None, None, None]
    same_keys = staged(
        "keys", [["C1", t, 10.0, *base[:3], "p1", *base[4:]], ["C1", t, 10.0, *base]]
    )
    distinct = staged("distinct", [["C1", t, 10.0, *base], ["C2", t, 10.0, *base]])
    signed_zero = staged("zero", [["C1", t, 0.0, *base], ["C1", t, -0.0, *base]])
    check = dedupe.DistinctCheck()
    assert check(*distinct) is True
    assert check.keys_first is True
    assert check(*same_keys) is True
    assert check.keys_first is False
    assert check(*distinct) is True
    assert check(*signed_zero) is False
    assert dedupe.DistinctCheck()(*signed_zero) is False


LATIN_TEXT = (MESSY / "latin1.csv").read_bytes().decode("cp1252")


@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        ("utf-16", LATIN_TEXT.encode("utf-16")),  # with a byte-order mark
        ("utf-16", "\ufeff".encode("utf-16-be") + LATIN_TEXT.encode("utf-16-be")),
        ("utf-16-le", LATIN_TEXT.encode("utf-16-le")),  # no mark: found by its zero bytes
        ("utf-32", LATIN_TEXT.encode("utf-32")),
        ("utf-8", b"\xef\xbb\xbf" + LATIN_TEXT.encode("utf-8")),
    ],
)
def test_unicode_exports_are_read_by_their_byte_order_mark(tmp_path, encoding, data):
    path = tmp_path / "export.csv"
    path.write_bytes(data)
    report = ingest([path], tmp_path / "s")
    assert report.rows_stored == 3
    assert report.rows_quarantined == 0
    assert report.files[0].encoding == encoding
    assert stored(tmp_path / "s")["product"].to_list() == [
        "Crème brûlée",
        "Café au lait",
        "Piñata",
    ]


def test_bytes_undefined_in_the_declared_encoding_name_their_offset(tmp_path):
    path = tmp_path / "bad.csv"
    head = b"client_id,date,amount,product\nZ-1,2024-03-01,10.50,caf"
    path.write_bytes(head + b"\x81\n")  # 0x81 is undefined in cp1252
    with pytest.raises(
        BadInputError, match=rf"bad\.csv: byte offset {len(head)} is not valid cp1252"
    ):
        ingest([path], tmp_path / "s", IngestConfig(encoding="cp1252"))
    with pytest.raises(
        BadInputError, match=rf"bad\.csv: byte offset {len(head)} is not valid UTF-8"
    ):
        ingest([path], tmp_path / "s", IngestConfig(encoding="utf-8"))
    assert not (tmp_path / "s" / "manifest.json").exists()
    # auto falls back to latin-1, which defines every byte
    report = ingest([path], tmp_path / "s")
    assert report.files[0].encoding == "latin-1"
    assert report.rows_stored == 1


def test_invalid_utf8_offset_across_read_chunks():
    from crmkit.ingest import encoding

    data = "é".encode() * 10 + b"\xff" + b"x" * 10
    assert encoding.first_invalid_utf8(io.BytesIO(data)) == 20
    assert encoding.first_invalid_utf8(io.BytesIO("aé€😀".encode() * 3)) is None
    assert encoding.first_invalid_utf8(io.BytesIO(b"ab\xe2\x82")) == 2  # cut at the end


def test_field_longer_than_the_csv_module_limit_is_read(tmp_path):
    path = tmp_path / "long.csv"
    note = "x" * 200_000
    path.write_text(f"customer_id,date,amount,note\nC1,2024-01-02,5.00,{note}\nC2,2024-01-03,7,\n")
    report = ingest([path], tmp_path / "s", IngestConfig())
    assert report.rows_stored == 2


def test_blank_lines_are_not_rows_even_with_strict(tmp_path):
    path = tmp_path / "trailing.csv"
    path.write_text("customer_id,date,amount\nC1,2024-01-02,5\n\n\nC2,2024-01-03,6\n\n")
    report = ingest([path], tmp_path / "s", strict=True)
    assert (report.rows_read, report.rows_stored, report.rows_quarantined) == (2, 2, 0)


@pytest.mark.parametrize(
    ("decimal_file", "values", "stored"),
    [
        # a .-decimal file: values written the other way are never reinterpreted
        (
            'customer_id,date,amount\nA,2024-01-02,10.50\nB,2024-01-02,"1,234.56"\n'
            'C,2024-01-02,"1.234,56"\nD,2024-01-02,"€1.234,56"\nE,2024-01-02,"2,5"\n'
            "F,2024-01-02,3.25\nG,2024-01-02,4.75\nH,2024-01-02,0.99\n",
            ["A", "B", "F", "G", "H"],
            [10.5, 1234.56, 3.25, 4.75, 0.99],
        ),
        # a ,-decimal file (semicolons): 1,234.56 contradicts it
        (
            "customer_id;date;amount\nA;2024-01-02;10,50\nB;2024-01-02;1.234,56\n"
            "C;2024-01-02;1,234.56\nD;2024-01-02;7,25\n",
            ["A", "B", "D"],
            [10.5, 1234.56, 7.25],
        ),
    ],
)
def test_amounts_against_the_files_decimal_convention_are_quarantined(
    tmp_path, decimal_file, values, stored
):
    path = tmp_path / "amounts.csv"
    path.write_text(decimal_file)
    report = ingest([path], tmp_path / "s")
    tx = stored_rows = stored_frame(tmp_path / "s")
    assert tx["customer_id"].to_list() == values
    assert tx["amount"].to_list() == pytest.approx(stored)
    assert report.rows_quarantined == report.rows_read - len(values)
    assert set(Store(tmp_path / "s").quarantine()["reason"]) == {"ambiguous_amount"}
    assert stored_rows.height == len(values)


def stored_frame(store_dir):
    return Store(store_dir).transactions().sort("customer_id").collect()


def test_nul_bytes_in_ids_and_amounts_are_quarantined(tmp_path):
    path = tmp_path / "nul.csv"
    path.write_bytes(
        b"customer_id,date,amount\nC1,2024-01-02,1\x000.00\nC\x002,2024-01-02,5\n"
        b"C3,2024-01-02,7.5\n"
    )
    report = ingest([path], tmp_path / "s")
    assert stored_frame(tmp_path / "s")["amount"].to_list() == [7.5]
    assert report.rows_quarantined == 2
    assert set(Store(tmp_path / "s").quarantine()["reason"]) == {"control_character"}


def test_a_full_disk_is_named_not_blamed_on_the_input(tmp_path, small_disk, runner):
    from crmkit.simulate.history import SimulationConfig, write_sample
    from tests.conftest import invoke

    sample = write_sample(
        SimulationConfig(customers=40_000, start=dt.date(2023, 1, 1), end=dt.date(2025, 1, 1)),
        tmp_path / "data",
    )
    result = invoke(
        runner, "ingest", str(sample.transactions), "--store", str(small_disk / "s"), code=6
    )
    assert "No space left on device" in result.stderr
    assert "cannot be parsed" not in result.stderr
    assert not (small_disk / "s" / "manifest.json").exists()


def test_a_file_in_crmkits_own_columns_ingests_under_a_mapped_config(tmp_path):
    path = tmp_path / "response.csv"
    path.write_text("order_id,customer_id,ts,amount,channel\nR1,12346,2011-12-01 10:00:00,5.5,x\n")
    cfg = load_settings(RETAIL_CONFIG).ingest
    assert cfg.columns["customer_id"] == "Customer ID"
    report = ingest([path], tmp_path / "s", cfg)
    assert report.rows_stored == 1


def test_a_read_only_store_exits_6(tmp_path, small_disk, runner):
    import subprocess

    from tests.conftest import invoke

    store = small_disk / "s"
    invoke(runner, "ingest", str(MESSY / "duplicates.csv"), "--store", str(store))
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    result = invoke(
        runner, "ingest", str(MESSY / "bom_currency.csv"), "--store", str(store), code=6
    )
    assert "Read-only file system" in result.stderr
    info = invoke(runner, "store", "info", "--store", str(store), "--json")  # reading still works
    assert info["rows"] == 3


def test_an_aware_now_is_read_as_utc(tmp_path):
    """The library's callers may pass an aware time: the future-date check still works."""
    import datetime as dt

    from crmkit.config.settings import IngestConfig
    from crmkit.ingest import ingest_files
    from crmkit.store.core import Store

    path = tmp_path / "orders.csv"
    path.write_text(
        "order_id,customer_id,ts,amount\nA1,c1,2024-01-02 10:00:00,5.00\n"
        "A2,c2,2031-01-02 10:00:00,7.00\n",
        encoding="utf-8",
    )
    aware = dt.datetime(2024, 6, 1, 2, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    report = ingest_files([path], Store(tmp_path / "s"), IngestConfig(), now=aware)
    assert (report.rows_stored, report.rows_quarantined) == (1, 1)  # 2031 is implausible
