"""Out-of-time validation of the churn model: folds, out-of-fold scores, curves, importance."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Final

import numpy as np
import polars as pl

from crmkit.config.settings import ModelConfig
from crmkit.errors import BadInputError
from crmkit.hashing import stable_hash_values
from crmkit.models.design import BASELINES
from crmkit.models.metrics import churn_metrics

#: Rows of the validation snapshot permutation importance is measured on, at most.
IMPORTANCE_ROWS: Final = 10_000
#: The work permutation importance may do, in tree evaluations (rows x trees, summed over
#: every shuffled feature and repeat). Measured: 2.0e7 a second on one core (gradient
#: boosting of 300 trees with 15 leaves, 72 features), so this is about 15 s on one core,
#: 8 s on two. A bound by work instead of the clock keeps the card the same on a busy
#: machine and a quiet one.
IMPORTANCE_WORK: Final = 3e8
#: Rows importance is measured on, at least (when the snapshot has them).
IMPORTANCE_MIN_ROWS: Final = 2_000
REPEATS: Final = 3


def _signed_log1p(x: np.ndarray) -> np.ndarray:
    """Kept so that models saved by earlier versions still load (``models show``)."""
    out: np.ndarray = np.sign(x) * np.log1p(np.abs(x))
    return out


def baseline_scores(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    """Scores of the two baselines (higher = more likely to churn).

    ``baseline_recency``: days since the last purchase. ``baseline_recency_frequency``:
    days since the last purchase over the customer's typical spacing, tenure / purchase days.
    """
    recency = frame["recency_days"].cast(pl.Float64).to_numpy()
    spacing = (frame["tenure_days"].cast(pl.Float64) / frame["purchase_days"]).to_numpy()
    return {
        "baseline_recency": recency,
        "baseline_recency_frequency": recency / np.maximum(spacing, 1.0),
    }


def _calibrate_baseline(train_score: np.ndarray, y: np.ndarray) -> Any:  # noqa: ANN401
    from sklearn.isotonic import IsotonicRegression

    return IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(train_score, y)


def calibration_folds(snapshots: pl.Series, customers: pl.Series, k: int = 2) -> np.ndarray:
    """Fold of every row for out-of-fold scores: whole snapshots, taken in turn.

    With fewer snapshots than ``k``, the customers are split by a hash of their id instead.
    """
    codes = snapshots.to_physical().to_numpy()
    unique = np.unique(codes)
    if len(unique) >= k:
        index: np.ndarray = np.searchsorted(unique, codes) % k
        return index
    hashed = stable_hash_values(customers, salt="calibration") % k
    out: np.ndarray = hashed.to_numpy().astype(np.int64)
    return out


def out_of_fold(
    x: np.ndarray,
    y: np.ndarray,
    folds: np.ndarray,
    make: Callable[[], Any],
) -> np.ndarray:
    """Score each fold of the rows with a classifier fitted on the other folds.

    Raises
    ------
    BadInputError
        When a fit's training rows hold a single class.
    """
    scores = np.empty(len(y), dtype=np.float64)
    for fold in np.unique(folds):
        part = folds == fold
        train_y = y[~part]
        if len(np.unique(train_y)) < 2:
            raise BadInputError(
                "too few churners or non-churners to calibrate out of fold "
                "(ingest more history or change --horizon)"
            )
        model = make().fit(x[~part], train_y)
        scores[part] = model.predict_proba(x[part])[:, 1]
    return scores


def _validation_table(
    data: pl.DataFrame,
    n_valid: int,
    y_valid: np.ndarray,
    y_older: np.ndarray,
    p_valid: np.ndarray,
    cfg: ModelConfig,
) -> pl.DataFrame:
    """Return the validation metrics of the model and of the two baselines."""
    rows = [{"model": f"{cfg.kind} (calibrated)", **churn_metrics(y_valid, p_valid)}]
    train_scores = baseline_scores(data.slice(n_valid))
    valid_scores = baseline_scores(data.slice(0, n_valid))
    for name in BASELINES:
        iso = _calibrate_baseline(train_scores[name], y_older)
        p = iso.predict(valid_scores[name])
        # rank metrics from the raw score; probability metrics from its isotonic fit
        raw = churn_metrics(y_valid, _rank01(valid_scores[name]))
        rows.append(
            {
                "model": name,
                **churn_metrics(y_valid, p),
                "roc_auc": raw["roc_auc"],
                "pr_auc": raw["pr_auc"],
            }
        )
    return pl.DataFrame(rows)


def validation_curves(y: np.ndarray, p: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Gain (share of churners captured by the top x% of scores) and calibration bins."""
    order = np.argsort(-p, kind="stable")
    captured = np.cumsum(y[order]) / max(int(y.sum()), 1)
    n = len(y)
    shares = [i / bins for i in range(1, bins + 1)]
    gain = [float(captured[max(0, math.ceil(s * n) - 1)]) for s in shares]
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    calibration = [
        {
            "predicted": float(p[index == b].mean()),
            "observed": float(y[index == b].mean()),
            "count": int((index == b).sum()),
        }
        for b in range(bins)
        if (index == b).any()
    ]
    base = float(y.mean()) if n else 0.0
    lift = [
        float(y[order][math.floor((i - 1) * n / bins) : math.floor(i * n / bins)].mean() / base)
        if base > 0
        else float("nan")
        for i in range(1, bins + 1)
    ]
    return {"shares": shares, "gain": gain, "lift_by_decile": lift, "calibration": calibration}


def _rank01(score: np.ndarray) -> np.ndarray:
    order = np.argsort(np.argsort(score, kind="stable"), kind="stable")
    return (order + 0.5) / len(score)


def _importance(
    model: object,
    x: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    seed: int,
) -> pl.DataFrame:
    """ROC AUC drop per feature when it is shuffled, on a seeded sample of the rows.

    At most :data:`IMPORTANCE_ROWS` rows, and fewer when the model's trees would make that
    more than :data:`IMPORTANCE_WORK` (never fewer than :data:`IMPORTANCE_MIN_ROWS`).
    """
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import roc_auc_score

    def auc(estimator: Any, xs: np.ndarray, ys: np.ndarray) -> float:  # noqa: ANN401
        return float(roc_auc_score(ys, estimator.predict_proba(xs)[:, 1]))

    evaluations = len(names) * REPEATS * max(1, tree_count(model))
    limit = max(IMPORTANCE_MIN_ROWS, min(IMPORTANCE_ROWS, int(IMPORTANCE_WORK // evaluations)))
    if len(y) > limit:
        rows = np.sort(np.random.default_rng(seed).choice(len(y), limit, replace=False))
        x, y = x[rows], y[rows]
    result = permutation_importance(
        model, x, y, scoring=auc, n_repeats=REPEATS, random_state=seed, n_jobs=1
    )
    return pl.DataFrame(
        {
            "feature": list(names),
            "auc_drop": result.importances_mean,
            "std": result.importances_std,
        }
    ).sort(["auc_drop", "feature"], descending=[True, False])


def tree_count(model: object) -> int:
    """Trees a prediction of ``model`` evaluates per row (0 for a linear model).

    Counted through crmkit's wrappers (a blend's members, a fit on the observed columns)
    down to gradient boosting's iterations.
    """
    if hasattr(model, "n_iter_"):
        per_class = getattr(model, "n_trees_per_iteration_", 1)
        return int(model.n_iter_) * int(per_class)
    members = getattr(model, "fitted_", None)
    if isinstance(members, list):
        return sum(tree_count(m) for m in members)
    inner = getattr(model, "model_", None) or getattr(model, "estimator_", None)
    return 0 if inner is None else tree_count(inner)
