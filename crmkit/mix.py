"""What and how customers buy: products, categories, channels, units and unit prices.

Part of the shared feature pipeline (:mod:`crmkit.features`), computed from the same
transactions before the as-of date and joined to the per-customer totals. Purchases are
positive lines; refunds are negative ones. With ``W = mix_window_days``:

* ``distinct_products``, ``distinct_categories``, ``distinct_channels``: distinct values
  bought; ``distinct_products_W``, ``distinct_categories_W`` in ``[T - W, T)`` and their
  change against ``[T - 2W, T - W)``;
* ``top_category_share``: the customer's largest category's share of gross spend;
  ``category_entropy``: the entropy of the spend shares over the customer's categories,
  divided by its maximum ``log(k)`` (0 for one category); ``top_category_share_change_W``:
  the recent window's top share minus the one before;
* ``category_refund_share_max``: the largest refund share (refunds / gross spend) among
  the customer's categories that hold at least a tenth of their gross spend;
* ``channel_switch_W``: the channel with the most spend in the recent window differs from
  the one in the window before (null unless both windows have purchases with a channel);
* ``lines_per_order``, ``units_per_order``, ``mean_unit_price``: purchase lines and
  units per order and gross spend per unit;
* for each of the store's most frequent categories and channels (a :class:`Vocabulary`,
  learned as of the date and recorded in model cards): ``category_share_<name>`` and
  ``channel_share_<name>`` (share of gross spend) and ``channel_days_share_<name>`` (share
  of purchase days with a purchase there).

A column the export does not have gives null features, never an error. Sums are exact
integers (micro-units) so that results do not depend on the order of parallel work.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import polars as pl

from crmkit import schema
from crmkit.config import FeatureConfig
from crmkit.errors import BadInputError
from crmkit.labels import cutoff_of

_CODE: Final = "_code"
_AGE: Final = "_mix_age"
_MICRO: Final = "_mix_micro"
_POS: Final = "_mix_pos"
_PER_MICRO: Final = 1e-6
_SLUG_LENGTH: Final = 40
#: Categories below this share of a customer's gross spend are left out of the refund share.
REFUND_SHARE_MIN_SPEND: Final = 0.1


@dataclass(frozen=True)
class Vocabulary:
    """The store's most frequent categories and channels, most frequent first."""

    categories: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()

    def to_json(self) -> dict[str, list[str]]:
        """Return the vocabulary as recorded in model cards."""
        return {"categories": list(self.categories), "channels": list(self.channels)}

    @classmethod
    def from_json(cls, data: Any) -> Vocabulary:  # noqa: ANN401
        """Read a vocabulary from a model card.

        Raises
        ------
        BadInputError
            When the entry is not two lists of text.
        """
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise BadInputError("the model card's vocabulary is not a table")
        values = {}
        for key in ("categories", "channels"):
            items = data.get(key, [])
            if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
                raise BadInputError(f"the model card's vocabulary {key} is not a list of text")
            values[key] = tuple(items)
        return cls(**values)


def learn_vocabulary(tx: pl.LazyFrame, as_of: dt.date, cfg: FeatureConfig) -> Vocabulary:
    """Return the ``top_categories`` categories and ``top_channels`` channels of ``tx``.

    Counted over purchase lines before ``as_of``; ties go to the smaller value, so the
    result does not depend on row order.
    """
    before = tx.filter((pl.col(schema.TS) < cutoff_of(as_of)) & (pl.col(schema.AMOUNT) > 0))

    def top(column: str, k: int) -> tuple[str, ...]:
        if k == 0:
            return ()
        counts = (
            before.select(pl.col(column).str.strip_chars())
            .filter(pl.col(column).str.len_chars() > 0)
            .group_by(column)
            .agg(pl.len().alias("n"))
            .sort(["n", column], descending=[True, False])
            .head(k)
            .collect()
        )
        return tuple(counts[column].to_list())

    return Vocabulary(
        top(schema.CATEGORY, cfg.top_categories), top(schema.CHANNEL, cfg.top_channels)
    )


def slug(value: str) -> str:
    """Lower-case letters and digits of ``value`` joined by ``_``: a safe column suffix."""
    text = re.sub(r"[^a-z0-9]+", "_", value.lower()).strip("_")[:_SLUG_LENGTH].strip("_")
    return text or "value"


def _slugs(values: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for value in values:
        base, n = slug(value), 2
        name = base
        while name in out:
            name, n = f"{base}_{n}", n + 1
        out.append(name)
    return out


def share_columns(vocab: Vocabulary) -> dict[str, list[str]]:
    """Column names of the per-category and per-channel shares, in vocabulary order."""
    cats, chans = _slugs(vocab.categories), _slugs(vocab.channels)
    return {
        "category_share": [f"category_share_{s}" for s in cats],
        "channel_share": [f"channel_share_{s}" for s in chans],
        "channel_days_share": [f"channel_days_share_{s}" for s in chans],
    }


def mix_schema(cfg: FeatureConfig, vocab: Vocabulary) -> dict[str, pl.DataType]:
    """Names and dtypes of the mix features."""
    w = cfg.mix_window_days
    out: dict[str, pl.DataType] = {
        "distinct_products": pl.Int64(),
        f"distinct_products_{w}": pl.Int64(),
        f"distinct_products_change_{w}": pl.Int64(),
        "distinct_categories": pl.Int64(),
        f"distinct_categories_{w}": pl.Int64(),
        f"distinct_categories_change_{w}": pl.Int64(),
        "top_category_share": pl.Float64(),
        "category_entropy": pl.Float64(),
        f"top_category_share_change_{w}": pl.Float64(),
        "category_refund_share_max": pl.Float64(),
        "distinct_channels": pl.Int64(),
        f"channel_switch_{w}": pl.Boolean(),
        "lines_per_order": pl.Float64(),
        "units_per_order": pl.Float64(),
        "mean_unit_price": pl.Float64(),
    }
    for names in share_columns(vocab).values():
        out |= dict.fromkeys(names, pl.Float64())
    return out


# --- line level ---------------------------------------------------------------------------


def mix_lines(tx: pl.LazyFrame, as_of: dt.date, code: pl.Expr) -> pl.LazyFrame:
    """Lines before ``as_of`` with the customer code, the day's age and micro-unit amounts."""
    age = (pl.lit(as_of) - pl.col(schema.TS).dt.date()).dt.total_days().cast(pl.Int32)
    return tx.filter(pl.col(schema.TS) < cutoff_of(as_of)).select(
        code.alias(_CODE),
        age.alias(_AGE),
        (pl.col(schema.AMOUNT) * 1_000_000).round().cast(pl.Int64).alias(_MICRO),
        (pl.col(schema.AMOUNT) > 0).alias(_POS),
        pl.col(schema.ORDER_ID),
        (pl.col(schema.QUANTITY).abs() * 1_000_000).round().cast(pl.Int64).alias("_qty"),
        _text(schema.PRODUCT),
        _text(schema.CATEGORY),
        _text(schema.CHANNEL),
    )


def _text(column: str) -> pl.Expr:
    """Return a text column with blank values as null."""
    value = pl.col(column).str.strip_chars()
    return pl.when(value.str.len_chars() > 0).then(value).alias(column)


def _distinct(column: str, where: pl.Expr) -> pl.Expr:
    """Distinct non-null values of ``column`` among purchase lines where ``where`` holds.

    Counted over 64-bit hashes (a collision among one customer's values has a chance of
    about 1e-15); null when the customer has no value of the column at all.
    """
    value = pl.col(column)
    known = pl.col(_POS) & value.is_not_null()
    count = value.hash().filter(known & where).n_unique().cast(pl.Int64)
    return pl.when(known.any()).then(count)


def _windows(w: int) -> tuple[pl.Expr, pl.Expr]:
    age = pl.col(_AGE)
    return age <= w, (age > w) & (age <= 2 * w)


def line_aggregates(cfg: FeatureConfig, vocab: Vocabulary) -> list[pl.Expr]:
    """Per customer, from purchase lines: distinct values, units, vocabulary spend and days."""
    recent, before = _windows(cfg.mix_window_days)
    pos, micro = pl.col(_POS), pl.col(_MICRO)
    qty = pl.col("_qty")
    has_qty = pos & qty.is_not_null()
    exprs = [
        pl.when(pos).then(micro).otherwise(0).sum().alias("_mix_gross"),
        pl.col(_AGE).filter(pos).n_unique().cast(pl.Int64).alias("_mix_days"),
        pos.sum().cast(pl.Int64).alias("_lines"),
        _distinct(schema.PRODUCT, pl.lit(value=True)).alias("distinct_products"),
        _distinct(schema.PRODUCT, recent).alias("_products_recent"),
        _distinct(schema.PRODUCT, before).alias("_products_before"),
        _distinct(schema.CATEGORY, pl.lit(value=True)).alias("distinct_categories"),
        _distinct(schema.CATEGORY, recent).alias("_categories_recent"),
        _distinct(schema.CATEGORY, before).alias("_categories_before"),
        _distinct(schema.CHANNEL, pl.lit(value=True)).alias("distinct_channels"),
        pl.when(has_qty.any()).then(qty.filter(has_qty).sum()).alias("_units"),
        pl.when(has_qty.any()).then(micro.filter(has_qty).sum()).alias("_units_gross"),
    ]
    names = share_columns(vocab)
    for value, name in zip(vocab.categories, names["category_share"], strict=True):
        is_value = pos & (pl.col(schema.CATEGORY) == value)
        exprs.append(pl.when(is_value).then(micro).otherwise(0).sum().alias(f"_{name}"))
    for value, spend, days in zip(
        vocab.channels, names["channel_share"], names["channel_days_share"], strict=True
    ):
        is_value = pos & (pl.col(schema.CHANNEL) == value)
        exprs.append(pl.when(is_value).then(micro).otherwise(0).sum().alias(f"_{spend}"))
        exprs.append(pl.col(_AGE).filter(is_value).n_unique().alias(f"_{days}"))
    return exprs


def category_aggregates(lines: pl.LazyFrame, cfg: FeatureConfig) -> pl.LazyFrame:
    """Per customer, from spend per category: top share, entropy, refund share, change."""
    recent, before = _windows(cfg.mix_window_days)
    micro, pos = pl.col(_MICRO), pl.col(_POS)
    per = (
        lines.filter(pl.col(schema.CATEGORY).is_not_null())
        .group_by(_CODE, schema.CATEGORY)
        .agg(
            pl.when(pos).then(micro).otherwise(0).sum().alias("g"),
            pl.when(pos).then(0).otherwise(-micro).sum().alias("r"),
            pl.when(pos & recent).then(micro).otherwise(0).sum().alias("g_recent"),
            pl.when(pos & before).then(micro).otherwise(0).sum().alias("g_before"),
        )
        .filter(pl.col("g") > 0)
    )
    g = pl.col("g")
    total = g.sum().cast(pl.Float64)
    p = g.cast(pl.Float64) / total
    # sorted, then summed one by one: the same terms in the same order on every run
    entropy = (-(p * p.log())).sort().cum_sum().last()
    k = pl.len().cast(pl.Float64)
    large = g.cast(pl.Float64) >= REFUND_SHARE_MIN_SPEND * total
    return per.group_by(_CODE).agg(
        (g.max().cast(pl.Float64) / total).alias("top_category_share"),
        pl.when(k > 1).then(entropy / k.log()).otherwise(0.0).alias("category_entropy"),
        _top_share("g_recent").alias("_top_recent"),
        _top_share("g_before").alias("_top_before"),
        (pl.col("r").cast(pl.Float64) / g.cast(pl.Float64))
        .filter(large)
        .max()
        .alias("category_refund_share_max"),
    )


def _top_share(column: str) -> pl.Expr:
    value = pl.col(column)
    total = value.sum()
    return pl.when(total > 0).then(value.max().cast(pl.Float64) / total.cast(pl.Float64))


def channel_aggregates(lines: pl.LazyFrame, cfg: FeatureConfig) -> pl.LazyFrame:
    """Per customer: whether the channel with the most recent spend changed (``channel_switch``)."""
    recent, before = _windows(cfg.mix_window_days)
    micro, pos = pl.col(_MICRO), pl.col(_POS)
    per = (
        lines.filter(pl.col(schema.CHANNEL).is_not_null() & pos)
        .group_by(_CODE, schema.CHANNEL)
        .agg(
            pl.when(recent).then(micro).otherwise(0).sum().alias("g_recent"),
            pl.when(before).then(micro).otherwise(0).sum().alias("g_before"),
        )
    )

    def leader(column: str) -> pl.Expr:
        spend = pl.col(column)
        ranked = pl.col(schema.CHANNEL).filter(spend > 0)
        order = spend.filter(spend > 0)
        return ranked.sort_by([order, ranked], descending=[True, False]).first()

    w = cfg.mix_window_days
    return per.group_by(_CODE).agg(
        (leader("g_recent") != leader("g_before")).alias(f"channel_switch_{w}")
    )


def mix_totals(
    tx: pl.LazyFrame, as_of: dt.date, cfg: FeatureConfig, vocab: Vocabulary, code: pl.Expr
) -> pl.LazyFrame:
    """Per customer code: the mix aggregates (money in micro-units, not yet ratios)."""
    lines = mix_lines(tx, as_of, code)
    main = lines.group_by(_CODE).agg(line_aggregates(cfg, vocab))
    return main.join(category_aggregates(lines, cfg), on=_CODE, how="left").join(
        channel_aggregates(lines, cfg), on=_CODE, how="left"
    )


def mix_derived(cfg: FeatureConfig, vocab: Vocabulary) -> list[pl.Expr]:
    """Compute the mix features from :func:`mix_totals` and the customer's ``orders``."""
    w = cfg.mix_window_days
    gross = pl.col("_mix_gross").cast(pl.Float64)
    units = pl.col("_units").cast(pl.Float64)
    out = [
        pl.col("_products_recent").alias(f"distinct_products_{w}"),
        (pl.col("_products_recent") - pl.col("_products_before")).alias(
            f"distinct_products_change_{w}"
        ),
        pl.col("_categories_recent").alias(f"distinct_categories_{w}"),
        (pl.col("_categories_recent") - pl.col("_categories_before")).alias(
            f"distinct_categories_change_{w}"
        ),
        (pl.col("_top_recent") - pl.col("_top_before")).alias(f"top_category_share_change_{w}"),
        (pl.col("_lines").cast(pl.Float64) / pl.col("orders").cast(pl.Float64)).alias(
            "lines_per_order"
        ),
        pl.when(units > 0)
        .then(units * _PER_MICRO / pl.col("orders").cast(pl.Float64))
        .alias("units_per_order"),
        pl.when(units > 0)
        .then(pl.col("_units_gross").cast(pl.Float64) / units)
        .alias("mean_unit_price"),
    ]
    names = share_columns(vocab)
    has_category = pl.col("distinct_categories").is_not_null()
    has_channel = pl.col("distinct_channels").is_not_null()
    for name in names["category_share"]:
        out.append(pl.when(has_category).then(pl.col(f"_{name}") / gross).alias(name))
    for name in names["channel_share"]:
        out.append(pl.when(has_channel).then(pl.col(f"_{name}") / gross).alias(name))
    days = pl.col("_mix_days").cast(pl.Float64)
    for name in names["channel_days_share"]:
        out.append(pl.when(has_channel).then(pl.col(f"_{name}") / days).alias(name))
    return out
