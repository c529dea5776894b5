"""The adjusted and always-valid estimates of one comparison, beside the plain ones.

:func:`sharper` adds to a comparison of :func:`~crmkit.campaigns.evaluation.compare`
an ``adjusted`` object (regression adjustment on each customer's history,
:mod:`crmkit.campaigns.adjustment`) and, when asked, a ``sequential`` object (a
confidence sequence, :mod:`crmkit.campaigns.sequential`) around the adjusted estimate, or
around the plain one where no adjustment can be made. Both carry the same fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from crmkit.campaigns.adjustment import (
    MIN_GROUP,
    Adjusted,
    adjusted_difference,
    design,
    difference_variance,
)
from crmkit.campaigns.sequential import DEFAULT_TUNING, sequence_interval
from crmkit.config.settings import EvaluateConfig


@dataclass(frozen=True)
class Analysis:
    """Which estimates an evaluation adds (``[evaluate]`` settings)."""

    adjust: bool = True
    sequential: bool = False
    tuning: int = DEFAULT_TUNING
    window_days: int = 60


def analysis_of(
    cfg: EvaluateConfig, adjust: bool | None = None, sequential: bool | None = None
) -> Analysis:
    """Return the estimates to add: ``adjust`` and ``sequential`` where given, else ``cfg``'s."""
    return Analysis(
        adjust=cfg.adjust if adjust is None else adjust,
        sequential=cfg.sequential if sequential is None else sequential,
        tuning=cfg.sequential_tuning,
    )


def sharper(frame: pl.DataFrame, analysis: Analysis, alpha: float = 0.05) -> dict[str, Any]:
    """Return the ``adjusted`` and ``sequential`` objects of treatment against control.

    ``frame`` holds ``group, retained, revenue`` and the covariate columns.
    """
    both = frame.filter(pl.col("group").is_in(["treatment", "control"]))
    treated = (both["group"] == "treatment").to_numpy()
    if treated.all() or not treated.any():
        return {}
    metrics = {
        "retention": both["retained"].cast(pl.Float64).to_numpy(),
        "revenue": both["revenue"].cast(pl.Float64).to_numpy(),
    }
    out: dict[str, Any] = {}
    adjusted: dict[str, Adjusted | None] = {}
    if analysis.adjust:
        x = design(both, analysis.window_days)
        adjusted = {k: adjusted_difference(y, x, treated, alpha) for k, y in metrics.items()}
        out["adjusted"] = (
            _fields(adjusted["retention"], adjusted["revenue"])  # type: ignore[arg-type]
            | {"covariates": int(x.shape[1])}
            if all(adjusted.values())
            else {"note": _why_not(x, treated)}
        )
    if analysis.sequential:
        out["sequential"] = _sequential(metrics, adjusted, treated, analysis, alpha)
    return out


def _fields(retention: Adjusted, revenue: Adjusted) -> dict[str, Any]:
    return {
        "uplift": retention.difference,
        "uplift_low": retention.low,
        "uplift_high": retention.high,
        "revenue_uplift_per_customer": revenue.difference,
        "revenue_uplift_low": revenue.low,
        "revenue_uplift_high": revenue.high,
        "variance_reduction": {
            "retention": retention.variance_reduction,
            "revenue": revenue.variance_reduction,
        },
        "significant": not retention.low <= 0 <= retention.high,
        "revenue_significant": not revenue.low <= 0 <= revenue.high,
    }


def _why_not(x: np.ndarray, treated: np.ndarray) -> str:
    if x.shape[1] == 0:
        return "no adjustment: no covariate varies between these customers"
    return (
        f"no adjustment: {int(treated.sum())} treated and {int((~treated).sum())} control "
        "customers are too few for a stable fit"
    )


def _sequential(
    metrics: dict[str, np.ndarray],
    adjusted: dict[str, Adjusted | None],
    treated: np.ndarray,
    analysis: Analysis,
    alpha: float,
) -> dict[str, Any]:
    """Return the confidence sequence around the adjusted estimate, or the plain one without it."""
    n = int(treated.size)
    if min(int(treated.sum()), int((~treated).sum())) < MIN_GROUP:
        return {"note": f"no always-valid interval below {MIN_GROUP} customers a group"}
    use_adjusted = bool(adjusted) and all(adjusted.values())
    bands = {}
    for name, y in metrics.items():
        found = adjusted.get(name)
        if use_adjusted and found is not None:
            estimate, variance, reduction = (
                found.difference,
                found.variance,
                found.variance_reduction,
            )
        else:
            estimate = float(y[treated].mean() - y[~treated].mean())
            variance, reduction = difference_variance(y, treated), 0.0
        low, high = sequence_interval(estimate, n, variance, alpha, analysis.tuning)
        bands[name] = Adjusted(estimate, low, high, reduction, variance)
    return _fields(bands["retention"], bands["revenue"]) | {
        "basis": "adjusted" if use_adjusted else "plain",
        "tuning_customers": analysis.tuning,
    }
