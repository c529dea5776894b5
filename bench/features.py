"""Feature benchmark: crmkit features vs DuckDB SQL and a pandas groupby, same aggregates.

All read the same Parquet files of a crmkit store (ingested once and cached) and compute
the per-customer aggregates of the feature pipeline as of the day after the data. DuckDB
runs twice: the aggregates of the day pass alone, and with the mix aggregates (products,
categories, channels, units, and the vocabulary's shares). crmkit also runs with
``[features] mix = false``, and on a copy of the store whose export had no product,
category or channel column (the mix pass skipped). With ``--previous DIR`` the crmkit source
tree in DIR (an older checkout, e.g. ``git worktree add ../v2 <commit>``) runs on both
stores, and the note says whether its table is the same as this one's.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import textwrap
from pathlib import Path

import polars as pl

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


def store_for(rows: int, bare: bool = False) -> Path:
    """The store of the simulator's ``rows``; ``bare``: of its export without mix columns."""
    store = DATA / (f"store-{rows}-bare" if bare else f"store-{rows}")
    if not (store / "manifest.json").exists():
        csv = sample_data(rows)
        if bare:
            plain = DATA / f"sample-{rows}" / "transactions-bare.csv"
            columns = pl.scan_csv(csv).collect_schema().names()
            kept = [c for c in columns if c not in ("product", "category", "channel")]
            pl.scan_csv(csv, infer_schema=False).select(kept).sink_csv(plain)
            csv = plain
        subprocess.run(crmkit("ingest", str(csv), "--store", str(store), "--quiet"), check=True)
    return store


def duckdb_sql(glob: str, out: str, vocab: tuple[list[str], list[str]] | None = None) -> str:
    """The day-pass aggregates; with ``vocab`` (categories, channels), the mix ones too."""
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
    mix_ctes, mix_join = ("", "") if vocab is None else (duckdb_mix(*vocab), MIX_JOIN)
    tx_cols = "" if vocab is None else "quantity, product, category, channel,"
    return textwrap.dedent(f"""
        COPY (
        WITH tx AS (
          SELECT customer_id, ts, amount, {tx_cols}
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
          FROM gaps GROUP BY 1){mix_ctes}
        SELECT *, DATE '{AS_OF}' - last_purchase AS recency_days,
               DATE '{AS_OF}' - first_purchase AS tenure_days,
               CASE WHEN purchase_days > 1
                    THEN (last_purchase - first_purchase) / (purchase_days - 1) END
                 AS mean_cycle_days,
               gross_spend / purchase_days AS mean_spend_per_day
        FROM agg {mix_join} WHERE purchase_days > 0 ORDER BY customer_id
        ) TO '{out}' (FORMAT parquet)
        """)


MIX_JOIN = (
    "LEFT JOIN prod USING (customer_id) LEFT JOIN catagg USING (customer_id) "
    "LEFT JOIN chanagg USING (customer_id) LEFT JOIN lineagg USING (customer_id) "
    "LEFT JOIN chandays USING (customer_id)"
)


def duckdb_mix(categories: list[str], channels: list[str], w: int = 90) -> str:
    """CTEs of the mix aggregates: what crmkit's mix pass computes, per customer."""

    def q(v: str) -> str:
        return "'" + v.replace("'", "''") + "'"

    shares = [
        f"sum(amount) FILTER (WHERE amount > 0 AND category = {q(v)}) / sum(amount) FILTER"
        f" (WHERE amount > 0) AS category_share_{i}"
        for i, v in enumerate(categories)
    ] + [
        f"sum(amount) FILTER (WHERE amount > 0 AND channel = {q(v)}) / sum(amount) FILTER"
        f" (WHERE amount > 0) AS channel_share_{i}"
        for i, v in enumerate(channels)
    ]
    days = [
        f"count(DISTINCT day) FILTER (WHERE amount > 0 AND channel = {q(v)}) AS channel_days_{i}"
        for i, v in enumerate(channels)
    ]
    recent, before = f"age <= {w}", f"age > {w} AND age <= {2 * w}"
    return f""",
        lines AS (
          SELECT customer_id, CAST(ts AS DATE) AS day, amount, abs(quantity) AS qty,
                 nullif(product, '') AS product, nullif(category, '') AS category,
                 nullif(channel, '') AS channel, DATE '{AS_OF}' - CAST(ts AS DATE) AS age
          FROM tx),
        prod AS (
          SELECT customer_id, count(*) AS distinct_products,
                 count(*) FILTER (WHERE r) AS products_recent,
                 count(*) FILTER (WHERE b) AS products_before
          FROM (SELECT customer_id, product, bool_or({recent}) AS r, bool_or({before}) AS b
                FROM lines WHERE amount > 0 AND product IS NOT NULL GROUP BY 1, 2)
          GROUP BY 1),
        cat AS (
          SELECT customer_id, category,
                 coalesce(sum(amount) FILTER (WHERE amount > 0), 0) AS g,
                 coalesce(sum(-amount) FILTER (WHERE amount <= 0), 0) AS r,
                 coalesce(sum(amount) FILTER (WHERE amount > 0 AND {recent}), 0) AS gr,
                 coalesce(sum(amount) FILTER (WHERE amount > 0 AND {before}), 0) AS gb
          FROM lines WHERE category IS NOT NULL GROUP BY 1, 2),
        catagg AS (
          SELECT customer_id, count(*) AS distinct_categories,
                 count(*) FILTER (WHERE gr > 0) AS categories_recent,
                 count(*) FILTER (WHERE gb > 0) AS categories_before,
                 max(g) / sum(g) AS top_category_share,
                 CASE WHEN count(*) > 1 THEN -sum(g / t * ln(g / t)) / ln(count(*)) ELSE 0 END
                   AS category_entropy,
                 max(gr) / nullif(sum(gr), 0) - max(gb) / nullif(sum(gb), 0)
                   AS top_category_share_change,
                 max(r / g) FILTER (WHERE g * 10 >= t) AS category_refund_share_max
          FROM (SELECT *, sum(g) OVER (PARTITION BY customer_id) AS t FROM cat WHERE g > 0)
          GROUP BY 1),
        chan AS (
          SELECT customer_id, channel,
                 coalesce(sum(amount) FILTER (WHERE {recent}), 0) AS gr,
                 coalesce(sum(amount) FILTER (WHERE {before}), 0) AS gb
          FROM lines WHERE amount > 0 AND channel IS NOT NULL GROUP BY 1, 2),
        chanagg AS (
          SELECT customer_id, count(*) AS distinct_channels,
                 arg_max(channel, gr) FILTER (WHERE gr > 0)
                   <> arg_max(channel, gb) FILTER (WHERE gb > 0) AS channel_switch
          FROM chan GROUP BY 1),
        lineagg AS (
          SELECT customer_id, count(*) FILTER (WHERE amount > 0) AS lines,
                 sum(qty) FILTER (WHERE amount > 0) AS units,
                 sum(amount) FILTER (WHERE amount > 0 AND qty IS NOT NULL)
                   / nullif(sum(qty) FILTER (WHERE amount > 0), 0) AS mean_unit_price,
                 {", ".join(shares) or "NULL AS no_shares"}
          FROM lines GROUP BY 1),
        chandays AS (
          SELECT customer_id, {", ".join(days) or "NULL AS no_days"}
          FROM lines GROUP BY 1)"""


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


def _features(out: Path, store: Path, *extra: str) -> list[str]:
    return crmkit("features", "--as-of", AS_OF, "--out", str(out), "--store", str(store),
                  *extra, "--quiet")  # fmt: skip


def _vocabulary(store: Path) -> tuple[list[str], list[str]]:
    """The categories and channels crmkit gives share columns, for the DuckDB query."""
    import datetime as dt

    from crmkit.config.settings import FeatureConfig
    from crmkit.features.vocabulary import learn_vocabulary
    from crmkit.store.core import Store

    vocab = learn_vocabulary(Store(store).transactions(), dt.date.fromisoformat(AS_OF),
                             FeatureConfig())  # fmt: skip
    return list(vocab.categories), list(vocab.channels)


def _same(a: Path, b: Path) -> str:
    """Whether two feature tables are the same, value for value."""
    left, right = pl.read_parquet(a), pl.read_parquet(b)
    if left.columns != right.columns:
        return f"other columns ({len(set(left.columns) ^ set(right.columns))} differ)"
    return "same table" if left.equals(right) else "same columns, other values"


def run(rows: int, repeat: int = 1, previous: Path | None = None) -> None:
    store, bare = store_for(rows), store_for(rows, bare=True)
    glob = str(store / "transactions" / "*" / "*.parquet")
    manifest = json.loads((store / "manifest.json").read_text())
    actual = sum(p["rows"] for p in manifest["parts"]["transactions"])
    with tempfile.TemporaryDirectory(dir=store.parent) as tmp:
        work = Path(tmp)
        no_mix = work / "no-mix.toml"
        no_mix.write_text("[features]\nmix = false\n")
        day_sql = duckdb_sql(glob, str(work / "d.parquet"))
        mix_sql = duckdb_sql(glob, str(work / "dm.parquet"), _vocabulary(store))
        mix_off = ["--config", str(no_mix)]
        bare_note = "export without product, category, channel"
        contenders = [
            ("crmkit features", _features(work / "c.parquet", store), "mix on (the default)"),
            ("crmkit features, mix off", _features(work / "n.parquet", store, *mix_off), ""),
            ("crmkit, no mix columns", _features(work / "b.parquet", bare), bare_note),
            ("duckdb SQL, mix", python(f"import duckdb; duckdb.sql({mix_sql!r})"), "with mix"),
            ("duckdb SQL", python(f"import duckdb; duckdb.sql({day_sql!r})"), "day pass only"),
        ]
        if previous is not None:
            argv = [*previous_cli(previous, work), "features", "--as-of", AS_OF, "--quiet"]
            old = [*argv, "--out", str(work / "v.parquet"), "--store", str(store)]
            old_bare = [*argv, "--out", str(work / "vb.parquet"), "--store", str(bare)]
            contenders[3:3] = [("previous", old, ""), ("previous, no mix columns", old_bare, "")]
        if rows <= 10_000_000:
            contenders.append(
                (
                    "pandas groupby",
                    python(pandas_code(glob, str(work / "p.parquet"))),
                    "day-pass aggregates",
                )
            )
        results = run_rounds(contenders, repeat, lambda: None)
        if previous is not None:
            for m in results:
                if m.name.startswith("previous"):
                    bare_run = m.name.endswith("columns")
                    pair = ("vb", "b") if bare_run else ("v", "c")
                    m.note = _same(work / f"{pair[0]}.parquet", work / f"{pair[1]}.parquet")
    print_table(f"features: {actual:,} transactions", results, "crmkit features")
    save(f"features-{rows}", {"rows": actual, "results": results})
