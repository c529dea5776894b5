"""Statistics of a comparison of two groups: intervals, tests and detectable effects.

Wilson and Newcombe intervals for proportions and their difference, a ratio interval,
Welch's t for means, Holm's correction, and the minimum detectable effect.
"""

from __future__ import annotations

import math
from typing import Final


def minimum_detectable(p_control: float, n1: int, n2: int, alpha: float = 0.05) -> float:
    """Smallest retention difference detectable with 80% power at these sizes.

    NaN when it is undefined: an empty group, or a control rate of exactly 0 or 1.
    """
    from scipy.stats import norm

    if n1 == 0 or n2 == 0 or not 0 < p_control < 1:
        return float("nan")
    se = math.sqrt(p_control * (1 - p_control) * (1 / n1 + 1 / n2))
    return (_z(alpha) + float(norm.ppf(POWER))) * se


POWER: Final = 0.8


def _z(alpha: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(1 - alpha / 2))


def wilson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k / n`` (scipy's ``binomtest``)."""
    from scipy.stats import binomtest

    if n == 0:
        return (float("nan"), float("nan"))
    ci = binomtest(k, n).proportion_ci(confidence_level=1 - alpha, method="wilson")
    return (float(ci.low), float(ci.high))


def newcombe(k1: int, n1: int, k2: int, n2: int, alpha: float = 0.05) -> tuple[float, float]:
    """Newcombe hybrid score interval of ``k1/n1 - k2/n2`` (method 10)."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, alpha)
    l2, u2 = wilson(k2, n2, alpha)
    d = p1 - p2
    return (
        d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
        d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
    )


def two_proportion_p(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test."""
    from scipy.stats import norm

    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (k1 / n1 - k2 / n2) / se
    return float(2 * norm.sf(abs(z)))


def ratio_interval(k1: int, n1: int, k2: int, n2: int, alpha: float = 0.05) -> tuple[float, float]:
    """Katz log interval of the rate ratio ``(k1/n1) / (k2/n2)``, minus one (relative uplift)."""
    if min(k1, k2) == 0:
        return (float("nan"), float("nan"))
    ratio = (k1 / n1) / (k2 / n2)
    se = math.sqrt(1 / k1 - 1 / n1 + 1 / k2 - 1 / n2)
    z = _z(alpha)
    return (ratio * math.exp(-z * se) - 1, ratio * math.exp(z * se) - 1)


def welch(a: list[float], b: list[float], alpha: float = 0.05) -> tuple[float, float, float, float]:
    """Welch difference of means ``mean(a) - mean(b)``: (difference, low, high, p-value).

    scipy's ``ttest_ind(equal_var=False)``; NaN below two values a side, and an exact
    answer when both groups are constant (the test is undefined there).
    """
    from scipy.stats import ttest_ind

    if len(a) < 2 or len(b) < 2:
        return (float("nan"),) * 4
    diff = sum(a) / len(a) - sum(b) / len(b)
    if min(a) == max(a) and min(b) == max(b):
        return (diff, diff, diff, 1.0 if diff == 0 else 0.0)
    test = ttest_ind(a, b, equal_var=False)
    ci = test.confidence_interval(confidence_level=1 - alpha)
    return (diff, float(ci.low), float(ci.high), float(test.pvalue))


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (NaN stays NaN, and is skipped).

    The ``k``-th smallest of ``m`` p-values becomes ``max over j <= k of (m - j + 1) p_(j)``,
    capped at 1: rejecting where the adjusted value is below ``alpha`` keeps the chance of
    any false positive in the family at ``alpha``.
    """
    ranked = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    out = [float("nan")] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(ranked):
        running = max(running, min(1.0, (len(ranked) - rank) * p))
        out[i] = running
    return out
