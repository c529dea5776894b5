"""The evidence gate: an uplift arm drives a list only when its ranking beats chance.

At training, each arm's chosen learner is scored by its cross-fitted Qini coefficient with
a bootstrap interval (:func:`crmkit.models.uplift_metrics.uplift_reports`). The arm has
evidence when the interval's lower bound is above zero: a ranking no better than random
would not get there but by chance (2.5% of the time at the 95% level). ``targets
--policy uplift`` leaves out the arms without evidence, and ``[targeting]
uplift_evidence`` says what happens when no arm is left: ``refuse`` (exit 5, the
default), ``value_at_risk`` (that day's list is ranked by value at risk, with a warning)
or ``off`` (every arm is used, with a warning).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crmkit.errors import ModelError


@dataclass(frozen=True)
class Evidence:
    """The verdict on one arm's model: its cross-fitted Qini and whether it beats chance."""

    learner: str
    qini: float
    low: float
    high: float
    passed: bool

    def to_json(self) -> dict[str, Any]:
        """Return the verdict as saved in the card."""
        return dict(self.__dict__)

    def describe(self, arm: str) -> str:
        """Say the verdict in one line, with the figures."""
        verdict = "evidence" if self.passed else "no evidence"
        return (
            f"arm {arm}: {verdict} that the {self.learner}-learner ranks better than random "
            f"(cross-fitted Qini {self.qini:+.3f}, 95% interval "
            f"[{self.low:+.3f}, {self.high:+.3f}])"
        )


def evidence(table: Mapping[str, Any], learner: str) -> Evidence:
    """Judge an arm's ranking table (``rankings`` in the card) for its chosen ``learner``."""
    qini = table[f"{learner}-learner"]["qini"]
    value, low, high = (float(qini[k]) for k in ("value", "low", "high"))
    return Evidence(learner, value, low, high, passed=math.isfinite(low) and low > 0)


def arm_evidence(card: Mapping[str, Any]) -> dict[str, Evidence]:
    """Return the verdict of every arm of an uplift card (cards without one are judged now)."""
    out = {}
    for arm, info in card["arms"].items():
        saved = info.get("evidence")
        out[arm] = Evidence(**saved) if saved else evidence(info["rankings"], info["learner"])
    return out


def gated_arms(card: Mapping[str, Any], mode: str) -> tuple[list[str], list[str]]:
    """Return the arms a list may use under ``mode`` and the warnings to give.

    Raises
    ------
    ModelError
        ``mode == "refuse"`` and no arm has evidence (exit 5), naming every arm's figures.
    """
    verdicts = arm_evidence(card)
    name = f"{card.get('name')}:{card.get('version')}"
    passed = [arm for arm, e in verdicts.items() if e.passed]
    failed = [e.describe(arm) for arm, e in verdicts.items() if not e.passed]
    if mode == "off":
        return sorted(verdicts), [
            f"uplift model {name}, used without evidence: {f}" for f in failed
        ]
    if passed:
        return passed, [f"uplift model {name}, arm left out: {f}" for f in failed]
    if mode == "refuse":
        raise ModelError(
            f"uplift model {name} has no arm with evidence of ranking better than random: "
            + "; ".join(failed)
            + ". Learn from a larger campaign, or set [targeting] uplift_evidence = "
            '"value_at_risk" to fall back to value at risk'
        )
    return [], [f"uplift model {name}: {f}" for f in failed]
