"""Ingest transaction files into the store: validate, quarantine, de-duplicate, commit.

One file goes through one streaming polars plan that parses every field and splits rows
into *good* (canonical schema, partitioned by customer bucket into staging files) and
*quarantined* (source file, line, reason and the original fields). Staged buckets are then
de-duplicated against themselves and against what the store already holds, and all files
of a call are committed together in one manifest update.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

import polars as pl

from crmkit import schema
from crmkit.config.settings import IngestConfig, StoreConfig
from crmkit.errors import BadInputError, ConfigError, from_os_error
from crmkit.ingest import sniff
from crmkit.ingest.conventions import Memory, source_key
from crmkit.ingest.files import csv_chunks, file_sha256
from crmkit.ingest.lines import with_breaks_before
from crmkit.ingest.plan import (
    HEADER_LINES,
    ROW,
    SAMPLE_ROWS,
    detect_plan,
)
from crmkit.ingest.pull import PARQUET_SUFFIX, ingest_parquet, pull_query
from crmkit.ingest.report import FileReport, IngestReport
from crmkit.ingest.split import Staged, process
from crmkit.io.sql import Query, decode_mark
from crmkit.store.core import Store
from crmkit.store.writer import StoreWriter

ProgressFn = Callable[[int, int, str], None]


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
    """Ingest files, directories or glob patterns into ``store``; report per file and total.

    Parameters
    ----------
    sources
        Files (``.csv``, ``.tsv``, ``.txt``, gzipped or not, ``.parquet``), dirs or globs.
    store, config, store_config
        The store (created on first use), the parsing rules, a new store's layout.
    now
        The current time (UTC; an aware time is converted); dates after ``now +
        max_future_days`` are implausible.
    strict
        Any quarantined row is an error and nothing is stored.
    progress, locked
        ``progress(done, total, description)`` after each file; the lock is already held.

    Raises
    ------
    BadInputError
        Unreadable file, missing required columns, or (with ``strict``) a rejected row.
    StoreLockedError
        Another process is writing the store.
    """
    if now.tzinfo is not None:  # the store's times are naive UTC
        now = now.astimezone(dt.UTC).replace(tzinfo=None)
    check_dates(config, now)
    paths = sniff.expand_inputs(sources)
    layout = store_config or StoreConfig()
    reports: list[FileReport] = []
    with store.writer(buckets=layout.buckets, now=now, locked=locked) as writer:
        seen = {str(f["sha256"]): int(f.get("bytes", -1)) for f in writer.base.files}
        conventions: dict[str, dict[str, Any]] = {}
        with ThreadPoolExecutor(max_workers=1) as pool:
            hashes = [pool.submit(file_sha256, path) for path in paths]
            reports.extend(
                _ingest_all(paths, hashes, writer, config, now, seen, progress, conventions)
            )
        if strict:
            _raise_if_rejected(writer, reports)
        writer.compact("transactions", layout.max_parts_per_bucket, (schema.CUSTOMER_ID, schema.TS))
        writer.compact("quarantine", layout.max_parts_per_bucket)
        ingested = [r for r in reports if r.status == "ingested"]
        if ingested:
            writer.commit([_manifest_entry(r, now) for r in ingested], conventions)
    return IngestReport(str(store.root), tuple(reports))


def _ingest_all(
    paths: Sequence[Path],
    hashes: Sequence[Future[str]],
    writer: StoreWriter,
    config: IngestConfig,
    now: dt.datetime,
    seen: dict[str, int],
    progress: ProgressFn | None,
    conventions: dict[str, dict[str, Any]],
) -> list[FileReport]:
    """Ingest files in order; a file's sha256 is computed in the background meanwhile.

    A file is skipped when its hash is known (ingested before, or earlier in this call).
    Only a file with the byte size of a known one can be known, so only then is its hash
    awaited before parsing; otherwise hashing overlaps parsing. The day/month order of each
    file source is added to ``conventions``, for the commit and the call's later files.
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
                if path.name.lower().endswith(PARQUET_SUFFIX):
                    report = ingest_parquet(path, writer, config, now, workdir)
                else:
                    memory = Memory({**writer.base.sources, **conventions})
                    report = _ingest_file(path, writer, config, now, workdir, memory)
                sha = future.result()
                if sha in seen:
                    writer.rollback(mark)
                    report = FileReport(
                        str(path), sha, "skipped", size, notes=("already ingested",)
                    )
                else:
                    report = dataclasses.replace(report, sha256=sha, bytes=size)
                    if report.dayfirst is not None:
                        conventions[source_key(path)] = memory.entry(path, report.dayfirst, now)
            seen[report.sha256] = size
            reports.append(report)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if progress is not None:
            progress(i + 1, len(paths), path.name)
    return reports


def ingest_query(
    query: Query,
    store: Store,
    config: IngestConfig,
    *,
    now: dt.datetime,
    strict: bool = False,
    store_config: StoreConfig | None = None,
    locked: bool = False,
) -> IngestReport:
    """Ingest the rows of a database query or table into ``store``.

    With ``query.since_column``, only rows at or above the source's high-water mark are
    read, and the new mark is committed in the same manifest write as the rows: a pull
    that fails or is killed before its commit leaves both as they were, so the next pull
    reads the same rows again (and stores them once).

    Raises
    ------
    BadInputError
        Wrong credentials, a failing query, missing required columns, or (with ``strict``)
        a rejected row (exit 3).
    UnavailableError
        The server cannot be reached or drops the connection (exit 4).
    StoreLockedError
        Another process is writing the store.
    """
    check_dates(config, now)
    layout = store_config or StoreConfig()
    label = source_label(query)
    with store.writer(buckets=layout.buckets, now=now, locked=locked) as writer:
        known = writer.base.sources.get(query.key, {})
        low = None
        if query.since_column and known.get("since_column") == query.since_column:
            low = decode_mark(known["high_water"])
        pulled = pull_query(query, label, low, writer, config, now, writer.staging / "pull")
        report = pulled.report
        if strict:
            _raise_if_rejected(writer, [report])
        writer.compact("transactions", layout.max_parts_per_bucket, (schema.CUSTOMER_ID, schema.TS))
        writer.compact("quarantine", layout.max_parts_per_bucket)
        if pulled.high_water is not None or report.rows_read:
            entry = _manifest_entry(report, now)
            sources = {}
            if pulled.high_water is not None:
                entry.update(since_column=query.since_column, high_water=pulled.high_water)
                sources[query.key] = {
                    "source": label,
                    "since_column": query.since_column,
                    "high_water": pulled.high_water,
                    "pulled_at": now.isoformat(),
                }
            writer.commit([entry], sources)
    return IngestReport(str(store.root), (report,))


def check_dates(config: IngestConfig, now: dt.datetime) -> None:
    """Refuse a ``min_date`` after today: every row would be quarantined as implausible.

    Raises
    ------
    ConfigError
        Naming the setting (exit 2).
    """
    if config.min_date > now.date():
        raise ConfigError(
            f"[ingest] min_date = {config.min_date}: after today ({now.date()}), so every row "
            "would be quarantined as implausible_date"
        )


def source_label(query: Query) -> str:
    """How a database source is named in reports and the quarantine: masked, short."""
    text = " ".join(query.sql.split())
    short = text if len(text) <= 80 else text[:77] + "..."
    return f"{query.database.label} [{short}]"


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
    source: Path,
    writer: StoreWriter,
    cfg: IngestConfig,
    now: dt.datetime,
    work: Path,
    memory: Memory,
) -> FileReport:
    text_encoding = sniff.choose_encoding(source, cfg.encoding)
    for attempt in range(2):
        prepared = sniff.prepare(source, work / f"try{attempt}", text_encoding)
        try:
            with csv_chunks():
                stage = work / f"stage{attempt}"
                return _run(source, prepared, writer, cfg, now, stage, memory)
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
        When the probe cannot be written (exit 6, with the operating system's reason).
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
    prepared: sniff.Prepared,
    writer: StoreWriter,
    cfg: IngestConfig,
    now: dt.datetime,
    stage: Path,
    memory: Memory,
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
    plan, detection = detect_plan(source, sample, cfg, delimiter, memory)
    header = sample.columns

    def locate(kept: pl.LazyFrame, good_rows: int) -> pl.LazyFrame:
        return with_breaks_before(kept, prepared.path, header, read_args, good_rows)

    rows = pl.scan_csv(prepared.path, row_index_name=ROW, **read_args)
    found = process(
        Staged(str(source), rows, header, HEADER_LINES + 1, locate),
        plan,
        detection,
        writer,
        cfg,
        now,
        stage,
    )
    return found.report(
        source=str(source),
        sha256="",
        columns=dict(plan.mapping),
        encoding=prepared.encoding + (" (gzip)" if prepared.compressed else ""),
        delimiter=delimiter,
        decimal=plan.decimal,
        date_formats=tuple(f.fmt for f in plan.dates),
        notes=(detection.note,),
        dayfirst=detection.dayfirst if detection.known else None,
    )
