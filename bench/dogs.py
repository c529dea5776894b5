"""Sleeping dogs on Online Retail II: whom each policy contacts, against a simulated truth.

The real customers of Online Retail II, a churn model as of T1, and a randomised campaign
at T1 over every active customer (e-mail and call, one shared control group of 30%) with
a heterogeneous simulated response (``crmkit sample --respond-to --heterogeneous``:
persuadables gain, sleeping dogs, the valuable undecided, lose). The uplift model learns
from it with the outcomes read from a file, never ingested. At T2 the value-at-risk and
the uplift lists are drawn at the same budget; the table gives the share of sleeping dogs
among each list's contacts (by the same rule and value threshold as the campaign's), the
share random targeting would contact (the eligible customers' share), and each list's
true incremental retained customers.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

from bench.common import DATA, save
from bench.model import retail_store

T1, T2, WINDOW = dt.date(2011, 6, 1), dt.date(2011, 8, 1), 45
UPLIFT = {"email": 0.08, "call": 0.12}
COSTS = {"email": 1.0, "call": 3.0}
BUDGET = 1500.0
NOW = dt.datetime(2012, 1, 1, tzinfo=dt.UTC)


def _learn(store, registry, root: Path, seed: int) -> tuple[float, dict]:
    """Train churn, run the randomised campaign at T1, learn uplift; return the threshold."""
    from crmkit.campaigns.evaluation import outcome_store
    from crmkit.campaigns.ledger_import import import_assignments
    from crmkit.config.settings import FeatureConfig, ModelConfig, SegmentConfig
    from crmkit.models.churn import train
    from crmkit.models.registry import parse_ref
    from crmkit.models.scoring import score_customers
    from crmkit.models.uplift import train_uplift
    from crmkit.simulate.response import simulate_response

    churn = train(store, T1, 90, ModelConfig(snapshots=6), FeatureConfig(), created=NOW)
    registry.save("churn", churn.model, churn.card)
    scores = score_customers(store, T1, parse_ref("churn"), registry, SegmentConfig()).frame
    rng = np.random.default_rng(seed)
    control = rng.uniform(size=scores.height) < 0.3
    campaign = scores.with_columns(
        pl.lit(T1).alias("as_of"),
        pl.Series("group", np.where(control, "control", "treatment")),
        pl.Series(
            "treatment", np.where(control, None, rng.choice(["email", "call"], scores.height))
        ),
    )
    campaign.select("customer_id", pl.col("as_of").cast(pl.String), "group", "treatment").write_csv(
        root / "learn.csv"
    )
    import_assignments(store, root / "learn.csv", f"learn{seed}")
    # a response seed of its own: the same seed would redraw the groups' uniforms
    tx, _ = simulate_response(campaign, UPLIFT, WINDOW, 1000 + seed, heterogeneous=True)
    tx.write_csv(root / "response.csv", datetime_format="%Y-%m-%d %H:%M:%S")
    with outcome_store(root / "response.csv", NOW) as (extra, _):
        model = train_uplift(
            store, [f"learn{seed}"], WINDOW, FeatureConfig(), created=NOW, extra=extra,
            bootstrap_rounds=100,
        )  # fmt: skip
    registry.save("uplift", model.model, model.card)
    arms = {a: (i["learner"], i["evidence"]["passed"]) for a, i in model.card["arms"].items()}
    return float(campaign["customer_value"].quantile(0.8)), arms


def _lists(store, registry, threshold: float) -> dict:
    from crmkit.campaigns.targeting import Uplift, select_targets
    from crmkit.config.policy import TargetPolicy
    from crmkit.config.settings import SegmentConfig
    from crmkit.models.registry import parse_ref
    from crmkit.models.scoring import score_customers
    from crmkit.models.uplift import score_uplift
    from crmkit.simulate.response import RESPONSE_TYPES, response_types

    scores = score_customers(store, T2, parse_ref("churn"), registry, SegmentConfig()).frame
    uplift, _ = score_uplift(store, T2, registry, parse_ref("uplift"))
    types = response_types(scores, threshold)
    base = 1 - scores["churn_probability"].to_numpy()
    factor = types.replace_strict(RESPONSE_TYPES, return_dtype=pl.Float64).to_numpy()
    truth = scores.select("customer_id", types).with_columns(
        *(
            pl.Series(f"true_{arm}", np.clip(base + u * factor, 0, 1) - np.clip(base, 0, 1))
            for arm, u in UPLIFT.items()
        )
    )
    none = pl.Series("customer_id", [], dtype=pl.String)
    common = {"budget": BUDGET, "costs": COSTS, "holdout_fraction": 0.0,
              "treatments": {"platinum": "call", "gold": "call"}}  # fmt: skip
    at_risk, _ = select_targets(scores, "next", T2, TargetPolicy(**common), none, none)
    by_uplift, _ = select_targets(
        scores, "next", T2, TargetPolicy(policy="uplift", **common), none, none,
        Uplift("uplift:1", uplift),
    )  # fmt: skip
    eligible = truth.join(scores.filter(pl.col("value_tier") != "adjust"), on="customer_id")
    out = {"random (eligible share)": {
        "sleeping_dogs": float((eligible["response_type"] == "sleeping_dog").mean()),
        "contacts": None, "true_incremental": None}}  # fmt: skip
    for name, frame in (("value at risk", at_risk), ("uplift", by_uplift)):
        treated = frame.filter(pl.col("group") == "treatment").join(truth, on="customer_id")
        pick = pl.when(pl.col("treatment") == "email").then("true_email").otherwise("true_call")
        out[name] = {
            "sleeping_dogs": float((treated["response_type"] == "sleeping_dog").mean()),
            "contacts": treated.height,
            "true_incremental": float(treated.select(pick.sum()).item()),
        }
    return out


def run(_rows: int = 0, seeds: int = 3) -> None:
    """Print, per seed, each policy's share of sleeping dogs and true incremental customers."""
    import shutil

    from crmkit.models.registry import Registry
    from crmkit.store.core import Store

    results = []
    for seed in range(seeds):
        root = DATA / f"dogs-{seed}"  # kept for a look afterwards; rebuilt every run
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(retail_store(), root / "store")
        store, registry = Store(root / "store"), Registry(root / "models")
        threshold, arms = _learn(store, registry, root, seed)
        found = _lists(store, registry, threshold)
        results.append({"seed": seed, "arms": arms, "lists": found})
        print(f"\nseed {seed}: uplift arms (learner, evidence) {arms}")
        for name, row in found.items():
            contacts = "" if row["contacts"] is None else f"{row['contacts']:>6,}"
            gained = "" if row["true_incremental"] is None else f"{row['true_incremental']:+8.1f}"
            print(f"  {name:<24} sleeping dogs {row['sleeping_dogs']:6.1%} {contacts} {gained}")
    save("dogs", {"budget": BUDGET, "results": results})
