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

from collections.abc import Sequence

import polars as pl

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
