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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import polars as pl

from crmkit import schema
from crmkit.config import IngestConfig, StoreConfig
from crmkit.errors import BadInputError
from crmkit.hashing import add_short_hash, add_stable_hash, bucket_expr, max_bytes, words_for
from crmkit.ingest import parse, sniff
from crmkit.store import COMPRESSION, COMPRESSION_LEVEL, Store, StoreWriter

ProgressFn = Callable[[int, int, str], None]

SAMPLE_ROWS: Final = 100_000
#: Dates are parsed through a cache of parsed values unless more than this share of the
#: sample's date values are distinct (timestamps to the second rarely repeat).
DATE_CACHE_DISTINCT: Final = 0.5
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
_ROW: Final = "__crmkit_row"
_BUCKET: Final = "__crmkit_bucket"
_REASON: Final = "__crmkit_reason"
_OK: Final = "__crmkit_ok"
_C: Final = "__crmkit_c_"
_T: Final = "__crmkit_t_"
_STATUS: Final = "__crmkit_status"
_BREAKS: Final = "__crmkit_breaks"
HEADER_LINES: Final = 1

REASONS: Final = (
    "missing_customer_id",
    "missing_date",
    "unparseable_date",
    "implausible_date",
    "missing_amount",
    "unparseable_amount",
    "implausible_amount",
    "excluded_by_rule",
)


@dataclass(frozen=True)
class FileReport:
    """What happened to one source file."""

    source: str
    sha256: str
    status: Literal["ingested", "skipped"]
    bytes: int = 0
    rows_read: int = 0
    rows_stored: int = 0
    rows_duplicate: int = 0
    rows_quarantined: int = 0
    reasons: Mapping[str, int] = field(default_factory=dict)
    columns: Mapping[str, str] = field(default_factory=dict)
    encoding: str = ""
    delimiter: str = ""
    decimal: str = ""
    date_formats: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        out = dict(self.__dict__)
        out["reasons"] = dict(self.reasons)
        out["columns"] = dict(self.columns)
        out["date_formats"] = list(self.date_formats)
        out["notes"] = list(self.notes)
        return out


@dataclass(frozen=True)
class IngestReport:
    """The reconciliation of one ingest call: ``rows_read = stored + duplicate + quarantined``."""

    store: str
    files: tuple[FileReport, ...]

    def _sum(self, name: str) -> int:
        return sum(int(getattr(f, name)) for f in self.files)

    @property
    def rows_read(self) -> int:
        """Rows read from every ingested file."""
        return self._sum("rows_read")

    @property
    def rows_stored(self) -> int:
        """Rows added to the store."""
        return self._sum("rows_stored")

    @property
    def rows_duplicate(self) -> int:
        """Rows dropped as duplicates of stored rows or of each other."""
        return self._sum("rows_duplicate")

    @property
    def rows_quarantined(self) -> int:
        """Rows kept in the quarantine with a reason."""
        return self._sum("rows_quarantined")

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict with per-file detail and totals."""
        reasons: dict[str, int] = {}
        for f in self.files:
            for k, v in f.reasons.items():
                reasons[k] = reasons.get(k, 0) + v
        return {
            "store": self.store,
            "files_ingested": sum(f.status == "ingested" for f in self.files),
            "files_skipped": sum(f.status == "skipped" for f in self.files),
            "rows_read": self.rows_read,
            "rows_stored": self.rows_stored,
            "rows_duplicate": self.rows_duplicate,
            "rows_quarantined": self.rows_quarantined,
            "quarantine_reasons": dict(sorted(reasons.items())),
            "files": [f.to_json() for f in self.files],
        }


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


def _read_error(source: Path, plain: Path, exc: Exception, cfg: IngestConfig) -> BadInputError:
    delimiter = cfg.delimiter or sniff.detect_delimiter(sniff.head_text(plain), source.name)
    ragged = sniff.first_ragged_line(plain, delimiter)
    if ragged is not None:
        line, fields, header = ragged
        return BadInputError(
            f"{source} line {line}: {fields} fields where the header has {header} "
            "(unquoted delimiter in a value?)"
        )
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return BadInputError(f"{source}: cannot be parsed as delimited text ({first_line})")


#: Internal reason of the fast plan: an id with a dot may be a number exported as a float,
#: which only the exhaustive plan cleans, and an id longer than the sample's longest (in
#: hash words) needs the hash for any length. It never reaches the quarantine.
_RETRY_ID: Final = "__retry_id"
RETRYABLE: Final = ("unparseable_date", "unparseable_amount", _RETRY_ID)


@dataclass(frozen=True)
class _Plan:
    """How a file's fields are parsed.

    The *fast* plan uses what the sample showed (the date formats seen, plain numbers, ids
    without a dot, whether date values repeat enough for a parse cache, and the longest
    id, so that the bucket hash reads a fixed number of words); rows it rejects as
    unparseable or longer are parsed again with the *exhaustive* plan.
    """

    mapping: Mapping[str, str]
    decimal: Literal[".", ","]
    dates: tuple[parse.DateFormat, ...]
    normalise_dates: bool
    plain_numbers: bool
    float_ids: bool
    cache_dates: bool = True
    id_words: int | None = None

    def exhaustive(self, detection: parse.DateDetection) -> _Plan:
        return _Plan(self.mapping, self.decimal, detection.exhaustive(), True, False, True)


def _detect(
    source: Path, sample: pl.DataFrame, cfg: IngestConfig, delimiter: str
) -> tuple[_Plan, parse.DateDetection]:
    mapping = sniff.resolve_columns(sample.columns, cfg.columns, source)
    numeric = [mapping[c] for c in schema.NUMERIC_COLUMNS if c in mapping]
    if cfg.decimal == "auto":
        values: list[str | None] = []
        for name in numeric:
            values += sample[name].head(20_000).to_list()
        decimal = parse.detect_decimal(values, delimiter)
    else:
        decimal = cfg.decimal
    plain = decimal == "." and all(parse.is_plain_number(sample[name]) for name in numeric)
    float_ids = bool(sample[mapping[schema.CUSTOMER_ID]].str.contains(".", literal=True).any())
    stamps = sample[mapping[schema.TS]]
    cache = stamps.n_unique() <= DATE_CACHE_DISTINCT * max(stamps.len(), 1)
    id_bytes = sample.select(
        pl.col(mapping[schema.CUSTOMER_ID]).str.strip_chars().str.len_bytes().max().fill_null(0)
    ).item()
    id_words = max(1, words_for(int(id_bytes)))
    if cfg.date_format:
        fmt = parse.explicit_format(cfg.date_format)
        dates = parse.DateDetection((fmt,), cfg.dayfirst, "", normalise=True)
        return _Plan(mapping, decimal, (fmt,), True, plain, float_ids, cache, id_words), dates
    dates = parse.detect_date_formats(stamps, cfg.dayfirst)
    plan = _Plan(
        mapping, decimal, dates.formats, dates.normalise, plain, float_ids, cache, id_words
    )
    return plan, dates


def _clean(rows: pl.LazyFrame, plan: _Plan, cfg: IngestConfig) -> pl.LazyFrame:
    """Add every source column the plan reads, stripped, with empty text as null.

    Done once per column, in two steps so that each is evaluated once.
    """
    sources = {_T + c: raw for c, raw in plan.mapping.items()}
    if cfg.cancellations.status_column:
        sources[_STATUS] = cfg.cancellations.status_column
    strip = [pl.col(raw).str.strip_chars().alias(name) for name, raw in sources.items()]
    return rows.with_columns(strip).with_columns(
        pl.when(pl.col(n).str.len_bytes() > 0).then(pl.col(n)).alias(n) for n in sources
    )


def _canonical_exprs(plan: _Plan, cfg: IngestConfig) -> list[pl.Expr]:
    """Canonical fields and presence flags, from the :func:`_cleaned_exprs` columns."""
    m = plan.mapping

    def text(canonical: str) -> pl.Expr:
        if canonical not in m:
            return pl.lit(None, dtype=pl.String)
        return pl.col(_T + canonical)

    def num(canonical: str) -> pl.Expr:
        if canonical not in m:
            return pl.lit(None, dtype=pl.Float64)
        if plan.plain_numbers:
            return text(canonical).cast(pl.Float64, strict=False)
        return parse.parse_number(text(canonical), plan.decimal)

    quantity, unit_price = num(schema.QUANTITY), num(schema.UNIT_PRICE)
    derived = quantity * unit_price
    amount = pl.coalesce(num(schema.AMOUNT), derived) if schema.AMOUNT in m else derived
    cancelled = pl.lit(value=False)
    rule = cfg.cancellations
    if rule.order_id_prefix and schema.ORDER_ID in m:
        cancelled = cancelled | text(schema.ORDER_ID).str.starts_with(
            rule.order_id_prefix
        ).fill_null(value=False)
    if rule.status_column:
        values = [v.lower() for v in rule.status_values]
        status = pl.col(_STATUS).str.to_lowercase()
        cancelled = cancelled | status.is_in(values).fill_null(value=False)
    amount = pl.when(cancelled).then(-amount.abs()).otherwise(amount)
    quantity = pl.when(cancelled).then(-quantity.abs()).otherwise(quantity)

    amount_present = text(schema.AMOUNT).is_not_null()
    if schema.QUANTITY in m and schema.UNIT_PRICE in m:
        amount_present = amount_present | (
            text(schema.QUANTITY).is_not_null() & text(schema.UNIT_PRICE).is_not_null()
        )
    excluded = pl.lit(value=False)
    for canonical, pattern in cfg.exclude.items():
        if canonical in m:
            excluded = excluded | text(canonical).str.contains(pattern).fill_null(value=False)
    customer = text(schema.CUSTOMER_ID)
    retry = pl.lit(value=False)
    if not plan.float_ids:
        retry = customer.str.contains(".", literal=True).fill_null(value=False)
    limit = None if plan.id_words is None else max_bytes(plan.id_words)
    if limit is not None:
        retry = retry | (customer.str.len_bytes() > limit).fill_null(value=False)
    return [
        (parse.fix_float_id(customer) if plan.float_ids else customer).alias(
            _C + schema.CUSTOMER_ID
        ),
        retry.alias(_C + "retry"),
        parse.parse_datetime(
            text(schema.TS),
            plan.dates,
            normalise=plan.normalise_dates,
            stripped=True,
            cache=plan.cache_dates,
        ).alias(_C + schema.TS),
        text(schema.TS).is_not_null().alias(_C + "ts_present"),
        amount.alias(_C + schema.AMOUNT),
        amount_present.fill_null(value=False).alias(_C + "amount_present"),
        quantity.alias(_C + schema.QUANTITY),
        unit_price.alias(_C + schema.UNIT_PRICE),
        excluded.alias(_C + "excluded"),
        *(text(c).alias(_C + c) for c in schema.TEXT_COLUMNS),
    ]


def _rejections(cfg: IngestConfig, now: dt.datetime) -> list[tuple[str, pl.Expr]]:
    """Each reason to reject a row with its condition, in the order they are tested."""
    ts, amount = pl.col(_C + schema.TS), pl.col(_C + schema.AMOUNT)
    earliest = dt.datetime.combine(cfg.min_date, dt.time())
    latest = now + dt.timedelta(days=cfg.max_future_days)
    return [
        (_RETRY_ID, pl.col(_C + "retry")),
        ("missing_customer_id", pl.col(_C + schema.CUSTOMER_ID).is_null()),
        ("missing_date", ~pl.col(_C + "ts_present")),
        ("unparseable_date", ts.is_null()),
        ("implausible_date", (ts < earliest) | (ts > latest)),
        ("missing_amount", ~pl.col(_C + "amount_present")),
        ("unparseable_amount", amount.is_null()),
        ("implausible_amount", ~amount.is_finite() | (amount.abs() > cfg.max_abs_amount)),
        ("excluded_by_rule", pl.col(_C + "excluded")),
    ]


def _accepted_expr(cfg: IngestConfig, now: dt.datetime) -> pl.Expr:
    """Return whether no rejection applies to a row (a null condition does not apply)."""
    applies = [condition.fill_null(value=False) for _, condition in _rejections(cfg, now)]
    return ~pl.any_horizontal(applies)


def _reason_expr(cfg: IngestConfig, now: dt.datetime) -> pl.Expr:
    """Return the first reason that applies to a row, or null."""
    reason = pl.lit(None, dtype=pl.String)
    for name, condition in reversed(_rejections(cfg, now)):
        reason = pl.when(condition).then(pl.lit(name)).otherwise(reason)
    return reason.alias(_REASON)


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
    plan, detection = _detect(source, sample, cfg, delimiter)
    header = sample.columns
    if cfg.cancellations.status_column and cfg.cancellations.status_column not in header:
        raise BadInputError(
            f"{source}: cancellation status column {cfg.cancellations.status_column!r} is not "
            f"in the file; columns found: {', '.join(map(repr, header))}"
        )
    stage.mkdir(parents=True, exist_ok=True)
    rejected = stage / "rejected.parquet"
    _split(
        pl.scan_csv(prepared.path, row_index_name=_ROW, **read_args),
        plan,
        cfg,
        now,
        writer.buckets,
        header,
        stage / "good",
        rejected,
    )
    # rows the fast plan could not read get every format and the full number parser
    retry = pl.scan_parquet(rejected).filter(pl.col(_REASON).is_in(RETRYABLE)).drop(_REASON)
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
            pl.scan_parquet(rejected).filter(~pl.col(_REASON).is_in(RETRYABLE)),
            pl.scan_parquet(still),
        ]
    ).with_columns(pl.col(_ROW).cast(pl.Int64))
    if kept.select(pl.len()).collect().item():
        good_rows = _staged_rows([stage / "good", stage / "rescued"])
        kept = _with_breaks_before(kept, prepared.path, header, read_args, good_rows)
    else:
        kept = kept.with_columns(pl.lit(0, dtype=pl.Int64).alias(_BREAKS))
    final = kept.select(
        pl.lit(str(source)).alias("source_file"),
        (pl.col(_ROW) + HEADER_LINES + 1 + pl.col(_BREAKS)).alias("line"),
        pl.col(_REASON).alias("reason"),
        pl.struct([pl.col(h) for h in header]).struct.json_encode().alias("raw"),
    ).sort("line")
    quarantine = stage / "quarantine.parquet"
    final.sink_parquet(quarantine, compression=COMPRESSION, compression_level=COMPRESSION_LEVEL)
    stored, duplicate = _commit_buckets([stage / "good", stage / "rescued"], writer, cfg.dedupe)
    reasons = pl.read_parquet(quarantine).group_by("reason").len().sort("reason")
    quarantined = int(reasons["len"].sum())
    if quarantined:
        writer.add_file("quarantine", quarantine, quarantined)
    notes = tuple(n for n in (detection.note,) if n)
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


def _newlines(path: Path) -> tuple[int, bool]:
    """Count the line feeds of a file; also whether it ends with one."""
    count, last = 0, ord("\n")
    buffer = bytearray(1024 * 1024)
    with path.open("rb", buffering=0) as fh:
        while n := fh.readinto(buffer):
            count += buffer.count(b"\n", 0, n)
            last = buffer[n - 1]
    return count, last == ord("\n")


def _with_breaks_before(
    kept: pl.LazyFrame,
    path: Path,
    header: list[str],
    read_args: Mapping[str, Any],
    good_rows: int,
) -> pl.LazyFrame:
    """Add, per rejected row, the line breaks inside quoted values of the rows before it.

    A row's line is its record number plus the header plus these breaks, so that it
    names the line where the row starts in the file. Files rarely have such breaks: the
    file's line feeds are counted first (rows read, header and breaks must add up), and
    only when they do not add up is the file read again to find the rows that hold them.
    """
    records = good_rows + int(kept.select(pl.len()).collect().item())
    in_header = sum(h.count("\n") for h in header)
    newlines, ends_with_newline = _newlines(path)
    lines = newlines + (0 if ends_with_newline else 1)
    if lines == records + HEADER_LINES + in_header:
        return kept.with_columns(pl.lit(in_header, dtype=pl.Int64).alias(_BREAKS))
    breaks = pl.sum_horizontal(
        pl.col(h).str.count_matches("\n", literal=True).fill_null(0) for h in header
    )
    found = (
        pl.scan_csv(path, row_index_name=_ROW, **read_args)
        .select(pl.col(_ROW).cast(pl.Int64), breaks.cast(pl.Int64).alias(_BREAKS))
        .filter(pl.col(_BREAKS) > 0)
        .collect(engine="streaming")
        .sort(_ROW)
        .with_columns(pl.col(_BREAKS).cum_sum())
    )
    return (
        kept.sort(_ROW)
        .join_asof(found.lazy(), on=_ROW, strategy="backward", allow_exact_matches=False)
        .with_columns(pl.col(_BREAKS).fill_null(0) + in_header)
    )


def _split(
    rows: pl.LazyFrame,
    plan: _Plan,
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
    parsed = (
        _clean(rows, plan, cfg)
        .with_columns(_canonical_exprs(plan, cfg))
        .with_columns(_accepted_expr(cfg, now).alias(_OK))
    )
    rows_ok = parsed.filter(pl.col(_OK)).select(
        *(pl.col(_C + c).alias(c) for c in schema.TRANSACTION_SCHEMA)
    )
    if plan.id_words is None:
        hashed = add_stable_hash(rows_ok, schema.CUSTOMER_ID, _BUCKET)
    else:
        hashed = add_short_hash(rows_ok, schema.CUSTOMER_ID, _BUCKET, plan.id_words)
    good = hashed.with_columns(bucket_expr(_BUCKET, buckets).alias(_BUCKET))
    bad = (
        parsed.filter(~pl.col(_OK))
        .with_columns(_reason_expr(cfg, now))
        .select(_ROW, _REASON, *header)
    )
    pl.collect_all(
        [
            good.sink_parquet(
                pl.PartitionBy(good_dir, key=_BUCKET, include_key=False),
                mkdir=True,
                lazy=True,
                row_group_size=STAGING_ROW_GROUP,
                compression=COMPRESSION,
                compression_level=COMPRESSION_LEVEL,
            ),
            bad.sink_parquet(rejected, lazy=True, compression="lz4"),
        ]
    )


def _distinct(frame: pl.DataFrame) -> pl.DataFrame:
    """Drop exact duplicate rows, keeping the first.

    A row-hash check skips the exact comparison when every row is already distinct.
    """
    if frame.hash_rows().n_unique() == frame.height:
        return frame
    return frame.filter(pl.struct(pl.all()).is_first_distinct())


#: Columns whose values two duplicate rows must share; rows distinct on them are distinct.
_KEY_COLUMNS: Final = (schema.CUSTOMER_ID, schema.TS, schema.AMOUNT)
_HASH_MIX: Final = 0x9E3779B97F4A7C15


def _row_hash(columns: Sequence[str]) -> pl.Expr:
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


class _DistinctCheck:
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
        if self.keys_first:
            if self._unique(files, _KEY_COLUMNS) == rows:
                return True
            self.keys_first = False
        return self._unique(files, tuple(schema.TRANSACTION_SCHEMA)) == rows

    @staticmethod
    def _unique(files: list[Path], columns: Sequence[str]) -> int:
        hashes = pl.scan_parquet(files).select(_row_hash(columns).n_unique())
        return int(hashes.collect(engine="streaming").item())


def _fresh_rows(files: list[Path], writer: StoreWriter, bucket: int) -> pl.DataFrame:
    """Return the staged rows of a bucket without duplicates of each other or of the store."""
    fresh = _distinct(pl.read_parquet(files))
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


def _commit_buckets(dirs: Sequence[Path], writer: StoreWriter, dedupe: bool) -> tuple[int, int]:
    """De-duplicate staged buckets against themselves and the store; add them as parts.

    A staged bucket that loses no row is moved into the store as it is (no rewrite). A
    bucket is only read whole when it may lose rows: when the store already has rows in
    it, or when its row hashes are not all distinct.
    """
    stored = duplicate = 0
    all_distinct = _DistinctCheck()
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
        fresh = _fresh_rows(files, writer, bucket) if may_lose else None
        if fresh is None or fresh.height == rows:
            for path, count in zip(files, counts, strict=True):
                writer.add_file("transactions", path, count, bucket)
            stored += rows
        else:
            writer.add_frame("transactions", fresh, bucket)
            stored += fresh.height
            duplicate += rows - fresh.height
    return stored, duplicate
