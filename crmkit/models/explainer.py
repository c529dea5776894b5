"""The model's reasons for any scored customer, worked out when asked.

``score`` explains the ``[model] explain_rows`` customers of the highest value at risk;
a day's list asks the same :class:`Explainer` for every listed customer the score left
to the rules, so each listed customer gets the model's own reasons whatever the size of
the store, and the work grows with the list, not with the customers.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from crmkit import schema
from crmkit.models.design import Design
from crmkit.models.explain import categorical_mask, driver_groups, reference_row, shapley_by_driver
from crmkit.models.reason_text import median_cycle, with_model_reasons
from crmkit.models.threads import threads


@dataclass(frozen=True)
class Explainer:
    """What the shares need: the model, its inputs, the reference and the sentences' inputs.

    ``text`` holds, in the matrix's row order, the customer ids and the columns the
    sentences read (:mod:`crmkit.models.reason_text`), ``churn_probability`` and
    ``rule_reasons``.
    """

    predict: Callable[[np.ndarray], np.ndarray]
    design: Design
    text: pl.DataFrame
    reference: np.ndarray
    reference_probability: float
    groups: list[int]
    windows: tuple[int, ...]
    cycle: float | None
    n_threads: int

    def shares(self, rows: np.ndarray) -> np.ndarray:
        """Exact Shapley shares by driver of the matrix rows ``rows``."""
        with threads(self.n_threads):
            x = self.design.rows(rows)
            return shapley_by_driver(self.predict, x, self.reference, self.groups)

    def reasons(self, customers: Collection[str]) -> pl.DataFrame:
        """``customer_id, reasons, top_driver`` of the ``customers`` among the scored."""
        ids = self.text[schema.CUSTOMER_ID]
        rows = np.flatnonzero(ids.is_in(list(customers)).to_numpy())
        out = with_model_reasons(
            self.text[rows], self.shares(rows), self.reference_probability, self.windows,
            self.cycle,
        )  # fmt: skip
        return out.select(schema.CUSTOMER_ID, "reasons", "top_driver")


def make_explainer(
    model: Any,  # noqa: ANN401
    card: Mapping[str, Any],
    design: Design,
    probability: np.ndarray,
    text: pl.DataFrame,
    windows: tuple[int, ...],
) -> Explainer:
    """Build the explainer of a scoring: the reference customer and its probability."""
    features = card["features"]
    categorical = categorical_mask(features, card.get("categories") or {})
    reference: np.ndarray = reference_row(design, probability, categorical).astype(design.dtype)

    def predict(m: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.clip(model.predict_proba(m)[:, 1], 0.0, 1.0)
        return out

    n_threads = int(card.get("threads", 1))
    with threads(n_threads):
        at_reference = float(predict(reference[None, :])[0])
    return Explainer(
        predict, design, text, reference, at_reference, driver_groups(features), windows,
        median_cycle(text), n_threads,
    )  # fmt: skip


def explain_listed(listed: pl.DataFrame, explainer: Explainer | None) -> pl.DataFrame:
    """Give the listed customers the score left to the rules (no ``top_driver``) the model's."""
    if explainer is None or "top_driver" not in listed.columns or listed.height == 0:
        return listed
    pending = listed.filter(pl.col("top_driver").is_null())[schema.CUSTOMER_ID]
    if pending.len() == 0:
        return listed
    found = explainer.reasons(pending.to_list()).rename(
        {"reasons": "__reasons", "top_driver": "__top"}
    )
    return (
        listed.join(found, on=schema.CUSTOMER_ID, how="left", maintain_order="left")
        .with_columns(
            pl.coalesce("__reasons", "reasons").alias("reasons"),
            pl.coalesce("__top", "top_driver").alias("top_driver"),
        )
        .drop("__reasons", "__top")
    )
