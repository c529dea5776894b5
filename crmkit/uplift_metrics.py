"""Uplift evaluation: Qini and uplift curves, their normalised areas, uplift at k.

Customers are ranked by a score (higher = target first). At each distinct score, with
``n_t``, ``n_c`` treated and control customers ranked so far and ``r_t``, ``r_c`` of them
responding:

* Qini curve ``Q = r_t - r_c * n_t / n_c`` (0 while no control customer is ranked): the
  incremental responders among the treated so far;
* uplift curve ``U = (r_t / n_t - r_c / n_c) * (n_t + n_c)`` (0 while either group is
  empty): the incremental responders had everyone ranked so far been treated.

Customers with equal scores enter together (the curve jumps once), so the result does
not depend on the order of ties. Areas are trapezoids over the number of customers
ranked. The normalised *Qini coefficient* and *AUUC* are
``(area - random) / (perfect - random)``, where *random* is the straight line to the
curve's end and *perfect* the curve of the ranking that puts treated responders first and
control responders last; 1 is perfect, 0 no better than random, below 0 worse.
``uplift_at_k``: the response rate of treated minus control customers among the top
``k`` share of all customers (ties broken by position, as a list cut at ``k`` would).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np

SHARES: Final = (0.1, 0.2, 0.3)


def _check(y: np.ndarray, t: np.ndarray, score: np.ndarray) -> None:
    if not (len(y) == len(t) == len(score)):
        raise ValueError("outcome, treatment and score must have the same length")


def curve(
    y: np.ndarray, t: np.ndarray, score: np.ndarray, kind: str = "qini"
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(x, value)`` of the Qini (``kind="qini"``) or uplift curve, from (0, 0).

    ``x`` is the number of customers ranked at each distinct score, highest first.
    """
    _check(y, t, score)
    y = np.asarray(y, dtype=np.float64)
    t = np.asarray(t, dtype=bool)
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")
    s = np.asarray(score, dtype=np.float64)[order]
    yt = np.cumsum(y[order] * t[order])
    yc = np.cumsum(y[order] * ~t[order])
    nt = np.cumsum(t[order]).astype(np.float64)
    nc = np.cumsum(~t[order]).astype(np.float64)
    # the last position of every run of equal scores
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True]) if len(s) else np.array([], int)
    yt, yc, nt, nc = yt[ends], yc[ends], nt[ends], nc[ends]
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "qini":
            value = np.where(nc > 0, yt - yc * nt / nc, 0.0)
        else:
            value = np.where((nt > 0) & (nc > 0), (yt / nt - yc / nc) * (nt + nc), 0.0)
    x = np.r_[0.0, (ends + 1).astype(np.float64)]
    return x, np.r_[0.0, value]


def qini_points(
    y: np.ndarray, t: np.ndarray, score: np.ndarray, points: int = 21
) -> tuple[list[float], list[float]]:
    """Return the Qini curve at ``points`` evenly spaced shares of customers ranked, 0 to 1.

    Between the curve's steps (groups of tied scores) the value is interpolated linearly,
    as the areas are.
    """
    x, v = curve(y, t, score, "qini")
    shares = np.linspace(0.0, 1.0, points)
    if x[-1] == 0:
        return shares.tolist(), [0.0] * points
    return shares.tolist(), np.interp(shares * x[-1], x, v).tolist()


def _area(x: np.ndarray, v: np.ndarray) -> float:
    return float(np.sum((x[1:] - x[:-1]) * (v[1:] + v[:-1]) / 2.0))


def _normalised(y: np.ndarray, t: np.ndarray, score: np.ndarray, kind: str) -> float:
    x, v = curve(y, t, score, kind)
    if len(x) < 2:
        return float("nan")
    random = x[-1] * v[-1] / 2.0
    t_bool = np.asarray(t, dtype=bool)
    perfect_score = np.asarray(y, dtype=np.float64) * np.where(t_bool, 1.0, -1.0)
    px, pv = curve(y, t, perfect_score, kind)
    best = _area(px, pv) - random
    if best <= 0 or not math.isfinite(best):
        return float("nan")
    return float((_area(x, v) - random) / best)


def qini_coefficient(y: np.ndarray, t: np.ndarray, score: np.ndarray) -> float:
    """Return the normalised area under the Qini curve (NaN when undefined)."""
    return _normalised(y, t, score, "qini")


def auuc(y: np.ndarray, t: np.ndarray, score: np.ndarray) -> float:
    """Return the normalised area under the uplift curve (NaN when undefined)."""
    return _normalised(y, t, score, "uplift")


def uplift_at_k(y: np.ndarray, t: np.ndarray, score: np.ndarray, k: float) -> float:
    """Return treated minus control response rate in the top ``k`` share (NaN: a group empty)."""
    _check(y, t, score)
    n = max(1, math.ceil(k * len(y)))
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")[:n]
    top_y = np.asarray(y, dtype=np.float64)[order]
    top_t = np.asarray(t, dtype=bool)[order]
    if top_t.all() or not top_t.any():
        return float("nan")
    return float(top_y[top_t].mean() - top_y[~top_t].mean())


@dataclass(frozen=True)
class Interval:
    """A statistic with its bootstrap percentile interval."""

    value: float
    low: float
    high: float

    def to_json(self) -> dict[str, float]:
        """Return the interval as JSON-ready numbers."""
        return {"value": self.value, "low": self.low, "high": self.high}


def bootstrap(
    statistic: Callable[[np.ndarray, np.ndarray, np.ndarray], float],
    y: np.ndarray,
    t: np.ndarray,
    score: np.ndarray,
    *,
    rounds: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """Return ``statistic`` with a percentile interval from resampling each group.

    Treated and control customers are resampled separately, so every resample keeps the
    group sizes of the experiment.
    """
    rng = np.random.default_rng(seed)
    t_bool = np.asarray(t, dtype=bool)
    treated, control = np.flatnonzero(t_bool), np.flatnonzero(~t_bool)
    values = []
    for _ in range(rounds):
        idx = np.r_[
            rng.choice(treated, treated.size, replace=True),
            rng.choice(control, control.size, replace=True),
        ]
        value = statistic(y[idx], t[idx], score[idx])
        if math.isfinite(value):
            values.append(value)
    point = statistic(y, t, score)
    if not values:
        return Interval(point, float("nan"), float("nan"))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return Interval(point, float(low), float(high))


def uplift_report(
    y: np.ndarray, t: np.ndarray, score: np.ndarray, *, rounds: int = 200, seed: int = 0
) -> dict[str, Interval]:
    """Qini coefficient, AUUC and uplift at 10/20/30%, each with a bootstrap interval."""
    out = {
        "qini": bootstrap(qini_coefficient, y, t, score, rounds=rounds, seed=seed),
        "auuc": bootstrap(auuc, y, t, score, rounds=rounds, seed=seed),
    }
    for share in SHARES:

        def at(yy: np.ndarray, tt: np.ndarray, ss: np.ndarray, k: float = share) -> float:
            return uplift_at_k(yy, tt, ss, k)

        out[f"uplift_at_{round(share * 100)}"] = bootstrap(
            at, y, t, score, rounds=rounds, seed=seed
        )
    return out
