"""The category and channel vocabulary of the mix features, and the names of their columns."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import polars as pl

from crmkit import schema
from crmkit.config.settings import FeatureConfig
from crmkit.errors import BadInputError
from crmkit.features.labels import cutoff_of

_SLUG_LENGTH: Final = 40


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
    result does not depend on row order. Empty when ``[features] mix`` is off.
    """
    if not cfg.mix:
        return Vocabulary()
    before = tx.filter((pl.col(schema.TS) < cutoff_of(as_of)) & (pl.col(schema.AMOUNT) > 0))

    def top(column: str, k: int) -> tuple[str, ...]:
        if k == 0:
            return ()
        counts = (
            before.select(column)
            .filter(pl.col(column) != "")
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
