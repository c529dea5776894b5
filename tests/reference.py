"""A slow, obvious reference implementation of the feature pipeline (plain Python loops)."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import statistics
from collections import defaultdict

from crmkit.config import FeatureConfig


def reference_features(rows: list[dict], as_of: dt.date, cfg: FeatureConfig) -> dict[str, dict]:
    cutoff = dt.datetime.combine(as_of, dt.time())
    days: dict[str, dict[dt.date, dict]] = defaultdict(dict)
    for r in rows:
        if r["ts"] >= cutoff:
            continue
        d = days[r["customer_id"]].setdefault(
            r["ts"].date(), {"gross": 0.0, "refunds": 0.0, "keys": set()}
        )
        if r["amount"] > 0:
            d["gross"] += r["amount"]
            d["keys"].add(r["order_id"] if r["order_id"] is not None else r["ts"].isoformat())
        else:
            d["refunds"] += -r["amount"]
    out: dict[str, dict] = {}
    for cid, by_day in days.items():
        purchase = sorted(day for day, d in by_day.items() if d["gross"] > 0)
        if not purchase:
            continue
        n = len(purchase)
        gross = sum(d["gross"] for d in by_day.values())
        refunds = sum(d["refunds"] for d in by_day.values())
        orders = sum(len(d["keys"]) for d in by_day.values())
        gaps = [(b - a).days for a, b in itertools.pairwise(purchase)]
        recency = (as_of - purchase[-1]).days
        cycle = (purchase[-1] - purchase[0]).days / (n - 1) if n > 1 else None
        f = {
            "first_purchase": purchase[0],
            "last_purchase": purchase[-1],
            "tenure_days": (as_of - purchase[0]).days,
            "recency_days": recency,
            "purchase_days": n,
            "orders": orders,
            "is_one_time": n == 1,
            "gross_spend": gross,
            "first_day_spend": by_day[purchase[0]]["gross"],
            "refunds": refunds,
            "net_spend": gross - refunds,
            "refund_share": refunds / gross,
            "mean_order_value": gross / orders,
            "mean_spend_per_day": gross / n,
            "mean_cycle_days": cycle,
            "std_cycle_days": statistics.stdev(gaps) if len(gaps) >= 2 else None,
            "overdue_ratio": recency / cycle if cycle else None,
        }
        for w in cfg.windows:
            start = as_of - dt.timedelta(days=w)
            prev = start - dt.timedelta(days=w)
            f[f"days_{w}"] = sum(1 for day in purchase if day >= start)
            f[f"spend_{w}"] = sum(
                d["gross"] - d["refunds"] for day, d in by_day.items() if day >= start
            )
            f[f"days_prev_{w}"] = sum(1 for day in purchase if prev <= day < start)
            f[f"spend_prev_{w}"] = sum(
                d["gross"] - d["refunds"] for day, d in by_day.items() if prev <= day < start
            )
            now, before = f[f"spend_{w}"], f[f"spend_prev_{w}"]
            f[f"days_change_{w}"] = f[f"days_{w}"] - f[f"days_prev_{w}"]
            f[f"spend_change_{w}"] = now - before
            scale = abs(now) + abs(before)
            f[f"spend_trend_{w}"] = (now - before) / scale if scale > 0 else 0.0
        ly = as_of - dt.timedelta(days=365)
        ly_end = ly + dt.timedelta(days=cfg.season_window_days)
        f["days_ly_next"] = sum(1 for day in purchase if ly <= day < ly_end)
        f["spend_ly_next"] = sum(
            d["gross"] - d["refunds"] for day, d in by_day.items() if ly <= day < ly_end
        )
        f["historical_value"] = sum(
            (d["gross"] - d["refunds"])
            / (1 + cfg.value_discount_rate) ** (((as_of - day).days - 1) // cfg.value_period_days)
            for day, d in by_day.items()
        )
        out[cid] = f
    cycles = [f["mean_cycle_days"] for f in out.values() if f["mean_cycle_days"] is not None]
    median = statistics.median(cycles) if cycles else None
    spends = [max(f["net_spend"], 0.0) / f["purchase_days"] for f in out.values()]
    typical = statistics.median(spends) if spends else 0.0
    had_time = [f for f in out.values() if f["tenure_days"] >= (median or 0.0)]
    repeat_rate = sum(f["purchase_days"] >= 2 for f in had_time) / len(had_time) if had_time else 0
    h = cfg.projection_horizon_days
    for f in out.values():
        n = f["purchase_days"]
        gaps = n - 1
        span = (f["mean_cycle_days"] or 0.0) * gaps
        cycle = None if median is None else (span + median) / (gaps + 1)
        spend = max(f["net_spend"], 0.0) / n
        shrunk = math.exp((math.log1p(typical) + n * math.log1p(spend)) / (1 + n)) - 1
        p_repeat = 1.0 if n >= 2 else repeat_rate
        if cycle is None:
            value = spend
        else:
            value = (
                p_repeat
                * shrunk
                / max(cycle, 1.0)
                * h
                / (1 + cfg.annual_discount_rate) ** (h / 730)
            )
        f["projected_value"] = value
        f["customer_value"] = value
    return out


def close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return True
        # money is exact to micro-units; a discounted sum rounds each day to one micro-unit
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-4)
    return a == b
