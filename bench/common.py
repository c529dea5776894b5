"""Shared benchmark helpers: data generation, measured subprocesses, result tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / ".data"
RESULTS = ROOT / "bench" / "results"
ROWS_PER_CUSTOMER = 6.07  # mean rows per customer of the default simulator settings


@dataclass
class Measurement:
    name: str
    seconds: float
    peak_rss_mb: float
    note: str = ""


def run_measured(name: str, argv: list[str], note: str = "") -> Measurement:
    """Run argv in a child process; return wall time and the child's peak RSS."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{name} failed: {stderr[-2000:]}")
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    if not note and last.startswith("{"):
        note = last
    return Measurement(name, seconds, usage.ru_maxrss / 1024, note)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def crmkit(*args: str) -> list[str]:
    return [sys.executable, "-m", "crmkit_cli", *args]


def sample_data(rows: int, seed: int = 1) -> Path:
    """Generate (once) a simulator dataset of about ``rows`` rows; return its CSV path."""
    customers = max(1, round(rows / ROWS_PER_CUSTOMER))
    out = DATA / f"sample-{rows}"
    csv = out / "transactions.csv"
    if not csv.exists():
        subprocess.run(
            crmkit(
                "sample",
                "--customers",
                str(customers),
                "--seed",
                str(seed),
                "--out",
                str(out),
                "--start",
                "2022-01-01",
                "--end",
                "2025-01-01",
                "--quiet",
            ),
            check=True,
        )
    return csv


def print_table(title: str, rows: list[Measurement], baseline: str) -> None:
    base = next(m for m in rows if m.name == baseline)
    print(f"\n{title}")
    print(f"{'contender':<28}{'wall s':>10}{'peak RSS MB':>14}{'time / ' + baseline:>22}  note")
    for m in rows:
        ratio = m.seconds / base.seconds
        print(f"{m.name:<28}{m.seconds:>10.2f}{m.peak_rss_mb:>14.0f}{ratio:>22.2f}  {m.note}")


def save(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    for key, value in payload.items():
        if isinstance(value, list):
            payload[key] = [asdict(v) if isinstance(v, Measurement) else v for v in value]
    path.write_text(json.dumps(payload, indent=2))
    return path
