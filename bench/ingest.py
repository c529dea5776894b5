"""Ingest benchmark: crmkit ingest vs plain polars and DuckDB CSV -> Parquet."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from bench.common import crmkit, print_table, python, run_rounds, sample_data, save


def run(rows: int, repeat: int = 1) -> None:
    csv = sample_data(rows)
    size_mb = csv.stat().st_size / 2**20
    with tempfile.TemporaryDirectory(dir=csv.parent) as tmp:
        work = Path(tmp)
        contenders = [
            (
                "crmkit ingest",
                crmkit("ingest", str(csv), "--store", str(work / "store"), "--quiet"),
                "validate, quarantine, dedupe, 16 buckets",
            ),
            (
                "polars read_csv+write_parquet",
                python(
                    "import polars as pl;"
                    f"pl.read_csv({str(csv)!r}).write_parquet({str(work / 'pl.parquet')!r})"
                ),
                "no validation",
            ),
            (
                "polars scan_csv+sink_parquet",
                python(
                    "import polars as pl;"
                    f"pl.scan_csv({str(csv)!r}).sink_parquet({str(work / 'pls.parquet')!r})"
                ),
                "streaming, no validation",
            ),
            (
                "duckdb COPY",
                python(
                    "import duckdb;duckdb.sql(\"COPY (SELECT * FROM read_csv('"
                    + str(csv)
                    + "')) TO '"
                    + str(work / "dd.parquet")
                    + "' (FORMAT parquet)\")"
                ),
                "no validation",
            ),
        ]
        results = run_rounds(
            contenders, repeat, lambda: shutil.rmtree(work / "store", ignore_errors=True)
        )
    print_table(f"ingest: {rows:,} rows, CSV {size_mb:,.0f} MB", results, "crmkit ingest")
    save(f"ingest-{rows}", {"rows": rows, "csv_mb": size_mb, "results": results})
