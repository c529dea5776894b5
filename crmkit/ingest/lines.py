"""Physical line numbers of quarantined rows, when quoted values span lines."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from crmkit.ingest.plan import BREAKS, HEADER_LINES, ROW


def count_newlines(path: Path) -> tuple[int, bool]:
    """Count the line feeds of a file; also whether it ends with one."""
    count, last = 0, ord("\n")
    buffer = bytearray(1024 * 1024)
    with path.open("rb", buffering=0) as fh:
        while n := fh.readinto(buffer):
            count += buffer.count(b"\n", 0, n)
            last = buffer[n - 1]
    return count, last == ord("\n")


def with_breaks_before(
    kept: pl.LazyFrame,
    path: Path,
    header: list[str],
    read_args: Mapping[str, Any],
    good_rows: int,
) -> pl.LazyFrame:
    """Add, per rejected row, the line breaks inside quoted values of the rows before it.

    A row's line is its record number plus the header plus these breaks, so that it
    names the line where the row starts in the file. Files rarely have such breaks: the
    file's line feeds are counted first (rows read, header and breaks must add up), and
    only when they do not add up is the file read again to find the rows that hold them.
    """
    records = good_rows + int(kept.select(pl.len()).collect().item())
    in_header = sum(h.count("\n") for h in header)
    newlines, ends_with_newline = count_newlines(path)
    lines = newlines + (0 if ends_with_newline else 1)
    if lines == records + HEADER_LINES + in_header:
        return kept.with_columns(pl.lit(in_header, dtype=pl.Int64).alias(BREAKS))
    breaks = pl.sum_horizontal(
        pl.col(h).str.count_matches("\n", literal=True).fill_null(0) for h in header
    )
    found = (
        pl.scan_csv(path, row_index_name=ROW, **read_args)
        .select(pl.col(ROW).cast(pl.Int64), breaks.cast(pl.Int64).alias(BREAKS))
        .filter(pl.col(BREAKS) > 0)
        .collect(engine="streaming")
        .sort(ROW)
        .with_columns(pl.col(BREAKS).cum_sum())
    )
    return (
        kept.sort(ROW)
        .join_asof(found.lazy(), on=ROW, strategy="backward", allow_exact_matches=False)
        .with_columns(pl.col(BREAKS).fill_null(0) + in_header)
    )
