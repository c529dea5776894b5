"""Uplift benchmark: crmkit's cross-fitted learners against causalml's, on one campaign.

The features are crmkit's, as of 2025-01-01, of 200,000 customers of the simulator (the
feature store of ``bench features``). The campaign is simulated on them with a known
truth: a random half is treated; the chance to buy in the window falls with recency and
rises with frequency; the treatment adds 15 points for persuadables (recent-ish, few
purchase days), takes 10 away from sleeping dogs (the most valuable tenth) and does
nothing to the others. Every learner is cross-fitted on the same five customer folds and
scored by the Qini coefficient of its out-of-fold uplift; the true uplift's own Qini is the
ceiling. Peers: causalml's T-, X- and DR-learners on the same gradient boosting.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
import tracemalloc

import numpy as np
import polars as pl

from bench.common import save
from bench.features import store_for

AS_OF = dt.date(2025, 1, 1)
CUSTOMERS = 200_000


def campaign(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    from crmkit.config.settings import FeatureConfig
    from crmkit.features.eligibility import SEASON
    from crmkit.features.pipeline import store_features
    from crmkit.models.design import design_matrix, model_feature_names
    from crmkit.store.core import Store

    features = store_features(Store(store_for(2_000_000)), AS_OF, FeatureConfig())
    features = features.sort("customer_id").head(CUSTOMERS)
    rng = np.random.default_rng(seed)
    recency = features["recency_days"].to_numpy().astype(float)
    days = features["purchase_days"].to_numpy().astype(float)
    value = features["customer_value"].to_numpy()
    base = 1 / (1 + np.exp(-(0.8 - recency / 120 + 0.3 * np.minimum(days, 10))))
    persuadable = (recency > 30) & (recency < 240) & (days <= 3)
    sleeping = value >= np.quantile(value, 0.9)
    tau = np.where(sleeping, -0.10, np.where(persuadable, 0.15, 0.0))
    t = rng.uniform(0, 1, len(base)) < 0.5
    y = (rng.uniform(0, 1, len(base)) < np.clip(base + t * tau, 0, 1)).astype(int)
    cfg = FeatureConfig()
    names = [n for n in model_feature_names(cfg) if n not in SEASON]
    x = design_matrix(features, names)
    return x, y, t, tau, features["customer_id"].to_list()


def _crmkit(x, y, t, folds, e):
    """crmkit's default training of one arm: T- and X-learner cross-fitted (X reuses the
    T-learner's models), the bootstrap report of five rankings, the revenue models; and
    the DR-learner cross-fitted on its own."""
    from crmkit.models.uplift import cross_fitted
    from crmkit.models.uplift_learners import _hgb_regressor
    from crmkit.models.uplift_metrics import uplift_reports

    out, _ = cross_fitted(x, y, t, folds, e, 0)
    rankings = {"t": out["t"], "x": out["x"], "risk": out["risk"], "random": folds * 1.0}
    rankings["value"] = out["risk"] * x[:, 0]
    uplift_reports(y, t, rankings, rounds=200, seed=0)
    revenue = y * 50.0
    _hgb_regressor(0).fit(x[t], revenue[t])
    _hgb_regressor(0).fit(x[~t], revenue[~t])
    return {"crmkit T-learner": out["t"], "crmkit X-learner": out["x"]}


def _crmkit_dr(x, y, t, folds, e):
    from crmkit.models.uplift import cross_fitted

    out, _ = cross_fitted(x, y, t, folds, e, 0, ("dr",))
    return {"crmkit DR-learner": out["dr"]}


def _causalml(x, y, t, folds, e):
    from causalml.inference.meta import BaseDRLearner, BaseTClassifier, BaseXClassifier
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    def clf():
        return HistGradientBoostingClassifier(max_iter=150, learning_rate=0.05, random_state=0)

    def reg():
        return HistGradientBoostingRegressor(max_iter=150, learning_rate=0.05, random_state=0)

    learners = {
        "causalml T-learner": lambda: BaseTClassifier(learner=clf(), control_name="control"),
        "causalml X-learner": lambda: BaseXClassifier(
            outcome_learner=clf(), effect_learner=reg(), control_name="control"
        ),
        "causalml DR-learner": lambda: BaseDRLearner(learner=reg(), control_name="control"),
    }
    treatment = np.where(t, "treatment", "control")
    out = {}
    for name, make in learners.items():
        scores = np.empty(len(y))
        for f in np.unique(folds):
            test, train = folds == f, folds != f
            model = make()
            p = np.full(train.sum(), e)
            if "DR" in name or "X" in name:
                model.fit(x[train], treatment[train], y[train], p=p)
            else:
                model.fit(x[train], treatment[train], y[train])
            pred = (
                model.predict(x[test], p=np.full(test.sum(), e))
                if "X" in name
                else model.predict(x[test])
            )
            scores[test] = np.asarray(pred).reshape(len(pred), -1)[:, 0]
        out[name] = scores
    return out


def run(_rows: int = 0, repeat: int = 1) -> None:
    from crmkit.models.uplift_learners import customer_folds
    from crmkit.models.uplift_metrics import qini_coefficient, uplift_at_k

    x, y, t, tau, ids = campaign()
    folds = customer_folds(pl.Series(ids))
    e = float(t.mean())
    sides = {"crmkit": _crmkit, "causalml": _causalml, "crmkit DR": _crmkit_dr}
    seconds: dict[str, list[float]] = {}
    scores: dict[str, np.ndarray] = {}
    for _ in range(max(1, repeat)):  # crmkit and the peer alternate within each round
        for side, fit in sides.items():
            start = time.perf_counter()
            scores |= fit(x, y, t, folds, e)
            seconds.setdefault(side, []).append(time.perf_counter() - start)
    peaks: dict[str, float] = {}
    for side in ("crmkit", "causalml"):  # memory apart: tracing slows the timed runs
        tracemalloc.start()
        sides[side](x, y, t, folds, e)
        peaks[side] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    rows = [
        {
            "ranking": name,
            "qini": qini_coefficient(y, t, s),
            "uplift_at_10": uplift_at_k(y, t, s, 0.1),
            "true_uplift_of_top_20pct": float(
                tau[np.argsort(-s, kind="stable")[: len(s) // 5]].mean()
            ),
        }
        for name, s in {"true uplift": tau, **scores}.items()
    ]
    table = pl.DataFrame(rows)
    times = {side: statistics.median(v) for side, v in seconds.items()}
    print(f"\nuplift, {len(y):,} assignments, 5 customer folds (cross-fitted)")
    with pl.Config(tbl_rows=20, float_precision=4, tbl_width_chars=120):
        print(table)
    notes = {
        "crmkit": "default training: T and X cross-fitted, 5-ranking bootstrap, revenue",
        "causalml": "T, X and DR cross-fitted",
        "crmkit DR": "the DR-learner cross-fitted (not in the default training)",
    }
    for side, value in times.items():
        peak = f"  peak traced memory {peaks[side]:.0f} MB" if side in peaks else ""
        print(
            f"{side:<10} {value:8.1f} s (median of {len(seconds[side])}; {notes[side]}){peak}"
            f"  x crmkit {value / times['crmkit']:.2f}"
        )
    save(
        "uplift",
        {"assignments": len(y), "rows": table.to_dicts(), "seconds": times, "peak_mb": peaks},
    )
