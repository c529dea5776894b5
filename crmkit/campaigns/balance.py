"""Balance of the groups of a list: standardised mean differences of the covariates."""

from __future__ import annotations

import math
from typing import Any, Final

import polars as pl

from crmkit.campaigns.names import GROUPS
from crmkit.numbers import as_float

BALANCE_COVARIATES: Final = ("churn_probability", "customer_value", "recency_days")
SMD_WARNING: Final = 0.1


def smd(a: pl.Series, b: pl.Series) -> float:
    """Standardised mean difference (mean_a - mean_b) / sqrt((var_a + var_b) / 2)."""
    if a.len() < 2 or b.len() < 2:
        return float("nan")
    va, vb = as_float(a.var()), as_float(b.var())
    scale = ((va + vb) / 2) ** 0.5
    diff = as_float(a.mean()) - as_float(b.mean())
    return diff / scale if scale > 0 else 0.0


def balance_report(frame: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    """Per group: size and covariate means; SMD of treatment against control and holdout."""
    rows = []
    warnings = []
    treated = frame.filter(pl.col("group") == "treatment")
    for group in GROUPS:
        part = frame.filter(pl.col("group") == group)
        row: dict[str, Any] = {"group": group, "customers": part.height}
        for cov in BALANCE_COVARIATES:
            row[f"mean_{cov}"] = as_float(part[cov].mean()) if part.height else None
            value = smd(treated[cov], part[cov]) if group != "treatment" else 0.0
            row[f"smd_{cov}"] = value
            if group != "treatment" and not math.isnan(value) and abs(value) > SMD_WARNING:
                warnings.append(
                    f"treatment and {group} differ on {cov}: standardised mean difference "
                    f"{value:+.2f} (above {SMD_WARNING}); the groups may be too small"
                )
        rows.append(row)
    return pl.DataFrame(rows), warnings
