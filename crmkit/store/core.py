"""The embedded store: Parquet parts partitioned by customer bucket, a JSON manifest.

Layout of a store directory::

    manifest.json               the only source of truth, replaced atomically, written last
    .lock                       held (flock) by the one process allowed to write
    transactions/b07/g000003-000.parquet
    quarantine/g000003-000.parquet
    ledger/g000004-000.parquet  campaign assignments (append-only)
    staging/                    scratch space of a write in progress
    logs/                       JSON-lines run logs

Parts are immutable and named after the manifest generation that created them. A write
produces new parts, then replaces ``manifest.json``; files not named by the manifest are
leftovers of an interrupted write and are removed by the next writer. Readers therefore
always see the last committed state.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import polars as pl

from crmkit import schema
from crmkit.errors import (
    StoreCorruptError,
    StoreLockedError,
    StoreWriteError,
    UsageError,
    from_os_error,
)
from crmkit.store.manifest import (
    FRESH_ENTRIES,
    KINDS,
    MANIFEST,
    PARQUET_MAGIC,
    PART_PATH,
    STAGING_DIR,
    Manifest,
    Part,
)
from crmkit.store.readers import ReaderLock, no_readers

#: Parquet compression of the store's files. lz4 (Parquet's LZ4_RAW) writes and reads
#: faster than zstd: ingesting 10M rows takes about 13% less time, for files about 40%
#: larger than zstd at level 1 (290 MB against 211 MB). Parts written with another codec
#: (by earlier versions) are read as they are.
COMPRESSION: Final = "lz4"
COMPRESSION_LEVEL: Final[int | None] = None
#: Parquet compression of exported tables (features, scores, targets): wide tables of
#: floats that zstd shrinks by only a fifth, so the fastest codec that every Parquet reader
#: supports is used (a 10M-transaction feature table: 0.6 s instead of 1.0 s).
EXPORT_COMPRESSION: Final = "snappy"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, fsync and rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    _fsync_dir(path.parent)


def atomic_write_frame(frame: pl.DataFrame, path: Path) -> None:
    """Write a frame as CSV or Parquet (by extension) atomically.

    Raises
    ------
    UsageError
        An extension other than ``.csv`` or ``.parquet``.
    StoreWriteError
        When the file cannot be written (a full or read-only disk): the partial file is
        removed and ``path`` is left as it was.
    """
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise UsageError(f"{path}: output must end in .csv or .parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if suffix == ".parquet":
            frame.write_parquet(tmp, compression=EXPORT_COMPRESSION, statistics=True)
        else:
            frame.write_csv(tmp)
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno is not None:
            exc.filename = str(path)
            raise from_os_error(exc) from exc
        raise StoreWriteError(  # polars' writers report a failed write without an errno
            f"{path}: cannot write (the disk may be full or read-only)"
        ) from exc
    except pl.exceptions.PolarsError as exc:  # polars reports a failed write as its own error
        tmp.unlink(missing_ok=True)
        raise StoreWriteError(
            f"{path}: cannot write ({type(exc).__name__}: the disk may be full or read-only)"
        ) from exc
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Store:
    """A crmkit store directory.

    Parameters
    ----------
    root
        The store directory; it need not exist until the first write.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.readers = ReaderLock(self.root)

    def close(self) -> None:
        """Stop reading: parts replaced since may then be deleted by the next commit."""
        self.readers.release()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def manifest_path(self) -> Path:
        """Path of the manifest file."""
        return self.root / MANIFEST

    def exists(self) -> bool:
        """Return whether a committed manifest exists."""
        return self.manifest_path.is_file()

    def manifest(self) -> Manifest:
        """Read the committed manifest (an empty one for a store never written).

        Raises
        ------
        StoreCorruptError
            When the manifest cannot be parsed or names files that are missing.
        """
        if not self.exists():
            return Manifest()
        self.readers.hold()
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
            manifest = Manifest.from_json(data)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StoreCorruptError(f"{self.manifest_path}: unreadable manifest ({exc})") from exc
        except StoreCorruptError as exc:
            raise StoreCorruptError(f"{self.manifest_path}: {exc}") from exc
        for kind in KINDS:
            for part in manifest.parts_of(kind):
                problem = self._part_problem(part)
                if problem:
                    raise StoreCorruptError(
                        f"store {self.root} is inconsistent: {part.path} {problem}; restore it "
                        "from a backup (crmkit never repairs a store by deleting data)"
                    )
        return manifest

    def _part_problem(self, part: Part) -> str | None:
        """Say what is wrong with a part's file, if anything (a cheap check, no full read)."""
        path = self.root / part.path
        if path.is_symlink() or not path.is_file():
            return "named in the manifest is missing (or not a regular file)"
        size = path.stat().st_size
        if part.bytes is not None and size != part.bytes:
            return f"has {size:,} bytes where {part.bytes:,} were written (truncated?)"
        with path.open("rb") as fh:
            head = fh.read(4)
            fh.seek(max(0, size - 4))
            tail = fh.read(4)
        if size < 12 or head != PARQUET_MAGIC or tail != PARQUET_MAGIC:
            return "is not a complete Parquet file (truncated?)"
        return None

    def require(self) -> Manifest:
        """Return the manifest, or raise when the store has never been written.

        Raises
        ------
        StoreCorruptError
            When there is no store at ``root``.
        """
        if not self.exists():
            raise StoreCorruptError(
                f"no crmkit store at {self.root}: run `crmkit ingest FILE --store {self.root}` "
                "first (or set --store / CRMKIT_STORE)"
            )
        return self.manifest()

    def _scan(self, kind: str, columns: Mapping[str, pl.DataType]) -> pl.LazyFrame:
        manifest = self.manifest()
        paths = [str(self.root / p.path) for p in manifest.parts_of(kind)]
        if not paths:
            return pl.LazyFrame(schema=dict(columns))
        return pl.scan_parquet(paths, schema=dict(columns), missing_columns="insert")

    def transactions(self) -> pl.LazyFrame:
        """Return all stored transactions as a LazyFrame in the canonical schema."""
        return self._scan("transactions", schema.TRANSACTION_SCHEMA)

    def bucket_paths(self) -> list[list[str]]:
        """Return the transaction part paths of every customer bucket, in bucket order."""
        by_bucket: dict[int, list[str]] = {}
        for part in self.manifest().parts_of("transactions"):
            by_bucket.setdefault(part.bucket or 0, []).append(str(self.root / part.path))
        return [paths for _, paths in sorted(by_bucket.items())]

    def bucket_scans(self) -> list[pl.LazyFrame]:
        """Return one LazyFrame of transactions per customer bucket (disjoint customers)."""
        return [
            pl.scan_parquet(paths, schema=dict(schema.TRANSACTION_SCHEMA))
            for paths in self.bucket_paths()
        ]

    def quarantine(self) -> pl.DataFrame:
        """Return every quarantined row with its source file, line and reason."""
        return self._scan("quarantine", schema.QUARANTINE_SCHEMA).collect()

    def scan_kind(self, kind: str, columns: Mapping[str, pl.DataType]) -> pl.LazyFrame:
        """Return the parts of ``kind`` as a LazyFrame with ``columns``."""
        return self._scan(kind, columns)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the store's exclusive lock; raise at once if another process holds it.

        Raises
        ------
        StoreLockedError
            When another process holds the lock.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        lock_path = self.root / ".lock"
        fh: IO[str] = lock_path.open("a+", encoding="utf-8")
        try:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                fh.seek(0)
                holder = fh.read().strip() or "unknown"
                raise StoreLockedError(
                    f"store {self.root} is locked by another crmkit process ({holder}); "
                    "try again when it has finished"
                ) from exc
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()}")
            fh.flush()
            try:
                yield
            finally:
                fh.seek(0)
                fh.truncate()
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        finally:
            fh.close()

    @contextlib.contextmanager
    def writer(
        self, *, buckets: int = 16, now: dt.datetime | None = None, locked: bool = False
    ) -> Iterator[StoreWriter]:
        """Open a write transaction: lock, clean leftovers, yield a writer.

        Nothing is visible to readers until :meth:`StoreWriter.commit`; leaving the block
        without committing (an exception, a kill) leaves the previous state.

        Parameters
        ----------
        buckets
            Number of buckets for a store created by this write (ignored otherwise).
        now
            Time recorded in the manifest.
        locked
            The caller already holds :meth:`lock` (``crmkit run`` holds it for a whole run).
        """
        if not self.exists():
            self._check_fresh()
        lock = contextlib.nullcontext() if locked else self.lock()
        with lock:
            manifest = self.manifest()
            if not self.exists():
                self._check_fresh()
                manifest = Manifest(buckets=buckets)
            self._remove_orphans(manifest)
            writer = StoreWriter(self, manifest, now)
            try:
                yield writer
            finally:
                shutil.rmtree(writer.staging, ignore_errors=True)
                if not writer.committed:
                    writer.discard()

    def _check_fresh(self) -> None:
        """Refuse to make a store of a directory that holds anything but a failed first write.

        Raises
        ------
        StoreCorruptError
            When ``root`` is a file, or a directory with other content and no manifest.
        """
        if self.root.exists() and not self.root.is_dir():
            raise StoreCorruptError(f"--store {self.root} is a file, not a store directory")
        entries = sorted(p.name for p in self.root.iterdir()) if self.root.is_dir() else []
        staging = self.root / "staging"
        stray = [e for e in entries if e not in FRESH_ENTRIES and not self._empty_kind(e)]
        if staging.is_dir():
            stray += [f"staging/{p.name}" for p in staging.iterdir() if not _is_staging(p)]
        if stray:
            raise StoreCorruptError(
                f"{self.root} has no {MANIFEST} but holds {', '.join(stray[:5])}: it is not a "
                "crmkit store, or its manifest was lost. crmkit writes nothing there. Choose "
                "another --store, or recover a store whose manifest was lost with "
                f"`crmkit store init --adopt --store {self.root}`"
            )

    def _empty_kind(self, entry: str) -> bool:
        """Tell whether ``entry`` is a part directory holding no file (a failed first write)."""
        path = self.root / entry
        if entry not in KINDS or not path.is_dir() or path.is_symlink():
            return False
        return not any(p.is_file() or p.is_symlink() for p in path.rglob("*"))

    def _remove_orphans(self, manifest: Manifest) -> None:
        """Delete the store's own part files that the manifest does not name, and staging.

        Only names the store writes (:data:`PART_PATH`, ``staging/gNNNNNN``) are touched:
        any other file is left where it is.
        """
        known = {p.path for k in KINDS for p in manifest.parts_of(k)} | set(manifest.retired)
        for kind in KINDS:
            base = self.root / kind
            if not base.is_dir():
                continue
            for path in base.rglob("*.parquet"):
                rel = path.relative_to(self.root).as_posix()
                if PART_PATH.match(rel) and rel not in known and not path.is_symlink():
                    path.unlink()
        staging = self.root / "staging"
        if staging.is_dir():
            for path in staging.iterdir():
                if _is_staging(path):
                    shutil.rmtree(path, ignore_errors=True)


def _is_staging(path: Path) -> bool:
    return bool(STAGING_DIR.match(path.name)) and path.is_dir() and not path.is_symlink()


class StoreWriter:
    """Collects the new parts of one write and commits them with the manifest."""

    def __init__(self, store: Store, manifest: Manifest, now: dt.datetime | None) -> None:
        self.store = store
        self.base = manifest
        self.generation = manifest.generation + 1
        self.now = now
        self.staging = store.root / "staging" / f"g{self.generation:06d}"
        self.staging.mkdir(parents=True, exist_ok=True)
        self.added: dict[str, list[Part]] = {k: [] for k in KINDS}
        self.removed: set[str] = set()
        self.committed = False
        self._seq = 0

    @property
    def buckets(self) -> int:
        """Number of customer buckets of the store."""
        return self.base.buckets

    def new_path(self, kind: str, bucket: int | None = None) -> tuple[Path, str]:
        """Return (absolute path, store-relative path) for a new part."""
        self._seq += 1
        sub = f"{kind}/b{bucket:03d}" if bucket is not None else kind
        rel = f"{sub}/g{self.generation:06d}-{self._seq:04d}.parquet"
        path = self.store.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return path, rel

    def add_frame(self, kind: str, frame: pl.DataFrame, bucket: int | None = None) -> Part | None:
        """Write ``frame`` as a new part of ``kind``; empty frames write nothing."""
        if frame.height == 0:
            return None
        path, rel = self.new_path(kind, bucket)
        frame.write_parquet(
            path, compression=COMPRESSION, compression_level=COMPRESSION_LEVEL, statistics=True
        )
        part = Part(rel, frame.height, bucket, path.stat().st_size)
        self.added[kind].append(part)
        return part

    def add_file(self, kind: str, source: Path, rows: int, bucket: int | None = None) -> Part:
        """Move an already written Parquet file into the store as a new part."""
        path, rel = self.new_path(kind, bucket)
        source.replace(path)
        part = Part(rel, rows, bucket, path.stat().st_size)
        self.added[kind].append(part)
        return part

    def current_parts(self, kind: str, bucket: int | None = None) -> list[Part]:
        """Return committed plus pending parts of ``kind`` (in one bucket if given)."""
        parts = [p for p in self.base.parts_of(kind) if p.path not in self.removed]
        parts += self.added[kind]
        if bucket is not None:
            parts = [p for p in parts if p.bucket == bucket]
        return parts

    def scan(
        self, kind: str, columns: Mapping[str, pl.DataType], bucket: int | None = None
    ) -> pl.LazyFrame:
        """Scan committed plus pending parts of ``kind``."""
        paths = [str(self.store.root / p.path) for p in self.current_parts(kind, bucket)]
        if not paths:
            return pl.LazyFrame(schema=dict(columns))
        return pl.scan_parquet(paths, schema=dict(columns), missing_columns="insert")

    def compact(
        self,
        kind: str,
        max_parts: int,
        sort_by: Sequence[str] = (),
        progress: Callable[[], None] | None = None,
    ) -> None:
        """Merge the parts of any bucket that has more than ``max_parts`` into one."""
        by_bucket: dict[int | None, list[Part]] = {}
        for part in self.current_parts(kind):
            by_bucket.setdefault(part.bucket, []).append(part)
        for bucket, parts in sorted(
            by_bucket.items(), key=lambda kv: -1 if kv[0] is None else kv[0]
        ):
            if len(parts) <= max_parts:
                continue
            frame = pl.read_parquet([str(self.store.root / p.path) for p in parts])
            if sort_by:
                frame = frame.sort(list(sort_by), maintain_order=True)
            for part in parts:
                if part in self.added[kind]:
                    self.added[kind].remove(part)
                    (self.store.root / part.path).unlink(missing_ok=True)
                else:
                    self.removed.add(part.path)
            self.add_frame(kind, frame, bucket)
            if progress is not None:
                progress()

    def replace_all(self, kind: str, frame: pl.DataFrame) -> None:
        """Replace every part of ``kind`` by one part holding ``frame`` (for small kinds)."""
        for part in self.current_parts(kind):
            if part in self.added[kind]:
                self.added[kind].remove(part)
                (self.store.root / part.path).unlink(missing_ok=True)
            else:
                self.removed.add(part.path)
        self.add_frame(kind, frame)

    def mark(self) -> dict[str, int]:
        """Return a mark of the parts added so far, for :meth:`rollback`."""
        return {kind: len(parts) for kind, parts in self.added.items()}

    def rollback(self, mark: Mapping[str, int]) -> None:
        """Remove the parts added since ``mark``."""
        for kind, parts in self.added.items():
            for part in parts[mark[kind] :]:
                (self.store.root / part.path).unlink(missing_ok=True)
            del parts[mark[kind] :]

    def discard(self) -> None:
        """Delete the parts written by this uncommitted write."""
        for parts in self.added.values():
            for part in parts:
                (self.store.root / part.path).unlink(missing_ok=True)

    def commit(
        self,
        files: Sequence[Mapping[str, Any]] = (),
        sources: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Manifest:
        """Publish the new parts: write the manifest atomically, then drop replaced files.

        ``sources`` updates the high-water marks of database sources in the same write, so
        a mark is never ahead of the rows it covers. Replaced files (and those retired by
        earlier commits) are deleted only when no reader holds the store
        (:mod:`crmkit.store.readers`); otherwise the manifest lists them as retired.
        """
        parts = {k: tuple(self.current_parts(k)) for k in KINDS}
        self.store.close()
        retired = set(self.base.retired) | self.removed
        with no_readers(self.store.root) as alone:
            manifest = Manifest(
                generation=self.generation,
                buckets=self.base.buckets,
                parts=parts,
                files=(*self.base.files, *files),
                updated_at=self.now.isoformat() if self.now else self.base.updated_at,
                sources={**self.base.sources, **(sources or {})},
                retired=() if alone else tuple(sorted(retired)),
            )
            payload = json.dumps(manifest.to_json(), indent=2, sort_keys=True).encode("utf-8")
            atomic_write_bytes(self.store.manifest_path, payload)
            self.committed = True
            if alone:
                for rel in sorted(retired):
                    (self.store.root / rel).unlink(missing_ok=True)
        return manifest


@dataclass(frozen=True)
class StoreInfo:
    """Summary of a store's content."""

    path: str
    rows: int
    customers: int
    first_ts: str | None
    last_ts: str | None
    files_ingested: int
    rows_quarantined: int
    buckets: int
    parts: int
    generation: int
    quarantine_reasons: Mapping[str, int]
    #: Database sources pulled with a high-water mark: source, column, mark, last pull.
    sources: tuple[Mapping[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return dict(self.__dict__)


def store_info(store: Store) -> StoreInfo:
    """Summarise a store: rows, customers, date range, files ingested, quarantine.

    Raises
    ------
    StoreCorruptError
        When there is no store, or it is inconsistent.
    """
    manifest = store.require()
    stats = (
        store.transactions()
        .select(
            rows=pl.len(),
            customers=pl.col(schema.CUSTOMER_ID).n_unique(),
            first=pl.col(schema.TS).min(),
            last=pl.col(schema.TS).max(),
        )
        .collect()
        .row(0, named=True)
    )
    reasons = (
        store.scan_kind("quarantine", schema.QUARANTINE_SCHEMA)
        .group_by("reason")
        .len()
        .sort("reason")
        .collect()
    )
    return StoreInfo(
        path=str(store.root),
        rows=int(stats["rows"]),
        customers=int(stats["customers"]),
        first_ts=stats["first"].isoformat() if stats["first"] else None,
        last_ts=stats["last"].isoformat() if stats["last"] else None,
        files_ingested=len(manifest.files),
        rows_quarantined=sum(p.rows for p in manifest.parts_of("quarantine")),
        buckets=manifest.buckets,
        parts=sum(len(manifest.parts_of(k)) for k in KINDS),
        generation=manifest.generation,
        quarantine_reasons=dict(zip(reasons["reason"], reasons["len"], strict=True)),
        sources=tuple(dict(v) for _, v in sorted(manifest.sources.items())),
    )
