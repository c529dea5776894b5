"""CLV benchmark: BG/NBD + Gamma-Gamma fit time and memory, and a holdout check on real data.

Fit time is measured in a child process on the summary statistics of a store built from the
simulator (1M and 10M transactions: about 165k and 1.65M customers), which the polars
pipeline computes; the pipeline's time is reported separately.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from bench.common import Measurement, python, run_measured, save
from bench.features import store_for
from bench.model import retail_store

FIT = """
import time, datetime as dt, json, sys
from pathlib import Path
from crmkit.store.core import Store
from crmkit.features.pipeline import store_features
from crmkit.config.settings import FeatureConfig
from crmkit.models.clv import fit_clv
t0 = time.perf_counter()
f = store_features(Store(Path({store!r})), dt.date(2025, 1, 1), FeatureConfig())
t1 = time.perf_counter()
model, info = fit_clv(f, dt.date(2025, 1, 1))
t2 = time.perf_counter()
from crmkit.models.clv import summary_statistics
from crmkit.models.clv_models import BetaGeo
bg_1m = None
if f.height > 1_000_000:
    s = summary_statistics(f, dt.date(2025, 1, 1)).sample(1_000_000, seed=1)
    t3 = time.perf_counter()
    BetaGeo().fit(s)
    bg_1m = time.perf_counter() - t3
print(json.dumps({{"customers": f.height, "pipeline_s": t1 - t0, "fit_s": t2 - t1,
                  "bgnbd_fit_1m_customers_s": bg_1m,
                  "bgnbd_iterations": info["bgnbd"].iterations,
                  "converged": info["bgnbd"].converged and info["gamma_gamma"].converged}}),
      file=sys.stderr)
"""


def fit_times(rows: int) -> Measurement:
    store = store_for(rows)
    m = run_measured(f"clv fit ({rows:,} tx)", python(FIT.format(store=str(store))))
    return m


def holdout_check() -> pl.DataFrame:
    """Fit as of 2011-06-01; compare predicted and actual repeat purchase days until the end."""
    from crmkit.config.settings import FeatureConfig
    from crmkit.features.pipeline import store_features
    from crmkit.models.clv import fit_clv, predict_clv
    from crmkit.store.core import Store

    store = Store(retail_store())
    cut, end = dt.date(2011, 6, 1), dt.date(2011, 12, 10)
    features = store_features(store, cut, FeatureConfig())
    model, _ = fit_clv(features, cut)
    predicted = predict_clv(model, features, cut, (end - cut).days)
    later = store_features(store, end, FeatureConfig()).select(
        "customer_id", pl.col("purchase_days").alias("days_end")
    )
    joined = predicted.join(features.select("customer_id", "purchase_days"), on="customer_id").join(
        later, on="customer_id"
    )
    return (
        joined.with_columns(
            (pl.col("days_end") - pl.col("purchase_days")).alias("actual"),
            pl.when(pl.col("x") >= 7)
            .then(pl.lit("7+"))
            .otherwise(pl.col("x").cast(pl.Int64).cast(pl.String))
            .alias("x_bucket"),
        )
        .group_by("x_bucket")
        .agg(
            pl.len().alias("customers"),
            pl.col("expected_purchases").mean().alias("predicted"),
            pl.col("actual").mean().alias("actual"),
        )
        .sort(pl.col("x_bucket").str.replace("7\\+", "7").cast(pl.Int64))
    )


def run(_rows: int = 0) -> None:
    results = [fit_times(r) for r in (1_000_000, 10_000_000)]
    print("\nclv: BG/NBD + Gamma-Gamma (child process; its stderr line has the split)")
    for m in results:
        print(f"{m.name:<32}{m.seconds:>8.2f} s{m.peak_rss_mb:>10.0f} MB peak  {m.note}")
    table = holdout_check()
    with pl.Config(tbl_rows=20, float_precision=3):
        print("\nOnline Retail II: fitted as of 2011-06-01, repeat purchase days until 2011-12-10")
        print(table)
    save("clv", {"fits": results, "holdout": table.to_dicts()})
