"""What and how customers buy: products, categories, channels, units and unit prices.

Part of the shared feature pipeline (:mod:`crmkit.features.customer`), computed from the same
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

from typing import Final

import polars as pl

from crmkit.config.settings import FeatureConfig
from crmkit.features.mix_lines import (
    _CATEGORY,
    _CATEGORY_INDEX,
    _CHANNEL,
    _CHANNEL_INDEX,
    _HASH,
    _PRODUCT,
    _line_sums,
    units_of,
)

# the customer code in the high 32 bits of a group key, a product, category or channel in the low
from crmkit.features.names import _AGE, _CODE, _MICRO, _SHIFT
from crmkit.features.vocabulary import Vocabulary, share_columns

_PER_MICRO: Final = 1e-6
#: Categories below this share of a customer's gross spend are left out of the refund share.
REFUND_SHARE_MIN_SPEND: Final = 0.1


def _windows(w: int) -> tuple[pl.Expr, pl.Expr]:
    age = pl.col(_AGE)
    return age <= w, (age > w) & (age <= 2 * w)


def _grouped(lines: pl.LazyFrame, column: str, *aggs: pl.Expr) -> pl.LazyFrame:
    """Group the lines with a value in ``column`` by customer and value, on one integer key.

    Returns ``_code`` and ``column`` beside the aggregates. Lines without a value are left
    out, so a store without the column costs one filter.
    """
    key = pl.col(_CODE) * _SHIFT + pl.col(column).cast(pl.UInt64)
    return (
        lines.filter(pl.col(column).is_not_null())
        .group_by(key.alias("_k"))
        .agg(*aggs)
        .with_columns(
            (pl.col("_k") // _SHIFT).alias(_CODE),
            (pl.col("_k") % _SHIFT).cast(pl.UInt32).alias(column),
        )
        .drop("_k")
    )


def _spend(cfg: FeatureConfig) -> list[pl.Expr]:
    """Gross spend overall, in the recent window and the one before, and refunds."""
    recent, before = _windows(cfg.mix_window_days)
    micro = pl.col(_MICRO)
    pos = micro > 0
    return [
        pl.when(pos).then(micro).otherwise(0).sum().alias("g"),
        pl.when(pos & recent).then(micro).otherwise(0).sum().alias("g_recent"),
        pl.when(pos & before).then(micro).otherwise(0).sum().alias("g_before"),
        pl.when(pos).then(0).otherwise(-micro).sum().alias("r"),
    ]


def product_counts(lines: pl.LazyFrame, cfg: FeatureConfig) -> pl.LazyFrame:
    """Per customer: distinct products bought, overall and in the two windows.

    A customer who bought nothing with a product has no row, so the join leaves the
    counts null.
    """
    recent, before = _windows(cfg.mix_window_days)
    per = _grouped(
        lines.filter(pl.col(_MICRO) > 0),
        _PRODUCT,
        recent.any().cast(pl.Int64).alias("r"),
        before.any().cast(pl.Int64).alias("b"),
    )
    return per.group_by(_CODE).agg(
        pl.len().cast(pl.Int64).alias("distinct_products"),
        pl.col("r").sum().alias("_products_recent"),
        pl.col("b").sum().alias("_products_before"),
    )


def customer_mix(lines: pl.LazyFrame, vocab: Vocabulary) -> pl.LazyFrame:
    """Per customer: gross spend, purchase lines, units and the spend on vocabulary values.

    Every aggregation is a plain sum of a column computed row by row, which polars runs on
    its fast path.
    """
    micro = pl.col(_MICRO)
    pos = micro > 0
    names = share_columns(vocab)
    shares = [
        pl.when(pos & (pl.col(column) == i)).then(micro).otherwise(0).sum().alias(f"_{name}")
        for column, key in ((_CATEGORY_INDEX, "category_share"), (_CHANNEL_INDEX, "channel_share"))
        for i, name in enumerate(names[key])
    ]
    return units_of(lines.group_by(_CODE).agg(*_line_sums(), *shares))


#: Entropy terms ``g log g`` are summed as integers of this many units each, so that the
#: sum does not depend on the order of parallel work.
_TERM_UNITS: Final = 1_000


def category_aggregates(lines: pl.LazyFrame, cfg: FeatureConfig) -> pl.LazyFrame:
    """Per customer, from spend per category: breadth, top share, entropy, refund share.

    The entropy of the shares ``p = g / T`` is ``log T - sum(g log g) / T``.
    """
    g = pl.col("g")
    total = pl.col("_total")
    per = (
        _grouped(lines, _CATEGORY, *_spend(cfg))
        .filter(g > 0)
        .with_columns(g.sum().over(_CODE).alias("_total"))
        .with_columns(
            (g.cast(pl.Float64) * g.cast(pl.Float64).log() * _TERM_UNITS)
            .round()
            .cast(pl.Int64)
            .alias("_glogg"),
            pl.when(g * 10 >= total).then(pl.col("r") / g).alias("_refund_share"),
            (pl.col("g_recent", "g_before") > 0).cast(pl.Int64).name.suffix("_n"),
        )
    )
    k = pl.col("_k").cast(pl.Float64)
    t = pl.col("_total").cast(pl.Float64)
    entropy = t.log() - pl.col("_glogg").cast(pl.Float64) / (_TERM_UNITS * t)
    return (
        per.group_by(_CODE)
        .agg(
            pl.len().alias("_k"),
            pl.col("_total").first(),
            pl.col("g").max().alias("_g_max"),
            pl.col("_glogg").sum(),
            pl.col("g_recent", "g_before").max().name.suffix("_max"),
            pl.col("g_recent", "g_before").sum(),
            pl.col("g_recent_n", "g_before_n").sum(),
            pl.col("_refund_share").max().alias("category_refund_share_max"),
        )
        .select(
            _CODE,
            pl.col("_k").cast(pl.Int64).alias("distinct_categories"),
            pl.col("g_recent_n").cast(pl.Int64).alias("_categories_recent"),
            pl.col("g_before_n").cast(pl.Int64).alias("_categories_before"),
            (pl.col("_g_max").cast(pl.Float64) / t).alias("top_category_share"),
            pl.when(k > 1)
            .then((entropy / k.log()).clip(0.0, 1.0))
            .otherwise(0.0)
            .alias("category_entropy"),
            _top_share("g_recent").alias("_top_recent"),
            _top_share("g_before").alias("_top_before"),
            "category_refund_share_max",
        )
    )


def _top_share(column: str) -> pl.Expr:
    total = pl.col(column)
    return pl.when(total > 0).then(
        pl.col(f"{column}_max").cast(pl.Float64) / total.cast(pl.Float64)
    )


def channel_aggregates(lines: pl.LazyFrame, cfg: FeatureConfig) -> pl.LazyFrame:
    """Per customer: distinct channels, and whether the channel with the most spend changed.

    ``channel_switch``: ties go to the channel with the smaller text hash (arbitrary, but
    the same on every run and for any row order).
    """
    per = (
        _grouped(lines, _CHANNEL, *_spend(cfg)[:3], pl.col(_HASH).first())
        .filter(pl.col("g") > 0)
        .with_columns(pl.col("g_recent", "g_before").max().over(_CODE).name.suffix("_max"))
    )

    def leader(column: str) -> pl.Expr:
        spend = pl.col(column)
        top = (spend == pl.col(f"{column}_max")) & (spend > 0)
        return pl.when(top).then(pl.col(_HASH)).min()

    w = cfg.mix_window_days
    return per.group_by(_CODE).agg(
        pl.len().cast(pl.Int64).alias("distinct_channels"),
        (leader("g_recent") != leader("g_before")).alias(f"channel_switch_{w}"),
    )


def mix_totals(lines: pl.DataFrame, cfg: FeatureConfig, vocab: Vocabulary) -> pl.LazyFrame:
    """Per customer code: the mix aggregates (money in micro-units, not yet ratios).

    ``lines`` are :func:`~crmkit.features.day.day_lines` with the :func:`mix_columns`, in
    memory: each aggregation reads them from there. Each groups on one integer key; a
    bucket without products, categories or channels costs each a filter of its lines.
    """
    out = customer_mix(lines.lazy(), vocab)
    for part in (
        product_counts(lines.lazy(), cfg),
        category_aggregates(lines.lazy(), cfg),
        channel_aggregates(lines.lazy(), cfg),
    ):
        out = out.join(part, on=_CODE, how="left")
    return out


def day_channels(vocab: Vocabulary) -> list[pl.Expr]:
    """Per customer and day (in :func:`~crmkit.features.day.daily_activity`): a purchase.

    A column per channel tells whether the customer bought there that day.
    """
    bought = pl.col(_MICRO) > 0
    return [
        (bought & (pl.col(_CHANNEL_INDEX) == i)).any().alias(f"_day_{name}")
        for i, name in enumerate(share_columns(vocab)["channel_days_share"])
    ]


def channel_days(vocab: Vocabulary) -> list[pl.Expr]:
    """Per customer: days with a purchase on each vocabulary channel (from the days)."""
    return [
        pl.col(f"_day_{name}").sum().cast(pl.Int64).alias(f"_{name}")
        for name in share_columns(vocab)["channel_days_share"]
    ]


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
    days = pl.col("purchase_days").cast(pl.Float64)
    for name in names["channel_days_share"]:
        out.append(pl.when(has_channel).then(pl.col(f"_{name}") / days).alias(name))
    return out
