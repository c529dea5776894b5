"""Creating a store explicitly, and adopting the parts of one whose manifest was lost."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import polars as pl

from crmkit.errors import StoreCorruptError, UsageError
from crmkit.store.core import Store
from crmkit.store.files import atomic_write_bytes
from crmkit.store.manifest import KINDS, PART_PATH, Manifest, Part


@dataclass(frozen=True)
class InitResult:
    """What ``crmkit store init`` did."""

    path: str
    status: str
    parts: dict[str, int]
    rows: dict[str, int]

    def summary(self) -> dict[str, Any]:
        """Headline numbers for the CLI."""
        return dict(self.__dict__)


def _found_parts(store: Store) -> dict[str, list[Part]]:
    """Every part file with a name the store writes, checked to be a readable Parquet file."""
    found: dict[str, list[Part]] = {kind: [] for kind in KINDS}
    for kind in KINDS:
        base = store.root / kind
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*.parquet")):
            rel = path.relative_to(store.root).as_posix()
            match = PART_PATH.match(rel)
            if match is None or path.is_symlink():
                continue
            try:
                rows = int(pl.scan_parquet(path).select(pl.len()).collect().item())
            except (pl.exceptions.PolarsError, OSError) as exc:
                raise StoreCorruptError(f"{path}: not a readable Parquet part ({exc})") from exc
            bucket = int(match["bucket"]) if match["bucket"] else None
            found[kind].append(Part(rel, rows, bucket, path.stat().st_size))
    return found


def init_store(store: Store, *, buckets: int = 16, adopt: bool = False) -> InitResult:
    """Create an empty store, or (``adopt``) rebuild the lost manifest of an existing one.

    Adopting takes every part file named as the store names them (``transactions/bNNN/
    gNNNNNN-NNNN.parquet`` and the like) as committed, including parts of a write that
    was interrupted; the record of which files were ingested is lost, so re-ingesting a
    file relies on row de-duplication. Parts a compaction retired while a reader held the
    store (``retired`` in the lost manifest, deleted by the next commit without readers)
    are taken as current too, and their rows appear twice: remove the parts a backup of
    the manifest lists as retired before adopting. Other files in the directory are left
    alone.

    Raises
    ------
    UsageError
        Adopting where a manifest exists.
    StoreCorruptError
        A directory with other content (without ``adopt``), an unreadable part, or parts
        of more buckets than ``buckets``.
    StoreLockedError
        Another process holds the store.
    """
    if store.exists():
        if adopt:
            raise UsageError(f"{store.root} has a {store.manifest_path.name}: nothing to adopt")
        manifest = store.manifest()
        counts = {k: len(manifest.parts_of(k)) for k in KINDS}
        rows = {k: sum(p.rows for p in manifest.parts_of(k)) for k in KINDS}
        return InitResult(str(store.root), "exists", counts, rows)
    if not adopt:
        with store.writer(buckets=buckets) as writer:
            writer.commit()
        return InitResult(
            str(store.root), "created", dict.fromkeys(KINDS, 0), dict.fromkeys(KINDS, 0)
        )
    with store.lock():
        found = _found_parts(store)
        highest = max((p.bucket for p in found["transactions"] if p.bucket is not None), default=-1)
        if highest >= buckets:
            raise StoreCorruptError(
                f"{store.root}: parts of bucket {highest} found; adopt with --buckets "
                f"{highest + 1} or more (the store's bucket count)"
            )
        generation = max(
            (int(m["gen"]) for ps in found.values() for p in ps if (m := PART_PATH.match(p.path))),
            default=0,
        )
        manifest = Manifest(generation, buckets, {k: tuple(v) for k, v in found.items()})
        payload = json.dumps(manifest.to_json(), indent=2, sort_keys=True).encode("utf-8")
        atomic_write_bytes(store.manifest_path, payload)
    return InitResult(
        str(store.root),
        "adopted",
        {k: len(v) for k, v in found.items()},
        {k: sum(p.rows for p in v) for k, v in found.items()},
    )
