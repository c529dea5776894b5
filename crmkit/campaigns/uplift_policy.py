"""Targeting by expected incremental profit: ``[targeting] policy = "uplift"``.

For every eligible customer and every treatment arm of the uplift model::

    profit = uplift * customer_value - cost          (uplift_value = "customer_value")
    profit = incremental_revenue - cost               (uplift_value = "revenue")

where ``uplift`` is the predicted change in the probability of a purchase in the model's
window, less ``uplift_caution`` times its spread over the arm's five member models (a
lower bound: where the campaigns say little about a customer, a valuable one above all,
a confident-looking uplift times a large value would otherwise top the list), and
``cost`` the arm's cost per contact (``[targeting.costs]``, else
``default_cost``, else 0). The list has two parts, told apart by the ledger's ``policy``:

* ``uplift``: at most one arm per customer, chosen by the budget allocation
  (:mod:`crmkit.campaigns.allocation`: by return per pound, never an arm expected to
  lose money) within ``size`` and ``budget`` scaled by ``1 - explore_fraction``. Without
  a budget, each customer gets the arm of the highest positive profit;
* ``explore``: as many customers again, in the proportion ``explore_fraction`` of the
  whole list, drawn at random among the other eligible customers (a salted hash of
  campaign, date and customer) and given a random arm, so the next model still learns
  about customers this one would skip. They count against what is left of size and
  budget.

Groups are drawn exactly as under the value-at-risk policy (the same salted hash of
campaign and customer, and the universal holdout), so each part of the list has its own
randomised control group and ``evaluate`` measures both parts.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Final

import numpy as np
import polars as pl

from crmkit import schema
from crmkit.campaigns.budget import allocate_frame
from crmkit.campaigns.contacts import reach
from crmkit.config.policy import TargetPolicy
from crmkit.hashing import add_stable_hash, unit_interval_expr

POLICY_UPLIFT: Final = "uplift"
POLICY_EXPLORE: Final = "explore"
POLICY_VALUE_AT_RISK: Final = "value_at_risk"


def arm_cost(policy: TargetPolicy, column: str = "treatment") -> pl.Expr:
    """Cost per contact of the arm in ``column``: ``costs``, else ``default_cost``, else 0."""
    cost = pl.lit(policy.default_cost or 0.0)
    for treatment, value in sorted(policy.costs.items()):
        cost = pl.when(pl.col(column) == treatment).then(pl.lit(value)).otherwise(cost)
    return cost


def arm_values(uplift: pl.DataFrame, values: pl.DataFrame, policy: TargetPolicy) -> pl.DataFrame:
    """Every customer's expected incremental value (``worth``) and profit under every arm.

    ``uplift`` has ``customer_id, treatment, uplift_probability, uplift_revenue`` and
    optionally ``uplift_spread`` (one row per customer and arm,
    :meth:`crmkit.models.uplift.UpliftModel.predict_uplift`); ``values`` has ``customer_id,
    customer_value``. ``expected_uplift`` is the predicted uplift itself; the worth and
    profit use the cautious one.
    """
    spread = pl.col("uplift_spread") if "uplift_spread" in uplift.columns else pl.lit(0.0)
    cautious = pl.col("uplift_probability") - policy.uplift_caution * spread
    worth = (
        pl.col("uplift_revenue")
        if policy.uplift_value == "revenue"
        else cautious * pl.col("customer_value").fill_null(0.0)
    )
    return (
        uplift.join(values.select(schema.CUSTOMER_ID, "customer_value"), on=schema.CUSTOMER_ID)
        .with_columns(worth.alias("worth"))
        .select(
            schema.CUSTOMER_ID,
            "treatment",
            "worth",
            pl.col("uplift_probability").alias("expected_uplift"),
            (pl.col("worth") - arm_cost(policy)).alias("expected_profit"),
            spread.fill_null(0.0).alias("uplift_spread"),
        )
    )


def best_arms(uplift: pl.DataFrame, values: pl.DataFrame, policy: TargetPolicy) -> pl.DataFrame:
    """Each customer's most profitable arm: treatment, expected uplift, profit and spread."""
    return (
        arm_values(uplift, values, policy)
        .sort(
            [schema.CUSTOMER_ID, "expected_profit", "treatment"],
            descending=[False, True, False],
        )
        .group_by(schema.CUSTOMER_ID, maintain_order=True)
        .first()
        .drop("worth")
    )


def _main_part(
    frame: pl.DataFrame,
    per_arm: pl.DataFrame,
    arms: list[str],
    policy: TargetPolicy,
    size: int | None,
    budget: float | None,
) -> tuple[pl.DataFrame, int]:
    """Return the allocated part of the list and the count of customers no arm can reach."""
    gain, unreachable = reach(frame, _gain_matrix(frame, per_arm, arms), arms, policy)
    main = (
        allocate_frame(frame, gain, arms, policy, size, budget)
        .drop("gain")
        .join(per_arm.drop("worth"), on=[schema.CUSTOMER_ID, "treatment"], how="left")
        .sort("rank")
        .drop("rank")
        .with_columns(pl.lit(POLICY_UPLIFT).alias("policy"))
    )
    return main, unreachable


def _gain_matrix(frame: pl.DataFrame, arms_table: pl.DataFrame, arms: list[str]) -> np.ndarray:
    """``worth`` as a ``frame.height x len(arms)`` matrix in ``frame``'s row order."""
    wide = arms_table.pivot(on="treatment", index=schema.CUSTOMER_ID, values="worth")
    aligned = frame.select(schema.CUSTOMER_ID).join(wide, on=schema.CUSTOMER_ID, how="left")
    for name in arms:
        if name not in aligned.columns:
            aligned = aligned.with_columns(pl.lit(None, dtype=pl.Float64).alias(name))
    return aligned.select(arms).to_numpy().astype(np.float64)


def spend_expr(policy: TargetPolicy) -> pl.Expr:
    """Cost of each row: its arm's cost in the treatment group, nothing elsewhere."""
    return pl.when(pl.col("group") == "treatment").then(arm_cost(policy)).otherwise(0.0)


def _cut(
    ranked: pl.DataFrame, size: int | None, budget: float | None, policy: TargetPolicy
) -> pl.DataFrame:
    """Return the longest head of ``ranked`` within ``size`` rows and ``budget`` of spend."""
    if size is not None:
        ranked = ranked.head(size)
    if budget is not None:
        ranked = ranked.filter(
            ranked.select(spend_expr(policy).cum_sum()).to_series() <= budget + 1e-9
        )
    return ranked


def _spent(frame: pl.DataFrame, policy: TargetPolicy) -> float:
    return float(frame.select(spend_expr(policy).sum()).item() or 0.0)


def _explore_part(
    rest: pl.DataFrame,
    wanted: int,
    arms: list[str],
    campaign: str,
    as_of: dt.date,
) -> pl.DataFrame:
    """``wanted`` customers of ``rest`` drawn at random, each with a random arm."""
    salt = f"{campaign}|{as_of.isoformat()}|explore"
    drawn = (
        add_stable_hash(rest.lazy(), schema.CUSTOMER_ID, "__h_pick", salt=salt)
        .pipe(add_stable_hash, schema.CUSTOMER_ID, "__h_arm", salt=salt + "|arm")
        .sort(["__h_pick", schema.CUSTOMER_ID])
        .head(wanted)
        .collect()
    )
    pick = (unit_interval_expr("__h_arm") * len(arms)).floor().cast(pl.Int64).clip(0, len(arms) - 1)
    return drawn.with_columns(
        pick.replace_strict(dict(enumerate(arms)), return_dtype=pl.String).alias("__arm")
    ).drop("__h_pick", "__h_arm")


def rank_by_uplift(
    frame: pl.DataFrame,
    uplift: pl.DataFrame,
    campaign: str,
    as_of: dt.date,
    policy: TargetPolicy,
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Rank eligible customers (with ``group``) by expected incremental profit.

    Returns the list (columns of ``frame`` plus ``treatment, expected_uplift,
    expected_profit, policy, rank``) and counts: ``no_positive_profit`` (eligible customers
    whose best arm is expected to lose money, explored ones included) and
    ``over_size_or_budget``.
    """
    arms = sorted(set(uplift["treatment"].to_list()))
    frame = frame.sort(schema.CUSTOMER_ID)
    per_arm = arm_values(uplift, frame, policy)
    scored = frame.join(best_arms(uplift, frame, policy), on=schema.CUSTOMER_ID, how="left")
    positive = scored.filter(pl.col("expected_profit") > 0)
    share = 1.0 - policy.explore_fraction
    size = None if policy.size is None else math.floor(policy.size * share)
    budget = None if policy.budget is None else policy.budget * share
    main, unreachable = _main_part(frame, per_arm, arms, policy, size, budget)
    wanted = round(main.height * policy.explore_fraction / share)
    if policy.size is not None:
        wanted = min(wanted, policy.size - main.height)
    rest = scored.filter(~pl.col(schema.CUSTOMER_ID).is_in(main[schema.CUSTOMER_ID].implode()))
    explore = _explore_part(rest, wanted, arms, campaign, as_of) if arms and wanted > 0 else None
    parts = [main]
    if explore is not None:
        # the explored customer's expected uplift and profit are those of the arm drawn
        drawn = uplift.join(
            explore.select(schema.CUSTOMER_ID, pl.col("__arm").alias("treatment")),
            on=[schema.CUSTOMER_ID, "treatment"],
        )
        profits = best_arms(drawn, frame, policy).drop("treatment")
        explore = (
            explore.drop("treatment", "expected_uplift", "expected_profit", "uplift_spread")
            .rename({"__arm": "treatment"})
            .join(profits, on=schema.CUSTOMER_ID, how="left")
            .with_columns(
                pl.lit(POLICY_EXPLORE).alias("policy"),
                pl.lit(None, dtype=pl.Float64).alias("return_per_pound"),
            )
            .select(main.columns)
        )
        left = None if policy.budget is None else policy.budget - _spent(main, policy)
        parts.append(_cut(explore, None, left, policy))
    ranked = pl.concat(parts).with_columns(pl.int_range(1, pl.len() + 1).alias("rank"))
    counts = {
        "no_contact_details": unreachable,
        "no_positive_profit": scored.height - positive.height - unreachable,
        "over_size_or_budget": positive.height - main.height,
    }
    return ranked, counts


def profit_report(rows: pl.DataFrame, z: float = 1.96) -> dict[str, Any]:
    """Return the day's expected incremental profit, with a model-uncertainty band.

    The band moves every contact's uplift by ``z`` times its spread over the arm's member
    models in the same direction (the members' errors are shared by similar customers, so
    they do not cancel out): ``sum(profit) +- z * sum(spread * value)``. Empty without
    uplift rows.
    """
    treated = rows.filter(
        (pl.col("group") == "treatment") & pl.col("expected_profit").is_not_null()
    )
    if treated.height == 0:
        return {}
    value = float(treated["expected_profit"].sum())
    width = float(
        treated.select(
            (pl.col("uplift_spread").fill_null(0.0) * pl.col("customer_value").fill_null(0.0)).sum()
        ).item()
    )
    return {
        "expected_profit": {
            "value": round(value, 2),
            "low": round(value - z * width, 2),
            "high": round(value + z * width, 2),
        }
    }
