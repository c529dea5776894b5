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
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

import polars as pl

from crmkit import schema
from crmkit.errors import (
    StoreCorruptError,
    StoreLockedError,
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
from crmkit.store.readers import ReaderLock
from crmkit.store.writer import StoreWriter


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

    def part_rows(self) -> dict[str, int]:
        """Return the rows of every transaction part, by the path :meth:`bucket_paths` gives."""
        return {
            str(self.root / part.path): part.rows
            for part in self.manifest().parts_of("transactions")
        }

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
