from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmkit.ingest.amounts import parse_amount
from crmkit.ingest.parse import (
    clean_customer_id,
    detect_date_formats,
    detect_decimal,
    explicit_format,
    parse_datetime,
)


def numbers(values, decimal):
    frame = pl.DataFrame({"v": values}, schema={"v": pl.String})
    return frame.select(parse_amount(pl.col("v"), decimal)).to_series()


@pytest.mark.parametrize(
    ("text", "decimal", "expected"),
    [
        ("£1,234.50", ".", 1234.5),
        ("1.234,50 €", ",", 1234.5),
        ("(12.00)", ".", -12.0),
        ("12.00-", ".", -12.0),
        ("-5", ".", -5.0),
        ("USD 10", ".", 10.0),
        ("1e3", ".", 1000.0),
        ("12,5", ",", 12.5),
        ("1 234,5", ",", 1234.5),
    ],
)
def test_parse_number(text, decimal, expected):
    assert numbers([text], decimal).to_list() == [expected]


@pytest.mark.parametrize("text", ["n/a", "-", "", "abc", None])
def test_parse_number_rejects_non_numbers(text):
    assert numbers([text], ".").to_list() == [None]


@given(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False).map(lambda x: round(x, 2)))
def test_formatted_numbers_round_trip(value):
    us = f"${value:,.2f}"
    eu = f"{value:,.2f}".replace(",", "X").replace(".", ",").replace("X", ".") + " €"
    assert numbers([us], ".").to_list()[0] == pytest.approx(value, abs=1e-9)
    assert numbers([eu], ",").to_list()[0] == pytest.approx(value, abs=1e-9)


@given(st.lists(st.text(max_size=20) | st.none(), max_size=20))
def test_parse_number_never_crashes(values):
    out = numbers(values, ".")
    assert out.len() == len(values)
    assert out.dtype == pl.Float64


def test_detect_decimal():
    assert detect_decimal(["12,5", "1.234,50"], ",") == ","
    assert detect_decimal(["1,234.5", "3.2"], ",") == "."
    assert detect_decimal(["1,234"], ";") == ","
    assert detect_decimal(["1,234"], ",") == "."


def test_mixed_date_formats_detected_and_parsed():
    values = pl.Series(
        [
            "13/01/2024 10:00",
            "2024-01-05T10:00:00Z",
            "02/03/2024",
            "1700000000",
            "20240105",
            "2024-01-05 10:00:00.123+02:00",
            None,
            "garbage",
        ]
    )
    detection = detect_date_formats(values, None)
    assert detection.dayfirst is True
    parsed = values.to_frame("v").select(parse_datetime(pl.col("v"), detection.formats)).to_series()
    assert parsed.to_list() == [
        dt.datetime(2024, 1, 13, 10),
        dt.datetime(2024, 1, 5, 10),
        dt.datetime(2024, 3, 2),
        dt.datetime(2023, 11, 14, 22, 13, 20),
        dt.datetime(2024, 1, 5),
        dt.datetime(2024, 1, 5, 8, 0, 0, 123000),
        None,
        None,
    ]


def test_month_first_when_evident_and_ambiguous_default():
    assert detect_date_formats(pl.Series(["01/13/2024", "02/01/2024"]), None).dayfirst is False
    ambiguous = detect_date_formats(pl.Series(["01/02/2024"]), None)
    assert ambiguous.dayfirst is False
    assert "month-first" in ambiguous.note
    assert detect_date_formats(pl.Series(["01/02/2024"]), True).dayfirst is True


def test_explicit_format_with_timezone():
    fmt = explicit_format("%d|%m|%Y %H:%M %z")
    out = pl.DataFrame({"v": ["05|01|2024 10:00 +0100"]}).select(parse_datetime(pl.col("v"), [fmt]))
    assert out.item() == dt.datetime(2024, 1, 5, 9)


@given(st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2090, 1, 1)))
def test_iso_and_day_first_round_trip(value):
    value = value.replace(microsecond=0)
    texts = [value.isoformat(sep=" "), value.strftime("%d/%m/%Y %H:%M:%S")]
    detection = detect_date_formats(pl.Series(texts), True)
    parsed = pl.DataFrame({"v": texts}).select(parse_datetime(pl.col("v"), detection.formats))
    assert parsed.to_series().to_list() == [value, value]


def test_customer_id_cleaning():
    ids = pl.DataFrame({"c": [" 12346.0 ", "", "  ", "A1.0", "17850", None]})
    assert ids.select(clean_customer_id(pl.col("c"))).to_series().to_list() == [
        "12346",
        None,
        None,
        "A1.0",
        "17850",
        None,
    ]
