"""Probability calibration of the churn classifier, without plateaus at 0 and 1.

The classifier's out-of-sample scores (see :func:`crmkit.models.churn.train`: snapshots scored
by models fitted on other snapshots) and what the customers then did are mapped to
probabilities by two candidate maps: Platt's sigmoid on their log-odds, and an isotonic
regression bounded away from 0 and 1 by ``1 / (n + 2)``. Training chooses the one with the
lower log loss (then ECE) on the out-of-time validation snapshot, unless ``[model]
calibration`` names one. No customer gets a probability of exactly 0 or 1: isotonic's
plateaus at the extremes are what the bound and the sigmoid remove.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import numpy as np

Method = Literal["isotonic", "sigmoid"]
METHODS: Final[tuple[Method, ...]] = ("isotonic", "sigmoid")
_EPS: Final = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, _EPS, 1 - _EPS)
    out: np.ndarray = np.log(q / (1 - q))
    return out


def fit_maps(scores: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
    """Fit the bounded isotonic map and the sigmoid on ``scores`` (probabilities of churn)."""
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    bound = 1.0 / (len(y) + 2)
    isotonic = IsotonicRegression(y_min=bound, y_max=1 - bound, out_of_bounds="clip").fit(scores, y)
    sigmoid = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(scores).reshape(-1, 1), y)
    return isotonic, sigmoid


def apply_map(maps: tuple[Any, Any], raw: np.ndarray, method: Method) -> np.ndarray:
    """Map raw scores to probabilities with ``method`` of the ``maps`` of :func:`fit_maps`."""
    isotonic, sigmoid = maps
    if method == "isotonic":
        out: np.ndarray = isotonic.predict(raw)
        return out
    p: np.ndarray = sigmoid.predict_proba(_logit(raw).reshape(-1, 1))[:, 1]
    clipped: np.ndarray = np.clip(p, _EPS, 1 - _EPS)
    return clipped


class CalibratedModel:
    """A fitted classifier plus probability maps learned on out-of-sample scores.

    Build it with :meth:`from_parts`. Attributes: ``estimator_`` (the classifier),
    ``isotonic_`` and ``sigmoid_`` (the maps) and ``method_`` (the map in use).
    """

    estimator_: Any
    isotonic_: Any
    sigmoid_: Any
    method_: Method
    classes_: np.ndarray

    @classmethod
    def from_parts(
        cls,
        estimator: Any,  # noqa: ANN401
        scores: np.ndarray,
        y: np.ndarray,
        method: Method,
    ) -> CalibratedModel:
        """Wrap the fitted ``estimator`` with maps fitted on ``scores`` and outcomes ``y``."""
        model = cls()
        model.estimator_ = estimator
        model.isotonic_, model.sigmoid_ = fit_maps(scores, y)
        model.method_ = method
        model.classes_ = np.array([0, 1])
        return model

    def raw_scores(self, x: np.ndarray) -> np.ndarray:
        """Return the classifier's uncalibrated probability of churn."""
        out: np.ndarray = self.estimator_.predict_proba(x)[:, 1]
        return out

    def calibrate(self, raw: np.ndarray, method: Method | None = None) -> np.ndarray:
        """Map raw scores to probabilities with ``method`` (default: the chosen one)."""
        return apply_map((self.isotonic_, self.sigmoid_), raw, method or self.method_)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Probabilities of (stay, churn) per row."""
        p = self.calibrate(self.raw_scores(x))
        return np.column_stack([1 - p, p])


def choose_method(
    maps: tuple[Any, Any],
    raw: np.ndarray,
    y: np.ndarray,
    metrics: Any,  # noqa: ANN401 - crmkit.models.metrics.churn_metrics
) -> tuple[Method, dict[str, dict[str, float]]]:
    """Pick the map with the lower log loss on ``raw``, ``y``, then ECE; return it and scores."""
    scored = {m: metrics(y, apply_map(maps, raw, m)) for m in METHODS}
    best = min(METHODS, key=lambda m: (round(scored[m]["log_loss"], 4), scored[m]["ece"]))
    summary: dict[str, dict[str, float]] = {
        m: {"log_loss": float(v["log_loss"]), "ece": float(v["ece"])} for m, v in scored.items()
    }
    return best, summary
