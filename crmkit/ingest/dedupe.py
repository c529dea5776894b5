"""De-duplication and commit of staged buckets: against themselves and the store."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

import polars as pl

from crmkit import schema
from crmkit.store.writer import StoreWriter


def distinct_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """Drop exact duplicate rows, keeping the first.

    A row-hash check skips the exact comparison when every row is already distinct.
    """
    if frame.hash_rows().n_unique() == frame.height:
        return frame
    return frame.filter(pl.struct(pl.all()).is_first_distinct())


#: Columns whose values two duplicate rows must share; rows distinct on them are distinct.
_KEY_COLUMNS: Final = (schema.CUSTOMER_ID, schema.TS, schema.AMOUNT)
_HASH_MIX: Final = 0x9E3779B97F4A7C15


def row_hash(columns: Sequence[str]) -> pl.Expr:
    """Hash each row's values in ``columns``: polars' column hashes, one seed per column.

    Equal values hash alike (also 0.0 and -0.0, and NaNs), as the exact comparison
    counts them equal. Only used within one run, so polars' hash may change between
    versions.
    """
    combined = pl.col(columns[0]).hash(seed=0)
    for seed, column in enumerate(columns[1:], start=1):
        mixed = combined * pl.lit(_HASH_MIX, dtype=pl.UInt64)
        combined = mixed ^ pl.col(column).hash(seed=seed)
    return combined


class DistinctCheck:
    """Whether a staged bucket's rows are certainly distinct: as many row hashes as rows.

    Streams the files and keeps only the hashes, so memory does not grow with the rows'
    width; equal hashes (a duplicate, or rarely a collision) send the bucket to the exact
    comparison. The key columns (customer, time, amount) are hashed first: they are a
    third of the bytes and usually tell rows apart. Once a bucket has rows that repeat
    them (several lines of one order at one price, say), the other buckets of the file
    are checked on all columns at once.
    """

    def __init__(self) -> None:
        self.keys_first = True

    def __call__(self, files: list[Path], rows: int) -> bool:
        """Tell whether the ``rows`` staged rows of ``files`` are all distinct by hash."""
        if self.keys_first:
            if self._unique(files, _KEY_COLUMNS) == rows:
                return True
            self.keys_first = False
        return self._unique(files, tuple(schema.TRANSACTION_SCHEMA)) == rows

    @staticmethod
    def _unique(files: list[Path], columns: Sequence[str]) -> int:
        hashes = pl.scan_parquet(files).select(row_hash(columns).n_unique())
        return int(hashes.collect(engine="streaming").item())


def fresh_rows(files: list[Path], writer: StoreWriter, bucket: int) -> pl.DataFrame:
    """Return the staged rows of a bucket without duplicates of each other or of the store."""
    fresh = distinct_rows(pl.read_parquet(files))
    if not writer.current_parts("transactions", bucket) or fresh.height == 0:
        return fresh
    lo, hi = fresh[schema.TS].min(), fresh[schema.TS].max()
    existing = writer.scan("transactions", schema.TRANSACTION_SCHEMA, bucket).filter(
        pl.col(schema.TS).is_between(lo, hi)
    )
    keys = list(schema.TRANSACTION_SCHEMA)
    return (
        fresh.lazy()
        .join(existing, on=keys, how="anti", nulls_equal=True, maintain_order="left")
        .collect()
    )


def commit_buckets(dirs: Sequence[Path], writer: StoreWriter, dedupe: bool) -> tuple[int, int]:
    """De-duplicate staged buckets against themselves and the store; add them as parts.

    A staged bucket that loses no row is moved into the store as it is (no rewrite). A
    bucket is only read whole when it may lose rows: when the store already has rows in
    it, or when its row hashes are not all distinct.
    """
    stored = duplicate = 0
    all_distinct = DistinctCheck()
    by_bucket: dict[int, list[Path]] = {}
    for good_dir in dirs:
        if not good_dir.is_dir():
            continue
        for bucket_dir in sorted(good_dir.iterdir()):
            bucket = int(bucket_dir.name.partition("=")[2])
            by_bucket.setdefault(bucket, []).extend(sorted(bucket_dir.rglob("*.parquet")))
    for bucket, files in sorted(by_bucket.items()):
        counts = [int(pl.scan_parquet(path).select(pl.len()).collect().item()) for path in files]
        rows = sum(counts)
        may_lose = dedupe and (
            bool(writer.current_parts("transactions", bucket)) or not all_distinct(files, rows)
        )
        fresh = fresh_rows(files, writer, bucket) if may_lose else None
        if fresh is None or fresh.height == rows:
            for path, count in zip(files, counts, strict=True):
                writer.add_file("transactions", path, count, bucket)
            stored += rows
        else:
            writer.add_frame("transactions", fresh, bucket)
            stored += fresh.height
            duplicate += rows - fresh.height
    return stored, duplicate
