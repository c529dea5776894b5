"""The store's manifest: its committed parts, checked as they are read.

``manifest.json`` is the only source of truth of a store. Every part it names must have a
name the store itself writes (:data:`PART_PATH`), so a manifest can never make crmkit read
or remove a file outside the store.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeGuard

from crmkit.errors import StoreCorruptError

FORMAT_VERSION: Final = 1
MANIFEST: Final = "manifest.json"
KINDS: Final = ("transactions", "quarantine", "ledger", "customers")

#: The only file names the store writes for its parts; nothing else is ever read or removed.
PART_PATH: Final = re.compile(
    r"^(?P<kind>transactions|quarantine|ledger|customers)/(?:b(?P<bucket>\d{3,})/)?g(?P<gen>\d{6,})-\d{4,}\.parquet$"
)
STAGING_DIR: Final = re.compile(r"^g\d{6,}$")
#: What a directory may hold and still become a new store (what a failed first write leaves).
FRESH_ENTRIES: Final = frozenset({".lock", ".readers", "logs", "staging"})
PARQUET_MAGIC: Final = b"PAR1"


def _count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclass(frozen=True)
class Part:
    """One immutable Parquet file of the store."""

    path: str
    rows: int
    bucket: int | None = None
    bytes: int | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the manifest entry."""
        out: dict[str, Any] = {"path": self.path, "rows": self.rows}
        if self.bucket is not None:
            out["bucket"] = self.bucket
        if self.bytes is not None:
            out["bytes"] = self.bytes
        return out

    @classmethod
    def from_json(cls, kind: str, entry: Any) -> Part:  # noqa: ANN401
        """Parse a manifest entry; its path must be one this store writes for ``kind``.

        Raises
        ------
        StoreCorruptError
            On a malformed entry or a path outside the store's own part names.
        """
        if not isinstance(entry, dict):
            raise StoreCorruptError(f"a {kind} part entry is not an object: {entry!r}")
        path = entry.get("path")
        match = PART_PATH.match(path) if isinstance(path, str) else None
        if not isinstance(path, str) or match is None or match["kind"] != kind:
            raise StoreCorruptError(
                f"{kind} part path {path!r} is not a part of this store "
                f"({kind}/[bNNN/]gNNNNNN-NNNN.parquet)"
            )
        rows, bucket, size = entry.get("rows"), entry.get("bucket"), entry.get("bytes")
        if not _count(rows) or not (bucket is None or _count(bucket)):
            raise StoreCorruptError(f"{kind} part {path}: bad rows or bucket in the manifest")
        return cls(path, rows, bucket, size if _count(size) else None)


@dataclass(frozen=True)
class Manifest:
    """The committed state of a store."""

    generation: int = 0
    buckets: int = 16
    parts: Mapping[str, tuple[Part, ...]] = field(default_factory=dict)
    files: tuple[Mapping[str, Any], ...] = ()
    updated_at: str | None = None
    #: Database sources pulled with a high-water mark, by source key (masked URI + query).
    sources: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Parts a compaction replaced while a reader held the store, deleted by a later commit.
    retired: tuple[str, ...] = ()

    def parts_of(self, kind: str) -> tuple[Part, ...]:
        """Return the parts of one kind (``transactions``, ``quarantine``, ``ledger``)."""
        return tuple(self.parts.get(kind, ()))

    def to_json(self) -> dict[str, Any]:
        """Return the manifest as a JSON-ready dict."""
        return {
            "format_version": FORMAT_VERSION,
            "generation": self.generation,
            "buckets": self.buckets,
            "updated_at": self.updated_at,
            "parts": {k: [p.to_json() for p in self.parts_of(k)] for k in KINDS},
            "files": [dict(f) for f in self.files],
            "sources": {k: dict(v) for k, v in sorted(self.sources.items())},
            "retired": sorted(self.retired),
        }

    @classmethod
    def from_json(cls, data: Any) -> Manifest:  # noqa: ANN401
        """Parse a manifest, checking every field's type and every part's path.

        Raises
        ------
        StoreCorruptError
            On another format version or any malformed field.
        """
        if not isinstance(data, dict):
            raise StoreCorruptError("the manifest is not a JSON object")
        if data.get("format_version") != FORMAT_VERSION:
            raise StoreCorruptError(
                f"unsupported store format {data.get('format_version')!r} "
                f"(this crmkit reads format {FORMAT_VERSION})"
            )
        parts, files = data.get("parts", {}), data.get("files", [])
        generation, buckets = data.get("generation"), data.get("buckets")
        if not (isinstance(parts, dict) and isinstance(files, list)):
            raise StoreCorruptError("the manifest's parts or files are malformed")
        if not (_count(generation) and _count(buckets) and buckets):
            raise StoreCorruptError("the manifest's generation or buckets are malformed")
        entries = {kind: parts.get(kind, []) for kind in KINDS}
        if not all(isinstance(e, list) for e in entries.values()):
            raise StoreCorruptError("the manifest's parts are malformed")
        if not all(isinstance(f, dict) for f in files):
            raise StoreCorruptError("the manifest's files are malformed")
        updated = data.get("updated_at")
        sources = data.get("sources", {})
        if not isinstance(sources, dict) or not all(isinstance(v, dict) for v in sources.values()):
            raise StoreCorruptError("the manifest's sources are malformed")
        retired = data.get("retired", [])
        if not isinstance(retired, list) or not all(
            isinstance(r, str) and PART_PATH.match(r) for r in retired
        ):
            raise StoreCorruptError("the manifest's retired parts are malformed")
        return cls(
            generation=generation,
            buckets=buckets,
            parts={k: tuple(Part.from_json(k, e) for e in v) for k, v in entries.items()},
            files=tuple(files),
            updated_at=updated if isinstance(updated, str) else None,
            sources=sources,
            retired=tuple(retired),
        )
