"""Churn model quality on the real Online Retail II data, out of time.

Train with ``--as-of 2011-09-01 --horizon 90`` (labels only from before that date), score
every customer with a purchase before 2011-09-01, and compare with what they did in
[2011-09-01, 2011-11-30). The population of the data README's reference baselines is every
customer with an order before T; crmkit scores customers active in the last 365 days, so
both populations are reported.
"""

from __future__ import annotations

import datetime as dt
import itertools
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from bench.common import DATA, ROOT, crmkit, save

RETAIL = ROOT.parent / "shared" / "data" / "online_retail_ii" / "online_retail_ii.csv.gz"
CONFIG = ROOT / "sample_data" / "online_retail_ii.toml"
AS_OF = dt.date(2011, 9, 1)
HORIZON = 90


def retail_store() -> Path:
    store = DATA / "store-retail"
    if not (store / "manifest.json").exists():
        subprocess.run(
            crmkit(
                "ingest", str(RETAIL), "--config", str(CONFIG), "--store", str(store), "--quiet"
            ),
            check=True,
        )
    return store


LOOKBACKS = {"active 365 d": 365, "all customers": 100_000}


#: (kind, CLV features) trained per population: the default blend first.
VARIANTS = (("blend", False), ("blend", True), ("hgb", False), ("logreg", False))


def bare_store(store: Path) -> Path:
    """The same transactions summed per order: customer, time, amount and order only.

    An order-level export without product, category, channel or quantity columns.
    """
    bare = DATA / "store-retail-bare"
    if not (bare / "manifest.json").exists():
        csv = DATA / "retail-bare.csv"
        tx = pl.scan_parquet(str(store / "transactions" / "**" / "*.parquet"))
        orders = tx.group_by("customer_id", "order_id", "ts").agg(pl.col("amount").sum())
        orders.sort("ts", "customer_id", "order_id").sink_csv(csv)
        subprocess.run(crmkit("ingest", str(csv), "--store", str(bare), "--quiet"), check=True)
    return bare


def _evaluate(store: Any, kind: str, lookback: int, with_clv: bool, registry: Any) -> tuple:
    from crmkit.config.settings import FeatureConfig, ModelConfig, SegmentConfig
    from crmkit.features.customer import churn_labels
    from crmkit.models.churn import train
    from crmkit.models.metrics import churn_metrics
    from crmkit.models.registry import ModelRef
    from crmkit.models.scoring import score_customers

    start = time.perf_counter()
    cfg = ModelConfig(kind=kind, lookback_days=lookback, clv_features=with_clv)
    result = train(store, AS_OF, HORIZON, cfg, FeatureConfig(), created=dt.datetime(2026, 1, 1))
    seconds = time.perf_counter() - start
    registry.save(kind, result.model, result.card)
    scores = score_customers(store, AS_OF, ModelRef(kind), registry, SegmentConfig()).frame
    labels = churn_labels(store.transactions(), scores.lazy(), AS_OF, HORIZON).collect()
    scored = scores.join(labels, on="customer_id")
    y = scored["churned"].cast(pl.Int64).to_numpy()
    row = {
        "customers": scored.height,
        "churn_rate": float(y.mean()),
        "train_s": seconds,
        **churn_metrics(y, scored["churn_probability"].to_numpy()),
    }
    return row, result.importance


def run(_rows: int = 0) -> None:
    from crmkit.config.settings import FeatureConfig
    from crmkit.features.customer import churn_labels
    from crmkit.features.pipeline import store_features
    from crmkit.models.metrics import churn_metrics
    from crmkit.models.registry import Registry
    from crmkit.models.validation import baseline_scores
    from crmkit.store.core import Store

    store = Store(retail_store())
    everyone = store_features(store, AS_OF, FeatureConfig())
    labels = churn_labels(store.transactions(), everyone.lazy(), AS_OF, HORIZON).collect()
    truth = everyone.join(labels, on="customer_id")
    rows = []
    importance = None
    with tempfile.TemporaryDirectory() as tmp:
        registry = Registry(Path(tmp))
        runs = itertools.product(LOOKBACKS.items(), VARIANTS)
        for (population, lookback), (kind, with_clv) in runs:
            row, found = _evaluate(store, kind, lookback, with_clv, registry)
            name = f"crmkit {kind}{' + clv' if with_clv else ''} ({population})"
            rows.append({"score": name, **row})
            if (kind, with_clv, population) == ("blend", False, "all customers"):
                importance = found
        bare = Store(bare_store(store.root))
        row, _ = _evaluate(bare, "blend", LOOKBACKS["all customers"], False, registry)
        rows.append({"score": "crmkit blend, no mix columns (all customers)", **row})
    y_all = truth["churned"].cast(pl.Int64).to_numpy()
    active = truth.filter(pl.col("recency_days") <= 365)
    y_act = active["churned"].cast(pl.Int64).to_numpy()
    for name, frame, y in (("all customers", truth, y_all), ("active 365 d", active, y_act)):
        base = baseline_scores(frame)
        for label, score in (
            ("recency in days", base["baseline_recency"]),
            ("-(distinct purchase days)", -frame["purchase_days"].cast(pl.Float64).to_numpy()),
        ):
            m = churn_metrics(y, _rank01(score))
            rows.append(
                {
                    "score": f"{label} ({name})",
                    "customers": frame.height,
                    "churn_rate": float(y.mean()),
                    "train_s": 0.0,
                    "roc_auc": m["roc_auc"],
                    "pr_auc": m["pr_auc"],
                }
            )
    table = pl.DataFrame(rows)
    with pl.Config(tbl_rows=20, tbl_cols=12, tbl_width_chars=160, float_precision=3):
        print(f"\nchurn model, Online Retail II, as of {AS_OF}, {HORIZON}-day horizon (test)")
        print(table)
    if importance is not None:
        with pl.Config(tbl_rows=20, float_precision=4):
            print("\npermutation importance of the default model (all customers), ROC AUC drop")
            print(importance.head(20))
    save(
        "model-retail",
        {
            "as_of": str(AS_OF),
            "horizon": HORIZON,
            "rows": table.to_dicts(),
            "importance": importance.head(30).to_dicts() if importance is not None else [],
        },
    )


def _rank01(score: np.ndarray) -> np.ndarray:
    order = np.argsort(np.argsort(score, kind="stable"), kind="stable")
    return (order + 0.5) / len(score)
