"""Plan a campaign before it runs: the control group it needs, or the effect it can detect.

The store's own history gives the baseline. Customers eligible on ``base = as_of - window``
(a purchase in the ``lookback_days`` before it, as for a daily list) and what they did in
``[base, as_of)`` are a campaign without a treatment: their retention rate and revenue
give the outcome's variance ``sigma^2``. The adjusted estimate
(:mod:`crmkit.campaigns.adjustment`) removes the share ``R^2`` of it that the same
covariates explain in that window, so its variance is ``sigma^2 (1 - R^2)``.

Power is that of a two-sided z-test of a difference of means (statsmodels'
``NormalIndPower``, both tails counted): with ``n_t`` treated and ``n_c`` controls and
standardised effect ``d = effect / sigma``,

    power = Phi(d sqrt(m) - z) + Phi(-d sqrt(m) - z),   m = 1 / (1/n_t + 1/n_c),

``z`` the ``1 - alpha/2`` normal quantile. For a campaign of ``N`` customers
:func:`control_fraction` finds the smallest control share (at most one half, where the
power is highest) that reaches the power asked; :func:`detectable_effect` the smallest
effect a given split detects.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from scipy.optimize import brentq
from scipy.stats import norm

from crmkit import schema
from crmkit.campaigns.adjustment import MIN_GROUP, assignment_covariates, covariate_names
from crmkit.errors import BadInputError, UsageError
from crmkit.store.core import Store


def power(effect: float, sigma: float, n_t: float, n_c: float, alpha: float = 0.05) -> float:
    """Power of the two-sided test of a difference ``effect`` between means of SD ``sigma``."""
    if n_t <= 0 or n_c <= 0 or sigma <= 0:
        return float("nan")
    crit = float(norm.ppf(1 - alpha / 2))
    shift = abs(effect) / sigma * math.sqrt(1 / (1 / n_t + 1 / n_c))
    return float(norm.sf(crit - shift) + norm.cdf(-crit - shift))


def control_fraction(
    effect: float, sigma: float, size: int, target: float = 0.8, alpha: float = 0.05
) -> float | None:
    """Return the smallest control share with ``target`` power; None if even a half fails."""
    if power(effect, sigma, size / 2, size / 2, alpha) < target:
        return None

    def gap(f: float) -> float:
        return power(effect, sigma, (1 - f) * size, f * size, alpha) - target

    return float(brentq(gap, 1e-9, 0.5, xtol=1e-12))


def balanced_size(effect: float, sigma: float, target: float = 0.8, alpha: float = 0.05) -> int:
    """Return the customers needed in all for ``target`` power with half of them in control."""

    def gap(n: float) -> float:
        return power(effect, sigma, n / 2, n / 2, alpha) - target

    if gap(4.0) >= 0:
        return 4
    high = 8.0
    while gap(high) < 0:
        high *= 2
    return 2 * math.ceil(float(brentq(gap, 4.0, high, xtol=1e-9)) / 2)


def detectable_effect(
    sigma: float, n_t: int, n_c: int, target: float = 0.8, alpha: float = 0.05
) -> float:
    """Smallest effect detected with ``target`` power by ``n_t`` treated and ``n_c`` controls."""
    if n_t <= 0 or n_c <= 0 or sigma <= 0:
        return float("nan")
    ceiling = 50 * sigma * math.sqrt(1 / n_t + 1 / n_c)
    return float(brentq(lambda e: power(e, sigma, n_t, n_c, alpha) - target, 0.0, ceiling))


@dataclass(frozen=True)
class Baseline:
    """One window of the store's history: eligible customers and what they did next."""

    base: dt.date
    window_days: int
    customers: int
    #: Per metric (``retention``, ``revenue``): the mean, the SD and the share ``R^2`` of
    #: the variance the adjustment's covariates explain.
    mean: dict[str, float]
    sd: dict[str, float]
    explained: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "base": str(self.base),
            "window_days": self.window_days,
            "customers": self.customers,
            "mean": self.mean,
            "sd": self.sd,
            "variance_reduction": self.explained,
        }


def store_baseline(store: Store, as_of: dt.date, window_days: int, lookback_days: int) -> Baseline:
    """Measure the :class:`Baseline` of the window that ends at ``as_of`` (or the data's end).

    Raises
    ------
    BadInputError
        When fewer than two customers are eligible at the window's start.
    """
    base, frame = baseline_frame(store, as_of, window_days, lookback_days)
    design = frame.select(covariate_names(window_days)).to_numpy()
    mean, sd, explained = {}, {}, {}
    for name, column in (("retention", "retained"), ("revenue", "revenue")):
        y = frame[column].cast(pl.Float64).to_numpy()
        mean[name], sd[name] = float(y.mean()), float(y.std(ddof=1))
        explained[name] = r_squared(y, design)
    return Baseline(base, window_days, frame.height, mean, sd, explained)


def baseline_frame(
    store: Store, as_of: dt.date, window_days: int, lookback_days: int
) -> tuple[dt.date, pl.DataFrame]:
    """Return the eligible customers of the window ending at ``as_of`` (or the data's end).

    Returns the window's first day and per customer (sorted by id) ``retained`` and
    ``revenue`` in the window with the covariates as of its first day.

    Raises
    ------
    BadInputError
        When fewer than two customers are eligible at the window's start.
    """
    tx = store.transactions()
    last = tx.select(pl.col(schema.TS).max()).collect().item()
    if last is None:
        raise BadInputError("the store has no transactions: nothing to plan from")
    end = min(as_of, last.date() + dt.timedelta(days=1))
    base = end - dt.timedelta(days=window_days)
    since = dt.datetime.combine(base - dt.timedelta(days=lookback_days), dt.time())
    keys = (
        tx.filter(
            pl.col(schema.TS).is_between(since, dt.datetime.combine(base, dt.time()), "left")
            & (pl.col(schema.AMOUNT) > 0)
        )
        .select(schema.CUSTOMER_ID)
        .unique()
        .with_columns(pl.lit(base).alias("as_of"))
        .collect()
    )
    if keys.height < 2:
        raise BadInputError(
            f"fewer than two customers bought in the {lookback_days} days before {base}: "
            "no baseline to plan from (choose a later --as-of or a shorter --window)"
        )
    x = assignment_covariates(store, keys, window_days).drop("as_of")
    frame = (
        keys.drop("as_of")
        .join(_outcomes(tx, keys, base, window_days), on=schema.CUSTOMER_ID, how="left")
        .with_columns(pl.col("retained").fill_null(value=False), pl.col("revenue").fill_null(0.0))
        .join(x, on=schema.CUSTOMER_ID, how="left")
        .sort(schema.CUSTOMER_ID)
    )
    return base, frame


def _outcomes(tx: pl.LazyFrame, keys: pl.DataFrame, base: dt.date, days: int) -> pl.DataFrame:
    start = dt.datetime.combine(base, dt.time())
    return (
        tx.filter(pl.col(schema.TS).is_between(start, start + dt.timedelta(days=days), "left"))
        .join(keys.lazy(), on=schema.CUSTOMER_ID, how="semi")
        .group_by(schema.CUSTOMER_ID)
        .agg(
            (pl.col(schema.AMOUNT) > 0).any().alias("retained"),
            pl.col(schema.AMOUNT).sum().alias("revenue"),
        )
        .collect()
    )


def r_squared(y: np.ndarray, x: np.ndarray) -> float:
    """Share of ``y``'s variance explained by least squares on ``x`` with an intercept."""
    keep = x[:, np.ptp(x, axis=0) > 0] if x.size else x
    if keep.shape[1] == 0 or y.var() == 0:
        return 0.0
    z = (keep - keep.mean(axis=0)) / keep.std(axis=0)
    theta, *_ = np.linalg.lstsq(z, y - y.mean(), rcond=None)
    residual = y - y.mean() - z @ theta
    return float(max(0.0, 1 - residual.var() / y.var()))


@dataclass(frozen=True)
class Plan:
    """What a campaign needs: per estimate (plain, adjusted), the split or the detectable effect."""

    metric: str
    size: int
    effect: float | None
    power: float
    alpha: float
    baseline: Baseline
    #: Per estimate: ``sd`` and either the control share and sizes that reach the power
    #: (``control_fraction``, ``control``, ``treatment``, ``achieved_power``, and the
    #: ``exact_fraction`` before rounding up to whole customers; or ``None``
    #: and ``balanced_size``, the customers a 50/50 split needs) or, with a given split,
    #: ``minimum_detectable_effect``.
    estimates: dict[str, dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "metric": self.metric,
            "campaign_size": self.size,
            "effect": self.effect,
            "power": self.power,
            "alpha": self.alpha,
            "baseline": self.baseline.to_json(),
            **self.estimates,
        }


def plan_campaign(
    baseline: Baseline,
    size: int,
    *,
    metric: str = "retention",
    effect: float | None = None,
    control_share: float | None = None,
    target: float = 0.8,
    alpha: float = 0.05,
) -> Plan:
    """Plan a campaign of ``size`` customers on ``baseline``: for ``effect``, the control share.

    ``effect`` is absolute: a difference of retention rates (0.02 for 2 points) or of
    revenue per customer. Without it, ``control_share`` gives the split and the plan holds
    the minimum detectable effect.

    Raises
    ------
    UsageError
        An effect of zero or not finite.
    BadInputError
        When the baseline has no variance.
    """
    if effect is not None and not (math.isfinite(effect) and effect != 0):
        raise UsageError(f"--effect must be a number other than zero, not {effect}")
    sd = baseline.sd[metric]
    if not sd > 0:
        raise BadInputError(
            f"every eligible customer on {baseline.base} had the same {metric} in the "
            f"{baseline.window_days} days after it: no variance to plan from"
        )
    sds = {"plain": sd, "adjusted": sd * math.sqrt(1 - baseline.explained[metric])}
    estimates: dict[str, dict[str, Any]] = {}
    for kind, sigma in sds.items():
        if effect is None:
            share = 0.5 if control_share is None else control_share
            n_c = max(1, round(share * size))
            mde = detectable_effect(sigma, size - n_c, n_c, target, alpha)
            estimates[kind] = {"sd": sigma, "control": n_c, "minimum_detectable_effect": mde}
            continue
        f = control_fraction(effect, sigma, size, target, alpha)
        if f is None:
            need = balanced_size(effect, sigma, target, alpha)
            estimates[kind] = {"sd": sigma, "control_fraction": None, "balanced_size": need}
            continue
        # never fewer controls than an evaluation needs for its adjusted estimate
        n_c = min(max(math.ceil(f * size), MIN_GROUP), size // 2)
        estimates[kind] = {
            "sd": sigma,
            "control_fraction": n_c / size,
            "exact_fraction": f,
            "control": n_c,
            "treatment": size - n_c,
            "achieved_power": power(effect, sigma, size - n_c, n_c, alpha),
        }
    return Plan(metric, size, effect, target, alpha, baseline, estimates)
