"""Uplift learners: per-arm T-, X- and doubly robust learners and the fitted uplift model.

Every gradient-boosting fit leaves out the columns that carry nothing in its rows
(:class:`~crmkit.models.estimators.ObservedFit`).
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import polars as pl

from crmkit import schema
from crmkit.models.design import design_matrix
from crmkit.models.estimators import ObservedFit, gradient_boosting

LEARNERS: Final = ("t", "x", "dr", "lt", "li", "ta")
#: The learners ``auto`` compares: boosting T and X (the X-learner reuses the T-learner's
#: models) and the linear T-learner (:mod:`crmkit.models.uplift_linear`); ``li`` and ``dr``
#: are fitted when asked for.
AUTO: Final = ("t", "x", "lt")
#: The linear T-learner on the customer attributes alone, compared when any are loaded.
ATTRIBUTES_ONLY: Final = "ta"
FOLDS: Final = 5
#: Responders needed in each group of an arm (treated and control) to learn from it.
MIN_RESPONDERS: Final = 30


def _hgb_classifier(seed: int) -> Any:  # noqa: ANN401
    return ObservedFit(gradient_boosting("outcome", seed))


def _hgb_regressor(seed: int, loss: str = "squared_error") -> Any:  # noqa: ANN401
    return ObservedFit(gradient_boosting("revenue", seed, regression=True, loss=loss))


def _effect_regressor(seed: int) -> Any:  # noqa: ANN401
    """Return the X-learner's effect model (:data:`~crmkit.models.estimators.BOOSTING`).

    Less regularised than the outcome models (the imputed effects are already differences
    of predictions, and the arm's model averages five of them).
    """
    return ObservedFit(gradient_boosting("effect", seed, regression=True))


class _Constant:
    """A classifier of one class seen in training; models saved by 0.1.0 may hold one."""

    def __init__(self, p: float) -> None:
        self.p = p

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Return the constant probabilities for every row."""
        return np.column_stack([np.full(len(x), 1 - self.p), np.full(len(x), self.p)])


def _fit_classifier(x: np.ndarray, y: np.ndarray, seed: int) -> Any:  # noqa: ANN401
    if y.min() == y.max():  # one class seen (a fold without responders): its rate, 0 or 1
        from sklearn.dummy import DummyClassifier

        both = np.array([0, 1])
        weight = (both == y[0]).astype(float)  # the unseen class weighs nothing
        return DummyClassifier(strategy="prior").fit(
            np.zeros((2, x.shape[1])), both, sample_weight=weight
        )
    return _hgb_classifier(seed).fit(x, y)


def _p(model: Any, x: np.ndarray) -> np.ndarray:  # noqa: ANN401
    out: np.ndarray = model.predict_proba(x)[:, 1]
    return out


@dataclass(frozen=True)
class Layout:
    """What the columns of a design matrix are: category codes, customer attributes."""

    categorical: np.ndarray  # one flag per column
    attributes: np.ndarray  # indices of the customer-attribute columns

    @classmethod
    def of(
        cls, names: list[str], categories: dict[str, list[str]], attributes: Iterable[str]
    ) -> Layout:
        """Return the layout of columns ``names``."""
        chosen = set(attributes)
        return cls(
            np.array([n in categories for n in names], dtype=bool),
            np.array([i for i, n in enumerate(names) if n in chosen], dtype=np.int64),
        )


@dataclass
class ArmModel:
    """The fitted uplift model of one treatment arm."""

    learner: str
    treated: Any = None
    control: Any = None
    effect: Any = None
    effect_treated: Any = None
    propensity: float = 0.5
    revenue_treated: Any = None
    revenue_control: Any = None
    members: list[ArmModel] = dataclasses.field(default_factory=list)
    columns: list[int] | None = None  # the columns the T-learner sees (``ta``), else all

    def uplift(self, x: np.ndarray) -> np.ndarray:
        """Predicted change in the probability of a purchase in the window.

        A model with ``members`` (the cross-fitting models of its learner) predicts their
        mean: each saw four fifths of the customers, and their mean varies less from
        customer to customer than one model refitted on all of them.
        """
        members = getattr(self, "members", None)  # absent from models saved before
        if members:
            mean: np.ndarray = np.mean([m.uplift(x) for m in members], axis=0)
            return mean
        if self.learner == "li":
            linear: np.ndarray = self.effect.uplift(x)
            return linear
        if self.learner == "dr":
            effect: np.ndarray = np.clip(self.effect.predict(x), -1.0, 1.0)
            return effect
        if self.learner == "x":
            e = self.propensity
            mixed = e * self.effect.predict(x) + (1 - e) * self.effect_treated.predict(x)
            return np.clip(mixed, -1.0, 1.0)  # type: ignore[no-any-return]
        columns = getattr(self, "columns", None)
        seen = x if columns is None else x[:, columns]
        out: np.ndarray = _p(self.treated, seen) - _p(self.control, seen)
        return out

    def uplift_and_spread(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return :meth:`uplift` and the standard deviation of the members' uplifts per row.

        The spread (0 without members) tells how much the prediction depends on which
        four fifths of the customers a model saw: large where the data say little, e.g.
        for rare, valuable customers.
        """
        members = getattr(self, "members", None)
        if not members:
            return self.uplift(x), np.zeros(len(x))
        each = np.array([m.uplift(x) for m in members])
        return each.mean(axis=0), each.std(axis=0)

    def revenue(self, x: np.ndarray) -> np.ndarray:
        """Predicted change in the window's net revenue."""
        out: np.ndarray = self.revenue_treated.predict(x) - self.revenue_control.predict(x)
        return out


def x_learner(
    base: ArmModel, x: np.ndarray, y: np.ndarray, t: np.ndarray, e: float, seed: int
) -> ArmModel:
    """Fit the X-learner's second stage on a fitted T-learner ``base``.

    Each group's imputed effects (a treated customer's outcome minus the control model's
    prediction, a control's the treated model's prediction minus its outcome) are
    regressed on the features; the two effect models are mixed by the known propensity,
    ``e * tau_0 + (1 - e) * tau_1`` (Kunzel et al. 2019), so the larger group's outcome
    model carries more weight.
    """
    d1 = y[t] - _p(base.control, x[t])
    d0 = _p(base.treated, x[~t]) - y[~t]
    return ArmModel(
        "x",
        effect=_effect_regressor(seed).fit(x[~t], d0),
        effect_treated=_effect_regressor(seed).fit(x[t], d1),
        propensity=e,
    )


def fit_learner(
    learner: str,
    x: np.ndarray,
    y: np.ndarray,
    t: np.ndarray,
    e: float,
    seed: int,
    layout: Layout | None = None,
) -> ArmModel:
    """Fit a learner of :data:`LEARNERS` on one arm's rows (``t`` = treated, ``e`` known).

    ``layout`` tells the category-code columns (the linear learners one-hot encode them)
    and the customer-attribute columns (all that ``ta`` sees).
    """
    categorical = None if layout is None else layout.categorical
    if learner == ATTRIBUTES_ONLY:
        if layout is None or not len(layout.attributes):
            raise ValueError("the attributes-only learner needs customer attribute columns")
        from crmkit.models.uplift_linear import linear_classifier

        cols = layout.attributes.tolist()
        seen, codes = x[:, cols], layout.categorical[cols]
        treated = linear_classifier(seen[t], y[t], seed, codes, penalty=1.0)
        control = linear_classifier(seen[~t], y[~t], seed, codes, penalty=1.0)
        return ArmModel("ta", treated, control, columns=cols)
    if learner in ("lt", "li"):
        from crmkit.models.uplift_linear import T_PENALTY, InteractionLogit, linear_classifier

        if learner == "li":
            return ArmModel("li", effect=InteractionLogit(seed, categorical).fit(x, y, t))
        treated = linear_classifier(x[t], y[t], seed, categorical, penalty=T_PENALTY)
        control = linear_classifier(x[~t], y[~t], seed, categorical, penalty=T_PENALTY)
        return ArmModel("lt", treated, control)
    if learner in ("t", "x"):
        base = ArmModel("t", _fit_classifier(x[t], y[t], seed), _fit_classifier(x[~t], y[~t], seed))
        return base if learner == "t" else x_learner(base, x, y, t, e, seed)
    # outcome models cross-fitted in two halves for the pseudo-outcomes
    half = np.random.default_rng(seed).integers(0, 2, len(y)).astype(bool)
    m1, m0 = np.empty(len(y)), np.empty(len(y))
    for part in (half, ~half):
        rest = ~part
        m1[part] = _p(_fit_classifier(x[rest & t], y[rest & t], seed), x[part])
        m0[part] = _p(_fit_classifier(x[rest & ~t], y[rest & ~t], seed), x[part])
    phi = m1 - m0 + t * (y - m1) / e - (~t) * (y - m0) / (1 - e)
    return ArmModel("dr", effect=_hgb_regressor(seed).fit(x, phi))


def customer_folds(customers: pl.Series, folds: int = FOLDS) -> np.ndarray:
    """Fold of each row by a stable hash of its customer id: a customer's rows stay together."""
    return np.array(
        [zlib.crc32(c.encode("utf-8")) % folds for c in customers.to_list()], dtype=np.int64
    )


@dataclass
class UpliftModel:
    """Per-arm uplift models over one feature matrix layout (saved in the registry)."""

    features: list[str]
    categories: dict[str, list[str]]
    arms: dict[str, ArmModel]

    def predict_uplift(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Predict per customer of ``frame`` and arm.

        Columns ``uplift_probability``, its spread over the arm's member models
        ``uplift_spread`` (:meth:`ArmModel.uplift_and_spread`) and ``uplift_revenue``.
        """
        x = design_matrix(frame, self.features, self.categories)
        parts = []
        for arm, model in sorted(self.arms.items()):
            uplift, spread = model.uplift_and_spread(x)
            parts.append(
                pl.DataFrame(
                    {
                        schema.CUSTOMER_ID: frame[schema.CUSTOMER_ID],
                        "treatment": [arm] * frame.height,
                        "uplift_probability": uplift,
                        "uplift_spread": spread,
                        "uplift_revenue": model.revenue(x),
                    }
                )
            )
        return pl.concat(parts).sort(schema.CUSTOMER_ID, "treatment")


def cross_fitted(
    x: np.ndarray,
    y: np.ndarray,
    t: np.ndarray,
    folds: np.ndarray,
    e: float,
    seed: int,
    learners: Sequence[str] = AUTO,
    layout: Layout | None = None,
    step: Callable[[str], None] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, list[ArmModel]]]:
    """Return out-of-fold uplifts and churn risk, and each learner's fold models.

    The churn risk is one minus the T-learner's control model: who buys when nothing is
    done. ``layout`` tells the learners what the columns are; ``step`` is told of each
    learner fitted on each fold.
    """
    names = list(dict.fromkeys(["t", *learners]))  # the T-learner gives the churn risk
    out = {name: np.empty(len(y)) for name in (*names, "risk")}
    models: dict[str, list[ArmModel]] = {name: [] for name in names}
    for f in np.unique(folds):
        test, train = folds == f, folds != f
        xs, ys, ts = x[train], y[train], t[train]
        base = fit_learner("t", xs, ys, ts, e, seed)
        for name in names:
            if name == "t":
                model = base
            elif name == "x":  # its first stage is the T-learner's
                model = x_learner(base, xs, ys, ts, e, seed)
            else:
                model = fit_learner(name, xs, ys, ts, e, seed, layout)
            models[name].append(model)
            out[name][test] = model.uplift(x[test])
            if step is not None:
                step(f"fold {int(f) + 1} of {len(np.unique(folds))}, {name}-learner")
        out["risk"][test] = 1 - _p(base.control, x[test])  # who buys when nothing is done
    return out, models
