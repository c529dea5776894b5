"""Classification metrics for churn scores, on numpy arrays."""

from __future__ import annotations

from typing import Final

import numpy as np

METRICS: Final = (
    "roc_auc",
    "pr_auc",
    "brier",
    "log_loss",
    "top_decile_lift",
    "top_decile_capture",
    "ece",
)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE over ``bins`` equal-width probability bins, weighted by bin size."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1], right=False), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.mean() * abs(float(y[mask].mean()) - float(p[mask].mean()))
    return total


def top_decile(y: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """Return (lift, share of all churners captured) of the 10% highest scores.

    Ties at the cut are broken by position after a stable sort, so the result is
    deterministic.
    """
    n = len(y)
    k = max(1, int(np.ceil(0.1 * n)))
    order = np.argsort(-score, kind="stable")[:k]
    base = float(y.mean())
    hit = float(y[order].mean())
    churners = float(y.sum())
    lift = hit / base if base > 0 else float("nan")
    capture = float(y[order].sum()) / churners if churners > 0 else float("nan")
    return lift, capture


def churn_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Every metric of :data:`METRICS` for labels ``y`` (1 = churned) and probabilities ``p``."""
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    y = np.asarray(y, dtype=np.int64)
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    two_classes = len(np.unique(y)) == 2
    lift, capture = top_decile(y, p)
    return {
        "roc_auc": float(roc_auc_score(y, p)) if two_classes else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if two_classes else float("nan"),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "top_decile_lift": lift,
        "top_decile_capture": capture,
        "ece": expected_calibration_error(y, p),
    }
