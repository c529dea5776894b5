"""The buy-till-you-die models: BG/NBD for purchases and Gamma-Gamma for spend."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Self

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from crmkit.errors import BadInputError

_BOUND: Final = 10.0


@dataclass(frozen=True)
class FitInfo:
    """How a maximum-likelihood fit ended."""

    log_likelihood: float
    converged: bool
    iterations: int
    message: str
    customers: int


# --- BG/NBD -------------------------------------------------------------------------------


def distinct(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of ``x`` and the index of each element in them (computed once a fit)."""
    xs, inverse = np.unique(x, return_inverse=True)
    return xs, inverse


def bgnbd_loglik(
    params: np.ndarray,
    x: np.ndarray,
    t_x: np.ndarray,
    T: np.ndarray,
    weights: np.ndarray | None = None,
    index: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[float, np.ndarray]:
    """Total BG/NBD log-likelihood and its gradient with respect to (r, alpha, a, b)."""
    from scipy.special import digamma, gammaln

    r, alpha, a, b = (float(v) for v in params)
    w = np.ones_like(x) if weights is None else weights
    xs, inverse = index if index is not None else distinct(x)
    g = gammaln(r + xs) + gammaln(b + xs) - gammaln(a + b + xs)
    d_r = digamma(r + xs)
    d_b = digamma(b + xs)
    d_ab = digamma(a + b + xs)
    a1 = g[inverse] - gammaln(r) + r * math.log(alpha) + gammaln(a + b) - gammaln(b)
    rx = r + x
    log_aT = np.log(alpha + T)
    log_atx = np.log(alpha + t_x)
    a3 = -rx * log_aT
    repeat = x > 0
    bx1 = np.where(repeat, b + x - 1, 1.0)
    a4 = np.where(repeat, math.log(a) - np.log(bx1) - rx * log_atx, -np.inf)
    top = np.logaddexp(a3, a4)
    w3 = np.exp(a3 - top)
    w4 = 1.0 - w3
    ll = float(np.sum(w * (a1 + top)))
    grad_r = d_r[inverse] - digamma(r) + math.log(alpha) - w3 * log_aT - w4 * log_atx
    grad_alpha = r / alpha - w3 * rx / (alpha + T) - w4 * rx / (alpha + t_x)
    grad_a = digamma(a + b) - d_ab[inverse] + w4 / a
    grad_b = digamma(a + b) + d_b[inverse] - digamma(b) - d_ab[inverse] - w4 / bx1
    grad = np.array([np.sum(w * v) for v in (grad_r, grad_alpha, grad_a, grad_b)])
    return ll, grad


#: Customers a BG/NBD likelihood evaluates at a time: the fit's memory stays bounded.
LOGLIK_ROWS: Final = 1 << 18


def chunked_loglik(
    x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    """Return :func:`bgnbd_loglik` of every customer, evaluated :data:`LOGLIK_ROWS` at a time.

    The sum over blocks is the same likelihood; up to that many customers it is the very
    same computation (one block). Each block's distinct purchase counts are found once.
    """
    blocks = [
        (x[i : i + LOGLIK_ROWS], t_x[i : i + LOGLIK_ROWS], T[i : i + LOGLIK_ROWS])
        for i in range(0, len(x), LOGLIK_ROWS)
    ]
    indexes = [distinct(b[0]) for b in blocks]

    def objective(params: np.ndarray) -> tuple[float, np.ndarray]:
        if len(blocks) == 1:
            return bgnbd_loglik(params, *blocks[0], index=indexes[0])
        total, grad = 0.0, np.zeros(len(params))
        for block, index in zip(blocks, indexes, strict=True):
            ll, g = bgnbd_loglik(params, *block, index=index)
            total, grad = total + ll, grad + g
        return total, grad

    return objective


def _fit(
    objective: Callable[[np.ndarray], tuple[float, np.ndarray]],
    start: np.ndarray,
    n: int,
    penalty: float,
) -> tuple[np.ndarray, FitInfo]:
    from scipy.optimize import minimize

    def negative(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(log_params)
        ll, grad = objective(params)
        ll -= penalty * float(np.sum(params**2))
        grad = grad - 2 * penalty * params
        # chain rule for log parameters; scaled by n for a well-conditioned problem
        return -ll / n, -(grad * params) / n

    result = minimize(
        negative,
        np.log(start),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-_BOUND, _BOUND)] * len(start),
        options={"maxiter": 1000, "ftol": 1e-12, "gtol": 1e-8},
    )
    params = np.exp(result.x)
    info = FitInfo(
        log_likelihood=float(objective(params)[0]),
        converged=bool(result.success),
        iterations=int(result.nit),
        message=str(result.message),
        customers=n,
    )
    return params, info


class _Fitted(BaseEstimator):  # type: ignore[misc]
    """A maximum-likelihood model: ``penalty`` in, fitted parameters ``<name>_`` out.

    Models saved by 0.1.0 pickled the parameters without the trailing underscore (the
    classes were frozen dataclasses); :meth:`__setstate__` reads those too.
    """

    PARAMS: tuple[str, ...] = ()

    def __init__(self, penalty: float = 0.0) -> None:
        self.penalty = penalty

    @classmethod
    def from_params(cls, **params: float) -> Self:
        """Return a fitted model with the given parameters (published ones, say)."""
        model = cls()
        for name in cls.PARAMS:
            setattr(model, f"{name}_", float(params[name]))
        return model

    def params(self) -> dict[str, float]:
        """Return the fitted parameters by their names in the literature."""
        check_is_fitted(self, [f"{n}_" for n in self.PARAMS])
        return {name: float(getattr(self, f"{name}_")) for name in self.PARAMS}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if all(name in state for name in self.PARAMS):  # a frozen dataclass of 0.1.0
            state = {f"{name}_": state[name] for name in self.PARAMS} | {"penalty": 0.0}
        super().__setstate__(state)


class BetaGeo(_Fitted):
    """The BG/NBD model (time unit: weeks), fitted by maximum likelihood on ``x, t_x, T``."""

    PARAMS = ("r", "alpha", "a", "b")

    def fit(self, stats: pl.DataFrame, y: object = None) -> Self:
        """Fit by maximum likelihood on ``x, t_x, T``; the fit's outcome is ``fit_info_``.

        Raises
        ------
        BadInputError
            With fewer than 10 customers or no repeat purchase at all.
        """
        x, t_x, T = (stats[c].to_numpy().astype(np.float64) for c in ("x", "t_x", "T"))
        if len(x) < 10 or not (x > 0).any():
            raise BadInputError(
                f"BG/NBD needs at least 10 customers and some repeat purchases, got {len(x)}"
            )
        start = np.array([1.0, max(float(T.mean()), 1.0), 1.0, 1.0])
        params, self.fit_info_ = _fit(chunked_loglik(x, t_x, T), start, len(x), self.penalty)
        self.r_, self.alpha_, self.a_, self.b_ = map(float, params)
        return self

    def expected_purchases(
        self, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        """Return the expected repeat purchases in the next ``t`` weeks given (x, t_x, T)."""
        from scipy.special import hyp2f1

        check_is_fitted(self, "r_")
        r, alpha, a, b = self.r_, self.alpha_, self.a_, self.b_
        rx = r + x
        z = t / (alpha + T + t)
        hyp = hyp2f1(rx, b + x, a + b + x - 1, z)
        numerator = (a + b + x - 1) / (a - 1) * (1 - ((alpha + T) / (alpha + T + t)) ** rx * hyp)
        expected: np.ndarray = numerator / self._alive_denominator(x, t_x, T)
        return expected

    def _alive_denominator(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "r_")
        rx = self.r_ + x
        bx1 = np.where(x > 0, self.b_ + x - 1, 1.0)
        odds = self.a_ / bx1 * np.exp(rx * (np.log(self.alpha_ + T) - np.log(self.alpha_ + t_x)))
        return 1 + np.where(x > 0, odds, 0.0)

    def p_alive(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """P(alive | x, t_x, T); exactly 1 when x = 0."""
        return 1.0 / self._alive_denominator(x, t_x, T)

    def p_no_purchase(self, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """P(no purchase in the next ``t`` weeks): dead, or alive and no Poisson event."""
        alive = self.p_alive(x, t_x, T)
        quiet = ((self.alpha_ + T) / (self.alpha_ + T + t)) ** (self.r_ + x)
        return (1 - alive) + alive * quiet


# --- Gamma-Gamma --------------------------------------------------------------------------


def gamma_gamma_loglik(
    params: np.ndarray,
    x: np.ndarray,
    m: np.ndarray,
    index: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[float, np.ndarray]:
    """Return the Gamma-Gamma log-likelihood and its gradient in (p, q, gamma).

    ``m`` are mean spends over ``x`` repeat purchases.
    """
    from scipy.special import digamma, gammaln

    p, q, g = (float(v) for v in params)
    px = p * x
    log_m, log_x = np.log(m), np.log(x)
    log_gmx = np.log(g + m * x)
    ll = np.sum(
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * math.log(g)
        + (px - 1) * log_m
        + px * log_x
        - (px + q) * log_gmx
    )
    d_pq = digamma(px + q)
    grad_p = np.sum(x * (d_pq - digamma(px) + log_m + log_x - log_gmx))
    grad_q = np.sum(d_pq - digamma(q) + math.log(g) - log_gmx)
    grad_g = np.sum(q / g - (px + q) / (g + m * x))
    return float(ll), np.array([grad_p, grad_q, grad_g])


class GammaGamma(_Fitted):
    """The Gamma-Gamma spend model, fitted by maximum likelihood on repeat buyers."""

    PARAMS = ("p", "q", "gamma")

    def fit(self, stats: pl.DataFrame, y: object = None) -> Self:
        """Fit on customers with ``x >= 1`` and a positive mean repeat spend (``fit_info_``).

        Raises
        ------
        BadInputError
            With fewer than 10 such customers.
        """
        rows = stats.filter((pl.col("x") > 0) & (pl.col("monetary") > 0))
        if rows.height < 10:
            raise BadInputError(
                f"Gamma-Gamma needs 10 repeat buyers with positive spend, got {rows.height}"
            )
        x = rows["x"].to_numpy().astype(np.float64)
        m = rows["monetary"].to_numpy().astype(np.float64)
        start = np.array([1.0, 2.0, max(float(m.mean()), 1.0)])
        index = distinct(x)
        params, self.fit_info_ = _fit(
            lambda v: gamma_gamma_loglik(v, x, m, index), start, len(x), self.penalty
        )
        self.p_, self.q_, self.gamma_ = map(float, params)
        return self

    def expected_spend(self, x: np.ndarray, m: np.ndarray, population_mean: float) -> np.ndarray:
        """E[spend per purchase | x, mean m]; the population mean when x = 0 (or q <= 1: NaN)."""
        check_is_fitted(self, "q_")
        if self.q_ <= 1:
            return np.full_like(x, np.nan, dtype=np.float64)
        weighted = (self.gamma_ + m * x) * self.p_ / (self.p_ * x + self.q_ - 1)
        return np.where(x > 0, weighted, population_mean)

    def population_mean(self) -> float:
        """Mean spend per purchase of a new customer, ``p * gamma / (q - 1)``."""
        check_is_fitted(self, "q_")
        return self.p_ * self.gamma_ / (self.q_ - 1) if self.q_ > 1 else float("nan")
