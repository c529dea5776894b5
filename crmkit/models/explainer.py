"""The model's reasons for any scored customer, worked out when asked.

``score`` explains the ``[model] explain_rows`` customers of the highest value at risk;
a day's list asks the same :class:`Explainer` for every listed customer the score left
to the rules, so each listed customer gets the model's own reasons whatever the size of
the store, and the work grows with the list, not with the customers.

The explainer reads the rows it explains from a row source: the feature frame in memory,
or the feature parts a bucketed scoring spilled to disk (:mod:`crmkit.models.bucketed`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import polars as pl

from crmkit import schema
from crmkit.models.design import Design
from crmkit.models.explain import (
    DRIVERS,
    driver_groups,
    shapley_by_driver,
)
from crmkit.models.memory import give_back
from crmkit.models.reason_text import text_columns, with_model_reasons
from crmkit.models.threads import threads
from crmkit.progress import ProgressFn

#: Customers explained at a time (each needs 32 rows of the matrix).
EXPLAIN_BLOCK: Final = 20_000

#: Customers whose rows a list's reasons read at a time.
REASON_BLOCK: Final = 100_000

#: The feature and text rows of the given customers (a String series), in any order.
RowSource = Callable[[pl.Series], pl.DataFrame]


@dataclass(frozen=True)
class Explainer:
    """What the shares need: the model, its inputs, the reference and the sentences' inputs.

    ``rows_of`` returns, for customer ids, their model inputs and the columns the sentences
    read (:func:`~crmkit.models.reason_text.text_columns`: ``churn_probability`` and
    ``rule_reasons`` among them).
    """

    predict: Callable[[np.ndarray], np.ndarray]
    names: Sequence[str]
    categories: Mapping[str, Sequence[str]]
    dtype: type
    rows_of: RowSource
    reference: np.ndarray
    reference_probability: float
    groups: list[int]
    windows: tuple[int, ...]
    cycle: float | None
    n_threads: int

    def shares(self, frame: pl.DataFrame) -> np.ndarray:
        """Exact Shapley shares by driver of the rows of ``frame`` (model inputs)."""
        design = Design.of(frame, self.names, self.categories, self.dtype)
        parts = [np.zeros((0, len(DRIVERS)))]
        with threads(self.n_threads):
            for start in range(0, len(design), EXPLAIN_BLOCK):
                x = design.block(start, start + EXPLAIN_BLOCK)
                parts.append(shapley_by_driver(self.predict, x, self.reference, self.groups))
        return np.concatenate(parts)

    def explain(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Return the sentences' columns of ``frame`` with ``reasons`` and ``top_driver`` added."""
        text = frame.select(text_columns(self.windows))
        return with_model_reasons(
            text, self.shares(frame), self.reference_probability, self.windows, self.cycle
        )

    def reasons(self, customers: Collection[str] | pl.Series) -> pl.DataFrame:
        """``customer_id, reasons, top_driver`` of the ``customers`` among the scored.

        The rows are read :data:`REASON_BLOCK` customers at a time, in id order. The ids
        stay a polars series: a list of a million Python strings would hold about 100 MB
        for as long as the reasons take.
        """
        if not isinstance(customers, pl.Series):
            customers = pl.Series(list(customers), dtype=pl.String)
        ids = customers.cast(pl.String).sort()
        out = []
        for start in range(0, ids.len(), REASON_BLOCK):
            block = self.explain(self.rows_of(ids.slice(start, REASON_BLOCK)))
            out.append(block.select(schema.CUSTOMER_ID, "reasons", "top_driver"))
            del block
            give_back()  # the block's matrices, so that memory does not grow block by block
        if not out:
            return self.explain(self.rows_of(ids)).select(
                schema.CUSTOMER_ID, "reasons", "top_driver"
            )
        return pl.concat(out)


def model_predict(model: Any) -> Callable[[np.ndarray], np.ndarray]:  # noqa: ANN401
    """Return the calibrated churn probability of each row of a matrix, clipped to [0, 1]."""

    def predict(m: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.clip(model.predict_proba(m)[:, 1], 0.0, 1.0)
        return out

    return predict


def build_explainer(
    model: Any,  # noqa: ANN401
    card: Mapping[str, Any],
    dtype: type,
    reference: np.ndarray,
    cycle: float | None,
    rows_of: RowSource,
    windows: tuple[int, ...],
) -> Explainer:
    """Return the explainer of a scoring given its reference customer and median cycle."""
    features = card["features"]
    predict = model_predict(model)
    n_threads = int(card.get("threads", 1))
    with threads(n_threads):
        at_reference = float(predict(reference[None, :].astype(dtype))[0])
    return Explainer(
        predict, list(features), dict(card.get("categories") or {}), dtype, rows_of,
        reference.astype(dtype), at_reference, driver_groups(features), windows, cycle, n_threads,
    )  # fmt: skip


def explain_listed(
    listed: pl.DataFrame, explainer: Explainer | None, progress: ProgressFn | None = None
) -> pl.DataFrame:
    """Give the listed customers the score left to the rules (no ``top_driver``) the model's.

    The list is explained :data:`REASON_BLOCK` rows at a time in its own order, and the
    blocks' columns are put together unjoined: the reasons are held once, not once as
    found and again as joined and merged. ``progress`` hears of each block.
    """
    if explainer is None or "top_driver" not in listed.columns or listed.height == 0:
        return listed
    if listed["top_driver"].null_count() == 0:
        return listed
    reasons, tops = [], []
    for start in range(0, listed.height, REASON_BLOCK):
        block = listed.slice(start, REASON_BLOCK).select(
            schema.CUSTOMER_ID, "reasons", "top_driver"
        )
        pending = block.filter(pl.col("top_driver").is_null())[schema.CUSTOMER_ID]
        if pending.len():
            found = explainer.reasons(pending)
            block = block.join(
                found.rename({"reasons": "__reasons", "top_driver": "__top"}),
                on=schema.CUSTOMER_ID, how="left", maintain_order="left",
            ).select(
                pl.coalesce("__reasons", "reasons").alias("reasons"),
                pl.coalesce("__top", "top_driver").alias("top_driver"),
            )  # fmt: skip
            del found
            give_back()
        reasons.append(block["reasons"])
        tops.append(block["top_driver"])
        if progress is not None:
            done = min(start + REASON_BLOCK, listed.height)
            progress(done, listed.height, "reasons of the listed customers")
    return listed.with_columns(pl.concat(reasons, rechunk=False), pl.concat(tops, rechunk=False))
