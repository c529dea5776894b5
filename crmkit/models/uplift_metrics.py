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
from dataclasses import dataclass
from typing import Final

import numpy as np

SHARES: Final = (0.1, 0.2, 0.3)


def _check(y: np.ndarray, t: np.ndarray, score: np.ndarray) -> None:
    if not (len(y) == len(t) == len(score)):
        raise ValueError("outcome, treatment and score must have the same length")


@dataclass(frozen=True)
class Ranked:
    """Customers in ranking order (highest score first, stable), and tie runs' ends."""

    order: np.ndarray
    y: np.ndarray
    t: np.ndarray
    ends: np.ndarray

    @classmethod
    def of(cls, y: np.ndarray, t: np.ndarray, score: np.ndarray) -> Ranked:
        """Rank ``score``; ``ends`` is the last position of every run of equal scores."""
        _check(y, t, score)
        order = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")
        s = np.asarray(score, dtype=np.float64)[order]
        ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True]) if len(s) else np.array([], int)
        return cls(
            order,
            np.asarray(y, dtype=np.float64)[order],
            np.asarray(t, dtype=bool)[order],
            ends,
        )

    def sums(self, w: np.ndarray | None = None) -> Sums:
        """Sum weights and buyers down the ranking, row weights ``w`` in the original order."""
        ws = np.ones(len(self.y)) if w is None else np.asarray(w, dtype=np.float64)[self.order]
        wt = ws * self.t
        return Sums(
            np.cumsum(ws), np.cumsum(wt), np.cumsum(wt * self.y), np.cumsum((ws - wt) * self.y)
        )

    def curve(
        self, w: np.ndarray | None = None, kind: str = "qini", sums: Sums | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return the curve with row weights ``w`` (in the original row order; None: all 1)."""
        c = self.sums(w) if sums is None else sums
        e = self.ends
        nt, yt, yc = c.wt[e], c.yt[e], c.yc[e]
        nc = c.w[e] - nt
        with np.errstate(divide="ignore", invalid="ignore"):
            if kind == "qini":
                value = np.where(nc > 0, yt - yc * nt / nc, 0.0)
            else:
                value = np.where((nt > 0) & (nc > 0), (yt / nt - yc / nc) * (nt + nc), 0.0)
        return np.r_[0.0, c.w[e]], np.r_[0.0, value]

    def at_k(self, k: float, w: np.ndarray | None = None, sums: Sums | None = None) -> float:
        """Treated minus control response rate among the top ``k`` share (weighted rows).

        The row at the cut counts in part, so that exactly ``ceil(k * total)`` are taken.
        """
        c = self.sums(w) if sums is None else sums
        if len(c.w) == 0:
            return float("nan")
        n = max(1.0, math.ceil(k * c.w[-1]))
        i = min(int(np.searchsorted(c.w, n)), len(c.w) - 1)

        def upto(arr: np.ndarray) -> float:
            return float(arr[i - 1]) if i > 0 else 0.0

        part = n - upto(c.w)
        ti, yi = float(self.t[i]), float(self.y[i])
        nt = upto(c.wt) + part * ti
        nc = n - nt
        if nt <= 0 or nc <= 0:
            return float("nan")
        yt = upto(c.yt) + part * ti * yi
        yc = upto(c.yc) + part * (1 - ti) * yi
        return float(yt / nt - yc / nc)


@dataclass(frozen=True)
class Sums:
    """Running totals down a ranking: weight, treated weight, treated and control buyers."""

    w: np.ndarray
    wt: np.ndarray
    yt: np.ndarray
    yc: np.ndarray


def curve(
    y: np.ndarray, t: np.ndarray, score: np.ndarray, kind: str = "qini"
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(x, value)`` of the Qini (``kind="qini"``) or uplift curve, from (0, 0).

    ``x`` is the number of customers ranked at each distinct score, highest first.
    """
    return Ranked.of(y, t, score).curve(kind=kind)


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


def _perfect(y: np.ndarray, t: np.ndarray) -> Ranked:
    """Rank treated responders first and control responders last: the perfect ranking."""
    t_bool = np.asarray(t, dtype=bool)
    return Ranked.of(y, t, np.asarray(y, dtype=np.float64) * np.where(t_bool, 1.0, -1.0))


def _normalised_ranked(
    ranked: Ranked,
    perfect: Ranked,
    kind: str,
    w: np.ndarray | None = None,
    sums: Sums | None = None,
    perfect_area: float | None = None,
) -> float:
    x, v = ranked.curve(w, kind, sums)
    if len(x) < 2:
        return float("nan")
    random = x[-1] * v[-1] / 2.0
    area = _area(*perfect.curve(w, kind)) if perfect_area is None else perfect_area
    best = area - random
    if best <= 0 or not math.isfinite(best):
        return float("nan")
    return float((_area(x, v) - random) / best)


def _normalised(y: np.ndarray, t: np.ndarray, score: np.ndarray, kind: str) -> float:
    return _normalised_ranked(Ranked.of(y, t, score), _perfect(y, t), kind)


def qini_coefficient(y: np.ndarray, t: np.ndarray, score: np.ndarray) -> float:
    """Return the normalised area under the Qini curve (NaN when undefined)."""
    return _normalised(y, t, score, "qini")


def auuc(y: np.ndarray, t: np.ndarray, score: np.ndarray) -> float:
    """Return the normalised area under the uplift curve (NaN when undefined)."""
    return _normalised(y, t, score, "uplift")


def uplift_at_k(y: np.ndarray, t: np.ndarray, score: np.ndarray, k: float) -> float:
    """Return treated minus control response rate in the top ``k`` share (NaN: a group empty)."""
    return Ranked.of(y, t, score).at_k(k)


@dataclass(frozen=True)
class Interval:
    """A statistic with its bootstrap percentile interval."""

    value: float
    low: float
    high: float

    def to_json(self) -> dict[str, float]:
        """Return the interval as JSON-ready numbers."""
        return {"value": self.value, "low": self.low, "high": self.high}


def _resample_weights(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Count the draws of each row when treated and controls are resampled separately."""
    treated, control = np.flatnonzero(t), np.flatnonzero(~t)
    drawn = np.r_[
        rng.choice(treated, treated.size, replace=True),
        rng.choice(control, control.size, replace=True),
    ]
    return np.bincount(drawn, minlength=len(t)).astype(np.float64)


def _statistics(
    ranked: Ranked, perfect: Ranked, w: np.ndarray | None, areas: dict[str, float]
) -> dict[str, float]:
    sums = ranked.sums(w)
    out = {
        "qini": _normalised_ranked(ranked, perfect, "qini", w, sums, areas["qini"]),
        "auuc": _normalised_ranked(ranked, perfect, "uplift", w, sums, areas["uplift"]),
    }
    for share in SHARES:
        out[f"uplift_at_{round(share * 100)}"] = ranked.at_k(share, w, sums)
    return out


def _perfect_areas(perfect: Ranked, w: np.ndarray | None) -> dict[str, float]:
    sums = perfect.sums(w)
    return {kind: _area(*perfect.curve(w, kind, sums)) for kind in ("qini", "uplift")}


def uplift_reports(
    y: np.ndarray,
    t: np.ndarray,
    scores: dict[str, np.ndarray],
    *,
    rounds: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, dict[str, Interval]]:
    """Qini coefficient, AUUC and uplift at 10/20/30% of several rankings of the same rows.

    Each with a percentile interval from resampling treated and controls separately; every
    ranking is scored on the same resamples (so their intervals can be compared). A
    resample is a vector of row weights over the rankings sorted once, which gives the
    same statistics as sorting the resampled rows and costs no sort.
    """
    t = np.asarray(t, dtype=bool)
    y = np.asarray(y, dtype=np.float64)
    ranked = {name: Ranked.of(y, t, s) for name, s in scores.items()}
    perfect = _perfect(y, t)
    areas = _perfect_areas(perfect, None)
    points = {name: _statistics(r, perfect, None, areas) for name, r in ranked.items()}
    draws: dict[str, dict[str, list[float]]] = {n: {k: [] for k in points[n]} for n in ranked}
    rng = np.random.default_rng(seed)
    if t.any() and (~t).any():
        for _ in range(rounds):
            w = _resample_weights(t, rng)
            areas = _perfect_areas(perfect, w)
            for name, r in ranked.items():
                for key, value in _statistics(r, perfect, w, areas).items():
                    if math.isfinite(value):
                        draws[name][key].append(value)
    tail = (1 - level) / 2 * 100
    out: dict[str, dict[str, Interval]] = {}
    for name, stats in points.items():
        out[name] = {}
        for key, value in stats.items():
            if draws[name][key]:
                low, high = np.percentile(draws[name][key], [tail, 100 - tail])
                out[name][key] = Interval(value, float(low), float(high))
            else:
                out[name][key] = Interval(value, float("nan"), float("nan"))
    return out


def uplift_report(
    y: np.ndarray, t: np.ndarray, score: np.ndarray, *, rounds: int = 200, seed: int = 0
) -> dict[str, Interval]:
    """Qini coefficient, AUUC and uplift at 10/20/30%, each with a bootstrap interval."""
    return uplift_reports(y, t, {"score": score}, rounds=rounds, seed=seed)["score"]


def random_baseline(
    y: np.ndarray, t: np.ndarray, *, rounds: int = 200, seed: int = 0, level: float = 0.95
) -> dict[str, Interval]:
    """Return what random targeting achieves on these rows: its expectation and spread.

    The expected Qini coefficient and AUUC of a random ranking are 0 and its expected
    uplift at any share is the rows' average effect (treated minus control response
    rate), exactly; the interval is the ``level`` range of the statistics over ``rounds``
    seeded random rankings of the same rows, so one lucky shuffle never stands for random.
    """
    t = np.asarray(t, dtype=bool)
    y = np.asarray(y, dtype=np.float64)
    effect = float(y[t].mean() - y[~t].mean()) if t.any() and (~t).any() else float("nan")
    expected = {"qini": 0.0, "auuc": 0.0, **{f"uplift_at_{round(s * 100)}": effect for s in SHARES}}
    perfect = _perfect(y, t)
    areas = _perfect_areas(perfect, None)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {k: [] for k in expected}
    for _ in range(rounds if t.any() and (~t).any() else 0):
        ranked = Ranked.of(y, t, rng.permutation(len(y)).astype(np.float64))
        for key, value in _statistics(ranked, perfect, None, areas).items():
            if math.isfinite(value):
                draws[key].append(value)
    tail = (1 - level) / 2 * 100
    out = {}
    for key, value in expected.items():
        if draws[key]:
            low, high = np.percentile(draws[key], [tail, 100 - tail])
            out[key] = Interval(value, float(low), float(high))
        else:
            out[key] = Interval(value, float("nan"), float("nan"))
    return out


def qini_gain(
    y: np.ndarray,
    t: np.ndarray,
    challenger: np.ndarray,
    incumbent: np.ndarray,
    *,
    rounds: int = 200,
    seed: int = 0,
    level: float = 0.90,
) -> Interval:
    """Return the challenger's Qini minus the incumbent's, with a paired bootstrap interval.

    Both rankings are scored on the same resamples of treated and controls, so the
    interval is that of the difference itself, narrower than the two separate ones.
    """
    t = np.asarray(t, dtype=bool)
    y = np.asarray(y, dtype=np.float64)
    a, b = Ranked.of(y, t, challenger), Ranked.of(y, t, incumbent)
    perfect = _perfect(y, t)

    def gain(w: np.ndarray | None) -> float:
        areas = _perfect_areas(perfect, w)
        first = _normalised_ranked(a, perfect, "qini", w, a.sums(w), areas["qini"])
        second = _normalised_ranked(b, perfect, "qini", w, b.sums(w), areas["qini"])
        return first - second

    rng = np.random.default_rng(seed)
    both = t.any() and (~t).any()
    draws = [gain(_resample_weights(t, rng)) for _ in range(rounds if both else 0)]
    draws = [d for d in draws if math.isfinite(d)]
    if not draws:
        return Interval(gain(None), float("nan"), float("nan"))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return Interval(gain(None), float(low), float(high))
