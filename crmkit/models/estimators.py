"""The churn classifiers: gradient boosting, logistic regression, and their blend.

``blend`` (the default) averages the log-odds of a histogram gradient boosting classifier
and a logistic regression on log-scaled features. The two make different errors: the
trees find interactions and thresholds, the linear model extrapolates smoothly where the
trees have few customers. On Online Retail II out of time, the blend ranks better than
either (ROC AUC 0.811 against 0.806 and 0.804, see docs/real-data.md).

Categorical columns (customer attributes held as text) arrive as integer codes with NaN
for missing or unseen values: gradient boosting uses scikit-learn's native categorical
support; the logistic regression one-hot encodes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone

_EPS: Final = 1e-6


def signed_log1p(x: np.ndarray) -> np.ndarray:
    """``sign(x) * log(1 + |x|)``: money and counts on a scale a linear model can use."""
    out: np.ndarray = np.sign(x) * np.log1p(np.abs(x))
    return out


def _mask(categorical: Sequence[bool] | None, width: int) -> np.ndarray:
    if categorical is None:
        return np.zeros(width, dtype=bool)
    return np.asarray(categorical, dtype=bool)


#: Settings of every histogram gradient boosting model crmkit fits, by role. The churn
#: classifier learns longer on more data; the uplift outcome models are shallower and
#: need larger leaves; the X-learner's effect model keeps scikit-learn's default trees
#: and early stopping (``python -m bench uplift``: Qini 0.075, against 0.072 with the
#: outcome models' settings).
BOOSTING: Final[dict[str, dict[str, Any]]] = {
    "churn": {"max_iter": 300, "max_leaf_nodes": 15, "min_samples_leaf": 40,
              "l2_regularization": 1.0, "early_stopping": False},
    "outcome": {"max_iter": 150, "max_leaf_nodes": 15, "min_samples_leaf": 40,
                "l2_regularization": 1.0, "early_stopping": False},
    "revenue": {"max_iter": 150, "max_leaf_nodes": 15, "min_samples_leaf": 60,
                "l2_regularization": 1.0, "early_stopping": False},
    "effect": {"max_iter": 150},
}  # fmt: skip


def gradient_boosting(
    role: str,
    seed: int,
    *,
    regression: bool = False,
    categorical: Sequence[bool] | None = None,
    **overrides: Any,  # noqa: ANN401
) -> Any:  # noqa: ANN401
    """Return the one gradient boosting model of crmkit, set up for ``role`` (:data:`BOOSTING`).

    ``regression`` gives a regressor, ``categorical`` marks the columns holding category
    codes (scikit-learn's native support), and ``overrides`` replace settings (``loss``).
    """
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    mask = None if categorical is None or not any(categorical) else np.asarray(categorical)
    settings = {**BOOSTING[role], **overrides}
    kind = HistGradientBoostingRegressor if regression else HistGradientBoostingClassifier
    return kind(learning_rate=0.05, categorical_features=mask, random_state=seed, **settings)


def make_hgb(seed: int, categorical: Sequence[bool] | None = None) -> Any:  # noqa: ANN401
    """Return the churn classifier's gradient boosting (:func:`gradient_boosting`)."""
    return gradient_boosting("churn", seed, categorical=categorical)


def make_logreg(seed: int, categorical: Sequence[bool] | None = None) -> Any:  # noqa: ANN401
    """Return the logistic regression on log-scaled, standardised features."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    numeric = make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True),
        FunctionTransformer(signed_log1p),
        StandardScaler(),
    )
    model = LogisticRegression(C=0.5, max_iter=2000, random_state=seed)
    if categorical is None or not any(categorical):
        return make_pipeline(numeric, model)
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder

    mask = np.asarray(categorical, dtype=bool)
    codes = make_pipeline(
        SimpleImputer(strategy="constant", fill_value=-1.0, keep_empty_features=True),
        OneHotEncoder(handle_unknown="ignore"),
    )
    columns = ColumnTransformer(
        [("numeric", numeric, np.flatnonzero(~mask)), ("categories", codes, np.flatnonzero(mask))]
    )
    return make_pipeline(columns, model)


class BlendClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Average of its members' log-odds; each member is fitted on the same rows.

    Parameters
    ----------
    members
        Unfitted scikit-learn classifiers.
    """

    def __init__(self, members: Sequence[Any] = ()) -> None:
        self.members = members

    def fit(self, x: np.ndarray, y: np.ndarray) -> BlendClassifier:
        """Fit a clone of every member on ``x``, ``y``."""
        self.fitted_ = [clone(m).fit(x, y) for m in self.members]
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Return ``[1 - p, p]`` with ``p`` the logistic of the members' mean log-odds."""
        logits = []
        for member in self.fitted_:
            p = np.clip(member.predict_proba(x)[:, 1], _EPS, 1 - _EPS)
            logits.append(np.log(p / (1 - p)))
        z = np.mean(logits, axis=0)
        p = 1.0 / (1.0 + np.exp(-z))
        return np.column_stack([1 - p, p])


class ObservedColumns(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A ``kind`` classifier fitted on the columns that hold a value in the training rows.

    A feature the store cannot compute (no category column in the export, say) is NaN for
    every customer; gradient boosting cannot bin such a column, and it carries nothing.

    Parameters
    ----------
    kind
        ``hgb`` or ``logreg``.
    seed
        Random state of the classifier.
    categorical
        Which columns hold category codes.
    """

    def __init__(self, kind: str = "hgb", seed: int = 0, categorical: Any = None) -> None:  # noqa: ANN401
        self.kind = kind
        self.seed = seed
        self.categorical = categorical

    def fit(self, x: np.ndarray, y: np.ndarray) -> ObservedColumns:
        """Fit the classifier on the observed columns of ``x``."""
        self.keep_ = ~np.isnan(x).all(axis=0)
        mask = _mask(self.categorical, x.shape[1])[self.keep_]
        make = make_logreg if self.kind == "logreg" else make_hgb
        self.model_ = make(self.seed, list(mask)).fit(x[:, self.keep_], y)
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Return the classifier's class probabilities."""
        out: np.ndarray = self.model_.predict_proba(x[:, self.keep_])
        return out


def make_classifier(kind: str, seed: int, categorical: Sequence[bool] | None = None) -> Any:  # noqa: ANN401
    """Return the unfitted classifier of ``kind`` (``blend``, ``hgb`` or ``logreg``)."""
    mask = None if categorical is None else list(categorical)
    if kind in ("hgb", "logreg"):
        return ObservedColumns(kind, seed, mask)
    members = (ObservedColumns("hgb", seed, mask), ObservedColumns("logreg", seed, mask))
    return BlendClassifier(members)


class ObservedFit(BaseEstimator):  # type: ignore[misc]
    """Any estimator fitted on the columns that hold a value in its own training rows.

    The design-matrix contract at the level of one fit: a fold, an arm or a group in which
    a column has no value at all (a short history, an export without categories) leaves
    that column out instead of failing; predictions use the same columns. With no column
    left, the estimator sees one constant column.

    Parameters
    ----------
    estimator
        An unfitted scikit-learn classifier or regressor.
    """

    def __init__(self, estimator: Any = None) -> None:  # noqa: ANN401
        self.estimator = estimator

    def _columns(self, x: np.ndarray) -> np.ndarray:
        if self.keep_.any():
            return x[:, self.keep_]
        return np.zeros((len(x), 1), dtype=x.dtype)

    def fit(self, x: np.ndarray, y: np.ndarray) -> ObservedFit:
        """Fit a clone of ``estimator`` on the observed columns of ``x``."""
        self.keep_ = ~np.isnan(x).all(axis=0)
        self.estimator_ = clone(self.estimator).fit(self._columns(x), y)
        if hasattr(self.estimator_, "classes_"):
            self.classes_ = self.estimator_.classes_
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predict from the columns the fit used."""
        out: np.ndarray = self.estimator_.predict(self._columns(x))
        return out

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities from the columns the fit used."""
        out: np.ndarray = self.estimator_.predict_proba(self._columns(x))
        return out
