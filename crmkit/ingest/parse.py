"""Vectorised parsing of messy text fields: ids, numbers and dates.

Formats are detected once per file from a sample (:func:`detect_decimal`,
:func:`detect_date_formats`); the chosen formats then become polars expressions that run
over the whole file in the streaming engine.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import polars as pl

DateKind = Literal["naive", "aware", "epoch_s", "epoch_ms", "compact"]
Decided = Literal["given", "evidence", "rule", "remembered", "default", "none"]


@dataclass(frozen=True)
class DateFormat:
    """One candidate date format."""

    fmt: str
    kind: DateKind = "naive"
    order: Literal["ymd", "dmy", "mdy", "other"] = "ymd"


_ISO: Final = (
    DateFormat("%Y-%m-%d %H:%M:%S"),
    DateFormat("%Y-%m-%d %H:%M:%S%.f"),
    DateFormat("%Y-%m-%d %H:%M"),
    DateFormat("%Y-%m-%d"),
    DateFormat("%Y-%m-%d %H:%M:%S%.f%z", "aware"),
    DateFormat("%Y-%m-%d %H:%M%z", "aware"),
    DateFormat("%Y/%m/%d %H:%M:%S"),
    DateFormat("%Y/%m/%d %H:%M"),
    DateFormat("%Y/%m/%d"),
    DateFormat("%Y.%m.%d"),
    DateFormat("%Y%m%d", "compact"),
    DateFormat("epoch-seconds", "epoch_s", "other"),
    DateFormat("epoch-milliseconds", "epoch_ms", "other"),
    DateFormat("%d %b %Y", order="other"),
    DateFormat("%d-%b-%Y", order="other"),
    DateFormat("%d %B %Y", order="other"),
    DateFormat("%b %d, %Y", order="other"),
    DateFormat("%B %d, %Y", order="other"),
)


def _slashed(order: Literal["dmy", "mdy"]) -> tuple[DateFormat, ...]:
    first, second = ("%d", "%m") if order == "dmy" else ("%m", "%d")
    out: list[DateFormat] = []
    for sep in ("/", ".", "-"):
        for year in ("%Y", "%y"):
            date = f"{first}{sep}{second}{sep}{year}"
            out += [
                DateFormat(f"{date} %H:%M:%S", order=order),
                DateFormat(f"{date} %H:%M", order=order),
                DateFormat(f"{date} %I:%M:%S %p", order=order),
                DateFormat(f"{date} %I:%M %p", order=order),
                DateFormat(date, order=order),
            ]
    return tuple(out)


DMY: Final = _slashed("dmy")
MDY: Final = _slashed("mdy")
ALL_FORMATS: Final = _ISO + DMY + MDY

#: Distinct values of a sample tried against every candidate date format.
DETECTION_VALUES: Final = 20_000


def clean_text(expr: pl.Expr) -> pl.Expr:
    """Strip surrounding white space; empty text becomes null."""
    text = expr.str.strip_chars()
    return pl.when(text.str.len_bytes() > 0).then(text)


#: Characters that are never part of an id, wherever they stand: byte-order marks (two
#: exports joined with ``cat``), zero-width spaces and joiners, soft hyphens and direction
#: marks. They are invisible, so an id with one would name another customer unseen.
INVISIBLE: Final = "[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]"


def is_ascii(expr: pl.Expr | pl.Series) -> pl.Expr | pl.Series:
    """Tell whether text is ASCII only (one byte a character)."""
    return expr.str.len_bytes() == expr.str.len_chars()


def clean_id_text(text: pl.Expr) -> pl.Expr:
    """Clean stripped id text: drop :data:`INVISIBLE` characters, then :func:`fix_float_id`."""
    return fix_float_id(clean_text(text.str.replace_all(INVISIBLE, "")))


def clean_customer_id(expr: pl.Expr) -> pl.Expr:
    """Clean an id as ingest does: invisible characters out, stripped, empty -> null.

    ``12346.0`` (a number exported as float) becomes ``12346``.
    """
    return clean_id_text(expr)


def fix_float_id(text: pl.Expr) -> pl.Expr:
    """Turn an id exported as a float (``12346.0``) back into ``12346``; ``text`` is clean.

    Written without a regular expression (the costliest part of ingest otherwise): strip
    trailing zeros; if what is left ends with a dot and the rest is an integer, drop the
    fraction.
    """
    stripped = text.str.strip_chars_end("0")
    head = stripped.str.strip_suffix(".")
    whole = stripped.str.ends_with(".") & head.str.to_integer(strict=False).is_not_null()
    return pl.when(whole).then(head).otherwise(text)


def normalise_date_text(expr: pl.Expr) -> pl.Expr:
    """Put date text in a canonical shape before parsing.

    Strips white space, turns the ISO ``T`` separator into a space, ``Z``/``UTC``/``GMT``
    suffixes into ``+0000``, and drops a trailing ``.0`` of epoch numbers written as floats.
    """
    text = expr.str.strip_chars()
    text = text.str.replace(r"^(\d{4}-\d{2}-\d{2})T", "${1} ")
    text = text.str.replace(r"\s*(Z|UTC|GMT)$", "+0000")
    text = text.str.replace(r"\s+([+-]\d{2}:?\d{2})$", "${1}")
    return text.str.replace(r"^(\d{9,13})\.0+$", "${1}")


def _parse_one(text: pl.Expr, fmt: DateFormat, *, cache: bool = True) -> pl.Expr:
    dtype = pl.Datetime("us")
    if fmt.kind == "epoch_s":
        return pl.when(text.str.contains(r"^\d{9,10}$")).then(
            pl.from_epoch(text.cast(pl.Int64, strict=False), time_unit="s").cast(dtype)
        )
    if fmt.kind == "epoch_ms":
        return pl.when(text.str.contains(r"^\d{12,13}$")).then(
            pl.from_epoch(text.cast(pl.Int64, strict=False), time_unit="ms").cast(dtype)
        )
    if fmt.kind == "compact":
        return pl.when(text.str.contains(r"^\d{8}$")).then(
            text.str.strptime(dtype, fmt.fmt, strict=False, cache=cache)
        )
    if fmt.kind == "aware":
        aware = text.str.strptime(pl.Datetime("us", "UTC"), fmt.fmt, strict=False, cache=cache)
        return aware.dt.replace_time_zone(None)
    return text.str.strptime(dtype, fmt.fmt, strict=False, cache=cache)


def parse_datetime(
    expr: pl.Expr,
    formats: Sequence[DateFormat],
    *,
    normalise: bool = True,
    stripped: bool = False,
    cache: bool = True,
) -> pl.Expr:
    """Parse date text with the first of ``formats`` that fits each value (naive UTC).

    ``normalise=False`` skips :func:`normalise_date_text` (only strips white space), for
    files whose sample shows it changes nothing; ``stripped=True`` says ``expr`` is
    stripped already. ``cache=False`` parses every value instead of looking it up in a
    cache of parsed values first, which is faster when most values are distinct
    (timestamps to the second) and slower when they repeat (dates without a time).
    """
    text = expr if stripped else expr.str.strip_chars()
    if normalise:
        text = normalise_date_text(text)
    if not formats:
        return pl.lit(None, dtype=pl.Datetime("us"))
    return pl.coalesce([_parse_one(text, f, cache=cache) for f in formats])


def explicit_format(fmt: str) -> DateFormat:
    """Wrap a user's ``--date-format``; ``%z`` makes it timezone-aware."""
    return DateFormat(fmt, "aware" if "%z" in fmt else "naive", "other")


@dataclass(frozen=True)
class DateDetection:
    """The formats chosen for a file and why.

    ``formats`` are those the sample used, most frequent first; ``normalise`` says whether
    the sample needed :func:`normalise_date_text`. :meth:`exhaustive` lists every format
    compatible with the detected day/month order, for rows the chosen ones cannot read.
    """

    formats: tuple[DateFormat, ...]
    dayfirst: bool | None
    note: str
    normalise: bool = True
    #: How the day/month order was decided: ``given`` (told), ``evidence`` (a day above 12),
    #: ``rule`` (dotted dates are day-first), ``remembered`` (as earlier files of the source),
    #: ``default`` (ambiguous slashed dates read month-first) or ``none`` (no value with a
    #: day/month order).
    decided: Decided = "none"

    @property
    def known(self) -> bool:
        """Whether the order was told, seen or remembered, not assumed: what a source keeps."""
        return self.decided in ("given", "evidence", "rule", "remembered")

    def exhaustive(self) -> tuple[DateFormat, ...]:
        """Every candidate format except the other day/month order's.

        When the order is undecided, month-first comes before day-first: an ambiguous
        ``01/02/2024`` reads as 2 January, an unambiguous ``13/02/2024`` still parses.
        """
        if self.dayfirst is None:
            ordered = [f for f in ALL_FORMATS if f not in DMY] + list(DMY)
        else:
            drop = MDY if self.dayfirst else DMY
            ordered = [f for f in ALL_FORMATS if f not in drop]
        return (*self.formats, *(f for f in ordered if f not in self.formats))


def _decide_order(
    only_dmy: int, only_mdy: int, counts: dict[DateFormat, int]
) -> tuple[bool | None, Decided, str]:
    """Decide the day/month order from the values only one order reads, and the formats."""
    if only_dmy and not only_mdy:
        return True, "evidence", "day-first dates detected"
    if only_mdy and not only_dmy:
        return False, "evidence", "month-first dates detected"
    if only_dmy and only_mdy:
        dayfirst = only_dmy >= only_mdy
        note = (
            f"both day-first ({only_dmy}) and month-first ({only_mdy}) dates in sample; "
            f"reading {'day' if dayfirst else 'month'}-first"
        )
        return dayfirst, "evidence", note
    if not any(counts[f] for f in DMY):
        return None, "none", ""
    if not any(counts[f] for f in DMY if "." not in f.fmt):
        return True, "rule", "dotted dates read day-first"
    return False, "default", "ambiguous slashed dates read month-first (use --dayfirst)"


def detect_date_formats(sample: pl.Series, dayfirst: bool | None) -> DateDetection:
    """Choose the date formats of a column from a sample of its values.

    Every candidate format is tried on the sample; those that parse at least one value are
    kept, most frequent first. Day-first and month-first slashed dates are told apart by
    values that only one order can read (a day above 12); when the sample cannot tell,
    ``dayfirst`` decides and otherwise month-first is assumed and said in the note.
    """
    decided: Decided = "given" if dayfirst is not None else "none"
    distinct = sample.drop_nulls().unique(maintain_order=True).head(DETECTION_VALUES)
    stripped = distinct.str.strip_chars()
    text = distinct.to_frame("v").select(normalise_date_text(pl.col("v"))).to_series()
    normalise = bool((text != stripped).any())
    text = text.filter(text.str.len_chars() > 0)
    if text.len() == 0:
        return DateDetection(_ISO, dayfirst, "no dates in sample", decided=decided)
    hits = text.to_frame("v").select(
        [_parse_one(pl.col("v"), f).is_not_null().alias(str(i)) for i, f in enumerate(ALL_FORMATS)]
    )
    counts = {ALL_FORMATS[int(c)]: int(hits[c].sum()) for c in hits.columns}
    dmy_any = hits.select(pl.any_horizontal([str(ALL_FORMATS.index(f)) for f in DMY]))
    mdy_any = hits.select(pl.any_horizontal([str(ALL_FORMATS.index(f)) for f in MDY]))
    only_dmy = int((dmy_any.to_series() & ~mdy_any.to_series()).sum())
    only_mdy = int((mdy_any.to_series() & ~dmy_any.to_series()).sum())
    note = ""
    if dayfirst is None:
        dayfirst, decided, note = _decide_order(only_dmy, only_mdy, counts)
    drop = MDY if dayfirst else DMY
    kept = [f for f in ALL_FORMATS if counts[f] > 0 and f not in drop]
    kept.sort(key=lambda f: -counts[f])
    if not kept:
        return DateDetection(_ISO, dayfirst, "no known date format in sample", decided=decided)
    covered = hits.select(pl.any_horizontal([str(ALL_FORMATS.index(f)) for f in kept])).to_series()
    best = [kept[0]]
    for fmt in kept[1:]:  # drop formats that parse nothing the earlier ones miss
        before = hits.select(pl.any_horizontal([str(ALL_FORMATS.index(f)) for f in best]))
        if int(before.to_series().sum()) == int(covered.sum()):
            break
        best.append(fmt)
    return DateDetection(tuple(best), dayfirst, note, normalise, decided)


_NUMBER_CHARS: Final = re.compile(r"[^0-9.,]")
_GROUPED_COMMA: Final = re.compile(r"^\d{1,3}(,\d{3})+$")
_GROUPED_DOT: Final = re.compile(r"^\d{1,3}(\.\d{3})+$")


def detect_decimal(values: Iterable[str | None], delimiter: str) -> Literal[".", ","]:
    """Decide the decimal separator of numeric text from sample values.

    A value with both separators uses the later one as decimal; a lone comma followed by
    other than three digits is a decimal comma; ``1,234`` alone is ambiguous and not counted.
    Ties go to ``","`` for semicolon-delimited files (the European convention) and ``"."``
    otherwise.
    """
    comma = point = 0
    for raw in values:
        if not raw:
            continue
        v = _NUMBER_CHARS.sub("", raw)
        if "," in v and "." in v:
            if v.rfind(",") > v.rfind("."):
                comma += 1
            else:
                point += 1
        elif "," in v:
            if not _GROUPED_COMMA.match(v):
                comma += 1
        elif "." in v and not _GROUPED_DOT.match(v):
            point += 1
    if comma > point:
        return ","
    if point > comma:
        return "."
    return "," if delimiter == ";" else "."


#: C0 control characters other than tab, line feed and carriage return: a NUL byte in an id
#: or an amount means a corrupt export, never data to clean away.
CONTROL_CHARACTERS: Final = r"[\x00-\x08\x0B\x0C\x0E-\x1F\x7F]"


def is_plain_number(values: pl.Series) -> bool:
    """Return whether every non-empty value casts to a float as it is (no clean-up needed)."""
    text = values.drop_nulls()
    text = text.filter(text.str.len_chars() > 0)
    return text.len() > 0 and text.cast(pl.Float64, strict=False).null_count() == 0
