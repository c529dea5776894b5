"""How a file's rows are parsed and validated: the plan, canonical fields, rejection reasons.

One streaming polars plan per file: the sample decides the *fast* plan (formats seen,
plain numbers, id lengths); rows it cannot parse are parsed again with the *exhaustive*
plan. Each rejected row gets the first reason of :data:`REASONS` that applies.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import polars as pl

from crmkit import schema
from crmkit.config.settings import IngestConfig
from crmkit.hashing import max_bytes, words_for
from crmkit.ingest import amounts, parse, sniff
from crmkit.ingest.conventions import Memory

SAMPLE_ROWS: Final = 100_000
#: Dates are parsed through a cache of parsed values unless more than this share of the
#: sample's date values are distinct (timestamps to the second rarely repeat).
DATE_CACHE_DISTINCT: Final = 0.5
ROW: Final = "__crmkit_row"
BUCKET: Final = "__crmkit_bucket"
REASON: Final = "__crmkit_reason"
OK: Final = "__crmkit_ok"
C: Final = "__crmkit_c_"
T: Final = "__crmkit_t_"
STATUS: Final = "__crmkit_status"
BREAKS: Final = "__crmkit_breaks"
HEADER_LINES: Final = 1

REASONS: Final = (
    "control_character",
    "missing_customer_id",
    "missing_date",
    "unparseable_date",
    "implausible_date",
    "missing_amount",
    "ambiguous_amount",
    "unparseable_amount",
    "implausible_amount",
    "excluded_by_rule",
)


#: Internal reason of the fast plan: an id with a dot may be a number exported as a float,
#: which only the exhaustive plan cleans, and an id longer than the sample's longest (in
#: hash words) needs the hash for any length. It never reaches the quarantine.
RETRY_ID: Final = "__retry_id"
#: Internal reason of a line with no value at all: skipped and counted, never quarantined.
BLANK: Final = "blank_line"
RETRYABLE: Final = ("unparseable_date", "unparseable_amount", RETRY_ID)


@dataclass(frozen=True)
class Plan:
    """How a file's fields are parsed.

    The *fast* plan uses what the sample showed (the date formats seen, plain numbers, ids
    without a dot, whether date values repeat enough for a parse cache, and the longest
    id, so that the bucket hash reads a fixed number of words); rows it rejects as
    unparseable or longer are parsed again with the *exhaustive* plan.
    """

    mapping: Mapping[str, str]
    decimal: Literal[".", ","]
    dates: tuple[parse.DateFormat, ...]
    normalise_dates: bool
    plain_numbers: bool
    clean_ids: bool
    cache_dates: bool = True
    id_words: int | None = None
    #: Canonical columns whose source values are typed (a timestamp, a number), not text:
    #: they are taken as they are instead of parsed.
    typed: frozenset[str] = frozenset()

    def exhaustive(self, detection: parse.DateDetection) -> Plan:
        """Return the plan that tries every date format and number form."""
        dates = detection.exhaustive()
        return Plan(self.mapping, self.decimal, dates, True, False, True, typed=self.typed)


def detect_plan(
    source: Path,
    sample: pl.DataFrame,
    cfg: IngestConfig,
    delimiter: str,
    memory: Memory | None = None,
) -> tuple[Plan, parse.DateDetection]:
    """Choose the fast plan from a file's sample; also return the date detection.

    ``memory`` holds the day/month orders the store remembers for file sources
    (:mod:`crmkit.ingest.conventions`); without it, each file decides alone.

    Raises
    ------
    BadInputError
        When required columns cannot be mapped, or the file's day/month order contradicts
        its source's or cannot be told where the store holds day-first sources.
    """
    mapping = sniff.resolve_columns(sample.columns, cfg.columns, source)
    numeric = [mapping[c] for c in schema.NUMERIC_COLUMNS if c in mapping]
    if cfg.decimal == "auto":
        values: list[str | None] = []
        for name in numeric:
            values += sample[name].head(20_000).to_list()
        decimal = parse.detect_decimal(values, delimiter)
    else:
        decimal = cfg.decimal
    plain = decimal == "." and all(parse.is_plain_number(sample[name]) for name in numeric)
    ids = sample[mapping[schema.CUSTOMER_ID]].drop_nulls()
    clean_ids = bool((ids.str.contains(".", literal=True) | ~parse.is_ascii(ids)).any())
    stamps = sample[mapping[schema.TS]]
    cache = stamps.n_unique() <= DATE_CACHE_DISTINCT * max(stamps.len(), 1)
    id_bytes = sample.select(
        pl.col(mapping[schema.CUSTOMER_ID]).str.strip_chars().str.len_bytes().max().fill_null(0)
    ).item()
    id_words = max(1, words_for(int(id_bytes)))
    if cfg.date_format:
        fmt = parse.explicit_format(cfg.date_format)
        dates = parse.DateDetection((fmt,), cfg.dayfirst, "", normalise=True)
        return Plan(mapping, decimal, (fmt,), True, plain, clean_ids, cache, id_words), dates
    dates = parse.detect_date_formats(stamps, cfg.dayfirst)
    if cfg.dayfirst is None and memory is not None:
        remembered = memory.decide(source, dates)
        if remembered is not None:
            order = "day-first" if remembered else "month-first"
            dates = dataclasses.replace(
                parse.detect_date_formats(stamps, remembered),
                note=f"ambiguous dates read {order}, as earlier files of this source",
                decided="remembered",
            )
    plan = Plan(mapping, decimal, dates.formats, dates.normalise, plain, clean_ids, cache, id_words)
    return plan, dates


def clean_rows(rows: pl.LazyFrame, plan: Plan, cfg: IngestConfig) -> pl.LazyFrame:
    """Add every source column the plan reads, stripped, with empty text as null.

    Done once per column, in two steps so that each is evaluated once.
    """
    sources = {T + c: raw for c, raw in plan.mapping.items() if c not in plan.typed}
    if cfg.cancellations.status_column:
        sources[STATUS] = cfg.cancellations.status_column
    strip = [pl.col(raw).str.strip_chars().alias(name) for name, raw in sources.items()]
    strip += [pl.col(plan.mapping[c]).alias(T + c) for c in sorted(plan.typed)]
    return rows.with_columns(strip).with_columns(
        pl.when(pl.col(n).str.len_bytes() > 0).then(pl.col(n)).alias(n) for n in sources
    )


@dataclass(frozen=True)
class _Fields:
    """The cleaned text and numbers of a plan's mapped columns (absent ones are null)."""

    plan: Plan

    def has(self, canonical: str) -> bool:
        """Tell whether the file has a column for ``canonical``."""
        return canonical in self.plan.mapping

    def text(self, canonical: str) -> pl.Expr:
        """Return the cleaned text of ``canonical`` (null when the file has no such column)."""
        if not self.has(canonical):
            return pl.lit(None, dtype=pl.String)
        return pl.col(T + canonical)

    def num(self, canonical: str) -> pl.Expr:
        """Return ``canonical`` as a number in the file's convention (null when absent)."""
        if not self.has(canonical):
            return pl.lit(None, dtype=pl.Float64)
        if canonical in self.plan.typed:
            return pl.col(T + canonical).cast(pl.Float64)
        if self.plan.plain_numbers:
            return self.text(canonical).cast(pl.Float64, strict=False)
        return amounts.parse_amount(self.text(canonical), self.plan.decimal)

    def numeric(self) -> list[str]:
        """Return the mapped numeric columns read from text (typed Parquet ones are not)."""
        return [c for c in schema.NUMERIC_COLUMNS if self.has(c) and c not in self.plan.typed]


def _cancelled(f: _Fields, cfg: IngestConfig) -> pl.Expr:
    """Flag a line the cancellation rule marks: an order-id prefix or a status value."""
    cancelled = pl.lit(value=False)
    rule = cfg.cancellations
    if rule.order_id_prefix and f.has(schema.ORDER_ID):
        prefixed = f.text(schema.ORDER_ID).str.starts_with(rule.order_id_prefix)
        cancelled = cancelled | prefixed.fill_null(value=False)
    if rule.status_column:
        values = [v.lower() for v in rule.status_values]
        status = pl.col(STATUS).str.to_lowercase()
        cancelled = cancelled | status.is_in(values).fill_null(value=False)
    return cancelled


def _any(conditions: list[pl.Expr]) -> pl.Expr:
    out = pl.lit(value=False)
    for condition in conditions:
        out = out | condition.fill_null(value=False)
    return out


def _ambiguous(f: _Fields) -> pl.Expr:
    """Flag a number valid only in the other decimal convention."""
    if f.plan.plain_numbers:
        return pl.lit(value=False)
    return _any([amounts.contradicts(f.text(c), f.plan.decimal) for c in f.numeric()])


def _control(f: _Fields) -> pl.Expr:
    """Flag a control byte in an id or an amount.

    An id with one would be stored as another customer, and an amount with one is a
    corrupt export: both are named as such (plain numbers with one fail to parse anyway,
    and a date's fail to parse), so only those two are checked.
    """
    checked = [schema.CUSTOMER_ID] if f.plan.plain_numbers else [schema.CUSTOMER_ID, *f.numeric()]
    return _any([f.text(c).str.contains(parse.CONTROL_CHARACTERS) for c in checked])


def _amount_present(f: _Fields) -> pl.Expr:
    present = f.text(schema.AMOUNT).is_not_null()
    if f.has(schema.QUANTITY) and f.has(schema.UNIT_PRICE):
        both = f.text(schema.QUANTITY).is_not_null() & f.text(schema.UNIT_PRICE).is_not_null()
        present = present | both
    return present.fill_null(value=False)


def _excluded(f: _Fields, cfg: IngestConfig) -> pl.Expr:
    """Flag a line an ``[ingest.exclude]`` pattern matches."""
    matches = []
    for canonical, pattern in cfg.exclude.items():
        if f.has(canonical):
            value = f.text(canonical)
            value = value.cast(pl.String) if canonical in f.plan.typed else value
            matches.append(value.str.contains(pattern))
    return _any(matches)


def _retry(f: _Fields) -> pl.Expr:
    """Flag ids the fast path cannot take as they are: read again with id cleaning."""
    customer = f.text(schema.CUSTOMER_ID)
    conditions = []
    if not f.plan.clean_ids:
        conditions.append(customer.str.contains(".", literal=True) | ~parse.is_ascii(customer))
    if f.plan.id_words is not None:
        conditions.append(customer.str.len_bytes() > max_bytes(f.plan.id_words))
    return _any(conditions)


def _timestamp(f: _Fields) -> pl.Expr:
    plan = f.plan
    if schema.TS in plan.typed:
        return f.text(schema.TS).cast(pl.Datetime("us"))
    return parse.parse_datetime(
        f.text(schema.TS), plan.dates, normalise=plan.normalise_dates, stripped=True,
        cache=plan.cache_dates,
    )  # fmt: skip


def canonical_exprs(plan: Plan, cfg: IngestConfig) -> list[pl.Expr]:
    """Canonical fields and presence flags, from the :func:`_cleaned_exprs` columns."""
    f = _Fields(plan)
    quantity, unit_price = f.num(schema.QUANTITY), f.num(schema.UNIT_PRICE)
    derived = quantity * unit_price
    amount = pl.coalesce(f.num(schema.AMOUNT), derived) if f.has(schema.AMOUNT) else derived
    cancelled = _cancelled(f, cfg)
    amount = pl.when(cancelled).then(-amount.abs()).otherwise(amount)
    quantity = pl.when(cancelled).then(-quantity.abs()).otherwise(quantity)
    customer = f.text(schema.CUSTOMER_ID)
    return [
        (parse.clean_id_text(customer) if plan.clean_ids else customer).alias(
            C + schema.CUSTOMER_ID
        ),
        _retry(f).alias(C + "retry"),
        _timestamp(f).alias(C + schema.TS),
        f.text(schema.TS).is_not_null().alias(C + "ts_present"),
        amount.alias(C + schema.AMOUNT),
        _amount_present(f).alias(C + "amount_present"),
        quantity.alias(C + schema.QUANTITY),
        unit_price.alias(C + schema.UNIT_PRICE),
        _excluded(f, cfg).alias(C + "excluded"),
        _ambiguous(f).alias(C + "ambiguous"),
        _control(f).alias(C + "control"),
        *(f.text(c).alias(C + c) for c in schema.TEXT_COLUMNS),
    ]


def rejections(cfg: IngestConfig, now: dt.datetime) -> list[tuple[str, pl.Expr]]:
    """Each reason to reject a row with its condition, in the order they are tested."""
    ts, amount = pl.col(C + schema.TS), pl.col(C + schema.AMOUNT)
    earliest = dt.datetime.combine(cfg.min_date, dt.time())
    latest = now + dt.timedelta(days=cfg.max_future_days)
    return [
        (BLANK, pl.col(C + "blank")),
        (RETRY_ID, pl.col(C + "retry")),
        ("control_character", pl.col(C + "control")),
        ("missing_customer_id", pl.col(C + schema.CUSTOMER_ID).is_null()),
        ("missing_date", ~pl.col(C + "ts_present")),
        ("unparseable_date", ts.is_null()),
        ("implausible_date", (ts < earliest) | (ts > latest)),
        ("missing_amount", ~pl.col(C + "amount_present")),
        ("ambiguous_amount", pl.col(C + "ambiguous")),
        ("unparseable_amount", amount.is_null()),
        ("implausible_amount", ~amount.is_finite() | (amount.abs() > cfg.max_abs_amount)),
        ("excluded_by_rule", pl.col(C + "excluded")),
    ]


def accepted_expr(cfg: IngestConfig, now: dt.datetime) -> pl.Expr:
    """Return whether no rejection applies to a row (a null condition does not apply)."""
    applies = [condition.fill_null(value=False) for _, condition in rejections(cfg, now)]
    return ~pl.any_horizontal(applies)


def reason_expr(cfg: IngestConfig, now: dt.datetime) -> pl.Expr:
    """Return the first reason that applies to a row, or null."""
    reason = pl.lit(None, dtype=pl.String)
    for name, condition in reversed(rejections(cfg, now)):
        reason = pl.when(condition).then(pl.lit(name)).otherwise(reason)
    return reason.alias(REASON)
