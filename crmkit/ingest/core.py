"""Ingest transaction files into the store: validate, quarantine, de-duplicate, commit.

One file goes through one streaming polars plan that parses every field and splits rows
into *good* (canonical schema, partitioned by customer bucket into staging files) and
*quarantined* (source file, line, reason and the original fields). Staged buckets are then
de-duplicated against themselves and against what the store already holds, and all files
of a call are committed together in one manifest update.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

import polars as pl

from crmkit import schema
from crmkit.config import IngestConfig, StoreConfig
from crmkit.errors import BadInputError, from_os_error
from crmkit.hashing import add_short_hash, add_stable_hash, bucket_expr
from crmkit.ingest import sniff
from crmkit.ingest.dedupe import commit_buckets
from crmkit.ingest.lines import with_breaks_before
from crmkit.ingest.plan import (
    BLANK,
    BREAKS,
    BUCKET,
    HEADER_LINES,
    OK,
    REASON,
    RETRYABLE,
    ROW,
    SAMPLE_ROWS,
    C,
    Plan,
    accepted_expr,
    canonical_exprs,
    clean_rows,
    detect_plan,
    reason_expr,
)
from crmkit.ingest.report import FileReport, IngestReport
from crmkit.store import COMPRESSION, COMPRESSION_LEVEL, Store, StoreWriter

ProgressFn = Callable[[int, int, str], None]

#: Rows per row group of the staged bucket files: every bucket's writer buffers one, so
#: this bounds the split's memory (buckets x row group, about 65 MB for 16 buckets),
#: whatever the file size. Staged files become store parts as they are.
STAGING_ROW_GROUP: Final = 32_768
#: Bytes polars' CSV reader takes from a file at a time. Its default, 32 MiB, with a few
#: chunks prefetched and decoded at once, holds about 250 MB of a large file in memory;
#: 4 MiB chunks parse as fast and hold about 60 MB. Set through polars' environment
#: setting ``POLARS_CSV_CHUNK_SIZE`` while a file is read, unless the environment sets it.
CSV_CHUNK_BYTES: Final = 4 * 1024 * 1024
_CSV_CHUNK_SETTING: Final = "POLARS_CSV_CHUNK_SIZE"


def file_sha256(path: Path) -> str:
    """Return the sha256 of a file's bytes, read in chunks into one reused buffer."""
    digest = hashlib.sha256()
    buffer = bytearray(1024 * 1024)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as fh:
        while n := fh.readinto(buffer):
            digest.update(view[:n])
    return digest.hexdigest()


@contextlib.contextmanager
def csv_chunks(size: int = CSV_CHUNK_BYTES) -> Iterator[None]:
    """Within the block, polars reads CSV files ``size`` bytes at a time.

    Leaves a chunk size the environment already sets alone, and restores the
    environment afterwards.
    """
    if _CSV_CHUNK_SETTING in os.environ:
        yield
        return
    os.environ[_CSV_CHUNK_SETTING] = str(size)
    try:
        yield
    finally:
        os.environ.pop(_CSV_CHUNK_SETTING, None)


def ingest_files(
    sources: Iterable[str | Path],
    store: Store,
    config: IngestConfig,
    *,
    now: dt.datetime,
    strict: bool = False,
    store_config: StoreConfig | None = None,
    progress: ProgressFn | None = None,
    locked: bool = False,
) -> IngestReport:
    """Ingest files, directories or glob patterns into ``store``.

    Parameters
    ----------
    sources
        Files (``.csv``, ``.tsv``, ``.txt``, optionally gzip-compressed), directories or globs.
    store
        The target store, created on first use.
    config
        Column mapping and parsing rules.
    now
        The current time (naive UTC); dates after ``now + max_future_days`` are implausible.
    strict
        Any quarantined row is an error and nothing is stored.
    store_config
        Layout for a new store and compaction threshold.
    progress
        Called as ``progress(done, total, description)`` after each file.
    locked
        The caller already holds the store lock.

    Returns
    -------
    IngestReport
        Per-file and total reconciliation.

    Raises
    ------
    BadInputError
        Unreadable file, missing required columns, or (with ``strict``) a rejected row.
    StoreLockedError
        Another process is writing the store.
    """
    paths = sniff.expand_inputs(sources)
    layout = store_config or StoreConfig()
    reports: list[FileReport] = []
    with store.writer(buckets=layout.buckets, now=now, locked=locked) as writer:
        seen = {str(f["sha256"]): int(f.get("bytes", -1)) for f in writer.base.files}
        with ThreadPoolExecutor(max_workers=1) as pool:
            hashes = [pool.submit(file_sha256, path) for path in paths]
            reports.extend(_ingest_all(paths, hashes, writer, config, now, seen, progress))
        if strict:
            _raise_if_rejected(writer, reports)
        writer.compact("transactions", layout.max_parts_per_bucket, (schema.CUSTOMER_ID, schema.TS))
        writer.compact("quarantine", layout.max_parts_per_bucket)
        ingested = [r for r in reports if r.status == "ingested"]
        if ingested:
            writer.commit([_manifest_entry(r, now) for r in ingested])
    return IngestReport(str(store.root), tuple(reports))


def _ingest_all(
    paths: Sequence[Path],
    hashes: Sequence[Future[str]],
    writer: StoreWriter,
    config: IngestConfig,
    now: dt.datetime,
    seen: dict[str, int],
    progress: ProgressFn | None,
) -> list[FileReport]:
    """Ingest files in order; a file's sha256 is computed in the background meanwhile.

    A file is skipped when its hash is known (ingested before, or earlier in this call).
    Only a file with the byte size of a known one can be known, so only then is its hash
    awaited before parsing; otherwise hashing overlaps parsing.
    """
    reports: list[FileReport] = []
    for i, (path, future) in enumerate(zip(paths, hashes, strict=True)):
        workdir = writer.staging / f"file{i:05d}"
        size = path.stat().st_size
        try:
            must_wait = size in seen.values() or future.done()
            known = must_wait and future.result() in seen
            if known:
                sha = future.result()
                report = FileReport(str(path), sha, "skipped", size, notes=("already ingested",))
            else:
                mark = writer.mark()
                report = _ingest_file(path, "", writer, config, now, workdir)
                sha = future.result()
                if sha in seen:
                    writer.rollback(mark)
                    report = FileReport(
                        str(path), sha, "skipped", size, notes=("already ingested",)
                    )
                else:
                    report = dataclasses.replace(report, sha256=sha, bytes=size)
            seen[report.sha256] = size
            reports.append(report)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if progress is not None:
            progress(i + 1, len(paths), path.name)
    return reports


def _manifest_entry(report: FileReport, now: dt.datetime) -> dict[str, Any]:
    keys = (
        "source",
        "sha256",
        "bytes",
        "rows_read",
        "rows_stored",
        "rows_duplicate",
        "rows_quarantined",
    )
    entry = {k: getattr(report, k) for k in keys}
    entry["ingested_at"] = now.isoformat()
    return entry


def _raise_if_rejected(writer: StoreWriter, reports: Sequence[FileReport]) -> None:
    rejected = sum(r.rows_quarantined for r in reports)
    if not rejected:
        return
    new = [str(writer.store.root / p.path) for p in writer.added["quarantine"]]
    first = (
        pl.scan_parquet(new).sort("source_file", "line").head(5).collect()
        if new
        else pl.DataFrame(schema=schema.QUARANTINE_SCHEMA)
    )
    examples = "; ".join(
        f"{r['source_file']} line {r['line']}: {r['reason']}" for r in first.iter_rows(named=True)
    )
    raise BadInputError(
        f"--strict: {rejected} row(s) rejected, nothing was stored. First: {examples}"
    )


def _ingest_file(
    source: Path, sha: str, writer: StoreWriter, cfg: IngestConfig, now: dt.datetime, work: Path
) -> FileReport:
    text_encoding = sniff.choose_encoding(source, cfg.encoding)
    for attempt in range(2):
        prepared = sniff.prepare(source, work / f"try{attempt}", text_encoding)
        try:
            with csv_chunks():
                return _run(source, sha, prepared, writer, cfg, now, work / f"stage{attempt}")
        except pl.exceptions.NoDataError as exc:
            raise BadInputError(f"{source}: file is empty (no header row)") from exc
        except pl.exceptions.PolarsError as exc:
            _check_writable(work, exc)
            bad = sniff.invalid_utf8_offset(prepared.path) if text_encoding == "utf-8" else None
            if bad is None:
                raise _read_error(source, prepared.path, exc, cfg) from exc
            if cfg.encoding != "auto" or attempt > 0:
                raise BadInputError(
                    f"{source}: byte offset {bad} is not valid UTF-8 text; set [ingest] "
                    "encoding (cp1252, latin-1) or leave it to auto"
                ) from exc
            text_encoding = sniff.fallback_encoding(source)
    raise AssertionError("unreachable")  # pragma: no cover


_PROBE_BYTES: Final = 1024 * 1024


def _check_writable(work: Path, exc: Exception) -> None:
    """Blame the disk, not the input, when the staging area cannot take a write.

    polars reports a failed write (a full or read-only disk) as a compute error like a
    parse failure; writing and syncing a probe file beside the staged files tells them
    apart without reading the message.

    Raises
    ------
    StoreWriteError
        When the probe cannot be written (exit 4, with the operating system's reason).
    """
    probe = work / "space-probe"
    try:
        work.mkdir(parents=True, exist_ok=True)
        with probe.open("wb") as fh:
            fh.write(bytes(_PROBE_BYTES))
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as os_exc:
        if not os_exc.filename:
            os_exc.filename = str(work)
        raise from_os_error(os_exc) from exc
    finally:
        probe.unlink(missing_ok=True)


def _read_error(source: Path, plain: Path, exc: Exception, cfg: IngestConfig) -> BadInputError:
    delimiter = cfg.delimiter or sniff.detect_delimiter(sniff.head_text(plain), source.name)
    ragged = sniff.first_ragged_line(plain, delimiter)
    if ragged is not None:
        line, fields, header = ragged
        return BadInputError(
            f"{source} line {line}: {fields} fields where the header has {header} "
            "(unquoted delimiter in a value?)"
        )
    # the parser's own message may quote the file's content: only its kind is named
    return BadInputError(
        f"{source}: cannot be parsed as delimited text with delimiter {delimiter!r} "
        f"({type(exc).__name__}); check quoting, the delimiter ([ingest] delimiter) and "
        "the encoding"
    )


def _run(
    source: Path,
    sha: str,
    prepared: sniff.Prepared,
    writer: StoreWriter,
    cfg: IngestConfig,
    now: dt.datetime,
    stage: Path,
) -> FileReport:
    delimiter = cfg.delimiter or sniff.detect_delimiter(sniff.head_text(prepared.path), source.name)
    read_args: dict[str, Any] = {
        "separator": delimiter,
        "infer_schema": False,
        "quote_char": '"',
        "raise_if_empty": True,
        "encoding": "utf8",
    }
    sample = pl.read_csv(prepared.path, n_rows=SAMPLE_ROWS, **read_args)
    plan, detection = detect_plan(source, sample, cfg, delimiter)
    header = sample.columns
    if cfg.cancellations.status_column and cfg.cancellations.status_column not in header:
        raise BadInputError(
            f"{source}: cancellation status column {cfg.cancellations.status_column!r} is not "
            f"in the file; columns found: {', '.join(map(repr, header))}"
        )
    stage.mkdir(parents=True, exist_ok=True)
    rejected = stage / "rejected.parquet"
    _split(
        pl.scan_csv(prepared.path, row_index_name=ROW, **read_args),
        plan,
        cfg,
        now,
        writer.buckets,
        header,
        stage / "good",
        rejected,
    )
    # rows the fast plan could not read get every format and the full number parser
    retry = pl.scan_parquet(rejected).filter(pl.col(REASON).is_in(RETRYABLE)).drop(REASON)
    still = stage / "still.parquet"
    _split(
        retry,
        plan.exhaustive(detection),
        cfg,
        now,
        writer.buckets,
        header,
        stage / "rescued",
        still,
    )
    kept = pl.concat(
        [
            pl.scan_parquet(rejected).filter(~pl.col(REASON).is_in(RETRYABLE)),
            pl.scan_parquet(still),
        ]
    ).with_columns(pl.col(ROW).cast(pl.Int64))
    # lines with no value at all (blank, or delimiters only) are not rows
    blank_lines = kept.filter(pl.col(REASON) == BLANK).select(pl.len()).collect().item()
    kept = kept.filter(pl.col(REASON) != BLANK)
    if kept.select(pl.len()).collect().item():
        good_rows = _staged_rows([stage / "good", stage / "rescued"])
        kept = with_breaks_before(kept, prepared.path, header, read_args, good_rows)
    else:
        kept = kept.with_columns(pl.lit(0, dtype=pl.Int64).alias(BREAKS))
    final = kept.select(
        pl.lit(str(source)).alias("source_file"),
        (pl.col(ROW) + HEADER_LINES + 1 + pl.col(BREAKS)).alias("line"),
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
    blank_note = f"{blank_lines:,} blank line(s) skipped" if blank_lines else ""
    notes = tuple(n for n in (detection.note, blank_note) if n)
    return FileReport(
        source=str(source),
        sha256=sha,
        status="ingested",
        rows_read=stored + duplicate + quarantined,
        rows_stored=stored,
        rows_duplicate=duplicate,
        rows_quarantined=quarantined,
        reasons=dict(zip(reasons["reason"], reasons["len"], strict=True)),
        columns=dict(plan.mapping),
        encoding=prepared.encoding + (" (gzip)" if prepared.compressed else ""),
        delimiter=delimiter,
        decimal=plan.decimal,
        date_formats=tuple(f.fmt for f in plan.dates),
        notes=notes,
    )


def _staged_rows(dirs: Sequence[Path]) -> int:
    files = [f for d in dirs if d.is_dir() for f in sorted(d.rglob("*.parquet"))]
    return int(pl.scan_parquet(files).select(pl.len()).collect().item()) if files else 0


def _split(
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
