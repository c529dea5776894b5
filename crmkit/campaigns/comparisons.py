"""Comparisons of treatment and control: overall, per arm, per segment and per policy.

:func:`compare` gives the plain statistics of one comparison (see
:mod:`crmkit.campaigns.evaluation`), with the adjusted and always-valid estimates of
:mod:`crmkit.campaigns.estimates` when an :class:`~crmkit.campaigns.estimates.Analysis`
asks for them; :func:`subgroups` compares per treatment arm, segment and policy, with
Holm-adjusted p-values.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from crmkit.campaigns.estimates import Analysis, sharper
from crmkit.campaigns.ledger import NO_TREATMENT
from crmkit.campaigns.stats import (
    holm,
    minimum_detectable,
    newcombe,
    ratio_interval,
    two_proportion_p,
    welch,
)


def treatment_arms(rows: pl.DataFrame) -> list[str]:
    """Return the treatment arms that have customers in the treatment group, by name."""
    treated = rows.filter(pl.col("group") == "treatment")["treatment"].drop_nulls()
    return sorted(set(treated.to_list()) - {NO_TREATMENT})


def arm_rows(rows: pl.DataFrame, name: str) -> pl.DataFrame:
    """Return the treatment group of arm ``name`` with its control group.

    Control customers carry the arm the policy would have given them; controls without an
    arm (imported experiments with one shared control group) serve every arm.
    """
    arm_of = pl.col("treatment")
    shared = arm_of.is_null() | (arm_of == NO_TREATMENT)
    control = (pl.col("group") == "control") & ((arm_of == name) | shared)
    return rows.filter(((pl.col("group") == "treatment") & (arm_of == name)) | control)


def with_holm(subsets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add ``p_value_holm`` to each subgroup comparison, adjusted over all of them."""
    p_values = [float(c.get("p_value", float("nan"))) for c in subsets]
    return [c | {"p_value_holm": q} for c, q in zip(subsets, holm(p_values), strict=True)]


def compare(
    frame: pl.DataFrame, alpha: float = 0.05, analysis: Analysis | None = None
) -> dict[str, Any]:
    """Treatment against control on a frame of outcomes (``group, retained, revenue``).

    With ``analysis``, also its ``adjusted`` and ``sequential`` objects (``frame`` then
    holds the covariates of :func:`~crmkit.campaigns.adjustment.assignment_covariates`).
    """
    t = frame.filter(pl.col("group") == "treatment")
    c = frame.filter(pl.col("group") == "control")
    n1, n2 = t.height, c.height
    k1, k2 = int(t["retained"].sum()), int(c["retained"].sum())
    out: dict[str, Any] = {"treated": n1, "control": n2}
    if n1 == 0 or n2 == 0:
        return out | {"note": "needs both a treatment and a control group"}
    low, high = newcombe(k1, n1, k2, n2, alpha)
    rel_low, rel_high = ratio_interval(k1, n1, k2, n2, alpha)
    p = two_proportion_p(k1, n1, k2, n2)
    diff = k1 / n1 - k2 / n2
    rev, rev_low, rev_high, rev_p = welch(t["revenue"].to_list(), c["revenue"].to_list(), alpha)
    out |= {
        "retention_treatment": k1 / n1,
        "retention_control": k2 / n2,
        "uplift": diff,
        "uplift_low": low,
        "uplift_high": high,
        "relative_uplift": diff / (k2 / n2) if k2 else float("nan"),
        "relative_low": rel_low,
        "relative_high": rel_high,
        "p_value": p,
        "significant": p < alpha,
        "incremental_customers": diff * n1,
        "incremental_customers_low": low * n1,
        "incremental_customers_high": high * n1,
        "revenue_uplift_per_customer": rev,
        "revenue_uplift_low": rev_low,
        "revenue_uplift_high": rev_high,
        "revenue_p_value": rev_p,
        "incremental_revenue": rev * n1,
    }
    if p >= alpha:
        out["minimum_detectable_uplift"] = minimum_detectable(k2 / n2, n1, n2, alpha)
    return out | (sharper(frame, analysis, alpha) if analysis is not None else {})


Subgroups = list[dict[str, Any]]


def subgroups(
    rows: pl.DataFrame, alpha: float, analysis: Analysis | None = None
) -> tuple[Subgroups, Subgroups, Subgroups]:
    """Compare per treatment arm, per segment and per policy, with Holm-adjusted p-values."""

    def of(frame: pl.DataFrame) -> dict[str, Any]:
        return compare(frame, alpha, analysis)

    by_treatment = [{"treatment": t, **of(arm_rows(rows, t))} for t in treatment_arms(rows)]
    by_segment = [
        {"by": column, "segment": name, **of(rows.filter(pl.col(column) == name))}
        for column in ("segment", "value_tier")
        for name in sorted(rows[column].drop_nulls().unique().to_list())
    ]
    policies = sorted(rows["policy"].unique().to_list())
    by_policy = (
        [{"policy": p, **of(rows.filter(pl.col("policy") == p))} for p in policies]
        if len(policies) > 1
        else []
    )
    adjusted = with_holm([*by_treatment, *by_segment, *by_policy])
    cut = len(by_treatment) + len(by_segment)
    return adjusted[: len(by_treatment)], adjusted[len(by_treatment) : cut], adjusted[cut:]
