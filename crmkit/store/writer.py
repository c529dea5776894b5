"""One write transaction of a store: new parts, compaction, and the commit that publishes them."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from crmkit.store.files import COMPRESSION, COMPRESSION_LEVEL, atomic_write_bytes
from crmkit.store.manifest import (
    KINDS,
    Manifest,
    Part,
)
from crmkit.store.readers import no_readers

if TYPE_CHECKING:
    from crmkit.store.core import Store


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
