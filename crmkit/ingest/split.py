"""The shared back half of ingest: parse, split, retry, quarantine and de-duplicate rows.

Every source (a CSV file, a Parquet file, a database query) arrives here as text columns
with a row index (:class:`Staged`). One streaming polars plan parses every field and
splits rows into *good* (canonical schema, partitioned by customer bucket into staging
files) and *rejected*; rejected rows the fast plan could not read are parsed again with
the exhaustive plan; what is still rejected goes to the quarantine with its source, row
and reason; good rows are de-duplicated against each other and the store.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import polars as pl

from crmkit import schema
from crmkit.config.settings import IngestConfig
from crmkit.errors import BadInputError
from crmkit.hashing import add_short_hash, add_stable_hash, bucket_expr
from crmkit.ingest.dedupe import commit_buckets
from crmkit.ingest.parse import DateDetection
from crmkit.ingest.plan import (
    BLANK,
    BREAKS,
    BUCKET,
    OK,
    REASON,
    RETRYABLE,
    ROW,
    C,
    Plan,
    accepted_expr,
    canonical_exprs,
    clean_rows,
    reason_expr,
)
from crmkit.ingest.report import FileReport
from crmkit.store.files import COMPRESSION, COMPRESSION_LEVEL
from crmkit.store.writer import StoreWriter

#: Rows per row group of the staged bucket files: every bucket's writer buffers one, so
#: this bounds the split's memory (buckets x row group, about 65 MB for 16 buckets),
#: whatever the file size. Staged files become store parts as they are.
STAGING_ROW_GROUP: Final = 32_768


@dataclasses.dataclass(frozen=True)
class Staged:
    """One source's rows as text, with a row index, ready to be split.

    ``first_line`` is the line (or row) number of row index 0; ``locate`` adds the
    :data:`BREAKS` column that moves a quarantined row's number past line breaks inside
    quoted fields of a CSV file (None: a row is a line).
    """

    label: str
    rows: pl.LazyFrame
    header: list[str]
    first_line: int
    locate: Callable[[pl.LazyFrame, int], pl.LazyFrame] | None = None


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What the split of one source stored, dropped and quarantined."""

    stored: int
    duplicate: int
    quarantined: int
    reasons: dict[str, int]
    blank_lines: int

    def report(self, *, notes: Sequence[str], **fields: Any) -> FileReport:  # noqa: ANN401
        """Return the source's :class:`FileReport`, with the blank lines skipped in its notes."""
        blank = f"{self.blank_lines:,} blank line(s) skipped" if self.blank_lines else ""
        return FileReport(
            status="ingested",
            rows_read=self.stored + self.duplicate + self.quarantined,
            rows_stored=self.stored,
            rows_duplicate=self.duplicate,
            rows_quarantined=self.quarantined,
            reasons=self.reasons,
            notes=tuple(n for n in (*notes, blank) if n),
            **fields,
        )


def process(
    staged: Staged,
    plan: Plan,
    detection: DateDetection,
    writer: StoreWriter,
    cfg: IngestConfig,
    now: dt.datetime,
    stage: Path,
) -> Outcome:
    """Parse, split, retry, quarantine and stage one source's rows; de-duplicate them."""
    header = staged.header
    if cfg.cancellations.status_column and cfg.cancellations.status_column not in header:
        raise BadInputError(
            f"{staged.label}: cancellation status column {cfg.cancellations.status_column!r} "
            f"is not in the source; columns found: {', '.join(map(repr, header))}"
        )
    stage.mkdir(parents=True, exist_ok=True)
    rejected = stage / "rejected.parquet"
    buckets = writer.buckets
    split_rows(staged.rows, plan, cfg, now, buckets, header, stage / "good", rejected)
    # rows the fast plan could not read get every format and the full number parser
    retry = pl.scan_parquet(rejected).filter(pl.col(REASON).is_in(RETRYABLE)).drop(REASON)
    still = stage / "still.parquet"
    exhaustive = plan.exhaustive(detection)
    split_rows(retry, exhaustive, cfg, now, buckets, header, stage / "rescued", still)
    kept = pl.concat(
        [
            pl.scan_parquet(rejected).filter(~pl.col(REASON).is_in(RETRYABLE)),
            pl.scan_parquet(still),
        ]
    ).with_columns(pl.col(ROW).cast(pl.Int64))
    # lines with no value at all (blank, or delimiters only) are not rows
    blank_lines = kept.filter(pl.col(REASON) == BLANK).select(pl.len()).collect().item()
    kept = kept.filter(pl.col(REASON) != BLANK)
    if staged.locate is not None and kept.select(pl.len()).collect().item():
        kept = staged.locate(kept, staged_rows([stage / "good", stage / "rescued"]))
    else:
        kept = kept.with_columns(pl.lit(0, dtype=pl.Int64).alias(BREAKS))
    final = kept.select(
        pl.lit(staged.label).alias("source_file"),
        (pl.col(ROW) + staged.first_line + pl.col(BREAKS)).alias("line"),
        pl.col(REASON).alias("reason"),
        pl.struct([pl.col(h) for h in header]).struct.json_encode().alias("raw"),
    ).sort("line")
    quarantine = stage / "quarantine.parquet"
    final.sink_parquet(quarantine, compression=COMPRESSION, compression_level=COMPRESSION_LEVEL)
    stored, duplicate = commit_buckets([stage / "good", stage / "rescued"], writer, cfg.dedupe)
    reasons = pl.read_parquet(quarantine).group_by("reason").len().sort("reason")
    quarantined = int(reasons["len"].sum())
    if quarantined:
        writer.add_file("quarantine", quarantine, quarantined)
    counts = dict(zip(reasons["reason"], reasons["len"], strict=True))
    return Outcome(stored, duplicate, quarantined, counts, blank_lines)


def staged_rows(dirs: Sequence[Path]) -> int:
    """Count the rows of the Parquet files under ``dirs``."""
    files = [f for d in dirs if d.is_dir() for f in sorted(d.rglob("*.parquet"))]
    return int(pl.scan_parquet(files).select(pl.len()).collect().item()) if files else 0


def split_rows(
    rows: pl.LazyFrame,
    plan: Plan,
    cfg: IngestConfig,
    now: dt.datetime,
    buckets: int,
    header: list[str],
    good_dir: Path,
    rejected: Path,
) -> None:
    """Parse ``rows``; sink good rows by bucket into ``good_dir``, the rest to ``rejected``.

    Rejected rows keep their original fields, row index and reason.
    """
    blank = pl.all_horizontal([pl.col(h).is_null() for h in header])
    parsed = (
        clean_rows(rows, plan, cfg)
        .with_columns(*canonical_exprs(plan, cfg), blank.alias(C + "blank"))
        .with_columns(accepted_expr(cfg, now).alias(OK))
    )
    rows_ok = parsed.filter(pl.col(OK)).select(
        *(pl.col(C + c).alias(c) for c in schema.TRANSACTION_SCHEMA)
    )
    if plan.id_words is None:
        hashed = add_stable_hash(rows_ok, schema.CUSTOMER_ID, BUCKET)
    else:
        hashed = add_short_hash(rows_ok, schema.CUSTOMER_ID, BUCKET, plan.id_words)
    good = hashed.with_columns(bucket_expr(BUCKET, buckets).alias(BUCKET))
    bad = (
        parsed.filter(~pl.col(OK)).with_columns(reason_expr(cfg, now)).select(ROW, REASON, *header)
    )
    pl.collect_all(
        [
            good.sink_parquet(
                pl.PartitionBy(good_dir, key=BUCKET, include_key=False),
                mkdir=True,
                lazy=True,
                row_group_size=STAGING_ROW_GROUP,
                compression=COMPRESSION,
                compression_level=COMPRESSION_LEVEL,
            ),
            bad.sink_parquet(rejected, lazy=True, compression="lz4"),
        ]
    )
