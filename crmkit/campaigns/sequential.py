"""Always-valid intervals: a confidence sequence, valid however often it is looked at.

A fixed-horizon 95% interval read every day of a campaign excludes zero on some day far
more often than 5% of the time when there is no effect. A confidence sequence holds at
every look at once: the chance that *any* look's interval misses the truth is at most
``alpha``.

This is the asymptotic confidence sequence of Waudby-Smith, Arbour, Sinha, Kennedy &
Ramdas ("Time-uniform central limit theory and asymptotic confidence sequences", 2021,
theorem 2.2), the normal-mixture boundary of Howard, Ramdas, McAuliffe & Sekhon (2021)
applied to an estimate whose variance shrinks as ``sigma^2 / N``; GrowthBook's and
Eppo's sequential tests use the same boundary. With ``N`` customers in the comparison
and ``V`` the estimate's variance, ``sigma^2 = N V`` and the half-width is

    sqrt(N V) * sqrt(2 (N rho^2 + 1) / (N^2 rho^2) * log(sqrt(N rho^2 + 1) / alpha))

``rho`` tunes where the sequence is narrowest: :func:`rho` makes it tightest at ``tuning``
customers (GrowthBook's default, 5,000). Far from it the sequence stays valid, only wider.
"""

from __future__ import annotations

import math
from typing import Final

#: Customers at which the sequence is tightest, unless configured.
DEFAULT_TUNING: Final = 5000


def rho(tuning: int, alpha: float = 0.05) -> float:
    """Mixture parameter that minimises the half-width at ``tuning`` customers."""
    a = -2 * math.log(alpha)
    return math.sqrt((a + math.log(a + 1)) / tuning)


def half_width(n: int, variance: float, alpha: float = 0.05, tuning: int = DEFAULT_TUNING) -> float:
    """Half-width of the confidence sequence at ``n`` customers for an estimate of ``variance``.

    NaN below two customers or for an undefined variance.
    """
    if n < 2 or not math.isfinite(variance) or variance < 0:
        return float("nan")
    r2 = rho(tuning, alpha) ** 2
    sigma = math.sqrt(n * variance)
    return sigma * math.sqrt(
        2 * (n * r2 + 1) / (n * n * r2) * math.log(math.sqrt(n * r2 + 1) / alpha)
    )


def sequence_interval(
    estimate: float, n: int, variance: float, alpha: float = 0.05, tuning: int = DEFAULT_TUNING
) -> tuple[float, float]:
    """Return the always-valid interval ``estimate +- half_width``."""
    h = half_width(n, variance, alpha, tuning)
    return (estimate - h, estimate + h)
