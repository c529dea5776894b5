"""Scoring bucket by bucket: memory set by a bucket's width, not by the store's customers.

A store keeps its customers in disjoint hash buckets. :func:`score_parts` scores them in
three passes over spilled Parquet files, in a temporary directory (``TMPDIR``):

1. per bucket, on the executor (here or a Dask worker): the per-customer totals and the
   columns derived from each customer's own history, written to disk;
2. the population fits, on the few columns they read (:data:`POPULATION_INPUTS`) for every
   customer: the medians behind the projected value, the CLV fit, BG/NBD's P(alive) and
   the segment edges; then per bucket: the finished features, eligibility, the model's
   probabilities, written to disk with a narrow key per customer (id, probability, value at
   risk) kept in memory;
3. from the keys: the risk deciles, the customers to explain and, from the spilled
   features a few columns at a time, the explainer's reference customer; then per bucket
   the score columns with the model's reasons, written to disk.

Each value is the one the whole-table plan gives: the population statistics are computed
over the same customers, ties are broken by customer id as there, and the model predicts
row by row. :class:`ScoreParts` reads the score parts back merged in customer order.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import weakref
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import polars as pl

from crmkit import schema
from crmkit.config.settings import FeatureConfig, SegmentConfig
from crmkit.errors import BadInputError
from crmkit.features.attribute_names import refuse_computed_names
from crmkit.features.attributes import attributes_as_of
from crmkit.features.customer import _finish_columns
from crmkit.features.eligibility import eligible, season_columns
from crmkit.features.vocabulary import Vocabulary
from crmkit.models.bucketed_files import first_pass, global_blocks, spill
from crmkit.models.bucketed_stats import explainer_of, population_values
from crmkit.models.design import Design
from crmkit.models.explain import DRIVERS
from crmkit.models.explainer import Explainer
from crmkit.models.reason_text import with_model_reasons
from crmkit.models.threads import threads
from crmkit.progress import ProgressFn, Steps
from crmkit.store.core import Store

#: The score columns a day's list reads. The rules' reasons, and the reasons of the
#: customers the model did not explain, stay in the score file: a list explains its own.
LIST_COLUMNS: Final = (
    schema.CUSTOMER_ID, "as_of", "churn_probability", "risk_decile", "customer_value",
    "expected_value_at_risk", "p_alive", "value_if_active", "lifecycle", "rfm_segment",
    "value_tier", "recency_days", "purchase_days", "net_spend", "reasons", "top_driver",
)  # fmt: skip
#: Divides a block of score rows into those a list keeps and what it says of the others.
Split = Callable[[pl.DataFrame], tuple[pl.DataFrame, pl.DataFrame]]
#: Score rows a block of the score file holds (see :meth:`ScoreParts.scan`).
WRITE_ROWS: Final = 200_000


@dataclass
class ScoreParts:
    """A scoring held on disk: one sorted score file per bucket, and what made them.

    ``features`` are the bucket files of the eligible customers' features; ``parts`` those
    of their score columns.
    """

    root: Path
    features: list[Path]
    job: _Job
    warnings: tuple[str, ...]
    parts: list[Path] = field(default_factory=list)
    #: The bucket file of each scored customer, in customer order.
    order: pl.Series = field(default_factory=lambda: pl.Series([], dtype=pl.Int32))
    explainer: Explainer | None = None
    _cleanup: Any = field(default=None, repr=False)
    _ordered: list[Path] = field(default_factory=list, repr=False)

    @property
    def card(self) -> Mapping[str, Any]:
        """The card of the model that scored."""
        return self.job.card

    def scan(self) -> pl.LazyFrame:
        """Every score row in customer order, from files of one block of ids each.

        The files are cut on first use: each block is a row range of each group's file,
        sorted (:func:`~crmkit.models.bucketed_files.global_blocks`), so that streaming
        the scan to a file holds one block at a time.
        """
        if not self._ordered:
            for k, (_, ranges) in enumerate(global_blocks(self.order, WRITE_ROWS)):
                pieces = [
                    pl.scan_parquet(self.parts[part]).slice(lo, hi - lo).collect()
                    for part, lo, hi in ranges
                ]
                block = pl.concat(pieces).sort(schema.CUSTOMER_ID)
                target = self.root / f"ordered-{k:05d}.parquet"
                spill(block, target)
                self._ordered.append(target)
        return pl.scan_parquet(self._ordered)

    def collect(self, narrow: bool = False) -> pl.DataFrame:
        """Every score row in customer order; with ``narrow`` only :data:`LIST_COLUMNS`.

        Narrow, the reasons the model did not work out are left empty (a list asks the
        explainer for those of the customers it lists).
        """
        return self.collect_split(narrow)[0]

    def collect_split(
        self, narrow: bool = False, split: Split | None = None
    ) -> tuple[pl.DataFrame, pl.DataFrame | None]:
        """As :meth:`collect`, each block of rows divided by ``split`` as it is read.

        Returns the rows ``split`` keeps, in customer order, and what it says of the others
        (None without ``split``): a day's list holds only its candidates in memory.
        """
        from crmkit.models.scoring import SCORE_COLUMNS

        columns = LIST_COLUMNS if narrow else SCORE_COLUMNS
        explained = pl.when(pl.col("top_driver").is_not_null()).then(pl.col("reasons"))
        kept, dropped = [], []
        for _, ranges in global_blocks(self.order, WRITE_ROWS):
            pieces = [
                pl.scan_parquet(self.parts[part])
                .select(columns)
                .slice(lo, hi - lo)
                .with_columns(explained.alias("reasons") if narrow else [])
                .collect()
                for part, lo, hi in ranges
            ]
            block = pl.concat(pieces).sort(schema.CUSTOMER_ID)
            if split is not None:
                block, other = split(block)
                dropped.append(other)
            kept.append(block)
        if not kept:  # no scored customer
            empty = pl.scan_parquet(self.parts).select(columns).head(0).collect()
            return empty, (split(empty)[1] if split is not None else None)
        return pl.concat(kept), (pl.concat(dropped) if split is not None else None)

    def rows_of(self, customers: pl.Series) -> pl.DataFrame:
        """Return the features and scores of ``customers`` (the explainer's row source)."""
        wanted = customers.cast(pl.String).implode()
        found = pl.scan_parquet(self.features).filter(pl.col(schema.CUSTOMER_ID).is_in(wanted))
        p = pl.scan_parquet(self.parts).filter(pl.col(schema.CUSTOMER_ID).is_in(wanted))
        frame = found.collect().join(
            p.select(schema.CUSTOMER_ID, pl.col("churn_probability").alias("__p")).collect(),
            on=schema.CUSTOMER_ID,
            how="left",
        )
        return scored(frame, self.job)

    def close(self) -> None:
        """Remove the spilled files (also done when the object is collected)."""
        if self._cleanup is not None:
            self._cleanup()


def scored(frame: pl.DataFrame, job: _Job) -> pl.DataFrame:
    """Add the score columns to feature rows with the model's probability ``__p``.

    ``customer_value`` stays the model's input (the explainer reads it); the scores take
    ``alive_value`` (:func:`score_columns`).
    """
    from crmkit.models.scoring import with_scores

    p = frame["__p"].to_numpy()
    return with_scores(frame.drop("__p"), p, job.as_of, job.cfg).with_columns(
        frame["customer_value"]
    )


@dataclass(frozen=True)
class _Job:
    store: Store
    as_of: dt.date
    model: Any
    card: Mapping[str, Any]
    cfg: FeatureConfig
    vocab: Vocabulary
    segments: SegmentConfig
    root: Path


def score_parts(
    store: Store,
    as_of: dt.date,
    model: Any,  # noqa: ANN401
    card: Mapping[str, Any],
    cfg: FeatureConfig,
    vocab: Vocabulary,
    segments: SegmentConfig,
    explain: tuple[int, Collection[str]],
    progress: ProgressFn | None = None,
) -> ScoreParts:
    """Score every eligible customer bucket by bucket (see the module); files on disk.

    ``explain`` is ``(explain_rows, explain_ids)`` as for
    :func:`~crmkit.models.scoring.score_customers`.

    Raises
    ------
    BadInputError
        No eligible customer.
    StoreWriteError
        No room for the spilled files in the temporary directory (exit 6).
    """
    tmp = tempfile.TemporaryDirectory(prefix="crmkit-score-")
    root = Path(tmp.name)
    try:
        job = _Job(store, as_of, model, card, cfg, vocab, segments, root)
        steps = Steps(progress)

        def read(done: int, total: int, text: str) -> None:  # the first pass, then four more
            steps.total = max(steps.total, total + 4)
            steps(f"features of the {text}")

        derived = first_pass(job, read)
        population, warnings = population_values(job, derived)
        steps("population fits")
        keys, features = _finish_pass(job, derived, population)
        steps(f"{keys.height:,} eligible customers")
        keys = _predict_pass(job, features, keys)
        steps("predictions")
        parts = ScoreParts(root, features, job, tuple(warnings))
        parts._cleanup = weakref.finalize(parts, tmp.cleanup)
        parts.explainer = explainer = explainer_of(job, parts, keys)
        parts.parts = _score_pass(job, parts, keys, explainer, explain)
        parts.order = keys["__part"]
        steps("reasons and score files")
    except BaseException:
        tmp.cleanup()
        raise
    return parts


def _finish_pass(
    job: _Job, derived: list[Path], population: list[Path]
) -> tuple[pl.DataFrame, list[Path]]:
    """Finish each bucket's features and keep its eligible customers, spilled to disk.

    Returns the keys (id, ``alive_value``, the bucket file's index) in customer order.
    """
    cfg = job.cfg
    known = attributes_as_of(job.store, job.as_of, cfg.attributes) if cfg.attributes else None
    keys, features = [], []
    for i, path in enumerate(derived):
        frame = _finished(job, pl.read_parquet(path), pl.read_parquet(population[i]), known)
        frame = eligible(frame, int(job.card["lookback_days"])).with_columns(
            season_columns(job.as_of)
        )
        path.unlink()
        population[i].unlink()
        if frame.height == 0:
            continue
        out = job.root / f"features-{i:04d}.parquet"
        spill(frame, out)
        features.append(out)
        keys.append(
            frame.select(schema.CUSTOMER_ID, "alive_value").with_columns(
                pl.lit(len(features) - 1, pl.Int32).alias("__part")
            )
        )
    if not keys:
        raise BadInputError(
            f"no customer bought in the {job.card['lookback_days']} days before {job.as_of}: "
            "nothing to score"
        )
    return pl.concat(keys).sort(schema.CUSTOMER_ID), features


def _predict_pass(job: _Job, features: list[Path], keys: pl.DataFrame) -> pl.DataFrame:
    """Predict every eligible customer, in customer order and in blocks of ``PREDICT_ROWS``.

    The blocks are those of the whole table, so each probability is the one a prediction
    of the whole table gives, to the bit (a linear model's sums depend on the block). A
    block is a range of customer ids: a contiguous range of rows in each bucket file
    (:func:`global_blocks`), read on its own.
    """
    from crmkit.models.scoring import PREDICT_ROWS

    names = list(job.card["features"])
    dtype = np.float32 if job.card.get("matrix_dtype") == "float32" else np.float64
    out = np.empty(keys.height, dtype=np.float64)
    with threads(int(job.card.get("threads", 1))):
        for start, ranges in global_blocks(keys["__part"], PREDICT_ROWS):
            block = pl.concat(
                pl.scan_parquet(features[part])
                .slice(lo, hi - lo)
                .select(schema.CUSTOMER_ID, *names)
                .collect()
                for part, lo, hi in ranges
            ).sort(schema.CUSTOMER_ID)
            x = Design.of(block, names, job.card.get("categories") or {}, dtype).block(
                0, block.height
            )
            out[start : start + block.height] = job.model.predict_proba(x)[:, 1]
    p = pl.Series("__p", out)
    return keys.with_columns(p, pl.Series("churn_probability", np.clip(out, 0.0, 1.0))).select(
        schema.CUSTOMER_ID,
        "__p",
        "churn_probability",
        (pl.col("churn_probability") * pl.col("alive_value")).alias("value_at_risk"),
        "__part",
    )


def _finished(
    job: _Job, derived: pl.DataFrame, population: pl.DataFrame, known: pl.DataFrame | None
) -> pl.DataFrame:
    """One bucket's feature table, with the population's values joined on."""
    own = population.select(schema.CUSTOMER_ID, "projected_value")
    base = derived.join(own, on=schema.CUSTOMER_ID, how="left", maintain_order="left")
    frame = _finish_columns(base.lazy(), job.cfg, job.vocab, projected=True).collect()
    if known is not None:
        refuse_computed_names([c for c in known.columns if c != schema.CUSTOMER_ID], frame.columns)
        frame = frame.join(known, on=schema.CUSTOMER_ID, how="left", maintain_order="left")
    added = population.drop("projected_value")
    frame = frame.drop([c for c in added.columns if c != schema.CUSTOMER_ID], strict=False)
    return frame.join(added, on=schema.CUSTOMER_ID, how="left", maintain_order="left")


def _score_pass(
    job: _Job,
    parts: ScoreParts,
    keys: pl.DataFrame,
    explainer: Explainer,
    explain: tuple[int, Collection[str]],
) -> list[Path]:
    """Each bucket's score columns, with risk deciles and the model's reasons."""
    from crmkit.models.scoring import SCORE_COLUMNS, explained_rows, risk_deciles

    limit, always = explain
    ids = keys[schema.CUSTOMER_ID]
    rows = explained_rows(keys["value_at_risk"].to_numpy(), ids, limit, always)
    flags = keys.select(
        schema.CUSTOMER_ID, "__p", "__part",
        risk_deciles(pl.col("churn_probability")).alias("risk_decile"),
        pl.Series("__explain", np.isin(np.arange(keys.height), rows)),
    )  # fmt: skip
    out = []
    for i, path in enumerate(parts.features):
        mine = flags.filter(pl.col("__part") == i).drop("__part")
        frame = pl.read_parquet(path).join(
            mine, on=schema.CUSTOMER_ID, how="left", maintain_order="left"
        )
        frame = scored(frame, job)
        picked = np.flatnonzero(frame["__explain"].to_numpy())
        shares = np.full((frame.height, len(DRIVERS)), np.nan)
        if picked.size:
            shares[picked] = explainer.shares(frame[picked])
        frame = with_model_reasons(
            frame, shares, explainer.reference_probability, job.cfg.windows, explainer.cycle
        )
        target = job.root / f"scores-{i:04d}.parquet"
        frame.with_columns(pl.col("alive_value").alias("customer_value")).rename(
            {"value_at_risk": "expected_value_at_risk"}
        ).select(SCORE_COLUMNS).pipe(spill, target)
        out.append(target)
    return out
