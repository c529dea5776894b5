"""Shared benchmark helpers: data generation, measured subprocesses, result tables."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
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
    peak_anon_mb: float = 0.0
    runs: list[float] = field(default_factory=list)


def _status_kb(pid: int, key: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _run_once(
    name: str, argv: list[str], timeout: float | None = None
) -> tuple[float, float, float, str]:
    """Run argv once; return wall seconds, peak RSS MB, peak anonymous MB and stderr.

    Peak RSS (the kernel's high-water mark) also counts pages of files the process maps,
    such as a CSV a reader memory-maps; the peak of anonymous memory (sampled every
    10 ms) is what the process itself allocated.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_anon = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_anon
        while not done.is_set():
            peak_anon = max(peak_anon, _status_kb(proc.pid, "RssAnon"))
            done.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    timer = threading.Timer(timeout, proc.kill) if timeout else None
    if timer is not None:
        timer.start()
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    if timer is not None:
        timer.cancel()
        if timeout is not None and seconds >= timeout:
            raise subprocess.TimeoutExpired(argv, timeout)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{name} failed: {stderr[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, peak_anon / 1024, stderr


def run_measured(
    name: str, argv: list[str], note: str = "", timeout: float | None = None
) -> Measurement:
    """Run argv in a child process; return wall time and the child's peak memory.

    Raises ``subprocess.TimeoutExpired`` when the child is stopped after ``timeout`` s.
    """
    seconds, rss, anon, stderr = _run_once(name, argv, timeout)
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    if not note and last.startswith("{"):
        note = last
    return Measurement(name, seconds, rss, note, anon, [seconds])


def run_rounds(
    contenders: list[tuple[str, list[str], str]], repeat: int, before: Callable[[], None]
) -> list[Measurement]:
    """Run every contender ``repeat`` times, round-robin; report the median wall time.

    Interleaving the rounds spreads a slow spell of a shared machine over all contenders
    instead of one; memory is the highest peak seen. ``before`` runs before every run
    (e.g. to remove the previous run's output).
    """
    results: dict[str, Measurement] = {}
    for _ in range(repeat):
        for name, argv, note in contenders:
            before()
            m = run_measured(name, argv, note)
            if name in results:
                r = results[name]
                r.runs.append(m.seconds)
                r.peak_rss_mb = max(r.peak_rss_mb, m.peak_rss_mb)
                r.peak_anon_mb = max(r.peak_anon_mb, m.peak_anon_mb)
            else:
                results[name] = m
    for m in results.values():
        m.seconds = statistics.median(m.runs)
    return list(results.values())


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def previous_cli(source: Path, scratch: Path) -> list[str]:
    """A command line running the crmkit CLI of an older source tree."""
    shim = scratch / "previous"
    shim.mkdir(exist_ok=True)
    for name, target in (("crmkit", source / "crmkit"), ("crmkit_cli", source / "cli")):
        link = shim / name
        if not link.exists():
            link.symlink_to(target)
    code = (
        f"import sys; sys.path.insert(0, {str(shim)!r}); from crmkit_cli.main import main; main()"
    )
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
    runs = max(len(m.runs) for m in rows)
    print(f"\n{title}" + (f" (median of {runs} interleaved runs)" if runs > 1 else ""))
    head = f"{'contender':<30}{'wall s':>8}{'range s':>14}{'peak RSS MB':>13}{'peak anon MB':>14}"
    print(f"{head}{'x ' + baseline:>24}  note")
    for m in rows:
        ratio = m.seconds / base.seconds
        spread = f"{min(m.runs):.2f}-{max(m.runs):.2f}" if m.runs else "-"
        print(
            f"{m.name:<30}{m.seconds:>8.2f}{spread:>14}{m.peak_rss_mb:>13.0f}"
            f"{m.peak_anon_mb:>14.0f}{ratio:>24.2f}  {m.note}"
        )


def save(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    for key, value in payload.items():
        if isinstance(value, list):
            payload[key] = [asdict(v) if isinstance(v, Measurement) else v for v in value]
    path.write_text(json.dumps(payload, indent=2))
    return path
