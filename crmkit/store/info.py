"""What a store holds: the summary behind `crmkit store info`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from crmkit import schema
from crmkit.store.core import Store
from crmkit.store.manifest import KINDS


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
