"""How ``uplift train --learner auto`` chooses an arm's learner from the cross-fitted ones."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from crmkit.models.uplift_learners import ATTRIBUTES_ONLY, LEARNERS
from crmkit.models.uplift_metrics import qini_gain


def by_qini(table: dict[str, Any]) -> list[str]:
    """Return the compared learners, the higher cross-fitted Qini first (the T-learner on a tie)."""

    def qini(name: str) -> float:
        value = float(table[f"{name}-learner"]["qini"]["value"])
        return value if np.isfinite(value) else -np.inf

    names = [n for n in LEARNERS if f"{n}-learner" in table]
    return sorted(names, key=lambda n: (qini(n), n == "t"), reverse=True)


def choose(
    order: list[str],
    y: np.ndarray,
    t: np.ndarray,
    scores: Mapping[str, np.ndarray],
    seed: int,
    value: np.ndarray | None = None,
) -> tuple[str, dict[str, Any]]:
    """Return the learner ``auto`` keeps, and the tests that decided it.

    The incumbent is the linear T-learner on the customer attributes alone when any are
    loaded (a weak signal mostly lives in a handful of such columns), else the boosting
    learner (T or X) with the higher cross-fitted Qini. A learner with a higher Qini than
    the incumbent replaces it only when its paired bootstrap gain in Qini over it has a
    90% interval above zero (the highest such Qini wins): with a few dozen responders a
    lead in cross-fitting is mostly luck, and the incumbent holds up better on new
    customers. With customer ``value``, the challenger must also rank the value-weighted
    outcome (purchase x value, by uplift x value: what the uplift policy ranks by) better,
    by the same test: a learner that finds more buyers but sends the valuable customers
    whom contact drives away to the top of the list does not replace the incumbent.
    """
    boosted = [n for n in order if n in ("t", "x")]
    incumbent = (
        ATTRIBUTES_ONLY if ATTRIBUTES_ONLY in order else (boosted[0] if boosted else order[0])
    )
    tests: dict[str, Any] = {}
    for name in order[: order.index(incumbent)]:  # the learners ranked above the incumbent
        if name in ("t", "x") and incumbent in ("t", "x"):
            continue
        gain = qini_gain(y, t, scores[name], scores[incumbent], seed=seed)
        tests[name] = gain.to_json()
        if value is not None:
            worth = qini_gain(
                y * value, t, scores[name] * value, scores[incumbent] * value, seed=seed
            )
            tests[name]["value_weighted"] = worth.to_json()
    passing = [
        name
        for name, gain in tests.items()
        if gain["low"] > 0 and gain.get("value_weighted", {"low": 1.0})["low"] > 0
    ]
    return (passing[0] if passing else incumbent), {"incumbent": incumbent, "gains": tests}
