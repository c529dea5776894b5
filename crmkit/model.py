"""The churn model: point-in-time training sets, calibrated fit, out-of-time validation.

Training set. Cutoffs ``T_k = as_of - horizon - k * step`` for ``k = 0 .. snapshots - 1``.
At each cutoff the *eligible* customers are those with a purchase before ``T_k`` whose last
purchase is at most ``lookback_days`` before it; their features come from the shared
pipeline as of ``T_k`` and their label is ``churned = no purchase in [T_k, T_k + horizon)``.
Every label window ends by ``as_of``, so only fully observed outcomes are used. Two
season features (day of year of the cutoff, as sine and cosine) let the model learn how
the base rate moves through the year.

Fit. A histogram gradient boosting classifier (or a logistic regression on log-scaled
features) is wrapped in ``CalibratedClassifierCV(ensemble=False)``: out-of-fold
predictions, with folds made of whole snapshots, fit an isotonic (or sigmoid) map from
score to probability; the final classifier is refitted on everything.

Validation. The model is fitted on the older snapshots and evaluated on the newest one
(out of time), next to two baselines; the saved model is then refitted on all snapshots.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import polars as pl

from crmkit import __version__, schema
from crmkit.calibration import CalibratedModel, choose_method
from crmkit.config import FeatureConfig, ModelConfig, Settings
from crmkit.errors import BadInputError
from crmkit.features import FEATURE_VERSION, churn_labels, feature_schema, store_features
from crmkit.metrics import churn_metrics
from crmkit.mix import Vocabulary, learn_vocabulary
from crmkit.numbers import as_float
from crmkit.registry import Registry, parse_ref
from crmkit.store import Store

ProgressFn = Callable[[int, int, str], None]
SEASON: Final = ("season_sin", "season_cos")
_NOT_MODEL_INPUTS: Final = frozenset(
    {schema.CUSTOMER_ID, "first_purchase", "last_purchase", "projected_value"}
)
BASELINES: Final = ("baseline_recency", "baseline_recency_frequency")
#: Most categories one text attribute keeps; rarer values share the missing code.
MAX_CATEGORIES: Final = 250


CLV_COLUMNS: Final = ("clv_expected_purchases", "clv_p_alive", "clv_p_no_purchase", "clv_value")


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


def with_clv(
    features: pl.DataFrame, as_of: dt.date, horizon: int, cfg: FeatureConfig
) -> pl.DataFrame:
    """Fit BG/NBD and Gamma-Gamma on ``features`` (as of ``as_of``) and add their predictions.

    ``clv_expected_purchases`` and ``clv_p_no_purchase`` cover ``horizon`` days;
    ``clv_value`` is the discounted CLV over ``projection_horizon_days``.
    """
    from crmkit.clv import fit_clv, predict_clv

    model, _ = fit_clv(features, as_of)
    short = predict_clv(model, features, as_of, horizon, cfg.annual_discount_rate)
    long = predict_clv(
        model, features, as_of, cfg.projection_horizon_days, cfg.annual_discount_rate
    )
    added = short.select(
        schema.CUSTOMER_ID,
        pl.col("expected_purchases").alias("clv_expected_purchases"),
        pl.col("p_alive").alias("clv_p_alive"),
        pl.col("p_no_purchase").alias("clv_p_no_purchase"),
    ).join(
        long.select(schema.CUSTOMER_ID, pl.col("clv").alias("clv_value")),
        on=schema.CUSTOMER_ID,
    )
    return features.join(added, on=schema.CUSTOMER_ID, how="left")


def season_columns(cutoff: dt.date) -> list[pl.Expr]:
    """Day of year of the cutoff as a point on the unit circle."""
    angle = 2 * math.pi * (cutoff.timetuple().tm_yday - 1) / 365.25
    return [pl.lit(math.sin(angle)).alias(SEASON[0]), pl.lit(math.cos(angle)).alias(SEASON[1])]


def eligible(features: pl.DataFrame, lookback_days: int) -> pl.DataFrame:
    """Keep customers whose last purchase is at most ``lookback_days`` before the as-of date."""
    return features.filter(pl.col("recency_days") <= lookback_days)


def cutoffs(as_of: dt.date, horizon: int, cfg: ModelConfig) -> list[dt.date]:
    """Return the training cutoffs, newest first."""
    return [as_of - dt.timedelta(days=horizon + k * cfg.step_days) for k in range(cfg.snapshots)]


def design_matrix(
    frame: pl.DataFrame, names: Sequence[str], categories: Mapping[str, Sequence[str]] | None = None
) -> np.ndarray:
    """Float64 matrix of ``names`` in that order; nulls become NaN.

    Columns in ``categories`` (see :func:`category_codes`) hold each value's code, NaN for
    missing and unknown values.
    """
    codes = categories or {}

    def column(name: str) -> pl.Expr:
        if name in codes:
            values = list(codes[name])
            return pl.col(name).replace_strict(
                values, list(range(len(values))), default=None, return_dtype=pl.Float64
            )
        return pl.col(name).cast(pl.Float64)

    return (
        frame.select([column(n).fill_null(float("nan")).alias(n) for n in names])
        .to_numpy()
        .astype(np.float64)
    )


def training_set(
    store: Store,
    as_of: dt.date,
    horizon: int,
    cfg: ModelConfig,
    features: FeatureConfig,
    progress: ProgressFn | None = None,
    vocab: Vocabulary | None = None,
) -> pl.DataFrame:
    """Stack labelled snapshots; columns: ``snapshot``, the features, season, ``churned``.

    Every snapshot uses the same category vocabulary ``vocab`` (none when None), so that
    its columns are those of the model.

    Raises
    ------
    BadInputError
        When the store's data ends before ``as_of`` (labels would be incomplete) or no
        cutoff has eligible customers.
    """
    store.require()
    span = (
        store.transactions()
        .select(pl.col(schema.TS).min().alias("first"), pl.col(schema.TS).max().alias("last"))
        .collect()
    )
    first, last = span["first"][0], span["last"][0]
    if first is None:
        raise BadInputError(f"store {store.root} holds no transactions")
    if last.date() < as_of - dt.timedelta(days=7):
        raise BadInputError(
            f"the store's transactions end on {last.date()}, before --as-of {as_of}: "
            "labels up to the as-of date would be incomplete"
        )
    frames = []
    points = [t for t in cutoffs(as_of, horizon, cfg) if t > first.date()]
    for i, cutoff in enumerate(points):
        everyone = store_features(store, cutoff, features, vocab=vocab or Vocabulary())
        if cfg.clv_features:
            everyone = with_clv(everyone, cutoff, horizon, features)
        snap = eligible(everyone, cfg.lookback_days)
        if snap.height:
            labels = churn_labels(store.transactions(), snap.lazy(), cutoff, horizon).collect()
            frames.append(
                snap.join(labels, on=schema.CUSTOMER_ID, how="left").with_columns(
                    pl.lit(cutoff).alias("snapshot"), *season_columns(cutoff)
                )
            )
        if progress is not None:
            progress(i + 1, len(points), f"snapshot {cutoff}")
    if not frames:
        raise BadInputError(f"no eligible customers at any cutoff before {as_of}")
    return pl.concat(frames)


#: What training reports through ``progress`` after the snapshots, in order.
TRAINING_STAGES: Final = (
    "fitting on the training snapshots",
    "choosing the calibration",
    "permutation importance",
    "final fit on every snapshot",
)


def _signed_log1p(x: np.ndarray) -> np.ndarray:
    """Kept so that models saved by earlier versions still load (``models show``)."""
    out: np.ndarray = np.sign(x) * np.log1p(np.abs(x))
    return out


def snapshot_folds(groups: np.ndarray, folds: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index pairs in which every snapshot sits wholly in one test fold."""
    unique = np.unique(groups)
    k = min(folds, len(unique))
    assignment = {g: i % k for i, g in enumerate(unique)}
    fold = np.array([assignment[g] for g in groups])
    return [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(k)]


def fit_calibrated(
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    cfg: ModelConfig,
    categorical: Sequence[bool] | None = None,
) -> CalibratedModel:
    """Fit the classifier with cross-fitted calibration over snapshot folds.

    ``categorical`` marks the columns holding category codes.
    """
    from crmkit.estimators import make_classifier

    classifier = make_classifier(cfg.kind, cfg.seed, categorical)
    splits = snapshot_folds(groups)
    if len(splits) < 2:
        splits = _random_folds(len(y), cfg.seed)
    method = "isotonic" if cfg.calibration == "auto" else cfg.calibration
    return CalibratedModel(classifier, method).fit(x, y, splits)


def _random_folds(n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    fold = np.random.default_rng(seed).integers(0, 4, n)
    return [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(4)]


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
    """Context manager limiting OpenMP/BLAS threads of scikit-learn to ``n``."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=max(1, n))


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
    """Build the training set, validate out of time, refit on all snapshots.

    Raises
    ------
    BadInputError
        Too little history, too few customers, churners or non-churners.
    """
    if horizon < 1:
        raise BadInputError("--horizon must be at least 1 day")
    features = dataclasses.replace(features, season_window_days=horizon)
    from crmkit.attributes import attribute_schema

    attributes = attribute_schema(store, features.attributes)
    vocab = learn_vocabulary(store.transactions(), as_of, features)
    data = training_set(store, as_of, horizon, cfg, features, progress, vocab)
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
    x = design_matrix(data, names, categories)
    y = data["churned"].cast(pl.Int64).to_numpy()
    groups = data["snapshot"].cast(pl.Int32).to_numpy()
    valid = (data["snapshot"] == newest).to_numpy()
    _check_counts(y[~valid], cfg, "training snapshots")
    _check_counts(y[valid], dataclasses.replace(cfg, min_customers=1), f"validation {newest}")

    def stage(done: int, text: str) -> None:
        if progress is not None:
            progress(done, len(TRAINING_STAGES), text)

    stage(0, TRAINING_STAGES[0])
    with threads(cfg.threads):
        check = fit_calibrated(x[~valid], y[~valid], groups[~valid], cfg, categorical)
        stage(1, TRAINING_STAGES[1])
        method, candidates = choose_method(check, x[valid], y[valid], churn_metrics)
        if cfg.calibration != "auto":
            method = cfg.calibration
        p_valid = check.choose(method).predict_proba(x[valid])[:, 1]
    rows = [{"model": f"{cfg.kind} (calibrated)", **churn_metrics(y[valid], p_valid)}]
    train_frame, valid_frame = data.filter(~pl.Series(valid)), data.filter(pl.Series(valid))
    train_scores, valid_scores = baseline_scores(train_frame), baseline_scores(valid_frame)
    for name in BASELINES:
        iso = _calibrate_baseline(train_scores[name], y[~valid])
        p = iso.predict(valid_scores[name])
        # rank metrics from the raw score; probability metrics from its isotonic fit
        raw = churn_metrics(y[valid], _rank01(valid_scores[name]))
        rows.append(
            {
                "model": name,
                **churn_metrics(y[valid], p),
                "roc_auc": raw["roc_auc"],
                "pr_auc": raw["pr_auc"],
            }
        )
    metrics = pl.DataFrame(rows)
    curves = validation_curves(y[valid], p_valid)
    stage(2, TRAINING_STAGES[2])
    with threads(cfg.threads):
        importance = _importance(check, x[valid], y[valid], names, cfg.seed)
        stage(3, TRAINING_STAGES[3])
        final = fit_calibrated(x, y, groups, cfg, categorical).choose(method)
    stage(4, "done")
    card = _card(
        as_of, horizon, cfg, features, names, data, snapshots, newest, metrics, importance, created
    )
    card["validation_curves"] = curves
    card["vocabulary"] = vocab.to_json()
    # a list, not a table: the order is the matrix's, and cards are written with sorted keys
    card["attributes"] = [[name, str(dtype)] for name, dtype in attributes.items()]
    card["categories"] = categories
    card["calibration"] = method
    card["calibration_candidates"] = candidates
    return TrainResult(final, card, metrics, importance)


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
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import roc_auc_score

    def auc(estimator: Any, xs: np.ndarray, ys: np.ndarray) -> float:  # noqa: ANN401
        return float(roc_auc_score(ys, estimator.predict_proba(xs)[:, 1]))

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
