"""A slow, obvious reference implementation of the feature pipeline (plain Python loops)."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import statistics
from collections import defaultdict

from crmkit.config.settings import FeatureConfig


def reference_features(
    rows: list[dict], as_of: dt.date, cfg: FeatureConfig, *, mix: bool = True
) -> dict[str, dict]:
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
            "refund_share": min(refunds, gross) / gross,
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
    if mix:
        from crmkit.features.vocabulary import Vocabulary, share_columns

        names = share_columns(Vocabulary(*reference_vocabulary(rows, as_of, cfg)))
        reference_mix(rows, as_of, cfg, out, names)
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


def _text(value):
    """Text as stored: ingest strips it; empty text counts as no value."""
    return value or None


def reference_vocabulary(rows, as_of, cfg) -> tuple[tuple[str, ...], tuple[str, ...]]:
    cutoff = dt.datetime.combine(as_of, dt.time())

    def top(column, k):
        counts = defaultdict(int)
        for r in rows:
            value = _text(r.get(column))
            if r["ts"] < cutoff and r["amount"] > 0 and value is not None:
                counts[value] += 1
        return tuple(sorted(counts, key=lambda v: (-counts[v], v))[:k])

    return top("category", cfg.top_categories), top("channel", cfg.top_channels)


def _leader(spend: dict):
    """The channel with the most spend; ties to the smaller hash (as the pipeline does)."""
    from crmkit.features.mix_lines import value_hash

    positive = {k: v for k, v in spend.items() if v > 0}
    if not positive:
        return None
    return sorted(positive, key=lambda k: (-positive[k], value_hash(k)))[0]


def reference_mix(rows, as_of, cfg, features: dict[str, dict], names) -> None:
    """Add the mix features to ``features`` (per customer), as crmkit.features.mix does."""
    cutoff = dt.datetime.combine(as_of, dt.time())
    w = cfg.mix_window_days
    categories, channels = reference_vocabulary(rows, as_of, cfg)
    lines = defaultdict(list)
    for r in rows:
        if r["ts"] < cutoff:
            lines[r["customer_id"]].append(
                {
                    **r,
                    "age": (as_of - r["ts"].date()).days,
                    "pos": r["amount"] > 0,
                    **{c: _text(r.get(c)) for c in ("product", "category", "channel")},
                }
            )
    for cid, f in features.items():
        mine = lines[cid]
        pos = [x for x in mine if x["pos"]]

        def distinct(column, keep=lambda x: True, pos=pos):
            known = [x for x in pos if x[column] is not None]
            if not known:
                return None
            return len({x[column] for x in known if keep(x)})

        recent = lambda x: x["age"] <= w  # noqa: E731
        before = lambda x: w < x["age"] <= 2 * w  # noqa: E731
        for column, plural in (("product", "products"), ("category", "categories")):
            f[f"distinct_{plural}"] = distinct(column)
            now, then = distinct(column, recent), distinct(column, before)
            f[f"distinct_{plural}_{w}"] = now
            f[f"distinct_{plural}_change_{w}"] = None if now is None else now - then
        f["distinct_channels"] = distinct("channel")
        per = defaultdict(lambda: {"g": 0.0, "r": 0.0, "gr": 0.0, "gb": 0.0})
        for x in mine:
            if x["category"] is None:
                continue
            c = per[x["category"]]
            if x["pos"]:
                c["g"] += x["amount"]
                c["gr"] += x["amount"] if recent(x) else 0.0
                c["gb"] += x["amount"] if before(x) else 0.0
            else:
                c["r"] -= x["amount"]
        kept = {k: v for k, v in per.items() if v["g"] > 0}
        if kept:
            total = sum(v["g"] for v in kept.values())
            shares = [v["g"] / total for v in kept.values()]
            k = len(kept)
            f["top_category_share"] = max(shares)
            f["category_entropy"] = (
                -sum(p * math.log(p) for p in shares) / math.log(k) if k > 1 else 0.0
            )

            def top_share(key, kept=kept):
                t = sum(v[key] for v in kept.values())
                return max(v[key] for v in kept.values()) / t if t > 0 else None

            now, then = top_share("gr"), top_share("gb")
            f[f"top_category_share_change_{w}"] = (
                None if now is None or then is None else now - then
            )
            f["category_refund_share_max"] = max(
                v["r"] / v["g"] for v in kept.values() if v["g"] >= 0.1 * total
            )
        else:
            for name in ("top_category_share", "category_entropy", f"top_category_share_change_{w}",
                         "category_refund_share_max"):  # fmt: skip
                f[name] = None
        spend_recent, spend_before = defaultdict(float), defaultdict(float)
        for x in pos:
            if x["channel"] is not None:
                spend_recent[x["channel"]] += x["amount"] if recent(x) else 0.0
                spend_before[x["channel"]] += x["amount"] if before(x) else 0.0
        lead_now, lead_then = _leader(spend_recent), _leader(spend_before)
        f[f"channel_switch_{w}"] = (
            None if lead_now is None or lead_then is None else lead_now != lead_then
        )
        f["lines_per_order"] = len(pos) / f["orders"]
        with_qty = [x for x in pos if x.get("quantity") is not None]
        units = sum(abs(x["quantity"]) for x in with_qty)
        f["units_per_order"] = units / f["orders"] if units > 0 else None
        f["mean_unit_price"] = sum(x["amount"] for x in with_qty) / units if units > 0 else None
        gross = sum(x["amount"] for x in pos)
        days = len({x["age"] for x in pos})
        for value, name in zip(categories, names["category_share"], strict=True):
            share = sum(x["amount"] for x in pos if x["category"] == value) / gross
            f[name] = share if f["distinct_categories"] is not None else None
        for value, spend, day in zip(
            channels, names["channel_share"], names["channel_days_share"], strict=True
        ):
            has = f["distinct_channels"] is not None
            f[spend] = (
                sum(x["amount"] for x in pos if x["channel"] == value) / gross if has else None
            )
            share = len({x["age"] for x in pos if x["channel"] == value}) / days
            f[day] = share if has else None
