"""Customer attributes: what the company knows about a customer, versioned by load.

``crmkit ingest --kind customers FILE`` loads a table keyed by ``customer_id`` with any
other columns (region, sign-up date, acquisition channel, loyalty card, age band). Each
column's type is detected once, on its first load, and kept for later loads:

* ``bool``: every value is yes/no, true/false, y/n or t/f;
* ``number``: at least 95% of the values are plain numbers and none is an integer with a
  leading zero (a code such as a postcode or ``007`` stays text);
* ``date``: at least 95% of the values are dates in one detected format;
* ``text``: anything else.

A row whose value does not fit its column's type, a row without a customer id, and rows
that give one customer different values in one file are quarantined with the reason;
identical repeated rows count as duplicates; ``read = stored + duplicate + quarantined``.
Loading a file whose bytes were loaded before changes nothing.

Each load is stored with the instant its values became known (``known_from``: the load
time, or the start of ``--known-from DATE`` for back-filled history). Features as of ``T``
use, per customer, the newest row known by the start of ``T``; so a later load changes
features only from the day after it. Chosen attributes (``[features] attributes``) join
the feature table: text and yes/no values as they are (models encode them as
categories), numbers as they are, dates as ages in days (``<name>_age_days``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import polars as pl

from crmkit import schema
from crmkit.config.settings import FeatureConfig
from crmkit.errors import BadInputError, ConfigError
from crmkit.features.attribute_names import attribute_name as attribute_name
from crmkit.features.attribute_names import refuse_computed_names
from crmkit.ingest import parse, sniff
from crmkit.store.core import Store

KIND: Final = "customers"
KNOWN_FROM: Final = "known_from"
SOURCE_SHA: Final = "source_sha256"
META: Final = (schema.CUSTOMER_ID, KNOWN_FROM, SOURCE_SHA)
TYPES: Final = ("bool", "number", "date", "text")
DTYPES: Final[dict[str, pl.DataType]] = {
    "bool": pl.Boolean(),
    "number": pl.Float64(),
    "date": pl.Date(),
    "text": pl.String(),
}
#: Share of a column's values that must parse for the column to get that type.
DETECT_SHARE: Final = 0.95
NULL_TOKENS: Final = ("", "na", "n/a", "null", "none", "nan", "-", "?")
_TRUE: Final = ("true", "yes", "y", "t")
_FALSE: Final = ("false", "no", "n", "f")
_EXAMPLES: Final = 5


@dataclass(frozen=True)
class AttributeReport:
    """What one attribute file load did; ``rows_read`` reconciles with the other counts."""

    source: str
    status: str
    rows_read: int = 0
    rows_stored: int = 0
    rows_duplicate: int = 0
    rows_quarantined: int = 0
    known_from: str = ""
    types: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return dict(self.__dict__)


def _clean(expr: pl.Expr) -> pl.Expr:
    """Strip text; blank values and the usual null tokens become null."""
    text = expr.str.strip_chars()
    return pl.when(~text.str.to_lowercase().is_in(NULL_TOKENS)).then(text)


def _id_column(header: list[str], explicit: str | None, source: Path) -> str:
    if explicit is not None:
        if explicit not in header:
            raise BadInputError(f"{source}: mapped id column {explicit!r} is missing")
        return explicit
    by_norm = {sniff.norm_name(h): h for h in header}
    for alias in ("customerid", *schema.ALIASES[schema.CUSTOMER_ID]):
        if alias in by_norm:
            return by_norm[alias]
    shown = ", ".join(repr(h) for h in header)
    raise BadInputError(
        f"{source}: no customer id column among {shown}; map it with --map customer_id=NAME"
    )


def read_attribute_file(path: Path, id_column: str | None = None) -> pl.DataFrame:
    """Read a customer file as text: ``line``, ``customer_id``, ``raw``, then attributes.

    Raises
    ------
    BadInputError
        When the file cannot be read, has no id column or two columns with one name.
    """
    raw = sniff.read_small_table(path, "customer file")
    key = _id_column(raw.columns, id_column, path)
    others = [c for c in raw.columns if c != key]
    names = [attribute_name(c) for c in others]
    clash = sorted({n for n in names if names.count(n) > 1 or n in META})
    if clash:
        raise BadInputError(f"{path}: columns that name the same attribute: {', '.join(clash)}")
    return raw.with_row_index("line", offset=2).select(
        "line",
        parse.clean_customer_id(pl.col(key)).alias(schema.CUSTOMER_ID),
        pl.struct([pl.col(h) for h in raw.columns]).struct.json_encode().alias("raw"),
        *[_clean(pl.col(c)).alias(n) for c, n in zip(others, names, strict=True)],
    )


def _is_bool(values: pl.Series) -> pl.Series:
    return values.str.to_lowercase().is_in((*_TRUE, *_FALSE))


def _leading_zero(values: pl.Series) -> bool:
    return bool(values.str.contains(r"^[+-]?0[0-9]").any())


def detect_type(values: pl.Series, dayfirst: bool | None) -> str:
    """Return the type of one column from its non-null text values."""
    present = values.drop_nulls()
    if present.len() == 0:
        return "text"
    if bool(_is_bool(present).all()):
        return "bool"
    numbers = present.str.strip_chars().cast(pl.Float64, strict=False)
    if numbers.is_not_null().mean() >= DETECT_SHARE and not _leading_zero(present):  # type: ignore[operator]
        return "number"
    dates = _parse_dates(present, dayfirst)
    if dates.is_not_null().mean() >= DETECT_SHARE:  # type: ignore[operator]
        return "date"
    return "text"


def _parse_dates(values: pl.Series, dayfirst: bool | None) -> pl.Series:
    detection = parse.detect_date_formats(values.head(10_000), dayfirst)
    if not detection.formats:
        return pl.Series(values.name, [None] * values.len(), dtype=pl.Date)
    frame = values.to_frame("v")
    return frame.select(parse.parse_datetime(pl.col("v"), detection.formats).dt.date()).to_series()


def typed_value(values: pl.Series, kind: str, dayfirst: bool | None) -> pl.Series:
    """Parse text ``values`` as ``kind``; values that do not fit become null."""
    if kind == "bool":
        lower = values.str.to_lowercase()
        return (
            pl.select(
                pl.when(lower.is_in(_TRUE))
                .then(pl.lit(value=True))
                .when(lower.is_in(_FALSE))
                .then(pl.lit(value=False))
            )
            .to_series()
            .alias(values.name)
        )
    if kind == "number":
        return values.str.strip_chars().cast(pl.Float64, strict=False)
    if kind == "date":
        return _parse_dates(values, dayfirst).alias(values.name)
    return values


def _part_paths(store: Store) -> list[Path]:
    parts = store.manifest().parts_of(KIND) if store.exists() else ()
    return [store.root / p.path for p in parts]


def stored_types(store: Store) -> dict[str, str]:
    """Types of the attributes loaded so far, by name (each fixed by its first load)."""
    out: dict[str, str] = {}
    for path in _part_paths(store):
        for name, dtype in pl.read_parquet_schema(path).items():
            if name not in META:
                out.setdefault(name, _kind_of(dtype))
    return out


def _read_parts(paths: Sequence[Path], columns: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """Read the load parts in load order with ``columns``; a part without a column gives nulls."""
    frames = []
    for path in paths:
        present = pl.read_parquet_schema(path)
        frames.append(
            pl.read_parquet(path, columns=[c for c in columns if c in present]).select(
                [
                    pl.col(c).cast(t) if c in present else pl.lit(None, t).alias(c)
                    for c, t in columns.items()
                ]
            )
        )
    return pl.concat(frames) if frames else pl.DataFrame(schema=dict(columns))


def _kind_of(dtype: pl.DataType) -> str:
    for kind, candidate in DTYPES.items():
        if dtype == candidate:
            return kind
    return "text"


def _typed(
    rows: pl.DataFrame, types: Mapping[str, str], dayfirst: bool | None
) -> tuple[pl.DataFrame, pl.Series]:
    """Typed attribute columns and, per row, the first problem (null when none)."""
    names = [c for c in rows.columns if c not in ("line", schema.CUSTOMER_ID, "raw")]
    typed = [typed_value(rows[n], types[n], dayfirst) for n in names]
    problems = [
        pl.when(rows[n].is_not_null() & t.is_null()).then(pl.lit(f"bad_{types[n]}:{n}"))
        for n, t in zip(names, typed, strict=True)
    ]
    reason = pl.select(
        pl.when(rows[schema.CUSTOMER_ID].is_null())
        .then(pl.lit("missing_customer_id"))
        .otherwise(pl.coalesce([*problems, pl.lit(None, pl.String)]))
    ).to_series()
    return rows.select("line", schema.CUSTOMER_ID, "raw").with_columns(typed), reason


def _kept_and_quarantined(
    rows: pl.DataFrame, types: Mapping[str, str], dayfirst: bool | None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split typed rows into one row per customer and the rows quarantined with a reason.

    A customer whose rows disagree is kept nowhere: every one of its rows is quarantined
    as ``conflicting_duplicate``; rows that repeat another exactly are dropped.
    """
    typed, reason = _typed(rows, dict(types), dayfirst)
    typed = typed.with_columns(reason.alias("reason"))
    good = typed.filter(pl.col("reason").is_null())
    distinct = good.unique([schema.CUSTOMER_ID, *types], keep="first", maintain_order=True)
    conflicting = distinct[schema.CUSTOMER_ID].is_duplicated()
    conflict_ids = distinct.filter(conflicting)[schema.CUSTOMER_ID].unique().implode()
    typed = typed.with_columns(
        pl.when(pl.col(schema.CUSTOMER_ID).is_in(conflict_ids) & pl.col("reason").is_null())
        .then(pl.lit("conflicting_duplicate"))
        .otherwise(pl.col("reason"))
        .alias("reason")
    )
    return distinct.filter(~conflicting), typed.filter(pl.col("reason").is_not_null())


def load_attributes(
    store: Store,
    path: Path,
    *,
    now: dt.datetime,
    known_from: dt.date | None = None,
    id_column: str | None = None,
    dayfirst: bool | None = None,
) -> AttributeReport:
    """Load one customer attribute file into the store (see the module text).

    Raises
    ------
    BadInputError
        When the file cannot be read or has no customer id column.
    """
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    rows = read_attribute_file(path, id_column)
    with store.writer(now=now) as writer:
        seen = _read_parts(_part_paths(store), {SOURCE_SHA: pl.String()})
        if sha in seen[SOURCE_SHA].to_list():
            return AttributeReport(str(path), "already loaded")
        types = {n: detect_type(rows[n], dayfirst) for n in rows.columns[3:]}
        types |= {n: t for n, t in stored_types(store).items() if n in types}
        kept, quarantined = _kept_and_quarantined(rows, types, dayfirst)
        value_columns = list(types)
        instant = dt.datetime.combine(known_from, dt.time()) if known_from else now
        stored = kept.select(
            schema.CUSTOMER_ID,
            pl.lit(instant, pl.Datetime("us")).alias(KNOWN_FROM),
            pl.lit(sha).alias(SOURCE_SHA),
            *[pl.col(n).cast(DTYPES[types[n]]) for n in value_columns],
        ).sort(schema.CUSTOMER_ID)
        writer.add_frame(KIND, stored)
        writer.add_frame(
            "quarantine",
            quarantined.select(
                pl.lit(str(path)).alias("source_file"),
                pl.col("line").cast(pl.Int64),
                "reason",
                "raw",
            ),
        )
        writer.commit()
    reasons = dict(quarantined.group_by("reason").len().sort("reason").iter_rows())
    return AttributeReport(
        str(path),
        "loaded",
        rows_read=rows.height,
        rows_stored=stored.height,
        rows_duplicate=rows.height - stored.height - quarantined.height,
        rows_quarantined=quarantined.height,
        known_from=instant.isoformat(),
        types=types,
        reasons={str(k): int(v) for k, v in reasons.items()},
    )


def attribute_schema(store: Store, names: Sequence[str]) -> dict[str, pl.DataType]:
    """Feature columns of the chosen attributes: dates as ``<name>_age_days``.

    Raises
    ------
    ConfigError
        When a chosen attribute was never loaded, or is named like a computed column.
    """
    if not names:
        return {}
    types = stored_types(store)
    missing = [n for n in names if n not in types]
    if missing:
        known = ", ".join(sorted(types)) or "none loaded"
        raise ConfigError(
            f"[features] attributes: {', '.join(missing)} not among the customer attributes "
            f"({known}); load them with `crmkit ingest --kind customers FILE`"
        )
    out: dict[str, pl.DataType] = {}
    for name in names:
        if types[name] == "date":
            out[f"{name}_age_days"] = pl.Int64()
        else:
            out[name] = DTYPES[types[name]]
    refuse_computed_names(list(out))
    return out


def attributes_as_of(store: Store, as_of: dt.date, names: Sequence[str]) -> pl.DataFrame:
    """Per customer, the chosen attributes known by the start of ``as_of`` (newest row)."""
    columns = attribute_schema(store, names)
    types = stored_types(store)
    scan_schema: dict[str, pl.DataType] = {
        schema.CUSTOMER_ID: pl.String(),
        KNOWN_FROM: pl.Datetime("us"),
        **{n: DTYPES[types[n]] for n in names},
    }
    cutoff = dt.datetime.combine(as_of, dt.time())
    latest = (
        _read_parts(_part_paths(store), scan_schema)
        .lazy()
        .with_row_index("_order")
        .filter(pl.col(KNOWN_FROM) <= cutoff)
        .sort([schema.CUSTOMER_ID, KNOWN_FROM, "_order"])
        .group_by(schema.CUSTOMER_ID, maintain_order=True)
        .last()
        .collect()
    )
    values = [
        (pl.lit(as_of) - pl.col(n)).dt.total_days().alias(f"{n}_age_days")
        if types[n] == "date"
        else pl.col(n)
        for n in names
    ]
    return latest.select(schema.CUSTOMER_ID, *values).select(
        schema.CUSTOMER_ID, *[pl.col(c).cast(t) for c, t in columns.items()]
    )


def with_attributes(
    store: Store, features: pl.DataFrame, as_of: dt.date, cfg: FeatureConfig
) -> pl.DataFrame:
    """Join the chosen customer attributes (``[features] attributes``) known by ``as_of``."""
    if not cfg.attributes:
        return features
    known = attributes_as_of(store, as_of, cfg.attributes)
    refuse_computed_names([c for c in known.columns if c != schema.CUSTOMER_ID], features.columns)
    return features.join(known, on=schema.CUSTOMER_ID, how="left", maintain_order="left")
