"""Score customers with a registered churn model."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import polars as pl

from crmkit import schema
from crmkit.config.settings import FeatureConfig, SegmentConfig, Settings
from crmkit.errors import BadInputError, ModelError
from crmkit.features.day import money_sum
from crmkit.features.vocabulary import Vocabulary
from crmkit.models.bucketed import ScoreParts, Split, score_parts
from crmkit.models.card import ModelCard
from crmkit.models.design import Design, model_feature_names
from crmkit.models.explainer import Explainer
from crmkit.models.reasons import reasons_expr
from crmkit.models.registry import ModelRef, Registry
from crmkit.numbers import as_float
from crmkit.progress import ProgressFn
from crmkit.store.core import Store

#: Rows predicted at a time (see :func:`predict_in_chunks`).
PREDICT_ROWS: Final = 200_000
#: Customers whose reasons the model explains, by default (see :func:`score_customers`).
EXPLAIN_ROWS: Final = 500

SCORE_COLUMNS = (
    schema.CUSTOMER_ID,
    "as_of",
    "churn_probability",
    "risk_decile",
    "customer_value",
    "expected_value_at_risk",
    "p_alive",
    "value_if_active",
    "lifecycle",
    "rfm_segment",
    "value_tier",
    "recency_days",
    "purchase_days",
    "net_spend",
    "reasons",
    "top_driver",
    "rule_reasons",
)


@dataclass
class ScoreResult:
    """Scores, the card of the model that made them, and warnings for the user.

    A day's list takes the rows (:meth:`hand_over`); the count of scored customers stays.
    """

    frame: pl.DataFrame
    card: Mapping[str, Any]
    warnings: tuple[str, ...]
    #: Works out the model's reasons of other customers later (a day's list).
    explainer: Explainer | None = None
    #: The scoring's files on disk, kept while these scores are.
    parts: ScoreParts | None = None
    #: Scored customers left out of ``frame`` by a list's ``split`` (see
    #: :func:`~crmkit.campaigns.targeting.candidates`): id and why.
    dropped: pl.DataFrame | None = None

    #: How many customers were scored (``frame`` and ``dropped`` together).
    customers: int = field(init=False)

    def __post_init__(self) -> None:
        self.customers = self.frame.height + (
            self.dropped.height if self.dropped is not None else 0
        )

    def hand_over(self) -> tuple[pl.DataFrame, pl.DataFrame | None]:
        """Give ``frame`` and ``dropped`` to a list, keeping an empty frame and the count.

        The list lets go of them once it is selected, so that they are not held while it
        is explained and written.
        """
        frame, dropped = self.frame, self.dropped
        self.frame, self.dropped = frame.clear(), None
        return frame, dropped

    def write(self, path: Path) -> Path:
        """Write every score column to ``path`` (``.csv`` or ``.parquet``), streamed from disk."""
        from crmkit.io.export import write_table

        return write_table(self.parts.scan() if self.parts else self.frame, path)

    def deciles(self) -> list[dict[str, Any]]:
        """Return customers, mean probability and value at risk per risk decile, highest first."""
        table = (
            self.frame.group_by("risk_decile")
            .agg(
                pl.len().alias("customers"),
                pl.col("churn_probability").mean().alias("mean_probability"),
                money_sum(pl.col("expected_value_at_risk")).alias("value_at_risk"),
            )
            .sort("risk_decile", descending=True)
        )
        return table.to_dicts()

    def summary(self) -> dict[str, Any]:
        """Headline numbers for the ``score`` command."""
        f = self.frame
        return {
            "model": f"{self.card['name']}:{self.card['version']}",
            "customers": f.height,
            "mean_churn_probability": as_float(f["churn_probability"].mean()),
            "expected_value_at_risk": float(f["expected_value_at_risk"].sum()),
            "warnings": list(self.warnings),
        }


def feature_config_of(card: ModelCard) -> FeatureConfig:
    """Rebuild the feature configuration a model was trained with from its card.

    Raises
    ------
    ModelError
        When the card was written by an incompatible feature pipeline.
    """
    card.require("churn")
    cfg = card_feature_config(card)
    attributes = {str(pair[0]): pl.String() for pair in card.get("attributes") or []}
    expected = model_feature_names(
        cfg, card_vocabulary(card), attributes, clv=bool(card.get("clv_features"))
    )
    # a card lists the features its fit used; those it left out (no value, or one value,
    # in the training rows: crmkit.models.design) are recorded beside them
    dropped = card.get("dropped_features") or {}
    if card.get("features") != [n for n in expected if n not in dropped]:
        raise ModelError(
            f"model {card.get('name')}:{card.get('version')} expects features "
            f"{card.get('features')}, which do not match this pipeline's: retrain it"
        )
    return cfg


def card_vocabulary(card: Mapping[str, Any]) -> Vocabulary:
    """Return the categories and channels a model was trained with (none for older cards)."""
    try:
        return Vocabulary.from_json(card.get("vocabulary"))
    except BadInputError as exc:
        raise ModelError(f"model {card.get('name')}:{card.get('version')}: {exc}") from exc


def risk_deciles(p: pl.Expr) -> pl.Expr:
    """Decile of churn risk, 10 = the highest tenth of probabilities (ties by position)."""
    rank = p.rank(method="ordinal") - 1
    return (rank * 10 // pl.len() + 1).cast(pl.Int8)


def score_customers(
    store: Store,
    as_of: dt.date,
    ref: ModelRef,
    registry: Registry,
    segments: SegmentConfig,
    explain_rows: int = EXPLAIN_ROWS,
    explain_ids: Collection[str] = (),
    progress: ProgressFn | None = None,
    *,
    narrow: bool = False,
    split: Split | None = None,
) -> ScoreResult:
    """Score every eligible customer as of ``as_of`` with the model ``ref``.

    The model's reasons (:mod:`crmkit.models.explain`) are worked out for the
    ``explain_rows`` customers of the highest value at risk and for ``explain_ids``; the
    others get the rules' reasons (:mod:`crmkit.models.reasons`), ``top_driver`` empty.

    The scoring runs bucket by bucket on disk (:mod:`crmkit.models.bucketed`). ``frame``
    holds every score column; with ``narrow`` only
    :data:`~crmkit.models.bucketed.LIST_COLUMNS`, without the reasons the model did not
    work out (what a day's list needs: :meth:`ScoreResult.write` still writes every
    column). ``split`` keeps in ``frame`` only the rows a list can take, as they are read
    (the others are ``dropped``).

    Raises
    ------
    ModelError
        Missing model, failed hash check, or a feature schema that does not match.
    BadInputError
        No eligible customer.
    """
    model, card = registry.load(ref)
    cfg = feature_config_of(card)
    warnings = _version_warnings(card)
    store.require()
    parts = score_parts(
        store, as_of, model, card, cfg, card_vocabulary(card), segments,
        (explain_rows, explain_ids), progress,
    )  # fmt: skip
    frame, dropped = parts.collect_split(narrow, split)
    return ScoreResult(frame, card, (*warnings, *parts.warnings), parts.explainer, parts, dropped)


def _version_warnings(card: Mapping[str, Any]) -> list[str]:
    """Return a warning when the model was trained with another scikit-learn."""
    import sklearn

    trained = card.get("versions", {}).get("scikit-learn")
    if trained == sklearn.__version__:
        return []
    return [
        f"model trained with scikit-learn {trained}, running {sklearn.__version__}: "
        "retrain if scores look off"
    ]


def with_scores(
    frame: pl.DataFrame, probability: np.ndarray, as_of: dt.date, cfg: FeatureConfig
) -> pl.DataFrame:
    """Add the probability, the alive value and value at risk, and the rules' reasons.

    The risk decile ranks the whole population; :mod:`crmkit.models.bucketed` adds it.

    The model's inputs keep the feature ``customer_value``; the scores, the alive one.
    """
    return frame.with_columns(
        pl.Series("churn_probability", np.clip(probability, 0.0, 1.0)),
        pl.lit(as_of).alias("as_of"),
        pl.col("alive_value").alias("customer_value"),
    ).with_columns(
        (pl.col("churn_probability") * pl.col("customer_value")).alias("value_at_risk"),
        reasons_expr(cfg.windows).alias("rule_reasons"),
    )


def explained_rows(
    value_at_risk: np.ndarray, ids: pl.Series, limit: int, always: Collection[str]
) -> np.ndarray:
    """Row numbers to explain: the ``limit`` highest value at risk, and ``always``'s rows."""
    top = np.argsort(-value_at_risk, kind="stable")[: max(limit, 0)]
    named = np.flatnonzero(ids.is_in(list(always)).to_numpy()) if always else np.zeros(0, int)
    return np.union1d(top, named).astype(np.int64)


def predict_in_chunks(model: Any, design: Design, rows: int = PREDICT_ROWS) -> np.ndarray:  # noqa: ANN401
    """Churn probabilities of the rows of ``design``, ``rows`` at a time.

    Each block's matrix is built, predicted and dropped, so neither the matrix nor the
    classifiers' float64 copy of it is ever held whole, however many customers are
    scored. Predictions are per row, so blocks change no value.
    """
    out = np.empty(len(design), dtype=np.float64)
    for start in range(0, len(design), rows):
        out[start : start + rows] = model.predict_proba(design.block(start, start + rows))[:, 1]
    return out


def feature_config_of_clv(card: ModelCard) -> FeatureConfig:
    """Feature configuration a CLV model was fitted with.

    Raises
    ------
    ModelError
        When the card is not a CLV model's or comes from another feature version.
    """
    card.require("clv")
    return card_feature_config(card)


def card_feature_config(card: Mapping[str, Any]) -> FeatureConfig:
    """Return the feature settings recorded in a model card."""
    raw = dict(card["feature_config"])
    raw["windows"] = tuple(raw["windows"])
    raw["attributes"] = tuple(raw.get("attributes", ()))
    return FeatureConfig(**raw)


def clv_predictions(
    store: Store,
    as_of: dt.date,
    horizon: int,
    registry: Registry,
    ref: ModelRef,
    settings: Settings,
) -> pl.DataFrame:
    """Predict per customer with the CLV model ``ref``: ``crmkit clv predict``.

    Raises
    ------
    ModelError
        A missing model, a failed hash check, or a model that is not a CLV model.
    """
    from crmkit.models.clv import ClvModel, predict_store

    fitted, card = registry.load(ref)
    cfg = feature_config_of_clv(card)
    if not isinstance(fitted, ClvModel):
        raise ModelError(f"model {ref} is not a CLV model: refit it with `crmkit clv fit`")
    return predict_store(store, as_of, horizon, fitted, cfg, settings.features.annual_discount_rate)


def clv_summary(frame: pl.DataFrame) -> dict[str, Any]:
    """Headline numbers of a CLV prediction table."""
    return {
        "customers": frame.height,
        "expected_purchases": float(frame["expected_purchases"].sum()),
        "clv": float(frame["clv"].sum()),
    }
