"""Retention target lists: policy, treatments, exclusions, groups, balance, ledger.

Groups are a pure function of (campaign id, customer id): a customer's unit number
``u = stable_hash(campaign + customer)`` in [0, 1) puts them in ``control`` when
``u < control_fraction``, else in ``treatment``. A universal holdout does the same with
its own salt and no campaign, so the same customers are held out of every campaign. The
assignment therefore never flips between daily runs, machines, list sizes or row orders.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import polars as pl

from crmkit import schema
from crmkit.campaigns.budget import (
    allocate_frame,
    cost_vector,
    effect_treatments,
    value_at_risk_gains,
)
from crmkit.campaigns.candidates import dropped_counts
from crmkit.campaigns.contacts import reach
from crmkit.campaigns.names import check_campaign
from crmkit.campaigns.uplift_policy import (
    POLICY_UPLIFT,
    POLICY_VALUE_AT_RISK,
    arm_cost,
    rank_by_uplift,
)
from crmkit.config.policy import TargetPolicy
from crmkit.config.rules import validate
from crmkit.config.settings import Settings
from crmkit.errors import ConfigError, UsageError
from crmkit.hashing import add_stable_hash, unit_interval_expr
from crmkit.models.alive import RETAIN, WIN_BACK
from crmkit.segments.rules import RFM_SEGMENTS, VALUE_TIERS

TARGET_COLUMNS: Final = (
    schema.CUSTOMER_ID,
    "campaign_id",
    "as_of",
    "group",
    "treatment",
    "planned_treatment",
    "segment",
    "value_tier",
    "churn_probability",
    "customer_value",
    "expected_value_at_risk",
    "rank",
    "reasons",
    "policy",
    "uplift_model",
    "expected_uplift",
    "expected_profit",
)
#: The contact file: what a sending system needs, for the treatment group only.
CONTACT_COLUMNS: Final = (
    schema.CUSTOMER_ID,
    "campaign_id",
    "as_of",
    "treatment",
    "segment",
    "value_tier",
    "rank",
)


def check_policy(policy: TargetPolicy) -> None:
    """Validate a policy: ranges (:func:`crmkit.config.settings.validate`), then segment names.

    Raises
    ------
    ConfigError
        On a value out of range or an unknown segment or tier name.
    """
    validate(Settings(targeting=policy), "policy")
    known = VALUE_TIERS if policy.treatment_by == "value_tier" else RFM_SEGMENTS
    unknown = sorted(set(policy.treatments) - set(known))
    if unknown:
        raise ConfigError(
            f"[targeting.treatments]: unknown {policy.treatment_by} name(s) "
            f"{', '.join(unknown)}; known: {', '.join(known)}"
        )
    unknown = sorted(set(policy.segment_effects) - set(known))
    if unknown:
        raise ConfigError(
            f"[targeting.segment_effects]: unknown {policy.treatment_by} name(s) "
            f"{', '.join(unknown)}; known: {', '.join(known)}"
        )
    free = sorted(t for t in policy_treatments(policy) if t not in policy.costs)
    if policy.budget is not None and free and policy.default_cost is None:
        raise ConfigError(
            f"--budget {policy.budget:g}: treatment(s) {', '.join(free)} have no cost in "
            "[targeting.costs], so the budget would count them as free; give them a cost "
            "or set [targeting] default_cost"
        )
    bad_tiers = sorted(set(policy.exclude_tiers) - set(VALUE_TIERS))
    if bad_tiers:
        raise ConfigError(
            f"[targeting] exclude_tiers: unknown tier(s) {', '.join(bad_tiers)}; "
            f"known: {', '.join(VALUE_TIERS)}"
        )


def assign_groups(
    frame: pl.LazyFrame, campaign: str, control_fraction: float, holdout: TargetPolicy
) -> pl.LazyFrame:
    """Add ``group``: holdout, control or treatment, from salted hashes of the customer id."""
    with_units = add_stable_hash(
        add_stable_hash(frame, schema.CUSTOMER_ID, "__h_campaign", salt=campaign),
        schema.CUSTOMER_ID,
        "__h_holdout",
        salt=holdout.holdout_salt,
    )
    group = (
        pl.when(unit_interval_expr("__h_holdout") < holdout.holdout_fraction)
        .then(pl.lit("holdout"))
        .when(unit_interval_expr("__h_campaign") < control_fraction)
        .then(pl.lit("control"))
        .otherwise(pl.lit("treatment"))
    )
    return with_units.with_columns(group.alias("group")).drop("__h_campaign", "__h_holdout")


def _treatment_expr(policy: TargetPolicy) -> pl.Expr:
    column = pl.col(policy.treatment_by)
    out = pl.lit(policy.default_treatment)
    for name, treatment in sorted(policy.treatments.items()):
        out = pl.when(column == name).then(pl.lit(treatment)).otherwise(out)
    return out


def policy_treatments(policy: TargetPolicy) -> list[str]:
    """Every treatment the policy can choose: the mapped ones, the default, those with effects."""
    return sorted({*policy.treatments.values(), policy.default_treatment,
                   *effect_treatments(policy)})  # fmt: skip


def spend_report(contacts: pl.DataFrame, policy: TargetPolicy) -> dict[str, Any]:
    """Contacts and spend per treatment of a contact file, against the budget."""
    rows = (
        contacts.group_by("treatment")
        .agg(pl.len().alias("contacts"))
        .with_columns(
            (
                pl.col("contacts")
                * pl.col("treatment").replace_strict(
                    dict(policy.costs), default=policy.default_cost, return_dtype=pl.Float64
                )
            ).alias("spend")
        )
        .sort("treatment")
    )
    by_treatment = {
        r["treatment"]: {
            "contacts": r["contacts"],
            "spend": None if r["spend"] is None else round(r["spend"], 2),
        }
        for r in rows.iter_rows(named=True)
    }
    known = [v["spend"] for v in by_treatment.values() if v["spend"] is not None]
    unpriced = sorted(t for t, v in by_treatment.items() if v["spend"] is None)
    return {
        "by_treatment": by_treatment,
        "total": round(sum(known), 2),
        "budget": policy.budget,
        "unpriced": unpriced,
    }


def select_targets(
    scores: pl.DataFrame,
    campaign: str,
    as_of: dt.date,
    policy: TargetPolicy,
    recently_assigned: pl.Series,
    optouts: pl.Series,
    uplift: Uplift | None = None,
    dropped: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Apply the policy to scored customers; return the ranked list and exclusion counts.

    ``scores`` needs ``customer_id, churn_probability, customer_value,
    expected_value_at_risk, rfm_segment, value_tier, recency_days``; the ``uplift`` policy
    also needs the uplift model's predictions (:class:`Uplift`). ``dropped`` are scored
    customers already left out by :func:`~crmkit.campaigns.candidates.candidates`: they
    are counted where the steps would have excluded them.

    Raises
    ------
    UsageError
        The ``uplift`` policy without predictions.
    """
    check_campaign(campaign)
    check_policy(policy)
    if "reasons" not in scores.columns:  # scores made without reason codes
        scores = scores.with_columns(pl.lit(None, dtype=pl.String).alias("reasons"))
    scores, counts, late = _not_contacted(scores, dropped, optouts, recently_assigned)
    frame, counts["other_lifecycle"] = _lifecycle(scores, policy)
    counts["other_lifecycle"] += late.get("other_lifecycle", 0)
    before = frame.height
    frame = frame.filter(
        (pl.col("customer_value") >= policy.min_customer_value)
        & ~pl.col("value_tier").is_in(list(policy.exclude_tiers))
    )
    counts["low_value"] = before - frame.height + late.get("low_value", 0)
    if policy.policy == POLICY_UPLIFT:
        if uplift is None:
            raise UsageError("the uplift policy needs an uplift model's predictions")
        grouped = assign_groups(frame.lazy(), campaign, policy.control_fraction, policy)
        ranked, more = rank_by_uplift(grouped.collect(), uplift.frame, campaign, as_of, policy)
        counts |= more
        ranked = ranked.with_columns(pl.lit(uplift.model).alias("uplift_model"))
    else:
        ranked, more = _rank_by_value_at_risk(frame, campaign, policy)
        counts |= more
        counts["low_risk"] += late.get("low_risk", 0)
    out = ranked.with_columns(
        pl.lit(campaign).alias("campaign_id"),
        pl.lit(as_of).alias("as_of"),
        pl.col("rfm_segment").alias("segment"),
        pl.col("treatment").alias("planned_treatment"),
    )
    return out, counts


def _not_contacted(
    scores: pl.DataFrame, dropped: pl.DataFrame | None, optouts: pl.Series, recent: pl.Series
) -> tuple[pl.DataFrame, dict[str, int], dict[str, int]]:
    """Leave out the opted-out and those in their cool-down, of ``scores`` and ``dropped``.

    Returns the scores left, the counts so far and, per step, the dropped customers left.
    """
    empty = pl.DataFrame(schema={schema.CUSTOMER_ID: pl.String})
    rest = dropped if dropped is not None else empty
    counts: dict[str, int] = {"scored": scores.height + rest.height}
    for step, ids in (("opted_out", optouts), ("cooldown", recent)):
        before = scores.height + rest.height
        scores, rest = (
            f.filter(~pl.col(schema.CUSTOMER_ID).is_in(ids.implode())) for f in (scores, rest)
        )
        counts[step] = before - scores.height - rest.height
    return scores, counts, dropped_counts(rest if dropped is not None else None)


@dataclass(frozen=True)
class Uplift:
    """An uplift model's predictions for the day.

    ``model`` is its ``NAME:VERSION``, ``frame`` the table of
    :meth:`crmkit.models.uplift.UpliftModel.predict_uplift` (customer, treatment, uplifts).
    """

    model: str
    frame: pl.DataFrame


def _lifecycle(frame: pl.DataFrame, policy: TargetPolicy) -> tuple[pl.DataFrame, int]:
    """Keep the customers of the policy's lifecycle (scores without one: all ``retain``)."""
    if "lifecycle" not in frame.columns:
        frame = frame.with_columns(pl.lit(RETAIN).alias("lifecycle"))
    if "value_if_active" not in frame.columns:
        frame = frame.with_columns(pl.col("customer_value").alias("value_if_active"))
    kept = frame.filter(pl.col("lifecycle") == policy.lifecycle)
    return kept, frame.height - kept.height


def _rank_by_value_at_risk(
    frame: pl.DataFrame, campaign: str, policy: TargetPolicy
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Allocate the budget by value at risk per pound (:mod:`crmkit.campaigns.budget`)."""
    counts = {}
    before = frame.height
    if policy.lifecycle == RETAIN:
        frame = frame.filter(pl.col("churn_probability") >= policy.min_churn_probability)
    counts["low_risk"] = before - frame.height
    lazy = assign_groups(frame.lazy(), campaign, policy.control_fraction, policy)
    if not frame[schema.CUSTOMER_ID].is_sorted():  # scores read in blocks already are
        lazy = lazy.sort(schema.CUSTOMER_ID)
    grouped = lazy.collect()
    gain, treatments = value_at_risk_gains(grouped, policy)
    gain, counts["no_contact_details"] = reach(grouped, gain, treatments, policy)
    ranked = allocate_frame(grouped, gain, treatments, policy, policy.size, policy.budget)
    counts["not_worth_the_cost"] = int((np.nan_to_num(gain, nan=0.0) <= cost_vector(
        policy, treatments)[None, :]).all(axis=1).sum()) - counts["no_contact_details"]  # fmt: skip
    counts["over_size_or_budget"] = (
        grouped.height - counts["not_worth_the_cost"] - counts["no_contact_details"] - ranked.height
    )
    estimated = bool(policy.effects or policy.segment_effects) or policy.lifecycle == WIN_BACK
    cost = arm_cost(policy)
    uplift = (
        pl.col("gain") / pl.col("value_if_active")
        if policy.lifecycle == WIN_BACK
        else pl.col("gain") / pl.col("customer_value")
    )
    return ranked.with_columns(
        pl.lit(WIN_BACK if policy.lifecycle == WIN_BACK else POLICY_VALUE_AT_RISK).alias("policy"),
        pl.lit(None, dtype=pl.String).alias("uplift_model"),
        (uplift if estimated else pl.lit(None, dtype=pl.Float64)).alias("expected_uplift"),
        (pl.col("gain") - cost if estimated else pl.lit(None, dtype=pl.Float64)).alias(
            "expected_profit"
        ),
        pl.lit(None, dtype=pl.Float64).alias("uplift_spread"),
    ).drop("gain"), counts


def recently_assigned(
    entries: pl.DataFrame | pl.LazyFrame, campaign: str, as_of: dt.date, cooldown_days: int
) -> pl.Series:
    """Return customers put in any group of any campaign in ``[as_of - cooldown, as_of]``.

    The same campaign's own list of the same day does not count, so a re-run of a day
    reproduces its list.
    """
    start = as_of - dt.timedelta(days=cooldown_days)
    recent = entries.lazy().filter(
        (pl.col("as_of") >= start)
        & (pl.col("as_of") <= as_of)
        & ~((pl.col("campaign_id") == campaign) & (pl.col("as_of") == as_of))
    )
    return recent.select(schema.CUSTOMER_ID).collect().to_series().unique()
