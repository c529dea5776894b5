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
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import polars as pl

from crmkit import __version__, schema
from crmkit.bucketed import active_per_bucket, buckets_for, features_of_buckets
from crmkit.calibration import CalibratedModel, choose_method, cross_calibrate
from crmkit.config import FeatureConfig, ModelConfig, Settings
from crmkit.errors import BadInputError
from crmkit.features import FEATURE_VERSION, churn_labels, feature_schema
from crmkit.hashing import add_stable_hash, stable_hash_values
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


@dataclass(frozen=True)
class TrainingSet:
    """Stacked labelled snapshots, newest first, and how they were sampled."""

    frame: pl.DataFrame
    sample: dict[str, Any]


def training_set(
    store: Store,
    as_of: dt.date,
    horizon: int,
    cfg: ModelConfig,
    features: FeatureConfig,
    progress: ProgressFn | None = None,
    vocab: Vocabulary | None = None,
) -> TrainingSet:
    """Stack labelled snapshots, newest first: ``snapshot``, the features, season, ``churned``.

    Every snapshot uses the same category vocabulary ``vocab`` (none when None), so that
    its columns are those of the model. With ``[model] max_training_rows``, each snapshot
    keeps at most an equal share of it (see :func:`sample_snapshot`), and its features are
    computed only for the store buckets that supply that share.

    Raises
    ------
    BadInputError
        When the store's data ends before ``as_of`` (labels would be incomplete) or no
        cutoff has eligible customers.
    """
    first = _check_span(store, as_of)
    points = [t for t in cutoffs(as_of, horizon, cfg) if t > first]
    quota = cfg.max_training_rows // len(points) if cfg.max_training_rows and points else 0
    paths = store.bucket_paths()
    active = active_per_bucket(store, points, cfg.lookback_days) if quota else []
    frames, report = [], []
    for i, cutoff in enumerate(points):
        chosen = buckets_for(len(paths), active[i], quota, cfg.seed, i) if quota else None
        parts = paths if chosen is None else [paths[b] for b in chosen]
        everyone = features_of_buckets(store, parts, cutoff, features, vocab or Vocabulary())
        if cfg.clv_features:
            everyone = with_clv(everyone, cutoff, horizon, features)
        snap = eligible(everyone, cfg.lookback_days)
        if snap.height:
            tx = store.transactions() if chosen is None else _scan_parts(parts)
            labels = churn_labels(tx, snap.lazy(), cutoff, horizon).collect()
            frame = snap.join(labels, on=schema.CUSTOMER_ID, how="left").with_columns(
                pl.lit(cutoff).alias("snapshot"), *season_columns(cutoff)
            )
            kept = sample_snapshot(frame, quota, cfg.seed) if quota else frame
            frames.append(kept)
            report.append(
                {
                    "snapshot": str(cutoff),
                    "buckets": len(parts),
                    "eligible": snap.height,
                    "kept": kept.height,
                }
            )
        if progress is not None:
            progress(i + 1, len(points), f"snapshot {cutoff}")
    if not frames:
        raise BadInputError(f"no eligible customers at any cutoff before {as_of}")
    sample = {
        "max_training_rows": cfg.max_training_rows,
        "store_buckets": len(paths),
        "seed": cfg.seed,
        "snapshots": report,
    }
    return TrainingSet(pl.concat(frames), sample)


def _check_span(store: Store, as_of: dt.date) -> dt.date:
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
    day: dt.date = first.date()
    return day


def _scan_parts(parts: Sequence[Sequence[str]]) -> pl.LazyFrame:
    paths = [path for bucket in parts for path in bucket]
    return pl.scan_parquet(paths, schema=dict(schema.TRANSACTION_SCHEMA))


def sample_snapshot(frame: pl.DataFrame, quota: int, seed: int) -> pl.DataFrame:
    """Keep ``quota`` rows of one snapshot (all when it has fewer), stratified by label.

    Each label keeps its share of the quota (largest remainders); within a label the rows
    with the smallest salted hash of the customer id are kept, so the sample depends on
    the seed and the snapshot only, never on row order. The order of ``frame`` is kept.
    """
    if frame.height <= quota:
        return frame
    counts = frame.group_by("churned").len().sort("churned")
    labels, sizes = counts["churned"].to_list(), counts["len"].to_list()
    exact = [quota * n / frame.height for n in sizes]
    keep = [math.floor(e) for e in exact]
    by_remainder = sorted(range(len(keep)), key=lambda i: (keep[i] - exact[i], i))
    for i in by_remainder[: quota - sum(keep)]:
        keep[i] += 1
    snapshot = frame["snapshot"][0]
    hashed = add_stable_hash(
        frame.lazy(), schema.CUSTOMER_ID, "_sample_hash", salt=f"training|{seed}|{snapshot}"
    )
    limit = pl.col("churned").replace_strict(labels, keep, return_dtype=pl.UInt32)
    return (
        hashed.filter(pl.col("_sample_hash").rank("ordinal").over("churned") <= limit)
        .drop("_sample_hash")
        .collect()
    )


#: What training reports through ``progress`` after the snapshots, in order.
TRAINING_STAGES: Final = (
    "fitting on the older snapshots",
    "calibrating on the newest snapshot",
    "permutation importance",
    "final fit on every snapshot",
)
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
    from crmkit.attributes import attribute_schema

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

    from crmkit.estimators import make_classifier

    stage(0, TRAINING_STAGES[0])
    with threads(cfg.threads):
        previous = make_classifier(cfg.kind, cfg.seed, categorical).fit(x_older, y_older)
        raw_valid = previous.predict_proba(x_valid)[:, 1]
    stage(1, TRAINING_STAGES[1])
    half = _halves(data["customer_id"][:n_valid], cfg.seed)
    calibrated = cross_calibrate(raw_valid, y_valid, half)
    method, candidates = choose_method(calibrated, y_valid, churn_metrics)
    if cfg.calibration != "auto":
        method = cfg.calibration
    p_valid = calibrated[method]
    metrics = _validation_table(data, n_valid, y_valid, y_older, p_valid, cfg)
    stage(2, TRAINING_STAGES[2])
    with threads(cfg.threads):
        importance = _importance(previous, x_valid, y_valid, names, cfg.seed)
    stage(3, TRAINING_STAGES[3])
    with threads(cfg.threads):
        fitted = make_classifier(cfg.kind, cfg.seed, categorical).fit(x, y)
    final = CalibratedModel.from_parts(fitted, raw_valid, y_valid, method)
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


def _halves(customers: pl.Series, seed: int) -> np.ndarray:
    """Split customers in two by a salted hash: the calibration's cross-fitting halves."""
    hashed = stable_hash_values(customers, salt=f"calibration|{seed}")
    return (hashed % 2 == 0).to_numpy()


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
