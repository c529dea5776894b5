"""Sharper experiments: adjusted intervals, always-valid intervals and plans, on real data.

On Online Retail II (every customer eligible on a date, with their *real* purchases in the
60 days after it) and on the simulator's sample store:

1. coverage and width of the plain and the adjusted 95% intervals over 400 seeded
   campaigns with an injected effect (``crmkit.simulate.injected``);
2. A/A campaigns looked at every day for 30 days: the share where some look's interval
   excludes zero, fixed-horizon against the confidence sequence;
3. ``crmkit plan``'s power against statsmodels' ``NormalIndPower``, and the share of
   campaigns run at the planned size that detect the planned effect;
4. the adjusted estimate against statsmodels' ANCOVA (OLS of the outcome on the
   treatment and the covariates, HC1 errors) on one campaign: the estimates, the
   intervals, and the time and memory of each.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
import tracemalloc

import numpy as np

from bench.common import DATA, ROOT, save
from bench.model import retail_store

WINDOW = 60
CAMPAIGNS = 400
LOOKS = 30


def _customers(store_path, as_of):
    from crmkit.campaigns.planning import baseline_frame
    from crmkit.simulate.injected import Customers
    from crmkit.store.core import Store

    base, frame = baseline_frame(Store(store_path), as_of, WINDOW, 365)
    return base, Customers.of(frame, WINDOW)


def _sample_store():
    import subprocess

    from bench.common import crmkit

    store = DATA / "store-sample"
    if not (store / "manifest.json").exists():
        data = ROOT / "sample_data" / "transactions.csv"
        subprocess.run(crmkit("ingest", str(data), "--store", str(store), "--quiet"), check=True)
    return store


def run(_rows: int = 0, repeat: int = 1) -> None:
    from crmkit.simulate.injected import aa_false_alarms, coverage

    sets = {
        "Online Retail II": _customers(retail_store(), dt.date(2011, 10, 1)),
        "simulator sample": _customers(_sample_store(), dt.date(2025, 1, 1)),
    }
    out: dict = {}
    for name, (base, customers) in sets.items():
        cov = coverage(customers, CAMPAIGNS, seed=1)
        aa = aa_false_alarms(customers, CAMPAIGNS // 2, LOOKS, seed=2)
        n = customers.retained.size
        print(f"\n{name}: {n:,} customers eligible on {base}, real {WINDOW}-day outcomes")
        print(f"{'interval':28} {'covered':>8} {'mean width':>12}")
        for key in sorted(cov.covered):
            print(f"{key:28} {cov.covered[key]:8.3f} {cov.width[key]:12.4f}")
        for metric in ("retention", "revenue"):
            narrower = 1 - cov.width[f"adjusted_{metric}"] / cov.width[f"plain_{metric}"]
            print(f"adjusted {metric} interval {narrower:.1%} narrower than the plain one")
        print(f"A/A, {LOOKS} daily looks, {CAMPAIGNS // 2} campaigns: any look excludes zero")
        for key in sorted(aa):
            print(f"  {key:24} {aa[key]:.3f}")
        out[name] = {"coverage": cov.covered, "width": cov.width, "aa": aa, "customers": n}
    out["plan"] = _plans(sets["Online Retail II"][1])
    out["peer"] = _peer(sets["Online Retail II"][1], repeat)
    print(f"\nresults: {save('experiments', out)}")


def _plans(customers) -> dict:
    from statsmodels.stats.power import NormalIndPower

    from crmkit.campaigns.planning import Baseline, plan_campaign, r_squared
    from crmkit.simulate.injected import detection_rate

    y = {"retention": customers.retained, "revenue": customers.revenue}
    baseline = Baseline(
        dt.date(2011, 8, 2), WINDOW, customers.retained.size,
        {k: float(v.mean()) for k, v in y.items()},
        {k: float(v.std(ddof=1)) for k, v in y.items()},
        {k: r_squared(v, customers.x) for k, v in y.items()},
    )  # fmt: skip
    rows = {}
    print("\nplan (6,000 customers) against statsmodels NormalIndPower and 400 campaigns")
    print(f"{'metric, estimate':24} {'control':>8} {'crmkit power':>13} {'statsmodels':>12} "
          f"{'detected':>9}")  # fmt: skip
    for metric, effect in (("retention", 0.04), ("revenue", 150.0)):
        plan = plan_campaign(baseline, 6000, metric=metric, effect=effect)
        for kind, e in plan.estimates.items():
            if not e.get("control_fraction"):
                print(f"{metric + ', ' + kind:24} {'too few customers':>8}")
                continue
            peer = NormalIndPower().power(
                effect / e["sd"], e["treatment"], 0.05, e["control"] / e["treatment"]
            )
            seen = detection_rate(customers, 6000, e["control"], metric, effect, CAMPAIGNS, 5)
            print(f"{metric + ', ' + kind:24} {e['control']:8,} {e['achieved_power']:13.4f} "
                  f"{peer:12.4f} {seen[kind]:9.3f}")  # fmt: skip
            rows[f"{metric}_{kind}"] = e | {"statsmodels_power": peer, "detected": seen[kind]}
    return rows


def _peer(customers, repeat: int) -> dict:
    import statsmodels.api as sm

    from crmkit.campaigns.adjustment import adjusted_difference

    rng = np.random.default_rng(9)
    treated, _, revenue = customers.campaign(rng, 0.5, 0.05, 0.1)
    exog = sm.add_constant(np.column_stack([treated.astype(float), customers.x]))
    times: dict[str, list[float]] = {"crmkit": [], "statsmodels": []}
    peaks: dict[str, float] = {}
    results = {}
    for _ in range(max(repeat, 3)):
        for name in ("crmkit", "statsmodels"):  # interleaved
            tracemalloc.start()
            start = time.perf_counter()
            if name == "crmkit":
                a = adjusted_difference(revenue, customers.x, treated)
                results[name] = (a.difference, a.low, a.high)
            else:
                fit = sm.OLS(revenue, exog).fit(cov_type="HC1")
                low, high = fit.conf_int()[1]
                results[name] = (float(fit.params[1]), float(low), float(high))
            times[name].append(time.perf_counter() - start)
            peaks[name] = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
    print("\nadjusted revenue estimate of one campaign, against statsmodels' ANCOVA (HC1)")
    print(f"{'':12} {'estimate':>10} {'low':>10} {'high':>10} {'median s':>9} {'peak MB':>8}")
    for name, (est, low, high) in results.items():
        med = statistics.median(times[name])
        print(f"{name:12} {est:10.3f} {low:10.3f} {high:10.3f} {med:9.4f} {peaks[name]:8.1f}")
    ratio = statistics.median(times["crmkit"]) / statistics.median(times["statsmodels"])
    print(f"time ratio crmkit / statsmodels: {ratio:.2f}")
    return {"results": results, "seconds": times, "peak_mb": peaks, "ratio": ratio}
