"""Linear uplift learners for a weak signal: many noisy features and few responders.

Both work on the same inputs as the churn model's logistic regression (median-imputed,
``sign(x) log(1 + |x|)``, standardised numbers; one-hot categories):

* **linear T-learner** (``lt``): one logistic regression per group with a strong L2
  penalty (:data:`T_PENALTY`), the uplift the difference of their probabilities;
* **linear interaction learner** (``li``): one penalised logistic regression on all rows
  of the outcome on the features, the treatment and their products, so treated and
  controls share the main effects (the small control group does not have to learn them
  alone) and only the products carry the uplift:
  ``uplift(x) = P(y | x, t = 1) - P(y | x, t = 0)``; its penalty is chosen by
  cross-validated log loss over :data:`C_GRID`.

With a few dozen responders per group and sixty features of which two or three matter,
gradient boosting learns mostly noise; a penalised linear model shrinks the rest toward
zero.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

#: The linear T-learner's inverse L2 penalty: strong shrinkage toward no effect, fitted
#: once per group and fold (``auto`` fits it on every arm).
T_PENALTY: Final = 0.05
#: Inverse L2 penalties tried by cross-validation (smaller: stronger shrinkage).
C_GRID: Final = (0.003, 0.03, 0.3, 3.0)
#: Fewest cases of the rarer class for the cross-validated choice of the penalty.
_MIN_FOR_CV: Final = 6


def _finite(x: np.ndarray) -> np.ndarray:
    """Return ``x`` with infinities (a ratio over zero) as missing, for the imputer."""
    out: np.ndarray = np.where(np.isfinite(x), x, np.nan)
    return out


def linear_inputs(categorical: np.ndarray | None) -> Any:  # noqa: ANN401
    """Return the unfitted transformer of the design matrix for a linear model."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    from crmkit.models.estimators import signed_log1p

    numeric = make_pipeline(
        FunctionTransformer(_finite),
        SimpleImputer(strategy="median", keep_empty_features=True),
        FunctionTransformer(signed_log1p),
        StandardScaler(),
    )
    if categorical is None or not categorical.any():
        return numeric
    codes = make_pipeline(
        SimpleImputer(strategy="constant", fill_value=-1.0, keep_empty_features=True),
        OneHotEncoder(handle_unknown="ignore", sparse_output=False),
    )
    return ColumnTransformer(
        [
            ("numeric", numeric, np.flatnonzero(~categorical)),
            ("categories", codes, np.flatnonzero(categorical)),
        ]
    )


def _logit(y: np.ndarray, seed: int, penalty: float | None = None) -> Any:  # noqa: ANN401
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV

    rare = int(min(y.sum(), len(y) - y.sum()))
    if penalty is not None or rare < _MIN_FOR_CV:
        return LogisticRegression(C=penalty or C_GRID[1], max_iter=2000)
    return LogisticRegressionCV(
        Cs=list(C_GRID),
        l1_ratios=(0.0,),
        cv=3,
        scoring="neg_log_loss",
        max_iter=2000,
        random_state=seed,
        use_legacy_attributes=False,
    )


class _Rate:
    """The probability of a group whose outcome took one value: that value's rate."""

    def __init__(self, p: float) -> None:
        self.p = p

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Return the rate for every row."""
        return np.column_stack([np.full(len(x), 1 - self.p), np.full(len(x), self.p)])


def linear_classifier(
    x: np.ndarray,
    y: np.ndarray,
    seed: int,
    categorical: np.ndarray | None,
    penalty: float | None = None,
) -> Any:  # noqa: ANN401
    """Fit the penalised logistic regression of ``y`` on ``x`` (one group of ``lt``).

    ``penalty`` fixes the inverse L2 penalty ``C`` instead of choosing it by
    cross-validation (the attributes-only learner: a handful of columns need little).
    """
    from sklearn.pipeline import make_pipeline

    if y.min() == y.max():
        return _Rate(float(y[0]))
    return make_pipeline(linear_inputs(categorical), _logit(y, seed, penalty)).fit(x, y)


class InteractionLogit:
    """The linear interaction learner's model (module text); ``uplift`` predicts it."""

    def __init__(self, seed: int, categorical: np.ndarray | None) -> None:
        self.seed = seed
        self.categorical = categorical

    def _design(self, z: np.ndarray, t: np.ndarray) -> np.ndarray:
        return np.hstack([z, t[:, None], z * t[:, None]])

    def fit(self, x: np.ndarray, y: np.ndarray, t: np.ndarray) -> InteractionLogit:
        """Fit on all of an arm's rows, ``t`` marking the treated."""
        self.inputs_ = linear_inputs(self.categorical).fit(x)
        z = np.asarray(self.inputs_.transform(x), dtype=np.float64)
        self.constant_ = y.min() == y.max()
        if not self.constant_:
            self.model_ = _logit(y, self.seed).fit(self._design(z, t.astype(np.float64)), y)
        return self

    def uplift(self, x: np.ndarray) -> np.ndarray:
        """Return ``P(y | x, t = 1) - P(y | x, t = 0)`` per row."""
        if self.constant_:
            return np.zeros(len(x))
        z = np.asarray(self.inputs_.transform(x), dtype=np.float64)
        ones, zeros = np.ones(len(x)), np.zeros(len(x))
        p1 = self.model_.predict_proba(self._design(z, ones))[:, 1]
        p0 = self.model_.predict_proba(self._design(z, zeros))[:, 1]
        out: np.ndarray = p1 - p0
        return out
