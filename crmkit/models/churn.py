"""The churn model: calibrated fit on the training snapshots, out-of-time validation.

Training set: :mod:`crmkit.models.snapshots` (labelled snapshots at monthly cutoffs, sampled to
``[model] max_training_rows``).

Fit. The classifier (:mod:`crmkit.models.estimators`: the blend of gradient boosting and a
logistic regression by default) is fitted six times, whatever the number of snapshots:

1. four times on three quarters of the older snapshots (whole snapshots, taken in turn),
   scoring the fourth: out-of-fold scores of every older row;
2. on all the older snapshots, scoring the newest one: out-of-time scores;
3. on every snapshot: the saved classifier.

The out-of-fold scores fit the calibration maps (:mod:`crmkit.models.calibration`) used for
validation; the saved model's maps learn from those and the newest snapshot's scores.

Validation. The second fit's calibrated scores of the newest snapshot (out of time), next
to two baselines, and permutation importance on at most :data:`IMPORTANCE_ROWS` of them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import polars as pl

from crmkit import __version__, schema
from crmkit.config.settings import FeatureConfig, ModelConfig, Settings
from crmkit.errors import BadInputError
from crmkit.features.customer import feature_schema
from crmkit.features.mix import Vocabulary, learn_vocabulary
from crmkit.features.names import FEATURE_VERSION
from crmkit.hashing import stable_hash_values
from crmkit.models.calibration import CalibratedModel, apply_map, choose_method, fit_maps
from crmkit.models.metrics import churn_metrics
from crmkit.models.registry import Registry, parse_ref
from crmkit.models.snapshots import (
    CLV_COLUMNS,
    SEASON,
    training_set,
)
from crmkit.numbers import as_float
from crmkit.store.core import Store

ProgressFn = Callable[[int, int, str], None]
_NOT_MODEL_INPUTS: Final = frozenset(
    {schema.CUSTOMER_ID, "first_purchase", "last_purchase", "projected_value"}
)
BASELINES: Final = ("baseline_recency", "baseline_recency_frequency")
#: Most categories one text attribute keeps; rarer values share the missing code.
MAX_CATEGORIES: Final = 250


def model_feature_names(
    cfg: FeatureConfig,
    vocab: Vocabulary | None = None,
    attributes: Mapping[str, pl.DataType] | None = None,
    *,
    clv: bool = False,
) -> list[str]:
    """Model inputs, in matrix column order: pipeline features, attributes, season, CLV."""
    names = [n for n in feature_schema(cfg, vocab) if n not in _NOT_MODEL_INPUTS]
    return [*names, *(attributes or {}), *SEASON, *(CLV_COLUMNS if clv else ())]


def category_codes(frame: pl.DataFrame, names: Sequence[str]) -> dict[str, list[str]]:
    """For each text column of ``names``: its most frequent values, in code order.

    At most :data:`MAX_CATEGORIES` per column (ties by value); rarer
    values, like values never seen in training, are coded as missing.
    """
    out = {}
    for name in names:
        if name in frame.columns and frame.schema[name] == pl.String:
            counts = (
                frame.select(pl.col(name).drop_nulls())
                .group_by(name)
                .len()
                .sort(["len", name], descending=[True, False])
                .head(MAX_CATEGORIES)
            )
            out[name] = sorted(counts[name].to_list())
    return out


def design_matrix(
    frame: pl.DataFrame,
    names: Sequence[str],
    categories: Mapping[str, Sequence[str]] | None = None,
    dtype: type = np.float64,
) -> np.ndarray:
    """Matrix of ``names`` in that order, of ``dtype``; nulls become NaN.

    Columns in ``categories`` (see :func:`category_codes`) hold each value's code, NaN for
    missing and unknown values. Built by polars in one pass, without a copy of ``frame``.
    """
    codes = categories or {}
    target = pl.Float32 if dtype == np.float32 else pl.Float64

    def column(name: str) -> pl.Expr:
        if name in codes:
            values = list(codes[name])
            return pl.col(name).replace_strict(
                values, list(range(len(values))), default=None, return_dtype=target
            )
        return pl.col(name).cast(target)

    matrix = frame.select([column(n).fill_null(float("nan")).alias(n) for n in names]).to_numpy(
        order="c"
    )
    return matrix.astype(dtype, copy=False)


#: What training reports through ``progress`` after the snapshots, in order.
TRAINING_STAGES: Final = (
    "out-of-fold fits for the calibration",
    "fitting on the older snapshots",
    "permutation importance",
    "final fit on every snapshot",
)
#: Folds of the out-of-fold scores the calibration maps learn from (on Online Retail II,
#: 2 and 3 folds calibrated the blend slightly worse out of time: ECE 0.020 and 0.019
#: against 0.018 for the active customers).
CALIBRATION_FOLDS: Final = 4
#: Rows of the validation snapshot permutation importance is measured on, at most.
IMPORTANCE_ROWS: Final = 10_000


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


@dataclass(frozen=True)
class TrainResult:
    """A fitted model with its card and validation report (and, once saved, its place)."""

    model: Any
    card: dict[str, Any]
    metrics: pl.DataFrame
    importance: pl.DataFrame
    saved_as: str | None = None
    directory: Path | None = None

    def summary(self) -> dict[str, Any]:
        """Headline numbers for the ``train`` command."""
        return {
            "model": self.saved_as,
            "path": str(self.directory) if self.directory else None,
            "training_rows": self.card["training_rows"],
            "churn_rate": self.card["churn_rate"],
            "validation_snapshot": self.card["validation_snapshot"],
            "validation_metrics": self.card["validation_metrics"],
            "top_features": self.card["top_features"][:10],
        }


def _check_counts(y: np.ndarray, cfg: ModelConfig, where: str) -> None:
    churners, stayers = int(y.sum()), int(len(y) - y.sum())
    if len(y) < cfg.min_customers:
        raise BadInputError(
            f"{where}: {len(y)} customer rows, fewer than the {cfg.min_customers} needed to "
            "train (ingest more history, or lower [model] min_customers)"
        )
    if churners < cfg.min_class or stayers < cfg.min_class:
        raise BadInputError(
            f"{where}: {churners} churners and {stayers} non-churners; each needs at least "
            f"{cfg.min_class} (change --horizon or ingest more history)"
        )


def threads(n: int) -> Any:  # noqa: ANN401
    """Context manager: ``n`` OpenMP threads (0: see :func:`openmp_threads`), one BLAS thread.

    Measured on 2 cores with 68 features: gradient boosting fits in 0.77 s instead of
    1.22 s on 5,000 rows with two threads, 20.3 s instead of 40.0 s on 500,000; the
    logistic regression is slower with two BLAS threads at every size (12.1 s against
    10.5 s on 500,000 rows), so it keeps one.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits={"openmp": openmp_threads(n), "blas": 1})


def openmp_threads(n: int) -> int:
    """Return ``n``, or for 0 the ``OMP_NUM_THREADS`` of the environment, else every core."""
    if n > 0:
        return n
    given = os.environ.get("OMP_NUM_THREADS", "").strip()
    if given.isdigit() and int(given) > 0:
        return int(given)
    return max(1, os.cpu_count() or 1)


def train(
    store: Store,
    as_of: dt.date,
    horizon: int,
    cfg: ModelConfig,
    features: FeatureConfig,
    *,
    created: dt.datetime,
    progress: ProgressFn | None = None,
) -> TrainResult:
    """Build the training set, validate and calibrate out of time, refit on all snapshots.

    One classifier is fitted on the older snapshots and scores the newest: those scores
    give the validation metrics, the permutation importance and the calibration maps. The
    saved classifier is fitted once more on every snapshot and uses those maps.

    Raises
    ------
    BadInputError
        Too little history, too few customers, churners or non-churners.
    """
    if horizon < 1:
        raise BadInputError("--horizon must be at least 1 day")
    features = dataclasses.replace(features, season_window_days=horizon)
    from crmkit.features.attributes import attribute_schema

    attributes = attribute_schema(store, features.attributes)
    vocab = learn_vocabulary(store.transactions(), as_of, features)
    stacked = training_set(store, as_of, horizon, cfg, features, progress, vocab)
    data = stacked.frame
    names = model_feature_names(features, vocab, attributes, clv=cfg.clv_features)
    categories = category_codes(data, names)
    categorical = [n in categories for n in names]
    snapshots = sorted(data["snapshot"].unique().to_list())
    if len(snapshots) < 2:
        raise BadInputError(
            f"only {len(snapshots)} cutoff before {as_of} has history; out-of-time validation "
            "needs two (ingest more history or lower --snapshots/step)"
        )
    newest = snapshots[-1]
    # snapshots are stacked newest first: the validation rows are a prefix, the rest views
    n_valid = int((data["snapshot"] == newest).sum())
    x = design_matrix(data, names, categories, np.float32)
    y = data["churned"].cast(pl.Int8).to_numpy()
    x_valid, y_valid, x_older, y_older = x[:n_valid], y[:n_valid], x[n_valid:], y[n_valid:]
    _check_counts(y_older, cfg, "training snapshots")
    _check_counts(y_valid, dataclasses.replace(cfg, min_customers=1), f"validation {newest}")

    def stage(done: int, text: str) -> None:
        if progress is not None:
            progress(done, len(TRAINING_STAGES), text)

    from crmkit.models.estimators import make_classifier

    def make() -> Any:  # noqa: ANN401
        return make_classifier(cfg.kind, cfg.seed, categorical)

    side = calibration_folds(
        data["snapshot"][n_valid:], data[schema.CUSTOMER_ID][n_valid:], CALIBRATION_FOLDS
    )
    with threads(cfg.threads):
        stage(0, TRAINING_STAGES[0])
        oof = out_of_fold(x_older, y_older, side, make)
        stage(1, TRAINING_STAGES[1])
        previous = make().fit(x_older, y_older)
        raw_valid = previous.predict_proba(x_valid)[:, 1]
        stage(2, TRAINING_STAGES[2])
        importance = _importance(previous, x_valid, y_valid, names, cfg.seed)
        stage(3, TRAINING_STAGES[3])
        fitted = make().fit(x, y)
    maps = fit_maps(oof, y_older)
    method, candidates = choose_method(maps, raw_valid, y_valid, churn_metrics)
    if cfg.calibration != "auto":
        method = cfg.calibration
    p_valid = apply_map(maps, raw_valid, method)
    metrics = _validation_table(data, n_valid, y_valid, y_older, p_valid, cfg)
    # the saved model's maps also learn from the newest snapshot's out-of-time scores
    final = CalibratedModel.from_parts(
        fitted, np.concatenate([raw_valid, oof]), np.concatenate([y_valid, y_older]), method
    )
    stage(4, "done")
    card = _card(
        as_of, horizon, cfg, features, names, data, snapshots, newest, metrics, importance, created
    )
    card["validation_curves"] = validation_curves(y_valid, p_valid)
    card["vocabulary"] = vocab.to_json()
    # a list, not a table: the order is the matrix's, and cards are written with sorted keys
    card["attributes"] = [[name, str(dtype)] for name, dtype in attributes.items()]
    card["categories"] = categories
    card["calibration"] = method
    card["calibration_candidates"] = candidates
    card["training_sample"] = stacked.sample
    card["matrix_dtype"] = "float32"
    return TrainResult(final, card, metrics, importance)


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
    """ROC AUC drop per feature when it is shuffled, on at most :data:`IMPORTANCE_ROWS` rows."""
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import roc_auc_score

    def auc(estimator: Any, xs: np.ndarray, ys: np.ndarray) -> float:  # noqa: ANN401
        return float(roc_auc_score(ys, estimator.predict_proba(xs)[:, 1]))

    if len(y) > IMPORTANCE_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(len(y), IMPORTANCE_ROWS, replace=False))
        x, y = x[rows], y[rows]
    result = permutation_importance(
        model, x, y, scoring=auc, n_repeats=3, random_state=seed, n_jobs=1
    )
    return pl.DataFrame(
        {
            "feature": list(names),
            "auc_drop": result.importances_mean,
            "std": result.importances_std,
        }
    ).sort(["auc_drop", "feature"], descending=[True, False])


def _card(
    as_of: dt.date,
    horizon: int,
    cfg: ModelConfig,
    features: FeatureConfig,
    names: Sequence[str],
    data: pl.DataFrame,
    snapshots: Sequence[dt.date],
    newest: dt.date,
    metrics: pl.DataFrame,
    importance: pl.DataFrame,
    created: dt.datetime,
) -> dict[str, Any]:
    import sklearn

    return {
        "created": created.isoformat(),
        "kind": cfg.kind,
        "calibration": cfg.calibration,
        "as_of": str(as_of),
        "horizon_days": horizon,
        "snapshots": [str(s) for s in snapshots],
        "step_days": cfg.step_days,
        "lookback_days": cfg.lookback_days,
        "validation_snapshot": str(newest),
        "seed": cfg.seed,
        "threads": cfg.threads,
        "clv_features": cfg.clv_features,
        "customer_value": cfg.customer_value,
        "feature_version": FEATURE_VERSION,
        "feature_config": dataclasses.asdict(features),
        "features": list(names),
        "training_rows": data.height,
        "churn_rate": as_float(data["churned"].mean()),
        "validation_metrics": metrics.to_dicts(),
        "top_features": importance.head(15).to_dicts(),
        "versions": {
            "crmkit": __version__,
            "scikit-learn": sklearn.__version__,
            "polars": pl.__version__,
            "numpy": np.__version__,
        },
    }


def train_and_save(
    store: Store,
    as_of: dt.date,
    horizon: int,
    settings: Settings,
    registry: Registry,
    *,
    created: dt.datetime,
    progress: ProgressFn | None = None,
) -> TrainResult:
    """Train ``[model] name`` as :func:`train` does and save it as its next version.

    Raises
    ------
    UsageError
        A model name that is not a safe id.
    BadInputError
        Too little history to train on.
    """
    name = parse_ref(settings.model.name).name
    result = train(
        store, as_of, horizon, settings.model, settings.features, created=created, progress=progress
    )
    version, directory = registry.save(name, result.model, result.card)
    return dataclasses.replace(result, saved_as=f"{name}:{version}", directory=directory)
