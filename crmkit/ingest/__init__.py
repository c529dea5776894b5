"""Reading messy transaction exports into the canonical schema."""

from crmkit.ingest.core import FileReport, IngestReport, ingest_files

__all__ = ["FileReport", "IngestReport", "ingest_files"]
