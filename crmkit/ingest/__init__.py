"""Reading messy transaction exports into the canonical schema."""

from crmkit.ingest.core import ingest_files
from crmkit.ingest.report import FileReport, IngestReport

__all__ = ["FileReport", "IngestReport", "ingest_files"]
