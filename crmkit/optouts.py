"""Opt-out lists: customers who must never be contacted.

An opt-out file is what other tools export: one id per line, or a delimited file (``,``
``;`` tab or ``|``, quoted or not, with a byte-order mark or not) with a header naming the
id column (``customer_id`` or any alias ingest recognises, e.g. ``CustomerID``) and any
other columns. Ids are cleaned exactly as ingest cleans them (trimmed; ``12346.0`` becomes
``12346``), so an id matches the stored customer whatever the export did to it.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import polars as pl

from crmkit import schema
from crmkit.errors import BadInputError
from crmkit.ingest.encoding import read_text
from crmkit.ingest.parse import clean_customer_id
from crmkit.ingest.sniff import DELIMITERS, norm_name

_WHAT = "opt-out file"


def _id_column(header: list[str]) -> int | None:
    names = {norm_name(schema.CUSTOMER_ID), *schema.ALIASES[schema.CUSTOMER_ID]}
    matches = [i for i, name in enumerate(header) if norm_name(name) in names]
    return matches[0] if len(matches) == 1 else None


def _dialect(lines: list[str]) -> str | None:
    """Return the delimiter that splits the first line into the most fields, if any."""
    best, fields = None, 1
    for delim in DELIMITERS:
        try:
            n = len(next(csv.reader(lines[:1], delimiter=delim)))
        except (csv.Error, StopIteration):
            continue
        if n > fields:
            best, fields = delim, n
    return best


def read_optouts(path: Path) -> pl.Series:
    """Read and clean the opted-out customer ids of ``path`` (unique, sorted).

    Raises
    ------
    BadInputError
        When the file cannot be read, or has several columns and none of them is a
        customer id column.
    """
    text = read_text(path, _WHAT)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return pl.Series(schema.CUSTOMER_ID, [], dtype=pl.String)
    delimiter = _dialect(lines)
    try:
        rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter or ","))
    except csv.Error as exc:
        raise BadInputError(f"{_WHAT} {path}: cannot be read as delimited text ({exc})") from exc
    header = [h.strip() for h in rows[0]]
    column = _id_column(header)
    if column is not None:
        body = rows[1:]
    elif len(header) == 1 and delimiter is None:
        column, body = 0, rows
    else:
        shown = ", ".join(repr(h) for h in header[:8])
        raise BadInputError(
            f"{_WHAT} {path} line 1: no customer id column among {shown}; name it customer_id"
        )
    ids = [row[column] if column < len(row) else "" for row in body]
    return (
        pl.Series(schema.CUSTOMER_ID, ids, dtype=pl.String)
        .to_frame()
        .select(clean_customer_id(pl.col(schema.CUSTOMER_ID)))
        .to_series()
        .drop_nulls()
        .unique()
        .sort()
    )
