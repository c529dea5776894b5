"""The population side of a bucketed scoring: the fits over every customer, the reference.

See :mod:`crmkit.models.bucketed`. The population fits read only
:data:`POPULATION_INPUTS` of each customer, so they run on a narrow table of every
customer; the explainer's reference customer is read from the spilled features a few
columns at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
import polars as pl

from crmkit import schema
from crmkit.errors import BadInputError
from crmkit.features.customer import feature_schema
from crmkit.features.derived import projected_value
from crmkit.models.alive import with_alive_value
from crmkit.models.bucketed_files import spill
from crmkit.models.clv import with_clv
from crmkit.models.design import Design
from crmkit.models.explain import categorical_mask, typical
from crmkit.models.explainer import Explainer, build_explainer
from crmkit.segments.apply import with_segments

if TYPE_CHECKING:
    from crmkit.models.bucketed import ScoreParts, _Job

#: The columns the population fits read: projected value, CLV, P(alive), segment edges.
POPULATION_INPUTS: Final = (
    schema.CUSTOMER_ID, "purchase_days", "mean_cycle_days", "net_spend", "tenure_days",
    "recency_days", "first_purchase", "last_purchase", "gross_spend", "first_day_spend",
)  # fmt: skip
#: Inputs of the value and P(alive) fits that the segments' fit does not read.
NOT_SEGMENTED: Final = (
    "first_purchase", "last_purchase", "gross_spend", "first_day_spend", "tenure_days",
)  # fmt: skip
#: Matrix columns whose reference medians are worked out at a time.
REFERENCE_COLUMNS: Final = 8


def population_values(job: _Job, derived: list[Path]) -> tuple[list[Path], list[str]]:
    """Write the population fits' outputs per customer, a file per bucket; return them.

    The fits read :data:`POPULATION_INPUTS` alone, of every customer at once.
    """
    columns = feature_schema(job.cfg, job.vocab)
    if not derived:
        raise BadInputError(f"no customer bought before {job.as_of}: nothing to score")
    pieces = [
        pl.scan_parquet(path)
        .select(POPULATION_INPUTS)
        .with_columns(pl.lit(i, pl.Int32).alias("__part"))
        .collect()
        for i, path in enumerate(derived)
    ]
    frame = sorted_by_id(pieces)
    named = [*POPULATION_INPUTS, "projected_value", "customer_value", "__part"]
    frame = (
        frame.with_columns(projected_value(job.cfg))
        .with_columns(pl.col("projected_value").alias("customer_value"))
        .select(pl.col(n).cast(columns.get(n, pl.Int32)) for n in named)
    )
    clv_value = job.card.get("customer_value") == "clv"
    if job.card.get("clv_features") or clv_value:
        frame = with_clv(frame, job.as_of, int(job.card["horizon_days"]), job.cfg)
    if clv_value:
        frame = frame.with_columns(pl.col("clv_value").alias("customer_value"))
    frame, warnings = with_alive_value(
        frame, job.as_of, job.segments.min_p_alive, clv_value=clv_value
    )
    # what the segments do not read is not carried through their fit: dropped first, so
    # that no name holds those columns while the segments' columns are added
    frame = frame.drop(NOT_SEGMENTED)
    frame = with_segments(frame, job.segments)
    kept = [schema.CUSTOMER_ID, *(c for c in frame.columns if c not in POPULATION_INPUTS)]
    out = []
    for i, path in enumerate(derived):
        target = path.with_name(f"population-{i:04d}.parquet")
        spill(frame.filter(pl.col("__part") == i).select(kept).drop("__part"), target)
        out.append(target)
    return out, warnings


def sorted_by_id(pieces: list[pl.DataFrame]) -> pl.DataFrame:
    """Return the rows of ``pieces`` sorted by customer id (unique), one chunk per column.

    ``pieces`` is emptied: the columns are put in order one at a time, each let go of once
    its sorted copy is made, so that the table is held about once, not twice as by a sort
    of all columns together. One chunk each: the columns the fits add then line up, and no
    later step copies the whole table to align them.
    """
    frame = pl.concat(pieces, rechunk=False)
    pieces.clear()
    order = frame[schema.CUSTOMER_ID].arg_sort()
    columns = []
    for name in frame.columns:
        columns.append(frame[name].gather(order))
        frame = frame.drop(name)
    return pl.DataFrame(columns)


def explainer_of(job: _Job, parts: ScoreParts, keys: pl.DataFrame) -> Explainer:
    """Build the explainer, its reference customer read from the spilled features."""
    names = list(job.card["features"])
    categories = job.card.get("categories") or {}
    categorical = categorical_mask(names, categories)
    dtype = np.float32 if job.card.get("matrix_dtype") == "float32" else np.float64
    p = keys["__p"].to_numpy()
    low_ids = keys.filter(pl.col("__p") <= float(np.median(p))).select(schema.CUSTOMER_ID)
    reference = np.full(len(names), np.nan)
    for start in range(0, len(names), REFERENCE_COLUMNS):
        chunk = names[start : start + REFERENCE_COLUMNS]
        low = [
            pl.scan_parquet(path)
            .select(schema.CUSTOMER_ID, *chunk)
            .join(low_ids.lazy(), on=schema.CUSTOMER_ID, how="semi")
            .collect()
            for path in parts.features
        ]
        design = Design.of(pl.concat(low), chunk, categories, dtype)
        for j, name in enumerate(chunk):
            reference[start + j] = typical(design.column(j), categorical[names.index(name)])
    cycles = (
        pl.scan_parquet(parts.features)
        .filter(pl.col("purchase_days") >= 3)
        .select(pl.col("mean_cycle_days").drop_nulls())
        .collect()
        .to_series()
    )
    cycle = float(cycles.median()) if cycles.len() else None  # type: ignore[arg-type]
    windows = job.cfg.windows
    return build_explainer(job.model, job.card, dtype, reference, cycle, parts.rows_of, windows)
