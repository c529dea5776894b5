"""Training, scoring and the daily run at scale, and the feature map on a Dask cluster.

``python -m bench scale --customers 250000 --customers 1000000`` generates (once, cached)
a simulated history of that many customers from 2022-01-01 to 2025-01-01, ingests all but
its last day into a store and keeps the last day as the daily run's inbox file. It then
measures, in child processes:

* ``train``: ``crmkit train --as-of 2024-10-01 --horizon 90`` (defaults: 16 snapshots,
  ``max_training_rows`` 500,000), with the validation AUC and ECE from the model card;
* ``score``: every eligible customer as of 2025-01-01;
* ``run``: the daily job on a fresh copy of the store (ingest the inbox, score, write the list).

``--previous DIR`` also trains, scores and runs with the crmkit source tree in DIR (an
older checkout) for comparison, training stopped after ``--previous-timeout`` seconds;
its score and run use the model the current code trained. ``--unsampled`` adds a training
with ``max_training_rows = 0`` (every row). ``--dask`` times ``crmkit features`` on the
10M-row store, in this process against a two-worker Dask LocalCluster, interleaved.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import polars as pl

from bench.common import (
    DATA,
    Measurement,
    crmkit,
    previous_cli,
    print_table,
    run_measured,
    run_rounds,
    save,
)
from bench.features import store_for

AS_OF = "2024-10-01"
RUN_DAY = "2025-01-01"
LAST_DAY = "2024-12-31"


def dataset(customers: int) -> tuple[Path, Path]:
    """Return (store, inbox directory) for ``customers``, generating them once."""
    root = DATA / f"scale-{customers}"
    store, inbox = root / "store", root / "inbox"
    if (store / "manifest.json").exists() and any(inbox.glob("*.csv")):
        return store, inbox
    shutil.rmtree(root, ignore_errors=True)
    raw = root / "raw"
    subprocess.run(
        crmkit(
            "sample",
            "--customers",
            str(customers),
            "--seed",
            "1",
            "--start",
            "2022-01-01",
            "--end",
            RUN_DAY,
            "--format",
            "parquet",
            "--out",
            str(raw),
            "--quiet",
        ),
        check=True,
    )
    tx = pl.scan_parquet(raw / "transactions.parquet")
    history, last = root / "history.csv", inbox / f"export-{LAST_DAY}.csv"
    inbox.mkdir(parents=True)
    tx.filter(pl.col("ts") < pl.lit(LAST_DAY).str.to_datetime()).sink_csv(history)
    tx.filter(pl.col("ts") >= pl.lit(LAST_DAY).str.to_datetime()).sink_csv(last)
    subprocess.run(crmkit("ingest", str(history), "--store", str(store), "--quiet"), check=True)
    history.unlink()
    shutil.rmtree(raw)
    return store, inbox


def _card_metrics(registry: Path) -> str:
    cards = sorted(registry.glob("churn/*/card.json"), key=lambda p: int(p.parent.name))
    card = json.loads(cards[-1].read_text())
    row = card["validation_metrics"][0]
    return (
        f"AUC {row['roc_auc']:.4f} ECE {row['ece']:.4f} rows {card['training_rows']:,} "
        f"calibration {card['calibration']}"
    )


def measure(
    customers: int, previous: Path | None, timeout: float, unsampled: bool
) -> list[Measurement]:
    store, inbox = dataset(customers)
    rows = []
    with tempfile.TemporaryDirectory(dir=DATA) as tmp:
        scratch = Path(tmp)
        registry = scratch / "models"
        train = ["train", "--as-of", AS_OF, "--horizon", "90", "--store", str(store), "--quiet"]
        m = run_measured("train", crmkit(*train, "--registry", str(registry)))
        m.note = _card_metrics(registry)
        rows.append(m)
        if unsampled:
            config = scratch / "unsampled.toml"
            config.write_text("[model]\nmax_training_rows = 0\n")
            other = scratch / "models-unsampled"
            argv = crmkit(*train, "--registry", str(other), "--config", str(config))
            m = run_measured("train, every row", argv)
            m.note = _card_metrics(other)
            rows.append(m)
        if previous is not None:
            other = scratch / "models-previous"
            argv = [*previous_cli(previous, scratch), *train, "--registry", str(other)]
            try:
                m = run_measured("train, previous code", argv, timeout=timeout)
                m.note = _card_metrics(other)
            except subprocess.TimeoutExpired:
                m = Measurement("train, previous code", float("nan"), 0.0, f"> {timeout:.0f} s")
            rows.append(m)
        rows += _score_and_run(store, inbox, registry, scratch, crmkit(), "")
        if previous is not None:
            cli = previous_cli(previous, scratch)
            rows += _score_and_run(store, inbox, registry, scratch, cli, ", previous code")
    return rows


def _score_and_run(
    store: Path, inbox: Path, registry: Path, scratch: Path, cli: list[str], label: str
) -> list[Measurement]:
    """``score`` to a Parquet file and ``run`` on a fresh copy of the store, with ``cli``."""
    rows = []
    out = scratch / "scores.parquet"
    score = [*cli, "score", "--as-of", RUN_DAY, "--out", str(out), "--quiet"]
    m = run_measured(f"score{label}", [*score, "--store", str(store), "--registry", str(registry)])
    m.note = f"{pl.scan_parquet(out).select(pl.len()).collect().item():,} customers"
    out.unlink()
    rows.append(m)
    copy = scratch / "store"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(store, copy)
    lists = scratch / "lists"
    shutil.rmtree(lists, ignore_errors=True)
    day = scratch / "inbox"  # the run moves its files to processed/: a copy each time
    shutil.rmtree(day, ignore_errors=True)
    shutil.copytree(inbox, day)
    run = [*cli, "run", "--date", RUN_DAY, "--campaign", "scale", "--inbox", str(day)]
    argv = [*run, "--out", str(lists), "--store", str(copy), "--registry", str(registry), "-q"]
    m = run_measured(f"run{label}", argv)
    written = sorted(lists.glob("scale/*.assignments.csv"))
    m.note = f"{pl.scan_csv(written[-1]).select(pl.len()).collect().item():,} assignments"
    rows.append(m)
    return rows


def dask_features(repeat: int) -> list[Measurement]:
    """``crmkit features`` on the 10M-row store: local against a 2-worker LocalCluster."""
    store = store_for(10_000_000)
    with tempfile.TemporaryDirectory(dir=DATA) as tmp:
        out = Path(tmp) / "f.parquet"
        base = ["features", "--as-of", RUN_DAY, "--out", str(out), "--store", str(store), "-q"]
        contenders = [
            ("features, local", crmkit(*base), ""),
            ("features, dask 2 workers", crmkit(*base, "--executor", "dask"), ""),
        ]
        return run_rounds(contenders, repeat, lambda: out.unlink(missing_ok=True))


def run(
    customers: list[int],
    previous: Path | None = None,
    timeout: float = 1800.0,
    unsampled: bool = False,
    dask: bool = False,
    repeat: int = 1,
) -> None:
    results: dict[str, list[Measurement]] = {}
    for n in customers:
        rows = measure(n, previous, timeout, unsampled)
        results[str(n)] = rows
        print_table(f"{n:,} customers", rows, "train")
    if dask:
        rows = dask_features(repeat)
        results["dask-10000000-rows"] = rows
        print_table("features at 10M rows: local vs Dask", rows, "features, local")
    name = "-".join(["scale", *map(str, customers), *(["dask"] if dask else [])])
    save(name, dict(results))
