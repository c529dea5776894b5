"""Prove a targeting policy on a past randomised campaign before rolling it out.

``crmkit policy compare`` takes a campaign whose outcome window has passed and asks, for
each targeting policy at the same budget: had it chosen whom to contact among this
campaign's customers, how many more customers would have bought, and how much more net
revenue (less the contacts' cost) than contacting nobody? The estimates are the inverse
propensity and doubly robust ones of :mod:`crmkit.campaigns.offpolicy`, with bootstrap
intervals, as totals over the campaign's treatment and control customers.

* **Propensities** come from the ledger: within each *stratum* (the customers the policy
  of the day gave one arm, or, when controls carry no arm, the whole campaign) the share
  of customers in each group. A policy may only give a customer an arm their stratum was
  randomised over.
* **Outcome models**, per action (control and each arm), are gradient boosting fitted on
  the other customer folds (cross-fitting: no customer's outcome predicts itself).
* **Policies**: *value at risk* (churn risk, the control-outcome model's ``1 - P(buy)``,
  times customer value), *random* (a stable hash of the customer), *treat all* (no
  budget) and *uplift*: the expected profit ``(uplift - caution x spread) x value - cost``
  of a saved uplift model not trained on the campaign, or without one, of the cross-fitted
  outcome models (a T-learner). The first three give each customer their stratum's arm
  (with a shared control, each arm in turn); uplift the most profitable one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import polars as pl

from crmkit.campaigns.ledger import NO_TREATMENT
from crmkit.campaigns.offpolicy import ROUNDS, bootstrap_weights, estimate_policy
from crmkit.hashing import stable_hash_values
from crmkit.models.uplift_learners import _fit_classifier, _hgb_regressor, _p

CONTROL: Final = "none"
#: The outcomes estimated: a purchase in the window (0/1) and the window's net revenue.
OUTCOMES: Final = ("customers", "revenue")


@dataclass(frozen=True)
class Logged:
    """What a randomised campaign did: each row's action and its randomisation shares."""

    actions: tuple[str, ...]  # CONTROL first, then the arms by name
    action: np.ndarray  # index into actions, per row
    propensity: np.ndarray  # rows x actions: the share of each action in the row's stratum
    stratum_arm: np.ndarray  # index of the row's arm (0 under a shared control)

    @property
    def shared(self) -> bool:
        """Whether one control group serves every arm."""
        return bool((self.stratum_arm == 0).all())


def logged_actions(rows: pl.DataFrame) -> Logged:
    """Return the logged actions and propensities of a campaign's treatment/control rows.

    Raises
    ------
    ValueError
        Rows without a treatment arm or without a control group.
    """
    treated = (rows["group"] == "treatment").to_numpy()
    arm = rows["treatment"].fill_null(NO_TREATMENT).to_numpy().astype(str)
    arms = sorted(set(arm[treated]) - {NO_TREATMENT})
    if not arms or treated.all():
        raise ValueError("the campaign needs treated customers with an arm and a control group")
    actions = (CONTROL, *arms)
    index = {a: k for k, a in enumerate(actions)}
    action = np.where(treated, [index.get(a, 0) for a in arm], 0)
    shared = bool((~treated & (arm == NO_TREATMENT)).any())
    stratum = np.zeros(len(arm), dtype=np.int64) if shared else np.array([index[a] for a in arm])
    propensity = np.zeros((len(arm), len(actions)))
    for s in np.unique(stratum):
        members = stratum == s
        shares = np.bincount(action[members], minlength=len(actions)) / members.sum()
        propensity[members] = shares
    return Logged(actions, action, propensity, stratum)


def outcome_models(
    x: np.ndarray,
    y: Mapping[str, np.ndarray],
    logged: Logged,
    folds: np.ndarray,
    seed: int,
) -> dict[str, np.ndarray]:
    """Cross-fitted predictions of each outcome under every action, rows x actions.

    Raises
    ------
    ValueError
        A fold whose other folds hold no customer of some action.
    """
    n, k = len(folds), len(logged.actions)
    mu = {name: np.zeros((n, k)) for name in y}
    for f in np.unique(folds):
        test = folds == f
        for a in range(k):
            train = (folds != f) & (logged.action == a)
            if not train.any():
                raise ValueError(f"no {logged.actions[a]} customer outside fold {f}")
            retained = _fit_classifier(x[train], y["customers"][train], seed)
            mu["customers"][test, a] = _p(retained, x[test])
            revenue = _hgb_regressor(seed).fit(x[train], y["revenue"][train])
            mu["revenue"][test, a] = revenue.predict(x[test])
    return mu


def budget_head(
    order: np.ndarray, action: np.ndarray, cost: np.ndarray, budget: float | None
) -> np.ndarray:
    """Give ``action`` to the longest head of ``order`` whose cost stays within ``budget``."""
    spend = np.cumsum(cost[action[order]])
    head = order if budget is None else order[spend <= budget + 1e-9]
    out = np.zeros(len(action), dtype=np.int64)
    out[head] = action[head]
    return out


@dataclass(frozen=True)
class Candidates:
    """Everything a policy may look at: features-derived scores, never outcomes."""

    customers: pl.Series
    value: np.ndarray  # customer value as of the assignment
    risk: np.ndarray  # 1 - P(buy | control), cross-fitted
    profit: np.ndarray  # rows x actions: expected profit of each arm (-inf where not allowed)


def _random_order(customers: pl.Series, salt: str) -> np.ndarray:
    hashes = stable_hash_values(customers.cast(pl.String), salt=salt).to_numpy()
    return np.lexsort((np.arange(len(hashes)), hashes))


def policies(
    c: Candidates, logged: Logged, cost: np.ndarray, budget: float, salt: str
) -> dict[str, tuple[str | None, np.ndarray]]:
    """Return each policy's name, its fixed arm (None for uplift) and its actions."""
    fixed = [None] if not logged.shared else list(range(1, len(logged.actions)))
    out: dict[str, tuple[str | None, np.ndarray]] = {}
    for a in fixed:
        action = logged.stratum_arm if a is None else np.full(len(c.value), a)
        arm = None if a is None else logged.actions[a]
        tag = "" if arm is None else f" ({arm})"
        risk_order = np.lexsort((np.arange(len(c.value)), -(c.risk * c.value)))
        out[f"value at risk{tag}"] = (arm, budget_head(risk_order, action, cost, budget))
        out[f"random{tag}"] = (
            arm,
            budget_head(_random_order(c.customers, salt), action, cost, budget),
        )
        out[f"treat all{tag}"] = (arm, action.copy())
    best = np.argmax(c.profit, axis=1)
    gain = c.profit[np.arange(len(best)), best]
    positive = np.flatnonzero(gain > 0)
    order = positive[np.lexsort((positive, -gain[positive]))]
    out["uplift"] = (None, budget_head(order, best, cost, budget))
    return out


def compare_policies(
    outcomes: Mapping[str, np.ndarray],
    logged: Logged,
    mu: Mapping[str, np.ndarray],
    chosen: Mapping[str, tuple[str | None, np.ndarray]],
    cost: np.ndarray,
    seed: int,
    rounds: int = ROUNDS,
) -> list[dict[str, Any]]:
    """Estimate every policy: contacts, cost, incremental customers, revenue and value.

    ``incremental_value`` is the incremental revenue less the policy's contact cost.
    """
    weights = bootstrap_weights(len(logged.action), rounds, seed)
    table = []
    for name, (arm, action) in chosen.items():
        spent = float(cost[action].sum())
        found = estimate_policy(outcomes, logged.action, action, logged.propensity, mu, weights)
        value = {
            kind: {k: v - spent for k, v in found["revenue"][kind].items()}
            for kind in ("ips", "dr")
        }
        table.append(
            {
                "policy": name,
                "arm": arm,
                "contacts": int((action != 0).sum()),
                "cost": spent,
                "incremental_customers": found["customers"],
                "incremental_revenue": found["revenue"],
                "incremental_value": value,
            }
        )
    return table


def uplift_profit(worth: np.ndarray, cost: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Return every arm's expected profit, ``worth - cost`` (rows x actions).

    ``worth`` is the expected incremental value of each action per row (column 0, the
    control, unused); the control and the arms a row was not randomised over get -inf.
    """
    profit = worth - cost[None, :]
    profit[:, 0] = -np.inf
    out: np.ndarray = np.where(allowed, profit, -np.inf)
    return out
