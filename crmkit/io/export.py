"""Writing result tables safely: atomic, format by extension, no spreadsheet formulas."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final, TypeVar

import polars as pl

from crmkit.errors import UsageError
from crmkit.store.files import atomic_write_frame

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)

#: Leading characters that make a spreadsheet evaluate a cell (OWASP CSV injection).
FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formulas(frame: Frame) -> Frame:
    """Prefix text cells that a spreadsheet would read as a formula with an apostrophe."""
    pattern = "^[" + "".join("\\" + c if c in "-+" else c for c in FORMULA_START) + "]"
    exprs = [
        pl.when(pl.col(name).str.contains(pattern))
        .then(pl.lit("'") + pl.col(name))
        .otherwise(pl.col(name))
        .alias(name)
        for name, dtype in frame.collect_schema().items()
        if dtype == pl.String
    ]
    return frame.with_columns(exprs) if exprs else frame


#: Money columns of the exported tables, written to the cent in CSV files.
MONEY_COLUMNS: Final = frozenset(
    {
        "amount", "unit_price", "gross_spend", "first_day_spend", "refunds", "net_spend",
        "mean_order_value", "mean_spend_per_day", "spend_ly_next", "historical_value",
        "projected_value", "customer_value", "expected_value_at_risk", "expected_spend", "clv",
        "clv_value", "monetary", "revenue", "revenue_per_customer",
    }
)  # fmt: skip
_MONEY_PATTERN: Final = re.compile(r"^spend_(prev_|change_)?\d+$")


def is_money(name: str) -> bool:
    """Tell whether an exported column holds money (``spend_90``, ``customer_value``, ...)."""
    return name in MONEY_COLUMNS or bool(_MONEY_PATTERN.match(name))


def round_money(frame: Frame) -> Frame:
    """Round money columns to cents: no float noise such as 169.36000000000058 in a CSV."""
    money = [
        pl.col(n).round(2)
        for n, dtype in frame.collect_schema().items()
        if is_money(n) and dtype.is_float()
    ]
    return frame.with_columns(money) if money else frame


def _as_text(frame: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame | pl.LazyFrame:
    """Neutralise formulas and round money, for a CSV file."""
    out = round_money(neutralise_formulas(frame.lazy()))
    return out.collect() if isinstance(frame, pl.DataFrame) else out


def write_table(frame: pl.DataFrame | pl.LazyFrame, path: Path) -> Path:
    """Write ``frame`` to ``path`` (``.csv`` or ``.parquet``) atomically; a LazyFrame streamed.

    CSV text cells are neutralised against formula injection and money is rounded to cents;
    Parquet keeps values as they are.

    Raises
    ------
    UsageError
        When the extension is neither ``.csv`` nor ``.parquet``.
    """
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise UsageError(f"{path}: output must end in .csv or .parquet")
    if suffix == ".csv":
        frame = _as_text(frame)
    atomic_write_frame(frame, path)
    return path
