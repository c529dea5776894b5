"""Campaigns on real customers with a known, injected effect: checks of the intervals.

A store's own history is a campaign without a treatment: the customers eligible on a
date and what they really did in the window after it
(:func:`~crmkit.campaigns.planning.baseline_frame`). Split them at random and give the
treatment group a known effect, and every interval of :mod:`crmkit.campaigns` can be
checked against the truth on real outcomes, with their real skew and ties:

* retention: each treated customer who did not buy buys with probability ``flip``;
* revenue: each treated buyer spends ``lift`` more (a share of what they spent), and a
  customer who buys because of the treatment spends a real buyer's revenue, drawn at random.

The true effects are the expectations over that injection, given the customers, so
coverage is measured against a fixed truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from crmkit.campaigns.adjustment import adjusted_difference, covariate_names, welch_interval
from crmkit.campaigns.sequential import sequence_interval


@dataclass(frozen=True)
class Customers:
    """Outcomes without treatment and covariates of the customers of a campaign."""

    retained: np.ndarray
    revenue: np.ndarray
    x: np.ndarray

    @classmethod
    def of(cls, frame: pl.DataFrame, window_days: int) -> Customers:
        """Read a :func:`~crmkit.campaigns.planning.baseline_frame`."""
        x = frame.select(covariate_names(window_days)).to_numpy().astype(np.float64)
        return cls(
            frame["retained"].cast(pl.Float64).to_numpy(),
            frame["revenue"].cast(pl.Float64).to_numpy(),
            x[:, np.ptp(x, axis=0) > 0],
        )

    def truth(self, flip: float, lift: float) -> tuple[float, float]:
        """Return the expected effect of the injection on retention and revenue per customer."""
        buyers = self.revenue[self.retained > 0]
        new = flip * float((1 - self.retained).mean())
        spend = float(buyers.mean()) if buyers.size else 0.0
        return new, lift * float((self.revenue * self.retained).mean()) + new * spend

    def campaign(
        self, rng: np.random.Generator, control_share: float, flip: float, lift: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One randomised campaign: (treated, retained, revenue) with the effect injected."""
        n = self.retained.size
        treated = rng.permutation(n) >= round(control_share * n)
        buyers = self.revenue[self.retained > 0]
        flipped = treated & (self.retained == 0) & (rng.uniform(size=n) < flip)
        drawn = rng.choice(buyers, size=n) if buyers.size else np.zeros(n)
        retained = np.where(flipped, 1.0, self.retained)
        lifted = np.where(treated & (self.retained > 0), self.revenue * (1 + lift), self.revenue)
        return treated, retained, np.where(flipped, lifted + drawn, lifted)


@dataclass(frozen=True)
class Coverage:
    """How often each interval covered the truth, and its mean width, over campaigns."""

    campaigns: int
    covered: dict[str, float]
    width: dict[str, float]


def coverage(
    customers: Customers,
    campaigns: int,
    seed: int,
    *,
    control_share: float = 0.5,
    flip: float = 0.05,
    lift: float = 0.1,
    alpha: float = 0.05,
) -> Coverage:
    """Run ``campaigns`` seeded campaigns; per ``<estimate>_<metric>``, coverage and width."""
    truth = dict(zip(("retention", "revenue"), customers.truth(flip, lift), strict=True))
    rng = np.random.default_rng(seed)
    hits: dict[str, int] = {}
    widths: dict[str, float] = {}
    for _ in range(campaigns):
        treated, retained, revenue = customers.campaign(rng, control_share, flip, lift)
        for metric, y in (("retention", retained), ("revenue", revenue)):
            found = adjusted_difference(y, customers.x, treated, alpha)
            bands = {"plain": welch_interval(y, treated, alpha)[1:]}
            if found is not None:
                bands["adjusted"] = (found.low, found.high)
            for kind, (low, high) in bands.items():
                key = f"{kind}_{metric}"
                hits[key] = hits.get(key, 0) + int(low <= truth[metric] <= high)
                widths[key] = widths.get(key, 0.0) + high - low
    return Coverage(
        campaigns,
        {k: v / campaigns for k, v in hits.items()},
        {k: v / campaigns for k, v in widths.items()},
    )


def aa_false_alarms(
    customers: Customers, campaigns: int, looks: int, seed: int, alpha: float = 0.05
) -> dict[str, float]:
    """A/A campaigns looked at ``looks`` times as customers arrive, in equal daily cohorts.

    Returns, per ``<interval>_<metric>`` (``fixed``: the adjusted 95% interval;
    ``sequential``: its confidence sequence), the share of campaigns where some look's
    interval excludes zero. There is no effect, so every such campaign is a false alarm.
    """
    rng = np.random.default_rng(seed)
    keys = [f"{k}_{m}" for k in ("fixed", "sequential") for m in ("retention", "revenue")]
    alarms = dict.fromkeys(keys, 0)
    n = customers.retained.size
    for _ in range(campaigns):
        order = rng.permutation(n)
        treated_all = rng.uniform(size=n) < 0.5
        seen = dict.fromkeys(keys, False)
        for look in range(1, looks + 1):
            rows = order[: round(n * look / looks)]
            treated = treated_all[rows]
            for metric, y in (("retention", customers.retained), ("revenue", customers.revenue)):
                found = adjusted_difference(y[rows], customers.x[rows], treated, alpha)
                if found is None:
                    continue
                low, high = sequence_interval(found.difference, rows.size, found.variance, alpha)
                seen[f"fixed_{metric}"] |= not found.low <= 0 <= found.high
                seen[f"sequential_{metric}"] |= not low <= 0 <= high
        for k, v in seen.items():
            alarms[k] += int(v)
    return {k: v / campaigns for k, v in alarms.items()}


def detection_rate(
    customers: Customers,
    size: int,
    control: int,
    metric: str,
    effect: float,
    campaigns: int,
    seed: int,
    alpha: float = 0.05,
) -> dict[str, float]:
    """Return the share of campaigns that detect an injected ``effect``, per estimate.

    Campaigns of ``size`` customers, ``control`` of them in control; per estimate
    (``plain``, ``adjusted``) of ``metric``.

    Each campaign draws its customers at random from ``customers``; the effect is a
    retention flip or a revenue lift whose expected size is ``effect``.
    """
    rng = np.random.default_rng(seed)
    if metric == "retention":
        flip, lift = effect / float((1 - customers.retained).mean()), 0.0
    else:
        flip, lift = 0.0, effect / float((customers.revenue * customers.retained).mean())
    hits = {"plain": 0, "adjusted": 0}
    for _ in range(campaigns):
        rows = rng.choice(
            customers.retained.size, size=size, replace=size > customers.retained.size
        )
        drawn = Customers(customers.retained[rows], customers.revenue[rows], customers.x[rows])
        treated, retained, revenue = drawn.campaign(rng, control / size, flip, lift)
        y = retained if metric == "retention" else revenue
        _, low, high = welch_interval(y, treated, alpha)
        hits["plain"] += int(low > 0 or high < 0)
        found = adjusted_difference(y, drawn.x, treated, alpha)
        hits["adjusted"] += int(found is not None and (found.low > 0 or found.high < 0))
    return {k: v / campaigns for k, v in hits.items()}
