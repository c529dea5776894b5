"""The design-matrix contract every learner keeps: columns that carry nothing are left out.

At fit, a feature with no value in the training rows (an export without a category column,
``[features] mix = false``, attributes never loaded) or with one value in every row is
dropped and recorded with its reason in the model card; scoring builds the matrix from the
card's feature list, so it uses exactly the columns the fit used. Within a fit (a fold, an
arm), :class:`~crmkit.models.estimators.ObservedFit` and
:class:`~crmkit.models.estimators.ObservedColumns` leave out the columns that have no value
in that fit's rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import polars as pl

from crmkit import schema
from crmkit.config.settings import FeatureConfig
from crmkit.features.customer import feature_schema
from crmkit.features.eligibility import SEASON
from crmkit.features.vocabulary import Vocabulary
from crmkit.models.clv import CLV_COLUMNS

NO_VALUE = "no value in the training rows"
ONE_VALUE = "the same value in every training row"


def informative_features(
    rows: pl.DataFrame, names: Sequence[str]
) -> tuple[list[str], dict[str, str]]:
    """Split ``names`` into the features ``rows`` can teach and those left out, with why.

    A column missing from ``rows`` counts as having no value. A column with one value and
    some nulls is kept: whether the value is there can carry information.
    """
    present = [n for n in names if n in rows.columns]
    stats = (
        rows.select(
            *(pl.col(n).drop_nulls().n_unique().alias(f"u{i}") for i, n in enumerate(present)),
            *(pl.col(n).null_count().alias(f"n{i}") for i, n in enumerate(present)),
        ).row(0, named=True)
        if present
        else {}
    )
    kept: list[str] = []
    dropped: dict[str, str] = {}
    index = {n: i for i, n in enumerate(present)}
    for name in names:
        if name not in index or stats[f"u{index[name]}"] == 0:
            dropped[name] = NO_VALUE
        elif stats[f"u{index[name]}"] == 1 and stats[f"n{index[name]}"] == 0:
            dropped[name] = ONE_VALUE
        else:
            kept.append(name)
    return kept, dropped


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


@dataclass(frozen=True)
class Design:
    """A frame of a model's inputs, turned into its matrix a block of rows at a time.

    Scoring predicts block by block and the explainer builds the rows it explains, so the
    whole matrix (rows x features, the size of the feature table again) is never held.
    """

    frame: pl.DataFrame
    names: Sequence[str]
    categories: Mapping[str, Sequence[str]]
    dtype: type

    @classmethod
    def of(
        cls,
        frame: pl.DataFrame,
        names: Sequence[str],
        categories: Mapping[str, Sequence[str]] | None = None,
        dtype: type = np.float64,
    ) -> Design:
        """Return the design of ``frame``'s columns ``names`` (kept without a copy)."""
        return cls(frame.select(names), list(names), dict(categories or {}), dtype)

    def __len__(self) -> int:
        return self.frame.height

    def block(self, start: int, stop: int) -> np.ndarray:
        """Return the matrix of rows ``start`` to ``stop`` (exclusive)."""
        part = self.frame.slice(start, max(0, stop - start))
        return design_matrix(part, self.names, self.categories, self.dtype)

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """Return the matrix of the rows numbered ``rows``."""
        return design_matrix(self.frame[rows], self.names, self.categories, self.dtype)

    def column(self, j: int) -> np.ndarray:
        """Return column ``j`` of the matrix."""
        name = self.names[j]
        return design_matrix(self.frame.select(name), [name], self.categories, self.dtype)[:, 0]


#: What training reports through ``progress`` after the snapshots, in order.
