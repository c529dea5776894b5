"""Off-policy estimates: what a targeting policy would have achieved on a randomised campaign.

A randomised campaign logged, for every customer ``i``, an action ``a_i`` (``0`` = the
control group, ``k`` = treatment arm ``k``) drawn with known probabilities ``P[i, k]``
(the shares of the customer's stratum: every customer the policy gave arm ``k`` was sent
it or kept as a control at random). A new policy gives each customer an action ``pi_i``;
its *incremental* outcome against contacting nobody is estimated, as a total over the
campaign's customers, by

* inverse propensity weighting (IPS)::

      sum over i with pi_i != 0 of  1[a_i = pi_i] y_i / P[i, pi_i]  -  1[a_i = 0] y_i / P[i, 0]

* the doubly robust estimate (DR), with cross-fitted outcome models ``mu[i, k]``::

      sum over i with pi_i != 0 of  mu[i, pi_i] - mu[i, 0]
          + 1[a_i = pi_i] (y_i - mu[i, pi_i]) / P[i, pi_i]
          - 1[a_i = 0] (y_i - mu[i, 0]) / P[i, 0]

Both are unbiased when the propensities are right; DR varies less when the outcome models
are good, and stays unbiased when they are not. Intervals are percentile bootstraps over
customers (the policy held fixed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np

from crmkit.models.uplift_metrics import Interval

#: Bootstrap rounds of :func:`interval`.
ROUNDS: Final = 1000


def _check(action: np.ndarray, policy: np.ndarray, propensity: np.ndarray) -> np.ndarray:
    """Return the rows the policy treats; refuse a policy action the campaign never risked."""
    if propensity.ndim != 2 or propensity.shape[0] != len(action) or len(policy) != len(action):
        raise ValueError("action, policy and propensity must describe the same rows")
    treats: np.ndarray = policy != 0
    rows = np.arange(len(action))
    chosen = propensity[rows, policy]
    if np.any(chosen[treats] <= 0) or np.any(propensity[treats, 0] <= 0):
        raise ValueError(
            "the policy gives some customers an action they could not have been given in the "
            "campaign (no randomised comparison for it)"
        )
    return treats


def ips_terms(
    y: np.ndarray, action: np.ndarray, policy: np.ndarray, propensity: np.ndarray
) -> np.ndarray:
    """Per-row IPS contributions to the policy's incremental outcome (module text)."""
    treats = _check(action, policy, propensity)
    rows = np.arange(len(action))
    safe = np.where(propensity > 0, propensity, 1.0)
    own = (action == policy) * y / safe[rows, policy]
    control = (action == 0) * y / safe[:, 0]
    out: np.ndarray = np.where(treats, own - control, 0.0)
    return out


def dr_terms(
    y: np.ndarray,
    action: np.ndarray,
    policy: np.ndarray,
    propensity: np.ndarray,
    mu: np.ndarray,
) -> np.ndarray:
    """Per-row doubly robust contributions to the policy's incremental outcome (module text)."""
    treats = _check(action, policy, propensity)
    rows = np.arange(len(action))
    safe = np.where(propensity > 0, propensity, 1.0)
    mu_pi, mu_0 = mu[rows, policy], mu[:, 0]
    own = (action == policy) * (y - mu_pi) / safe[rows, policy]
    control = (action == 0) * (y - mu_0) / safe[:, 0]
    out: np.ndarray = np.where(treats, mu_pi - mu_0 + own - control, 0.0)
    return out


def bootstrap_weights(n: int, rounds: int, seed: int) -> np.ndarray:
    """Return ``rounds`` x ``n`` resampling counts of ``n`` customers (with replacement)."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=rounds).astype(np.float64)


def interval(terms: np.ndarray, weights: np.ndarray, alpha: float = 0.05) -> Interval:
    """Return the sum of ``terms`` with its percentile interval over bootstrap ``weights``."""
    totals = weights @ terms
    low, high = np.quantile(totals, [alpha / 2, 1 - alpha / 2])
    return Interval(float(terms.sum()), float(low), float(high))


def estimate_policy(
    outcomes: Mapping[str, np.ndarray],
    action: np.ndarray,
    policy: np.ndarray,
    propensity: np.ndarray,
    mu: Mapping[str, np.ndarray],
    weights: np.ndarray,
) -> dict[str, Any]:
    """IPS and DR estimates, with intervals, of a policy for each named outcome.

    ``outcomes`` maps a name (``customers``: retained 0/1, ``revenue``) to the per-row
    outcome; ``mu`` holds the cross-fitted outcome models' predictions for every action,
    per outcome.
    """
    out: dict[str, Any] = {}
    for name, y in outcomes.items():
        out[name] = {
            "ips": interval(ips_terms(y, action, policy, propensity), weights).to_json(),
            "dr": interval(dr_terms(y, action, policy, propensity, mu[name]), weights).to_json(),
        }
    return out
