"""Writing result tables safely: atomic, format by extension, no spreadsheet formulas."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import polars as pl

from crmkit.errors import UsageError
from crmkit.store import atomic_write_frame

#: Leading characters that make a spreadsheet evaluate a cell (OWASP CSV injection).
FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """Prefix text cells that a spreadsheet would read as a formula with an apostrophe."""
    pattern = "^[" + "".join("\\" + c if c in "-+" else c for c in FORMULA_START) + "]"
    exprs = [
        pl.when(pl.col(name).str.contains(pattern))
        .then(pl.lit("'") + pl.col(name))
        .otherwise(pl.col(name))
        .alias(name)
        for name, dtype in frame.schema.items()
        if dtype == pl.String
    ]
    return frame.with_columns(exprs) if exprs else frame


def write_table(frame: pl.DataFrame, path: Path) -> Path:
    """Write ``frame`` to ``path`` (``.csv`` or ``.parquet``) atomically.

    CSV text cells are neutralised against formula injection; Parquet keeps values as they are.

    Raises
    ------
    UsageError
        When the extension is neither ``.csv`` nor ``.parquet``.
    """
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise UsageError(f"{path}: output must end in .csv or .parquet")
    atomic_write_frame(neutralise_formulas(frame) if suffix == ".csv" else frame, path)
    return path
