"""Uplift models: whom each treatment really changes, learned from randomised campaigns.

Training rows are the treatment- and control-group assignments of the chosen campaigns
in the ledger whose outcome window has fully passed. Features come from the shared
pipeline as of each assignment's date, computed only for the customers assigned that day;
the outcome is the one ``evaluate`` uses: a purchase in ``[as_of, as_of + window)``
(``retained``) and the net revenue in it.

Per treatment arm against its control group (controls recorded with the arm, plus
controls without one, shared by every arm), three learners on scikit-learn gradient
boosting (``auto`` compares the first two; ``--learner`` picks one):

* **T-learner**: a classifier of retention on the treated, one on the controls; the
  uplift is the difference of their probabilities;
* **X-learner**: the T-learner's models impute each customer's effect (a treated
  customer's outcome minus the control model's prediction, and the other way round for
  controls), one regressor per group learns them, and the two are mixed by the *known*
  propensity ``e * tau_0 + (1 - e) * tau_1``;
* **DR-learner**: doubly robust pseudo-outcomes
  ``m1 - m0 + t (y - m1) / e - (1 - t) (y - m0) / (1 - e)``, with the outcome models
  cross-fitted and the propensity ``e`` *known*: the share of the arm's rows that were
  treated, which randomisation fixed; a regressor of the pseudo-outcomes is the uplift.

When the campaigns span several assignment dates, the chosen learner is also validated
forward in time: fitted on the dates before the latest fifth of them, scored on those.

Validation is cross-fitted over customers (a customer's rows stay in one fold): every
row's uplift is predicted by learners that never saw that customer. The learner with the
higher Qini coefficient on these predictions (the T-learner on a tie) becomes the arm's
model: the mean of its five fold models (bagging: no refit, and steadier per-customer
predictions). The report
puts it beside random targeting, churn-risk ranking (the control-group outcome model: who
leaves when nothing is done) and value-at-risk ranking (that risk times customer value),
on the same rows, with bootstrap intervals. A revenue T-learner
(regressors of the window's net revenue) gives the uplift in revenue.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from crmkit import __version__, schema
from crmkit.campaigns.comparisons import arm_rows, treatment_arms
from crmkit.config.settings import FeatureConfig
from crmkit.errors import BadInputError, ModelError
from crmkit.features.names import FEATURE_VERSION
from crmkit.features.pipeline import store_features
from crmkit.models.card import ModelCard
from crmkit.models.design import (
    design_matrix,
)
from crmkit.models.registry import ModelRef, Registry
from crmkit.models.threads import threads
from crmkit.models.uplift_choice import by_qini, choose
from crmkit.models.uplift_data import CampaignDesign, campaign_design
from crmkit.models.uplift_evidence import evidence
from crmkit.models.uplift_learners import (
    ATTRIBUTES_ONLY,
    AUTO,
    FOLDS,
    LEARNERS,
    MIN_RESPONDERS,
    ArmModel,
    Layout,
    UpliftModel,
    _hgb_regressor,
    cross_fitted,
    customer_folds,
    fit_learner,
)
from crmkit.models.uplift_metrics import qini_points, random_baseline, uplift_reports
from crmkit.models.uplift_support import apply_support, average_effect, training_support
from crmkit.numbers import as_float
from crmkit.progress import ProgressFn, Steps
from crmkit.store.core import Store


def _arm_data(rows: pl.DataFrame, arm: str) -> tuple[pl.DataFrame, np.ndarray, np.ndarray, float]:
    data = arm_rows(rows, arm)
    t = (data["group"] == "treatment").to_numpy()
    y = data["retained"].cast(pl.Int64).to_numpy()
    return data, y, t, float(t.mean())


def _too_few_responders(arm: str, y: np.ndarray, t: np.ndarray, needed: int) -> str | None:
    treated, control = int(y[t].sum()), int(y[~t].sum())
    if min(treated, control) >= needed:
        return None
    return (
        f"arm {arm}: {treated} responders among {int(t.sum()):,} treated and {control} among "
        f"{int((~t).sum()):,} controls; each group needs at least {needed} to learn whom the "
        "treatment changes (run the campaign longer or on more customers)"
    )


def _curves(y: np.ndarray, t: np.ndarray, ranked: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Qini curves of the rankings, and random targeting's: the straight line to the end."""
    shares, first = qini_points(y, t, next(iter(ranked.values())))
    curves = {name: qini_points(y, t, s)[1] for name, s in ranked.items()}
    return {"shares": shares, **curves, "random": [s * first[-1] for s in shares]}


def out_of_time(
    data: pl.DataFrame,
    x: np.ndarray,
    y: np.ndarray,
    t: np.ndarray,
    learner: str,
    seed: int,
    rounds: int,
    layout: Layout | None = None,
) -> dict[str, Any] | None:
    """Validate ``learner`` forward in time when the rows span several assignment dates.

    The learner is fitted on the assignments before the latest fifth of the dates (at
    least the last date) and scored on those dates' assignments, beside random targeting.
    None with a single date, or when either part lacks treated or control customers.
    """
    dates = sorted(data["as_of"].unique().to_list())
    if len(dates) < 2:
        return None
    cut = dates[-max(1, len(dates) // 5)]
    late = (data["as_of"] >= cut).to_numpy()
    early = ~late
    if min(t[early].sum(), (~t[early]).sum(), t[late].sum(), (~t[late]).sum()) == 0:
        return None
    e = float(t[early].mean())
    model = fit_learner(learner, x[early], y[early], t[early], e, seed, layout)
    report = uplift_reports(
        y[late], t[late], {"model": model.uplift(x[late])}, rounds=rounds, seed=seed
    )
    report["random"] = random_baseline(y[late], t[late], rounds=rounds, seed=seed)
    return {
        "validated_from": str(cut),
        "training_rows": int(early.sum()),
        "rows": int(late.sum()),
        **{name: {k: v.to_json() for k, v in r.items()} for name, r in report.items()},
    }


@dataclass(frozen=True)
class UpliftResult:
    """A trained uplift model with its card and validation tables."""

    model: UpliftModel
    card: Mapping[str, Any]


def train_uplift(
    store: Store,
    campaigns: Sequence[str],
    window: int,
    cfg: FeatureConfig,
    *,
    created: dt.datetime,
    learner: str = "auto",
    seed: int = 0,
    min_responders: int = MIN_RESPONDERS,
    bootstrap_rounds: int = 200,
    extra: Store | None = None,
    all_attributes: bool = True,
    progress: ProgressFn | None = None,
) -> UpliftResult:
    """Train per-arm uplift models on ``campaigns`` and validate them (module text).

    ``all_attributes`` uses every loaded customer attribute (:func:`campaign_design`).
    An arm with fewer than ``min_responders`` responders among its treated or its
    controls is left out (``skipped_arms`` in the card says why). ``progress`` is told of
    the features, and of each learner fitted on each fold of each arm. The fits run on
    the idle cores (:func:`crmkit.models.threads.openmp_threads`).

    Raises
    ------
    BadInputError
        No control group, windows not yet observed, or no arm with enough responders.
    """
    if window < 1:
        raise BadInputError("--window must be at least 1 day")
    steps = Steps(progress)
    design = campaign_design(store, campaigns, window, cfg, extra, all_attributes=all_attributes)
    steps("features of the campaigns' customers")
    arms, validation, skipped = _fit_arms(
        design, learner, seed, bootstrap_rounds, min_responders, steps
    )
    rows, names, categories = design.rows, design.features, design.categories
    if not arms:
        raise BadInputError("; ".join(skipped.values()) or "no treatment arm to learn from")
    card = {
        "kind": "uplift", "created": created.isoformat(), "campaigns": list(campaigns),
        "window_days": window, "learner": learner, "seed": seed,
        "feature_version": FEATURE_VERSION, "feature_config": dataclasses.asdict(design.cfg),
        "vocabulary": design.vocab.to_json(),
        "attributes": [[n, str(d)] for n, d in design.attributes.items()],
        "categories": categories, "features": names, "dropped_features": design.dropped,
        "training_rows": rows.height, "arms": validation, "skipped_arms": skipped,
        "versions": {"crmkit": __version__},
    }  # fmt: skip
    return UpliftResult(UpliftModel(names, categories, arms), card)


def _fit_arms(
    design: CampaignDesign,
    learner: str,
    seed: int,
    rounds: int,
    min_responders: int,
    steps: Steps,
) -> tuple[dict[str, ArmModel], dict[str, Any], dict[str, str]]:
    """Fit every arm with enough responders on the idle cores; say why the others are left out."""
    rows, names, categories = design.rows, design.features, design.categories
    arms: dict[str, ArmModel] = {}
    validation: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    every = treatment_arms(rows)
    fitted = {"t", *(AUTO if learner == "auto" else (learner,))}
    steps.total = 1 + len(every) * (FOLDS * (len(fitted) + bool(design.attributes)) + 1)
    for arm in every:
        data, y, t, e = _arm_data(rows, arm)
        problem = _too_few_responders(arm, y, t, min_responders)
        if problem is not None:
            skipped[arm] = problem
            continue
        with threads(0):
            arms[arm], validation[arm] = _fit_arm(
                data, (y, t, e), design_matrix(data, names, categories), learner, seed,
                rounds, Layout.of(names, categories, design.attributes), steps.within(arm),
            )  # fmt: skip
        steps(f"{arm}: validated")
    return arms, validation, skipped


def _fit_arm(
    data: pl.DataFrame,
    outcome: tuple[np.ndarray, np.ndarray, float],
    x: np.ndarray,
    learner: str,
    seed: int,
    rounds: int,
    layout: Layout | None = None,
    step: Callable[[str], None] | None = None,
) -> tuple[ArmModel, dict[str, Any]]:
    """Cross-fit the learners on one arm, choose one by Qini, and validate it.

    ``outcome`` holds the response, the treated mask and the propensity of the arm's rows;
    ``layout`` tells what the columns of ``x`` are (with customer attributes, ``auto``
    also compares the T-learner on them alone). Returns the arm's model and its part of
    the card (with the runner-up of the comparison).
    """
    y, t, e = outcome
    folds = customer_folds(data[schema.CUSTOMER_ID])
    compared: tuple[str, ...] = AUTO if learner == "auto" else (learner,)
    if learner == "auto" and layout is not None and len(layout.attributes):
        compared = (*compared, ATTRIBUTES_ONLY)
    scores, fold_models = cross_fitted(x, y, t, folds, e, seed, compared, layout, step)
    value = data["customer_value"].fill_null(0.0).to_numpy()
    ranked = {
        **{f"{name}-learner": scores[name] for name in fold_models},
        "churn risk": scores["risk"],
        "value at risk": scores["risk"] * value,
    }
    reports = uplift_reports(y, t, ranked, rounds=rounds, seed=seed)
    reports["random"] = random_baseline(y, t, rounds=rounds, seed=seed)
    table = {name: {k: v.to_json() for k, v in r.items()} for name, r in reports.items()}
    order = by_qini(table)
    if learner in LEARNERS:
        chosen, choice = learner, None
    else:
        chosen, choice = choose(order, y, t, scores, seed, value)
    second = next((n for n in order if n != chosen), None)
    model = ArmModel(chosen, members=fold_models[chosen])
    revenue = data["revenue"].to_numpy()
    model.revenue_treated = _hgb_regressor(seed).fit(x[t], revenue[t])
    model.revenue_control = _hgb_regressor(seed).fit(x[~t], revenue[~t])
    card = _arm_card(
        data, (y, t, x, revenue), chosen, choice, second, table, ranked, (seed, rounds, layout)
    )
    return model, card


def _arm_card(
    data: pl.DataFrame,
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    chosen: str,
    choice: dict[str, Any] | None,
    second: str | None,
    table: dict[str, Any],
    ranked: Mapping[str, np.ndarray],
    fit: tuple[int, int, Layout | None],
) -> dict[str, Any]:
    """Return an arm's part of the card: groups, rankings, choice, evidence, support."""
    y, t, x, revenue = arrays
    seed, rounds, layout = fit
    return {
        "learner": chosen,
        "runner_up": None
        if second is None
        else {
            "learner": second,
            "qini": table[f"{second}-learner"]["qini"]["value"],
        },
        "choice": choice,
        "rows": len(y),
        "treated": int(t.sum()),
        "controls": int((~t).sum()),
        "propensity": float(t.mean()),
        "response_treated": float(y[t].mean()),
        "response_control": float(y[~t].mean()),
        "rankings": table,
        "qini_curves": _curves(y, t, ranked),
        "evidence": evidence(table, chosen).to_json(),
        "out_of_time": out_of_time(data, x, y, t, chosen, seed, rounds, layout),
        "support": training_support(data),
        "average_effect": average_effect(y, t, revenue),
    }


def score_uplift(
    store: Store,
    as_of: dt.date,
    registry: Registry,
    ref: ModelRef,
    lookback_days: int = 365,
    outside: str = "shrink",
) -> tuple[pl.DataFrame, ModelCard]:
    """Predict the uplift of every eligible customer and treatment as of ``as_of``.

    Eligible: a purchase in the ``lookback_days`` before the date. Columns: customer,
    treatment, ``uplift_probability``, ``uplift_spread``, ``uplift_revenue``,
    ``outside_support`` (treated by ``outside``, :mod:`crmkit.models.uplift_support`),
    ``customer_value`` and ``incremental_value`` (uplift in probability times value).

    Raises
    ------
    ModelError
        Not an uplift model, another feature version, or a failed integrity check.
    BadInputError
        No eligible customer.
    """
    from crmkit.models.scoring import card_feature_config, card_vocabulary

    model, card = registry.load(ref)
    name = f"{ref.name}{':' + str(ref.version) if ref.version else ''}"
    card.require("uplift")
    if not isinstance(model, UpliftModel):
        raise ModelError(f"model {name} is not an uplift model (crmkit uplift train)")
    cfg = card_feature_config(card)
    store.require()
    features = store_features(store, as_of, cfg, vocab=card_vocabulary(card))
    features = features.filter(pl.col("recency_days") <= lookback_days)
    if features.height == 0:
        raise BadInputError(f"no customer bought in the {lookback_days} days before {as_of}")
    with threads(0):
        uplifts = model.predict_uplift(features)
    predicted = apply_support(uplifts, features, card["arms"], outside)
    scored = predicted.join(
        features.select(schema.CUSTOMER_ID, "customer_value"), on=schema.CUSTOMER_ID
    )
    out = scored.with_columns(
        pl.lit(as_of).alias("as_of"),
        (pl.col("uplift_probability") * pl.col("customer_value")).alias("incremental_value"),
    ).sort(schema.CUSTOMER_ID, "treatment")
    return out, card


def uplift_summary(frame: pl.DataFrame, card: Mapping[str, Any]) -> dict[str, Any]:
    """Headline numbers of :func:`score_uplift`'s table."""
    return {
        "customers": frame[schema.CUSTOMER_ID].n_unique(),
        "treatments": sorted(card["arms"]),
        "positive_uplift_share": round(as_float((frame["uplift_probability"] > 0).mean()), 4),
        "outside_support": int(frame["outside_support"].sum())
        if "outside_support" in frame.columns
        else 0,
    }
