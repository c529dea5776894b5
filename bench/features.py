"""Feature benchmark: crmkit features vs DuckDB SQL and a pandas groupby, same aggregates.

All three read the same Parquet files of a crmkit store (ingested once and cached) and
compute the per-customer aggregates of the feature pipeline as of the day after the data.
crmkit also runs with ``[features] mix = false`` and, with ``--previous DIR``, as the crmkit
source tree in DIR (an older checkout, e.g. ``git worktree add ../v2 <commit>``).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import textwrap
from pathlib import Path

from bench.common import (
    DATA,
    crmkit,
    previous_cli,
    print_table,
    python,
    run_rounds,
    sample_data,
    save,
)

AS_OF = "2025-01-01"
WINDOWS = (30, 90, 365)


def store_for(rows: int) -> Path:
    store = DATA / f"store-{rows}"
    if not (store / "manifest.json").exists():
        csv = sample_data(rows)
        subprocess.run(crmkit("ingest", str(csv), "--store", str(store), "--quiet"), check=True)
    return store


def duckdb_sql(glob: str, out: str) -> str:
    windows = []
    for w in WINDOWS:
        start = f"DATE '{AS_OF}' - INTERVAL {w} DAY"
        prev = f"DATE '{AS_OF}' - INTERVAL {2 * w} DAY"
        windows += [
            f"count(*) FILTER (WHERE gross > 0 AND day >= {start}) AS days_{w}",
            f"coalesce(sum(gross - refunds) FILTER (WHERE day >= {start}), 0) AS spend_{w}",
            f"count(*) FILTER (WHERE gross > 0 AND day >= {prev} AND day < {start})"
            f" AS days_prev_{w}",
            f"coalesce(sum(gross - refunds) FILTER (WHERE day >= {prev} AND day < {start}), 0)"
            f" AS spend_prev_{w}",
        ]
    cols = ",\n".join(windows)
    return textwrap.dedent(f"""
        COPY (
        WITH tx AS (
          SELECT customer_id, ts, amount,
                 coalesce(order_id, strftime(ts, '%Y-%m-%dT%H:%M:%S.%f')) AS okey
          FROM read_parquet('{glob}') WHERE ts < TIMESTAMP '{AS_OF}'),
        daily AS (
          SELECT customer_id, CAST(ts AS DATE) AS day,
                 sum(CASE WHEN amount > 0 THEN amount ELSE 0 END) AS gross,
                 sum(CASE WHEN amount <= 0 THEN -amount ELSE 0 END) AS refunds,
                 count(DISTINCT CASE WHEN amount > 0 THEN okey END) AS orders
          FROM tx GROUP BY 1, 2),
        gaps AS (
          SELECT *, CASE WHEN gross > 0 THEN day - lag(day) OVER (
                   PARTITION BY customer_id, gross > 0 ORDER BY day) END AS gap
          FROM daily),
        agg AS (
          SELECT customer_id,
                 min(day) FILTER (WHERE gross > 0) AS first_purchase,
                 max(day) FILTER (WHERE gross > 0) AS last_purchase,
                 count(*) FILTER (WHERE gross > 0) AS purchase_days,
                 sum(orders) AS orders, sum(gross) AS gross_spend, sum(refunds) AS refunds,
                 stddev_samp(gap) AS std_cycle_days,
                 {cols},
                 sum((gross - refunds) * pow(1.05, -floor((DATE '{AS_OF}' - day - 1) / 90)))
                   AS historical_value
          FROM gaps GROUP BY 1)
        SELECT *, DATE '{AS_OF}' - last_purchase AS recency_days,
               DATE '{AS_OF}' - first_purchase AS tenure_days,
               CASE WHEN purchase_days > 1
                    THEN (last_purchase - first_purchase) / (purchase_days - 1) END
                 AS mean_cycle_days,
               gross_spend / purchase_days AS mean_spend_per_day
        FROM agg WHERE purchase_days > 0 ORDER BY customer_id
        ) TO '{out}' (FORMAT parquet)
        """)


def pandas_code(glob: str, out: str) -> str:
    lines = [
        "import glob, pandas as pd, numpy as np",
        f"df = pd.concat([pd.read_parquet(p) for p in sorted(glob.glob({glob!r}))])",
        f"T = pd.Timestamp({AS_OF!r})",
        "df = df[df.ts < T]",
        "df['day'] = df.ts.dt.normalize()",
        "pos = df.amount > 0",
        "df['gross'] = df.amount.where(pos, 0.0)",
        "df['refunds'] = (-df.amount).where(~pos, 0.0)",
        "df['okey'] = df.order_id.fillna(df.ts.astype(str)).where(pos)",
        "d = df.groupby(['customer_id', 'day']).agg(gross=('gross', 'sum'),"
        " refunds=('refunds', 'sum'), orders=('okey', 'nunique')).reset_index()",
        "d['buy'] = d.gross > 0",
        "d['net'] = d.gross - d.refunds",
        "age = (T - d.day).dt.days",
        "d['hv'] = d.net * 1.05 ** -((age - 1) // 90)",
        "d['pday'] = d.day.where(d.buy)",
        "d = d.sort_values(['customer_id', 'day'])",
        "d['gap'] = d[d.buy].groupby('customer_id').pday.diff().dt.days",
    ]
    aggs = [
        "first_purchase=('pday', 'min')",
        "last_purchase=('pday', 'max')",
        "purchase_days=('buy', 'sum')",
        "orders=('orders', 'sum')",
        "gross_spend=('gross', 'sum')",
        "refunds=('refunds', 'sum')",
        "std_cycle_days=('gap', 'std')",
        "historical_value=('hv', 'sum')",
    ]
    for w in WINDOWS:
        lines += [
            f"inw = age <= {w}",
            f"inp = (age > {w}) & (age <= {2 * w})",
            f"d['days_{w}'] = d.buy & inw",
            f"d['spend_{w}'] = d.net.where(inw, 0.0)",
            f"d['days_prev_{w}'] = d.buy & inp",
            f"d['spend_prev_{w}'] = d.net.where(inp, 0.0)",
        ]
        aggs += [
            f"{k}_{w}=('{k}_{w}', 'sum')" for k in ("days", "spend", "days_prev", "spend_prev")
        ]
    lines += [
        f"c = d.groupby('customer_id').agg({', '.join(aggs)}).reset_index()",
        "c = c[c.purchase_days > 0]",
        "c['recency_days'] = (T - c.last_purchase).dt.days",
        "c['tenure_days'] = (T - c.first_purchase).dt.days",
        "c['mean_spend_per_day'] = c.gross_spend / c.purchase_days",
        f"c.to_parquet({out!r})",
    ]
    return "\n".join(lines)


def run(rows: int, repeat: int = 1, previous: Path | None = None) -> None:
    store = store_for(rows)
    glob = str(store / "transactions" / "*" / "*.parquet")
    manifest = json.loads((store / "manifest.json").read_text())
    actual = sum(p["rows"] for p in manifest["parts"]["transactions"])
    with tempfile.TemporaryDirectory(dir=store.parent) as tmp:
        work = Path(tmp)
        no_mix = work / "no-mix.toml"
        no_mix.write_text("[features]\nmix = false\n")
        contenders = [
            (
                "crmkit features",
                crmkit(
                    "features",
                    "--as-of",
                    AS_OF,
                    "--out",
                    str(work / "c.parquet"),
                    "--store",
                    str(store),
                    "--quiet",
                ),
                "full table + RFM + value tiers",
            ),
            (
                "crmkit features, mix off",
                crmkit(
                    "features",
                    "--as-of",
                    AS_OF,
                    "--out",
                    str(work / "n.parquet"),
                    "--store",
                    str(store),
                    "--config",
                    str(no_mix),
                    "--quiet",
                ),
                "[features] mix = false",
            ),
            (
                "duckdb SQL",
                python(f"import duckdb; duckdb.sql({duckdb_sql(glob, str(work / 'd.parquet'))!r})"),
                "same aggregates",
            ),
        ]
        if previous is not None:
            argv = previous_cli(previous, work)
            out = ["--out", str(work / "v.parquet"), "--store", str(store), "--quiet"]
            contenders.insert(
                2, ("crmkit features, previous", [*argv, "features", "--as-of", AS_OF, *out], "")
            )
        if rows <= 10_000_000:
            contenders.append(
                (
                    "pandas groupby",
                    python(pandas_code(glob, str(work / "p.parquet"))),
                    "same aggregates",
                )
            )
        results = run_rounds(contenders, repeat, lambda: None)
    print_table(f"features: {actual:,} transactions", results, "crmkit features")
    save(f"features-{rows}", {"rows": actual, "results": results})
