"""Opt-out lists: customers who must never be contacted.

An opt-out file is what other tools export: one id per line, or a delimited file (``,``
``;`` tab or ``|``, quoted or not, with a byte-order mark or not) with a header naming the
id column (``customer_id`` or any alias ingest recognises, e.g. ``CustomerID``) and any
other columns. Ids are cleaned exactly as ingest cleans them (trimmed; ``12346.0`` becomes
``12346``), so an id matches the stored customer whatever the export did to it.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Final

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


#: What is removed from every field of an opt-out file before its ids are cleaned as ingest
#: cleans them: control characters (a NUL, a Ctrl-Z end-of-file mark, C1 controls). Ingest
#: quarantines such ids; an opt-out must match the customer all the same.
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_LINE_BREAK: Final = re.compile(r"\r\n|\r|\n")


def _fields(line: str, delimiter: str | None) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter or ","), [])
    except csv.Error:
        return [line]


def read_optout_lines(path: Path) -> pl.DataFrame:
    """Read the opted-out ids of ``path`` with the line each stands on (1-based).

    Every field loses control characters, byte-order marks (anywhere: two exports joined
    with ``cat``), zero-width characters and surrounding white space, and is then cleaned
    exactly as ingest cleans ids. Lines that name no id, and a repeated header line, are
    left out. Lines are counted as an editor counts them (CR LF, LF or a lone CR).

    Raises
    ------
    BadInputError
        When the file cannot be read, or has several columns and none of them is a
        customer id column.
    """
    text = read_text(path, _WHAT)
    raw_lines = [_CONTROL.sub("", line) for line in _LINE_BREAK.split(text)]
    first = next((line.replace("\ufeff", "") for line in raw_lines if line.strip()), "")
    joined = "\ufeff" + first  # a second export's header, joined on without a line break
    numbered = [
        (n, cleaned)
        for n, line in enumerate(raw_lines, start=1)
        for piece in (line.replace(joined, "\n" + first).split("\n") if first else [line])
        if (cleaned := piece.replace("\ufeff", "")).strip()
    ]
    empty = pl.DataFrame(schema={"line": pl.Int64, schema.CUSTOMER_ID: pl.String})
    if not numbered:
        return empty
    delimiter = _dialect([numbered[0][1]])
    header = [h.strip() for h in _fields(numbered[0][1], delimiter)]
    column = _id_column(header)
    if column is not None:
        body = numbered[1:]
    elif len(header) == 1 and delimiter is None:
        column, body = 0, numbered
    else:
        shown = ", ".join(repr(h) for h in header[:8])
        raise BadInputError(
            f"{_WHAT} {path} line {numbered[0][0]}: no customer id column among {shown}; "
            "name it customer_id"
        )
    repeated = norm_name(header[column]) if body is not numbered else None
    lines, ids = [], []
    for n, line in body:
        fields = _fields(line, delimiter)
        value = fields[column] if column < len(fields) else ""
        if repeated is not None and norm_name(value) == repeated:
            continue  # the header of a second export joined to the first
        lines.append(n)
        ids.append(value)
    frame = pl.DataFrame(
        {"line": lines, schema.CUSTOMER_ID: ids},
        schema={"line": pl.Int64, schema.CUSTOMER_ID: pl.String},
    ).with_columns(clean_customer_id(pl.col(schema.CUSTOMER_ID)))
    return frame.filter(pl.col(schema.CUSTOMER_ID).is_not_null())


def read_optouts(path: Path) -> pl.Series:
    """Read and clean the opted-out customer ids of ``path`` (unique, sorted).

    Raises
    ------
    BadInputError
        As :func:`read_optout_lines`.
    """
    return read_optout_lines(path)[schema.CUSTOMER_ID].unique().sort()
