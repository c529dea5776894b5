"""The allocation of a day's budget, for both policies, and what the budget bought.

Each policy gives every eligible customer an expected incremental value per treatment
(``gain``); :func:`crmkit.campaigns.allocation.allocate` picks at most one treatment per
customer by return per pound within ``size`` and ``budget``.

* ``value_at_risk`` with ``[targeting.effects]``: a treatment's effect is the share of
  the customer's churn probability it removes, so ``gain = effect x value at risk`` and
  the expected incremental customers ``effect x churn probability``;
  ``[targeting.segment_effects.<segment>]`` overrides it per segment (the column
  ``treatment_by`` names). Every treatment with an effect is an option.
* ``value_at_risk`` without effects: the segment's treatment is the only option and its
  effect is taken as 1, an upper bound (the contact keeps the customer): nobody is
  contacted whose whole value at risk is below the contact's cost, and the budget goes
  by value at risk per pound. Expected uplift and profit stay empty, as they are unknown.
* ``win_back`` campaigns (``[targeting] lifecycle = "win_back"``): the segment's
  treatment, ``gain = win_back_rate x value if active``.
* ``uplift``: ``gain`` is the uplift model's value per arm (:mod:`crmkit.campaigns.uplift_policy`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from crmkit.campaigns.allocation import allocate
from crmkit.config.policy import TargetPolicy
from crmkit.numbers import as_float


def effect_of(policy: TargetPolicy, segment: str, treatment: str) -> float | None:
    """Return the effect of ``treatment`` on customers of ``segment`` (None: not known)."""
    own = policy.segment_effects.get(segment, {})
    if treatment in own:
        return own[treatment]
    return policy.effects.get(treatment)


def effect_treatments(policy: TargetPolicy) -> list[str]:
    """Return every treatment with an effect, overall or for a segment."""
    named = set(policy.effects)
    for table in policy.segment_effects.values():
        named |= set(table)
    return sorted(named)


def cost_vector(policy: TargetPolicy, treatments: Sequence[str]) -> np.ndarray:
    """Return the cost per contact of each treatment: ``costs``, ``default_cost``, or 0."""
    default = policy.default_cost or 0.0
    return np.array([policy.costs.get(t, default) for t in treatments], dtype=np.float64)


def allocate_frame(
    frame: pl.DataFrame,
    gain: np.ndarray,
    treatments: Sequence[str],
    policy: TargetPolicy,
    size: int | None,
    budget: float | None,
) -> pl.DataFrame:
    """Return the rows of ``frame`` (with ``group``) that get a treatment, ranked.

    ``gain`` is ``frame.height x len(treatments)`` in ``frame``'s row order; ``frame``
    must be sorted by customer id (the tie-break). Adds ``treatment``, ``gain``,
    ``return_per_pound`` (of the last step the customer's treatment took) and ``rank``.
    """
    cost = cost_vector(policy, treatments)
    pays = (frame["group"] == "treatment").to_numpy()
    result = allocate(gain, cost, pays, budget, size)
    picked = np.flatnonzero(result.chosen >= 0)
    # in the order they were taken (each its own scan position); the rows gathered once
    rows = picked[np.argsort(result.first_taken[picked], kind="stable")]
    option = result.chosen[rows]
    return frame.drop("treatment", strict=False)[rows].with_columns(
        pl.Series("treatment", np.asarray(treatments, dtype=object)[option].astype(str),
                  dtype=pl.String),
        pl.Series("gain", gain[rows, option], dtype=pl.Float64),
        pl.Series("return_per_pound", result.last_ratio[rows], dtype=pl.Float64),
        pl.int_range(1, pl.len() + 1).alias("rank"),
    )  # fmt: skip


def value_at_risk_gains(frame: pl.DataFrame, policy: TargetPolicy) -> tuple[np.ndarray, list[str]]:
    """Return the gains of the value-at-risk policy (see the module) and their treatments."""
    segments = frame[policy.treatment_by].fill_null("").to_list()
    if policy.lifecycle == "win_back" or not (policy.effects or policy.segment_effects):
        treatments = sorted({*policy.treatments.values(), policy.default_treatment})
        index = {t: j for j, t in enumerate(treatments)}
        own = [index[policy.treatments.get(s, policy.default_treatment)] for s in segments]
        worth = (
            frame["value_if_active"] * policy.win_back_rate
            if policy.lifecycle == "win_back"
            else frame["expected_value_at_risk"]
        )
        gain = np.full((frame.height, len(treatments)), np.nan)
        gain[np.arange(frame.height), own] = worth.fill_null(0.0).to_numpy()
        return gain, treatments
    treatments = effect_treatments(policy)
    at_risk = frame["expected_value_at_risk"].fill_null(0.0).to_numpy()
    effects = np.array(
        [[np.nan if (e := effect_of(policy, s, t)) is None else e for t in treatments]
         for s in segments],
        dtype=np.float64,
    ).reshape(frame.height, len(treatments))  # fmt: skip
    return effects * at_risk[:, None], treatments


def bought(rows: pl.DataFrame, policy: TargetPolicy) -> dict[str, Any]:
    """Return what the budget bought per treatment: expected customers and value.

    From the list's treatment-group rows: ``expected_customers`` sums the expected uplift
    (incremental customers kept or persuaded), ``expected_value`` the expected incremental
    value (profit plus cost). ``marginal_return`` is the net value per pound of the last
    increment the allocation bought (None without one).
    """
    treated = rows.filter(pl.col("group") == "treatment")
    out: dict[str, Any] = {}
    known = "expected_profit" in treated.columns and treated["expected_profit"].null_count() == 0
    if treated.height and known:
        costs = cost_vector(policy, treated["treatment"].to_list())
        table = (
            treated.with_columns(pl.Series("__cost", costs))
            .group_by("treatment")
            .agg(
                pl.col("expected_uplift").sum().alias("expected_customers"),
                (pl.col("expected_profit") + pl.col("__cost")).sum().alias("expected_value"),
            )
            .sort("treatment")
        )
        out["bought"] = {
            r["treatment"]: {
                "expected_customers": round(float(r["expected_customers"] or 0.0), 2),
                "expected_value": round(float(r["expected_value"]), 2),
            }
            for r in table.iter_rows(named=True)
        }
    if "return_per_pound" in rows.columns and rows.height:
        low = rows["return_per_pound"].drop_nulls().drop_nans()
        finite = low.filter(low.is_finite())
        out["marginal_return"] = round(as_float(finite.min()), 4) if finite.len() else None
    return out
