"""The line level of the mix features: codes of text columns, and sums without a mix pass.

:func:`mix_columns` are the columns :mod:`crmkit.features.mix` reads beside those of the day
pass. A bucket whose lines have no product, category or channel (:func:`has_mix_values`)
skips the mix pass: the day pass sums what the mix would have summed per customer
(:func:`day_line_sums`) and the rest is null (:func:`absent_mix`).
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import polars as pl

from crmkit import schema
from crmkit.config.settings import FeatureConfig
from crmkit.features.labels import cutoff_of
from crmkit.features.names import _MICRO
from crmkit.features.vocabulary import Vocabulary, share_columns

# --- line level ---------------------------------------------------------------------------

_PRODUCT: Final = "_ph"
_CATEGORY: Final = "_kh"
_CHANNEL: Final = "_nh"
_TEXT: Final = {_PRODUCT: schema.PRODUCT, _CATEGORY: schema.CATEGORY, _CHANNEL: schema.CHANNEL}
_HASH: Final = "_nhash"
_CATEGORY_INDEX: Final = "_kv"
_CHANNEL_INDEX: Final = "_nv"


def text_code(column: str) -> pl.Expr:
    """Dense integer code of a text column within one collect; null for null and empty text.

    Lines are grouped on these codes (packed with the customer code into one integer key),
    never on text. Codes are consistent within the plan that makes them and mean nothing
    outside it, so nothing depends on them but grouping.
    """
    text = pl.col(column)
    categories = pl.Categorical(pl.Categories.random())
    return pl.when(text != "").then(text).cast(categories).to_physical()


def vocabulary_index(column: str, values: tuple[str, ...]) -> pl.Expr:
    """Position of a line's value in the vocabulary's ``values``; null for other values."""
    out = pl.lit(None, pl.Int16)
    for i, value in reversed(list(enumerate(values))):
        out = pl.when(pl.col(column) == value).then(pl.lit(i, pl.Int16)).otherwise(out)
    return out


def value_hash(value: str) -> int:
    """Return the 64-bit hash of one text value, as channel ties are broken by it."""
    return int(pl.select(pl.lit(value, pl.String).hash()).item())


def quantity_column() -> pl.Expr:
    """Units of a line, in Int64 micro-units (refunds count as many units as they return)."""
    return (pl.col(schema.QUANTITY).abs() * 1_000_000).round().cast(pl.Int64).alias("_qty")


def mix_columns(vocab: Vocabulary) -> list[pl.Expr]:
    """Return the line columns the mix reads beside :func:`~crmkit.features.day.day_lines`' own.

    Units in micro-units, the codes of product, category and channel (:func:`text_code`),
    the channel's text hash (to break ties) and the vocabulary positions of category and
    channel.
    """
    return [
        quantity_column(),
        *(text_code(text).alias(column) for column, text in _TEXT.items()),
        pl.when(pl.col(schema.CHANNEL) != "").then(pl.col(schema.CHANNEL).hash()).alias(_HASH),
        vocabulary_index(schema.CATEGORY, vocab.categories).alias(_CATEGORY_INDEX),
        vocabulary_index(schema.CHANNEL, vocab.channels).alias(_CHANNEL_INDEX),
    ]


def _line_sums() -> list[pl.Expr]:
    """Gross spend, purchase lines, units, lines with units and their gross spend."""
    micro = pl.col(_MICRO)
    pos = micro > 0
    qty = pl.col("_qty")
    return [
        pl.when(pos).then(micro).otherwise(0).sum().alias("_mix_gross"),
        pos.sum().cast(pl.Int64).alias("_lines"),
        pl.when(pos).then(qty).sum().alias("units"),
        (pos & qty.is_not_null()).sum().cast(pl.Int64).alias("unit_lines"),
        pl.when(pos & qty.is_not_null()).then(micro).otherwise(0).sum().alias("_units_gross"),
    ]


def units_of(per_customer: pl.LazyFrame) -> pl.LazyFrame:
    """Turn ``units`` into ``_units``: null for a customer with no purchase line with units."""
    units = pl.when(pl.col("unit_lines") > 0).then(pl.col("units")).alias("_units")
    return per_customer.with_columns(units).drop("units", "unit_lines")


def has_mix_values(tx: pl.LazyFrame, as_of: dt.date) -> bool:
    """Whether any line before ``as_of`` has a product, a category or a channel.

    Reads only those three columns. Without any, the mix aggregates would all be null but
    the units: :func:`day_line_sums` gives those from the day pass instead.
    """
    known = [(pl.col(c).is_not_null() & (pl.col(c) != "")).any() for c in _TEXT.values()]
    before = tx.filter(pl.col(schema.TS) < cutoff_of(as_of))
    return bool(before.select(pl.any_horizontal(known)).collect(engine="streaming").item())


def day_line_sums() -> list[pl.Expr]:
    """Per customer and day: purchase lines, units, lines with units and their gross spend.

    The day pass sums these when no line has a product, category or channel (summed again
    per customer by :func:`customer_line_sums`): the values
    :func:`crmkit.features.mix.customer_mix` gives.
    """
    return [e for e in _line_sums() if e.meta.output_name() != "_mix_gross"]


def customer_line_sums() -> list[pl.Expr]:
    """Per customer: the sums of :func:`day_line_sums`."""
    return [pl.col(e.meta.output_name()).sum() for e in day_line_sums()]


def absent_mix(cfg: FeatureConfig, vocab: Vocabulary) -> list[pl.Expr]:
    """Return the mix totals of customers without products, categories or channels.

    All null, as the joins of :func:`crmkit.features.mix.mix_totals` leave them; the sums
    come from :func:`customer_line_sums`.
    """
    names = share_columns(vocab)
    ints = ["_mix_gross", "distinct_products", "_products_recent", "_products_before"]
    ints += ["distinct_categories", "_categories_recent", "_categories_before"]
    ints += ["distinct_channels", *(f"_{n}" for group in names.values() for n in group)]
    floats = ["top_category_share", "category_entropy", "_top_recent", "_top_before"]
    floats.append("category_refund_share_max")
    return [
        *(pl.lit(None, pl.Int64).alias(n) for n in ints),
        *(pl.lit(None, pl.Float64).alias(n) for n in floats),
        pl.lit(None, pl.Boolean).alias(f"channel_switch_{cfg.mix_window_days}"),
    ]
