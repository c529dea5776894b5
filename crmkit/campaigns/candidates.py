"""A list's candidates, found as the scores are read, so that only they are held in memory.

Of millions of scored customers a day's list can take only those of the policy's
lifecycle, of enough value and (ranked by value at risk) of enough risk.
:func:`candidates` divides each block of score rows as it is read
(:meth:`~crmkit.models.bucketed.ScoreParts.collect_split`): the candidates keep every
column; of the others only the id and the first of those steps that excludes them are
kept. :func:`~crmkit.campaigns.targeting.select_targets` then counts every exclusion as if
it had seen every row: opt-outs and the cool-down (which come first and need the ledger)
are applied to both, and the rest of the dropped customers are counted under their step.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from crmkit import schema
from crmkit.campaigns.uplift_policy import POLICY_UPLIFT
from crmkit.config.policy import TargetPolicy
from crmkit.models.alive import RETAIN

#: The steps :func:`candidates` may drop a customer at, in the order they are applied.
STEPS = ("other_lifecycle", "low_value", "low_risk")


def passes(policy: TargetPolicy, columns: list[str]) -> dict[str, pl.Expr]:
    """Return, per step of :data:`STEPS`, whether a row passes it (a null does not).

    As the filters of :func:`~crmkit.campaigns.targeting.select_targets`: scores without a
    lifecycle are all ``retain``; the risk floor is that of the value-at-risk ranking.
    """
    life = pl.col("lifecycle") if "lifecycle" in columns else pl.lit(RETAIN)
    value = (pl.col("customer_value") >= policy.min_customer_value) & ~pl.col("value_tier").is_in(
        list(policy.exclude_tiers)
    )
    risky = policy.policy != POLICY_UPLIFT and policy.lifecycle == RETAIN
    risk = pl.col("churn_probability") >= policy.min_churn_probability if risky else pl.lit(True)
    return {
        "other_lifecycle": (life == policy.lifecycle).fill_null(value=False),
        "low_value": value.fill_null(value=False),
        "low_risk": risk.fill_null(value=False),
    }


def candidates(
    policy: TargetPolicy,
) -> Callable[[pl.DataFrame], tuple[pl.DataFrame, pl.DataFrame]]:
    """Return the split of score rows into the list's candidates and the others (id, step)."""

    def split(block: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        tests = passes(policy, block.columns)
        first = pl.coalesce(pl.when(~tests[name]).then(pl.lit(name)) for name in STEPS)
        marked = block.with_columns(first.alias("__step"))
        kept = marked.filter(pl.col("__step").is_null()).drop("__step")
        dropped = marked.filter(pl.col("__step").is_not_null()).select(
            schema.CUSTOMER_ID, pl.col("__step").alias("excluded_by")
        )
        return kept, dropped

    return split


def dropped_counts(dropped: pl.DataFrame | None) -> dict[str, int]:
    """Count the dropped customers left after opt-outs and cool-down, per step."""
    if dropped is None or dropped.height == 0:
        return {}
    table = dropped.group_by("excluded_by").len()
    return dict(zip(table["excluded_by"].to_list(), table["len"].to_list(), strict=True))


class Candidates:
    """A list's candidate score rows and the dropped (id, step), to be taken once.

    Whoever makes the list takes them (:meth:`take`) and lets go of them once the list is
    selected, so that they are not held beside the list while it is explained, recorded
    and written: at 5M customers they are about 175 MB.
    """

    def __init__(self, rows: pl.DataFrame, dropped: pl.DataFrame | None = None) -> None:
        self._held: tuple[pl.DataFrame, pl.DataFrame | None] | None = (rows, dropped)

    def take(self) -> tuple[pl.DataFrame, pl.DataFrame | None]:
        """Return the rows and the dropped, holding them no longer.

        Raises
        ------
        RuntimeError
            When they were taken already.
        """
        if self._held is None:
            raise RuntimeError("the list's candidates were taken already")
        held, self._held = self._held, None
        return held
