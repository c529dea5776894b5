"""Database source benchmark: 10M transactions from PostgreSQL into a crmkit store.

Starts a PostgreSQL server of its own (as the tests do), loads the simulator's CSV into a
typed table, then times each way of getting those rows into a store, interleaved:

- ``crmkit ingest URI --table`` (ADBC, Arrow batches streamed to staging; crmkit's path);
- connectorx through ``polars.read_database_uri``, then the frame ingested as Parquet;
- ADBC through ``polars.read_database_uri`` (the whole result in memory), the same way;
- "export CSV then ingest": ``psql \\copy ... TO`` a CSV file, then ``crmkit ingest`` it.

Each contender runs in one child process whose peak memory is sampled (psql's own, a
streaming COPY client of a few MB, is not counted).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, print_table, python, run_rounds, sample_data, save

TABLE = "bench_tx"
COLUMNS = (
    "customer_id TEXT, ts TIMESTAMP, amount NUMERIC(12,2), order_id TEXT, quantity INTEGER, "
    "unit_price NUMERIC(12,2), product TEXT, category TEXT, channel TEXT, country TEXT"
)


def _ingest_frame(read: str, work: Path) -> str:
    """Python code: read the table into ``frame`` with ``read``, ingest it as Parquet."""
    return (
        "import sys, datetime as dt, polars as pl\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from crmkit.config.settings import IngestConfig\n"
        "from crmkit.ingest import ingest_files\n"
        "from crmkit.store.core import Store\n"
        f"{read}\n"
        f"frame.write_parquet({str(work / 'pulled.parquet')!r})\n"
        "del frame\n"
        f"ingest_files([{str(work / 'pulled.parquet')!r}], Store(__import__('pathlib').Path("
        f"{str(work / 'store')!r})), IngestConfig(), now=dt.datetime(2026, 1, 1))\n"
    )


def _csv_round_trip(psql: Path, uri: str, work: Path) -> str:
    export = f"\\copy {TABLE} TO '{work / 'export.csv'}' CSV HEADER"
    return (
        "import subprocess, sys, datetime as dt\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        f"subprocess.run([{str(psql)!r}, '-X', '-q', '-d', {uri!r}, '-c', {export!r}],"
        " check=True)\n"
        "from crmkit.config.settings import IngestConfig\n"
        "from crmkit.ingest import ingest_files\n"
        "from crmkit.store.core import Store\n"
        f"ingest_files([{str(work / 'export.csv')!r}], Store(__import__('pathlib').Path("
        f"{str(work / 'store')!r})), IngestConfig(), now=dt.datetime(2026, 1, 1))\n"
    )


def run(rows: int, repeat: int = 1) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.pgserver import running_server

    csv = sample_data(rows)
    with running_server() as server, tempfile.TemporaryDirectory(dir=csv.parent) as tmp:
        work = Path(tmp)
        uri = server.uri()
        server.psql(f"CREATE TABLE {TABLE} ({COLUMNS});")
        header = csv.open().readline().strip()
        start = time.perf_counter()
        subprocess.run(
            [str(server.bin / "psql"), "-X", "-q", "-d", uri, "-c",
             f"\\copy {TABLE} ({header}) FROM '{csv}' CSV HEADER"],
            check=True,
        )  # fmt: skip
        loaded = time.perf_counter() - start
        print(f"loaded {rows:,} rows into PostgreSQL in {loaded:.1f} s", flush=True)
        store = str(work / "store")
        contenders = [
            (
                "crmkit ingest (ADBC, streamed)",
                [
                    sys.executable,
                    "-m",
                    "crmkit_cli",
                    "ingest",
                    uri,
                    "--table",
                    TABLE,
                    "--store",
                    store,
                    "--quiet",
                ],
                "crmkit's path",
            ),
            (
                "connectorx frame + ingest",
                python(
                    _ingest_frame(
                        f"frame = pl.read_database_uri('SELECT * FROM {TABLE}', {uri!r}, "
                        "engine='connectorx')",
                        work,
                    )
                ),
                "whole result in memory",
            ),
            (
                "ADBC frame + ingest",
                python(
                    _ingest_frame(
                        f"frame = pl.read_database_uri('SELECT * FROM {TABLE}', {uri!r}, "
                        "engine='adbc')",
                        work,
                    )
                ),
                "whole result in memory",
            ),
            (
                "export CSV, then ingest",
                python(_csv_round_trip(server.bin / "psql", uri, work)),
                "psql \\copy TO, crmkit ingest",
            ),
        ]

        def clean() -> None:
            shutil.rmtree(work / "store", ignore_errors=True)
            for name in ("pulled.parquet", "export.csv"):
                (work / name).unlink(missing_ok=True)

        results = run_rounds(contenders, repeat, clean)
    baseline = "export CSV, then ingest"
    print_table(f"PostgreSQL to store: {rows:,} rows", results, baseline)
    save(f"sources-{rows}", {"rows": rows, "load_seconds": loaded, "results": results})
