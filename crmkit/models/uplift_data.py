"""The rows uplift learners and policy comparisons learn from: assignments with features.

Every treatment and control assignment of the chosen campaigns whose outcome window has
passed, with its outcome (:func:`crmkit.campaigns.evaluation.outcomes`) and the shared
pipeline's features as of its date, computed only for the customers assigned that day.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from crmkit import schema
from crmkit.campaigns.evaluation import outcomes
from crmkit.config.settings import FeatureConfig
from crmkit.errors import BadInputError
from crmkit.features.eligibility import SEASON
from crmkit.features.pipeline import features_of_buckets
from crmkit.features.vocabulary import Vocabulary, learn_vocabulary
from crmkit.models.design import (
    category_codes,
    design_matrix,
    informative_features,
    model_feature_names,
)
from crmkit.store.core import Store


def training_frame(
    store: Store,
    campaigns: Sequence[str],
    window: int,
    cfg: FeatureConfig,
    extra: Store | None = None,
    vocab: Vocabulary | None = None,
) -> tuple[pl.DataFrame, Vocabulary]:
    """Return the assignments with their outcomes and features as of each one's date.

    ``extra`` adds another store's purchases to the outcomes only (``--outcomes``);
    ``vocab`` is a saved model's vocabulary (else one is learned as of the newest date).

    Raises
    ------
    BadInputError
        A window that has not passed for some assignments, or no control group.
    """
    found = [outcomes(store, c, window, extra)[0] for c in campaigns]
    rows = pl.concat(found, how="vertical_relaxed")
    rows = rows.filter(pl.col("group").is_in(["treatment", "control"]))
    open_rows = rows.filter(~pl.col("complete"))
    if open_rows.height:
        last = str(open_rows["as_of"].max())
        raise BadInputError(
            f"{open_rows.height:,} assignments (the latest on {last}) have a {window}-day "
            "window that has not passed in the store's data yet: ingest the purchases made "
            "since, or leave out the newest campaign"
        )
    if rows.filter(pl.col("group") == "control").height == 0:
        raise BadInputError(
            f"campaign(s) {', '.join(campaigns)} have no control group: uplift needs "
            "customers who were randomly left out"
        )
    newest = rows["as_of"].max()
    if not isinstance(newest, dt.date):
        raise BadInputError(f"campaign(s) {', '.join(campaigns)}: no assignment to learn from")
    if vocab is None:
        vocab = learn_vocabulary(store.transactions(), newest, cfg)
    frames = []
    for day in sorted(rows["as_of"].unique().to_list()):
        ids = rows.filter(pl.col("as_of") == day)[schema.CUSTOMER_ID].unique().sort()
        features = features_of_buckets(
            store, store.bucket_paths(), day, cfg, vocab, customers=ids
        ).with_columns(pl.lit(day).alias("as_of"))
        frames.append(features)
    features = pl.concat(frames, how="vertical_relaxed")
    joined = rows.join(features, on=[schema.CUSTOMER_ID, "as_of"], how="left")
    return joined, vocab


@dataclass(frozen=True)
class CampaignDesign:
    """Campaign rows with their features, and the columns a learner can use."""

    rows: pl.DataFrame
    features: list[str]
    dropped: dict[str, str]
    categories: dict[str, list[str]]
    vocab: Vocabulary
    attributes: Mapping[str, pl.DataType]
    cfg: FeatureConfig

    def matrix(self, rows: pl.DataFrame | None = None) -> np.ndarray:
        """Return the design matrix of ``rows`` (default: all of them)."""
        return design_matrix(self.rows if rows is None else rows, self.features, self.categories)


def campaign_design(
    store: Store,
    campaigns: Sequence[str],
    window: int,
    cfg: FeatureConfig,
    extra: Store | None = None,
    *,
    all_attributes: bool = True,
) -> CampaignDesign:
    """Return :func:`training_frame`'s rows and the informative features among the model's.

    ``all_attributes`` adds every loaded customer attribute to ``cfg.attributes``
    (``[model] uplift_attributes = "all"``); the design's ``cfg`` holds the list used.

    Raises
    ------
    BadInputError
        As :func:`training_frame`.
    """
    from crmkit.features.attributes import attribute_schema, stored_types

    if all_attributes:
        loaded = sorted(n for n in stored_types(store) if n not in cfg.attributes)
        cfg = dataclasses.replace(cfg, attributes=(*cfg.attributes, *loaded))
    rows, vocab = training_frame(store, campaigns, window, cfg, extra)
    attributes = attribute_schema(store, cfg.attributes)
    candidates = [n for n in model_feature_names(cfg, vocab, attributes) if n not in SEASON]
    names, dropped = informative_features(rows, candidates)
    categories = category_codes(rows, names)
    return CampaignDesign(rows, names, dropped, categories, vocab, attributes, cfg)
