"""The amount grammar against a plain-Python reading of it, on spellings and near-misses."""

from __future__ import annotations

import os

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmkit.ingest.amounts import contradicts, parse_amount
from tests.reference_amounts import amount_spelling, amount_texts, reference_amount

SCALE = float(os.environ.get("CRMKIT_FUZZ_SCALE", "1"))


def parsed(values: list[str | None], decimal: str) -> list[float | None]:
    frame = pl.DataFrame({"v": values}, schema={"v": pl.String})
    return frame.select(parse_amount(pl.col("v"), decimal)).to_series().to_list()


@pytest.mark.parametrize(
    "text",
    [
        "SKU123",
        "ca. 12",
        "12:30",
        "1/2",
        "3x4",
        "12kg",
        "12 pcs",
        "12 %",
        "1.2.3",
        "#12",
        "12h",
        "-(12)",
        "(12",
        "12)",
        "+12-",
        "--12",
        "£12 USD",
        "££12",
        "1,2,3",
        "12..5",
        "12,34,567.00",
        "١٢",
        "\uff11\uff12",
        "inf",
        "NaN",
        "1 2",
        "e5",
        "12e",
        "0x1A",
        "12_000",
    ],
)
def test_text_around_digits_is_no_amount(text):
    assert parsed([text], ".") == [None]
    assert parsed([text], ",") == [None]


@pytest.mark.parametrize(
    ("text", "decimal", "expected"),
    [
        ("£1,234.50", ".", 1234.5),
        ("1.234,50 €", ",", 1234.5),
        ("(12.00)", ".", -12.0),
        ("£(12.00)", ".", -12.0),
        ("12.00-", ".", -12.0),
        ("-£12", ".", -12.0),
        ("£-12", ".", -12.0),
        ("\u221212.5", ".", -12.5),
        ("1'234.50", ".", 1234.5),
        ("1\u00a0234,50", ",", 1234.5),
        ("12 EUR", ".", 12.0),
        ("US$ 5", ".", 5.0),
        ("1e3", ".", 1000.0),
        ("2,5e-1", ",", 0.25),
        (".5", ".", 0.5),
        ("12.", ".", 12.0),
    ],
)
def test_documented_spellings(text, decimal, expected):
    assert parsed([text], decimal) == [expected]


def test_other_convention_is_ambiguous_not_unparseable():
    frame = pl.DataFrame({"v": ["2,5", "1.234,56", "SKU1,5", "12.5", None]})
    out = frame.select(contradicts(pl.col("v"), ".")).to_series().to_list()
    assert out == [True, True, False, False, False]


@settings(max_examples=int(400 * SCALE), deadline=None, derandomize=True)
@given(decimal=st.sampled_from([".", ","]), data=st.data())
def test_spellings_read_as_written(decimal, data):
    text, value = data.draw(amount_spelling(decimal))
    assert reference_amount(text, decimal) == value
    assert parsed([text], decimal) == [value]


@settings(max_examples=int(800 * SCALE), deadline=None, derandomize=True)
@given(decimal=st.sampled_from([".", ","]), texts=st.lists(amount_texts("."), max_size=8))
def test_parser_agrees_with_reference(decimal, texts):
    expected = [reference_amount(t, decimal) for t in texts]
    assert parsed(texts, decimal) == expected
