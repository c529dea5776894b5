"""What ingest reports: per file and in total, ``rows_read = stored + duplicate + quarantined``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal


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
    #: The day/month order the file was read in, where it was told, seen or remembered
    #: (``None`` where no date has an order, or ambiguous dates were read month-first).
    dayfirst: bool | None = None

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
