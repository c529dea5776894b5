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

import datetime as dt
from typing import Final

import polars as pl

from crmkit import schema
from crmkit.config.settings import FeatureConfig
from crmkit.features.labels import cutoff_of
from crmkit.features.vocabulary import Vocabulary, share_columns

_CODE: Final = "_code"
_AGE: Final = "_mix_age"
_MICRO: Final = "_mix_micro"
_PER_MICRO: Final = 1e-6
#: Categories below this share of a customer's gross spend are left out of the refund share.
REFUND_SHARE_MIN_SPEND: Final = 0.1


# --- line level ---------------------------------------------------------------------------

_PRODUCT: Final = "_ph"
_CATEGORY: Final = "_kh"
_CHANNEL: Final = "_nh"


def text_hash(value: pl.Expr) -> pl.Expr:
    """64-bit hash of a text value; null for null and empty text (ingest strips text)."""
    return pl.when(value != "").then(value.hash())


def value_hash(value: str) -> int:
    """Return the :func:`text_hash` of one value, to compare hashed columns with it."""
    return int(pl.select(pl.lit(value, pl.String).hash()).item())


def mix_lines(tx: pl.LazyFrame, as_of: dt.date, code: pl.Expr) -> pl.LazyFrame:
    """Select the lines before ``as_of`` with what the mix needs.

    Customer code, the day's age, micro-unit amount and units, and the hashes of product,
    category and channel.
    """
    age = (pl.lit(as_of) - pl.col(schema.TS).dt.date()).dt.total_days().cast(pl.Int32)
    return tx.filter(pl.col(schema.TS) < cutoff_of(as_of)).select(
        code.alias(_CODE),
        age.alias(_AGE),
        (pl.col(schema.AMOUNT) * 1_000_000).round().cast(pl.Int64).alias(_MICRO),
        (pl.col(schema.QUANTITY).abs() * 1_000_000).round().cast(pl.Int64).alias("_qty"),
        text_hash(pl.col(schema.PRODUCT)).alias(_PRODUCT),
        text_hash(pl.col(schema.CATEGORY)).alias(_CATEGORY),
        text_hash(pl.col(schema.CHANNEL)).alias(_CHANNEL),
    )


def _windows(w: int) -> tuple[pl.Expr, pl.Expr]:
    age = pl.col(_AGE)
    return age <= w, (age > w) & (age <= 2 * w)


def group_totals(lines: pl.LazyFrame, cfg: FeatureConfig) -> pl.LazyFrame:
    """One row per customer, category and channel: the one pass over the lines they need.

    Gross spend (``g``) overall, in the recent window and the one before; refunds
    (``r``); purchase lines, units and the gross spend of lines with units. Every mix
    feature but the product counts and the channel days is computed from these rows.
    """
    recent, before = _windows(cfg.mix_window_days)
    micro = pl.col(_MICRO)
    pos = micro > 0
    qty = pl.col("_qty")
    return lines.group_by(_CODE, _CATEGORY, _CHANNEL).agg(
        pl.when(pos).then(micro).otherwise(0).sum().alias("g"),
        pl.when(pos & recent).then(micro).otherwise(0).sum().alias("g_recent"),
        pl.when(pos & before).then(micro).otherwise(0).sum().alias("g_before"),
        pl.when(pos).then(0).otherwise(-micro).sum().alias("r"),
        pos.sum().cast(pl.Int64).alias("lines"),
        pl.when(pos).then(qty).sum().alias("units"),
        (pos & qty.is_not_null()).sum().alias("unit_lines"),
        pl.when(pos & qty.is_not_null()).then(micro).otherwise(0).sum().alias("units_gross"),
    )


def product_counts(lines: pl.LazyFrame, cfg: FeatureConfig) -> pl.LazyFrame:
    """Per customer: distinct products bought, overall and in the two windows.

    Counted over 64-bit hashes (a collision among one customer's products has a chance of
    about 1e-15). A customer who bought nothing with a product has no row, so the join
    leaves the counts null.
    """
    recent, before = _windows(cfg.mix_window_days)
    per = (
        lines.filter(pl.col(_PRODUCT).is_not_null() & (pl.col(_MICRO) > 0))
        .group_by(_CODE, _PRODUCT)
        .agg(recent.any().cast(pl.Int64).alias("r"), before.any().cast(pl.Int64).alias("b"))
    )
    return per.group_by(_CODE).agg(
        pl.len().cast(pl.Int64).alias("distinct_products"),
        pl.col("r").sum().alias("_products_recent"),
        pl.col("b").sum().alias("_products_before"),
    )


def customer_mix(groups: pl.LazyFrame, vocab: Vocabulary) -> pl.LazyFrame:
    """Per customer, from :func:`group_totals`: spend, lines, units and vocabulary spend.

    Every aggregation is a plain sum of a column computed row by row first, which polars
    runs on its fast path.
    """
    g = pl.col("g")
    names = share_columns(vocab)
    shares = [
        pl.when(pl.col(_CATEGORY) == value_hash(v)).then(g).otherwise(0).alias(f"_{name}")
        for v, name in zip(vocab.categories, names["category_share"], strict=True)
    ] + [
        pl.when(pl.col(_CHANNEL) == value_hash(v)).then(g).otherwise(0).alias(f"_{name}")
        for v, name in zip(vocab.channels, names["channel_share"], strict=True)
    ]
    summed = [
        "g",
        "lines",
        "units",
        "unit_lines",
        "units_gross",
        *(e.meta.output_name() for e in shares),
    ]
    return (
        groups.with_columns(shares)
        .group_by(_CODE)
        .agg(pl.col(summed).sum())
        .with_columns(pl.when(pl.col("unit_lines") > 0).then(pl.col("units")).alias("_units"))
        .rename({"g": "_mix_gross", "lines": "_lines", "units_gross": "_units_gross"})
        .drop("units", "unit_lines")
    )


#: Entropy terms ``g log g`` are summed as integers of this many units each, so that the
#: sum does not depend on the order of parallel work.
_TERM_UNITS: Final = 1_000


def category_aggregates(groups: pl.LazyFrame, cfg: FeatureConfig) -> pl.LazyFrame:
    """Per customer, from spend per category: breadth, top share, entropy, refund share.

    The entropy of the shares ``p = g / T`` is ``log T - sum(g log g) / T``.
    """
    g = pl.col("g")
    total = pl.col("_total")
    per = (
        groups.filter(pl.col(_CATEGORY).is_not_null())
        .group_by(_CODE, _CATEGORY)
        .agg(pl.col("g", "r", "g_recent", "g_before").sum())
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


def channel_aggregates(groups: pl.LazyFrame, cfg: FeatureConfig) -> pl.LazyFrame:
    """Per customer: distinct channels, and whether the channel with the most spend changed.

    ``channel_switch``: ties go to the channel with the smaller hash (arbitrary, but the
    same on every run).
    """
    per = (
        groups.filter(pl.col(_CHANNEL).is_not_null() & (pl.col("g") > 0))
        .group_by(_CODE, _CHANNEL)
        .agg(pl.col("g_recent", "g_before").sum())
        .with_columns(pl.col("g_recent", "g_before").max().over(_CODE).name.suffix("_max"))
    )

    def leader(column: str) -> pl.Expr:
        spend = pl.col(column)
        top = (spend == pl.col(f"{column}_max")) & (spend > 0)
        return pl.when(top).then(pl.col(_CHANNEL)).min()

    w = cfg.mix_window_days
    return per.group_by(_CODE).agg(
        pl.len().cast(pl.Int64).alias("distinct_channels"),
        (leader("g_recent") != leader("g_before")).alias(f"channel_switch_{w}"),
    )


def mix_totals(
    tx: pl.LazyFrame, as_of: dt.date, cfg: FeatureConfig, vocab: Vocabulary, code: pl.Expr
) -> pl.LazyFrame:
    """Per customer code: the mix aggregates (money in micro-units, not yet ratios)."""
    lines = mix_lines(tx, as_of, code)
    groups = group_totals(lines, cfg)
    out = customer_mix(groups, vocab)
    for part in (
        product_counts(lines, cfg),
        category_aggregates(groups, cfg),
        channel_aggregates(groups, cfg),
    ):
        out = out.join(part, on=_CODE, how="left")
    return out


def day_channels(vocab: Vocabulary) -> list[pl.Expr]:
    """Per customer and day (in :func:`~crmkit.features.day.daily_activity`): a purchase.

    A column per channel tells whether the customer bought there that day.
    """
    bought = pl.col(schema.AMOUNT) > 0
    return [
        (bought & (pl.col(schema.CHANNEL) == value)).any().alias(f"_day_{name}")
        for value, name in zip(
            vocab.channels, share_columns(vocab)["channel_days_share"], strict=True
        )
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
