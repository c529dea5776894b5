"""Probability calibration of the churn classifier, without plateaus at 0 and 1.

The classifier's out-of-fold predictions (folds made of whole snapshots) are mapped to
probabilities by two candidate maps: Platt's sigmoid on their log-odds, and an isotonic
regression bounded away from 0 and 1 by ``1 / (n + 2)``. Training keeps both and chooses
the one with the lower log loss (then the lower ECE) on the out-of-time validation
snapshot, unless ``[model] calibration`` names one. No customer gets a probability of
exactly 0 or 1: isotonic's plateaus at the extremes (80 customers at exactly 0.0 on Online
Retail II before) are what the bound and the sigmoid remove.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Literal

import numpy as np

Method = Literal["isotonic", "sigmoid"]
METHODS: Final[tuple[Method, ...]] = ("isotonic", "sigmoid")
_EPS: Final = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, _EPS, 1 - _EPS)
    out: np.ndarray = np.log(q / (1 - q))
    return out


class CalibratedModel:
    """A fitted classifier plus probability maps learned on its out-of-fold predictions.

    Parameters
    ----------
    estimator
        An unfitted scikit-learn classifier (cloned for every fold and the final fit).
    method
        The map :meth:`predict_proba` uses; ``fit`` learns both, and :meth:`choose` may
        change it later.
    """

    def __init__(self, estimator: Any, method: Method = "isotonic") -> None:  # noqa: ANN401
        self.estimator = estimator
        self.method = method

    def fit(
        self, x: np.ndarray, y: np.ndarray, folds: Sequence[tuple[np.ndarray, np.ndarray]]
    ) -> CalibratedModel:
        """Fit the classifier on each fold's training rows, the maps on the held-out scores.

        ``folds`` are (train, test) index pairs whose test parts cover every row once.
        """
        from sklearn.base import clone
        from sklearn.isotonic import IsotonicRegression
        from sklearn.linear_model import LogisticRegression

        scores = np.empty(len(y), dtype=np.float64)
        for train, test in folds:
            fitted = clone(self.estimator).fit(x[train], y[train])
            scores[test] = fitted.predict_proba(x[test])[:, 1]
        bound = 1.0 / (len(y) + 2)
        self.isotonic_ = IsotonicRegression(y_min=bound, y_max=1 - bound, out_of_bounds="clip").fit(
            scores, y
        )
        self.sigmoid_ = LogisticRegression(C=1e6, max_iter=1000).fit(
            _logit(scores).reshape(-1, 1), y
        )
        self.estimator_ = clone(self.estimator).fit(x, y)
        self.method_: Method = self.method
        self.classes_ = np.array([0, 1])
        return self

    def raw_scores(self, x: np.ndarray) -> np.ndarray:
        """Return the classifier's uncalibrated probability of churn."""
        out: np.ndarray = self.estimator_.predict_proba(x)[:, 1]
        return out

    def calibrate(self, raw: np.ndarray, method: Method | None = None) -> np.ndarray:
        """Map raw scores to probabilities with ``method`` (default: the chosen one)."""
        chosen = method or self.method_
        if chosen == "isotonic":
            out: np.ndarray = self.isotonic_.predict(raw)
            return out
        sigmoid: np.ndarray = self.sigmoid_.predict_proba(_logit(raw).reshape(-1, 1))[:, 1]
        clipped: np.ndarray = np.clip(sigmoid, _EPS, 1 - _EPS)
        return clipped

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Probabilities of (stay, churn) per row."""
        p = self.calibrate(self.raw_scores(x))
        return np.column_stack([1 - p, p])

    def choose(self, method: Method) -> CalibratedModel:
        """Use ``method`` from now on; return self."""
        self.method_ = method
        return self


def choose_method(
    model: CalibratedModel,
    x: np.ndarray,
    y: np.ndarray,
    metrics: Any,  # noqa: ANN401 - crmkit.metrics.churn_metrics
) -> tuple[Method, dict[str, dict[str, float]]]:
    """Pick the map with the lower validation log loss, then ECE; return it and the scores."""
    raw = model.raw_scores(x)
    scored = {m: metrics(y, model.calibrate(raw, m)) for m in METHODS}
    best = min(METHODS, key=lambda m: (round(scored[m]["log_loss"], 4), scored[m]["ece"]))
    summary: dict[str, dict[str, float]] = {
        m: {"log_loss": float(v["log_loss"]), "ece": float(v["ece"])} for m, v in scored.items()
    }
    return best, summary
