"""What the retention list contains, before and after #29, on real and simulated data.

``python -m bench lists`` prints:

* Online Retail II as of 2011-12-10 (a churn model trained as of that date): probably-gone
  customers (P(alive) < 0.05) in the top 500 of the list, platinum or gold customers with
  net spend <= 0, and what a budget of 2,000 buys (email 0.10, voucher 5, call 8),
  ranked and cut by value at risk (before) and allocated by return per pound (now);
* a simulated store (``crmkit sample``, whose ground truth holds each customer's dropout
  date): the share of customers already gone among the top 10% of the list, and how often
  the model's top reason is recency for them;
* on the same simulated store, a randomised three-arm campaign with a heterogeneous
  response, an uplift model learnt from it, and at a later date the true incremental
  value less cost of each policy, cut by rank (before) and allocated (now), at one budget;
* Online Retail II as of 2011-09-01: how often the list's customers bought in the next 90
  days, with P(alive) for one-time buyers and with BG/NBD alone, by threshold.

"Before" is computed from the same scores: value at risk was ``churn probability x value
if active`` over every eligible customer; a budget took the list by that rank until the
money ran out.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from typing import Any

import numpy as np
import polars as pl

from bench.common import DATA, save
from bench.model import retail_store

RETAIL_AS_OF = dt.date(2011, 12, 10)
COSTS = {"email": 0.1, "voucher": 5.0, "call": 8.0}
TIERS = {"platinum": "call", "gold": "voucher"}
NOW = dt.datetime(2026, 1, 1)
SIM_T1, SIM_T2, WINDOW = dt.date(2024, 9, 1), dt.date(2024, 11, 1), 45
TRUE_UPLIFT = {"email": 0.03, "voucher": 0.08, "call": 0.12}
#: The simulator's truth: a response purchase is lognormal(3.6, 0.5) whoever buys, so an
#: incremental buyer is worth its mean, whatever crmkit estimates the customer is worth.
RESPONSE_AMOUNT = float(np.exp(3.6 + 0.5**2 / 2))


def _old_cut(frame: pl.DataFrame, budget: float) -> pl.DataFrame:
    """The rule before: rank by value at risk (if active), tier's treatment, cut at the budget."""
    treatment = pl.col("value_tier").replace_strict(TIERS, default="email")
    ranked = frame.with_columns(treatment.alias("treatment")).sort(
        ["old_value_at_risk", "customer_id"], descending=[True, False]
    )
    cost = pl.col("treatment").replace_strict(COSTS, return_dtype=pl.Float64)
    paid = pl.when(pl.col("group") == "treatment").then(cost).otherwise(0.0)
    return ranked.filter(ranked.select(paid.cum_sum()).to_series() <= budget)


def _old_tiers(features: pl.DataFrame) -> pl.Series:
    """Tiers by the rule before: gross spend per purchase day, the mean cycle alone."""
    from crmkit.segments.estimators import ValueTiers

    old = features.with_columns(
        pl.col("gross_spend").alias("net_spend"), pl.lit(0).alias("recency_days")
    )
    return ValueTiers().fit_transform(old)["value_tier"]


def _budget_table(scores: pl.DataFrame, budget: float, old_tiers: pl.DataFrame) -> dict[str, Any]:
    from crmkit.campaigns.targeting import assign_groups, select_targets
    from crmkit.config.policy import TargetPolicy

    policy = TargetPolicy(budget=budget, costs=COSTS, treatments=TIERS, min_churn_probability=0.2)
    none = pl.Series("customer_id", [], dtype=pl.String)
    new, _ = select_targets(scores, "b", RETAIL_AS_OF, policy, none, none)
    before = scores.drop("value_tier").join(old_tiers, on="customer_id")
    eligible = before.filter(
        (pl.col("churn_probability") >= 0.2) & (pl.col("value_tier") != "adjust")
    ).with_columns((pl.col("churn_probability") * pl.col("value_if_active")).alias(
        "old_value_at_risk"))  # fmt: skip
    grouped = assign_groups(eligible.lazy(), "b", 0.2, policy).collect()
    old = _old_cut(grouped, budget)
    out = {}
    for name, frame, pool in (("before", old, grouped), ("now", new, None)):
        treated = frame.filter(pl.col("group") == "treatment")
        counts = dict(treated.group_by("treatment").len().sort("treatment").iter_rows())
        row: dict[str, Any] = {"contacts": {k: int(v) for k, v in counts.items()}}
        if pool is not None:
            left = pool.join(frame, on="customer_id", how="anti")
            row["eligible_cut"] = left.height
            row["their_value_at_risk_if_active"] = round(float(left["old_value_at_risk"].sum()), 2)
            row["emailing_them_costs"] = round(left.height * 0.8 * COSTS["email"], 2)
        out[name] = row
    return out


def _refunded(features: pl.DataFrame, old_tiers: pl.Series) -> dict[str, Any]:
    """The customer with the largest refunds: tier before and now, gross and net spend."""
    row = features.with_columns(old_tiers.alias("old_tier")).sort("refunds", descending=True)
    first = row.row(0, named=True)
    return {k: first[k] for k in ("customer_id", "gross_spend", "net_spend", "old_tier",
                                  "value_tier")}  # fmt: skip


def retail() -> dict[str, Any]:
    """Online Retail II as of 2011-12-10: lost causes at the top, refunds in tiers, budget."""
    from crmkit.api import feature_table
    from crmkit.config.settings import FeatureConfig, ModelConfig, SegmentConfig
    from crmkit.models.churn import train
    from crmkit.models.registry import Registry, parse_ref
    from crmkit.models.scoring import score_customers
    from crmkit.store.core import Store

    root = DATA / "lists-retail"
    shutil.rmtree(root, ignore_errors=True)
    store, registry = Store(retail_store()), Registry(root / "models")
    model = train(store, RETAIL_AS_OF, 90, ModelConfig(snapshots=6), FeatureConfig(), created=NOW)
    registry.save("churn", model.model, model.card)
    start = time.perf_counter()
    scores = score_customers(store, RETAIL_AS_OF, parse_ref("churn"), registry,
                             SegmentConfig()).frame  # fmt: skip
    seconds = time.perf_counter() - start
    old_rank = scores.sort(pl.col("churn_probability") * pl.col("value_if_active"),
                           descending=True).head(500)  # fmt: skip
    new_rank = scores.filter(pl.col("lifecycle") == "retain").sort(
        "expected_value_at_risk", descending=True).head(500)  # fmt: skip
    features = feature_table(str(store.root), RETAIL_AS_OF)
    old_tiers = _old_tiers(features)
    valuable = ["platinum", "gold"]
    net = features["net_spend"] <= 0
    return {
        "score_seconds": round(seconds, 1),
        "scored": scores.height,
        "top500_p_alive_below_0.05": {
            "before": int((old_rank["p_alive"] < 0.05).sum()),
            "now": int((new_rank["p_alive"] < 0.05).sum()),
        },
        "platinum_or_gold_with_net_spend_at_most_0": {
            "before": int((old_tiers.is_in(valuable) & net).sum()),
            "now": int((features["value_tier"].is_in(valuable) & net).sum()),
        },
        "lifecycle": dict(scores.group_by("lifecycle").len().iter_rows()),
        "budget_2000": _budget_table(
            scores, 2000.0, features.select("customer_id", old_tiers.alias("value_tier"))
        ),
        "refunded_most": _refunded(features, old_tiers),
        "listed_without_reason": int((scores["reasons"].fill_null("") == "").sum()),
    }


def _simulated_store(root: Any) -> tuple[Any, pl.DataFrame]:
    from crmkit.config.settings import IngestConfig
    from crmkit.ingest import ingest_files
    from crmkit.simulate.history import SimulationConfig, read_truth, write_sample
    from crmkit.store.core import Store

    sample = write_sample(SimulationConfig(customers=20_000, seed=7), root / "sample")
    store = Store(root / "store")
    ingest_files([sample.transactions], store, IngestConfig(), now=NOW)
    return store, read_truth(sample.ground_truth)


def dropouts(store: Any, registry: Any, truth: pl.DataFrame) -> dict[str, Any]:
    """Share of the already gone among the list's top 10%, before and now; reason agreement."""
    from crmkit.config.settings import SegmentConfig
    from crmkit.models.registry import parse_ref
    from crmkit.models.scoring import score_customers

    scores = score_customers(store, SIM_T2, parse_ref("churn"), registry, SegmentConfig(),
                             explain_rows=100_000).frame  # fmt: skip
    cutoff = dt.datetime.combine(SIM_T2, dt.time())
    gone = truth.select("customer_id", (pl.col("dropout_ts") < cutoff).fill_null(False)
                        .alias("gone"))  # fmt: skip
    scored = scores.join(gone, on="customer_id").filter(pl.col("value_tier") != "adjust")
    top = max(1, scored.height // 10)
    before = scored.sort(pl.col("churn_probability") * pl.col("value_if_active"),
                         descending=True).head(top)  # fmt: skip
    now = scored.filter(pl.col("lifecycle") == "retain").sort(
        "expected_value_at_risk", descending=True).head(top)  # fmt: skip
    gone_rows = scored.filter(pl.col("gone"))
    alive_rows = scored.filter(~pl.col("gone") & (pl.col("churn_probability") >= 0.5))
    return {
        "top10_share_gone": {
            "before": float(before["gone"].mean()),
            "now": float(now["gone"].mean()),
        },
        "top_reason_recency_among_gone": float((gone_rows["top_driver"] == "recency").mean()),
        "top_reason_among_risky_alive": dict(
            alive_rows.group_by("top_driver").len().sort("len", descending=True).iter_rows()
        ),
    }, scores


def _campaign(store: Any, registry: Any, root: Any) -> None:
    """A randomised three-arm campaign at T1, its simulated response, the uplift model."""
    from crmkit.campaigns.evaluation import outcome_store
    from crmkit.campaigns.ledger_import import import_assignments
    from crmkit.config.settings import FeatureConfig, SegmentConfig
    from crmkit.models.registry import parse_ref
    from crmkit.models.scoring import score_customers
    from crmkit.models.uplift import train_uplift
    from crmkit.simulate.response import simulate_response

    scores = score_customers(store, SIM_T1, parse_ref("churn"), registry, SegmentConfig(),
                             explain_rows=0).frame  # fmt: skip
    rng = np.random.default_rng(1)
    control = rng.uniform(size=scores.height) < 0.25
    arms = rng.choice(list(TRUE_UPLIFT), scores.height)
    campaign = scores.with_columns(
        pl.lit(SIM_T1).alias("as_of"),
        pl.Series("group", np.where(control, "control", "treatment")),
        pl.Series("treatment", np.where(control, None, arms)),
    )
    campaign.select("customer_id", pl.col("as_of").cast(pl.String), "group", "treatment").write_csv(
        root / "learn.csv"
    )
    import_assignments(store, root / "learn.csv", "learn")
    tx, _ = simulate_response(campaign, TRUE_UPLIFT, WINDOW, 1001, heterogeneous=True)
    tx.write_csv(root / "response.csv", datetime_format="%Y-%m-%d %H:%M:%S")
    with outcome_store(root / "response.csv", NOW) as (extra, _):
        model = train_uplift(store, ["learn"], WINDOW, FeatureConfig(), created=NOW, extra=extra,
                             bootstrap_rounds=50)  # fmt: skip
    registry.save("uplift", model.model, model.card)
    return float(campaign["customer_value"].quantile(0.8))


def _true_value(frame: pl.DataFrame, truth: pl.DataFrame) -> float:
    treated = frame.filter(pl.col("group") == "treatment").join(truth, on="customer_id")
    worth = pl.lit(0.0)
    for arm in TRUE_UPLIFT:
        worth = (
            pl.when(pl.col("treatment") == arm)
            .then(pl.col(f"true_{arm}") * RESPONSE_AMOUNT - COSTS[arm])
            .otherwise(worth)
        )
    return float(treated.select(worth.sum()).item())


def allocation(store: Any, registry: Any, scores: pl.DataFrame, threshold: float,
               budget: float) -> dict[str, Any]:  # fmt: skip
    """True incremental value less cost of each policy, before (cut by rank) and now."""
    from crmkit.campaigns.targeting import Uplift, assign_groups, select_targets
    from crmkit.campaigns.uplift_policy import best_arms
    from crmkit.config.policy import TargetPolicy
    from crmkit.models.registry import parse_ref
    from crmkit.models.uplift import score_uplift
    from crmkit.simulate.response import RESPONSE_TYPES, response_types

    uplift, _ = score_uplift(store, SIM_T2, registry, parse_ref("uplift"))
    types = response_types(scores, threshold)
    base = 1 - scores["churn_probability"].to_numpy()
    factor = types.replace_strict(RESPONSE_TYPES, return_dtype=pl.Float64).to_numpy()
    truth = scores.select("customer_id", "customer_value").with_columns(*(
        pl.Series(f"true_{arm}", np.clip(base + u * factor, 0, 1) - np.clip(base, 0, 1))
        for arm, u in TRUE_UPLIFT.items()))  # fmt: skip
    truth = truth.drop("customer_value")
    none = pl.Series("customer_id", [], dtype=pl.String)
    common = {"budget": budget, "costs": COSTS, "treatments": TIERS, "holdout_fraction": 0.0,
              "explore_fraction": 0.0}  # fmt: skip
    effects = {"effects": {"email": 0.05, "voucher": 0.12, "call": 0.18}}
    var_now, _ = select_targets(scores, "n", SIM_T2, TargetPolicy(**common, **effects), none, none)
    up_now, _ = select_targets(scores, "n", SIM_T2, TargetPolicy(policy="uplift", **common),
                               none, none, Uplift("uplift:1", uplift))  # fmt: skip
    at_risk = pl.col("churn_probability") * pl.col("value_if_active")
    eligible = scores.filter(
        (pl.col("churn_probability") >= 0.2) & (pl.col("value_tier") != "adjust")
    ).with_columns(at_risk.alias("old_value_at_risk"))
    policy = TargetPolicy(**common)
    grouped = assign_groups(eligible.lazy(), "n", 0.2, policy).collect()
    var_before = _old_cut(grouped, budget)
    all_eligible = assign_groups(scores.filter(pl.col("value_tier") != "adjust").lazy(), "n",
                                 0.2, policy).collect()  # fmt: skip
    best = best_arms(uplift, all_eligible, policy).filter(pl.col("expected_profit") > 0)
    ranked = all_eligible.join(best, on="customer_id").sort(
        ["expected_profit", "customer_id"], descending=[True, False])  # fmt: skip
    cost = pl.col("treatment").replace_strict(COSTS, return_dtype=pl.Float64)
    paid = pl.when(pl.col("group") == "treatment").then(cost).otherwise(0.0)
    spent = ranked.select(paid.cum_sum()).to_series()
    up_before = ranked.filter(spent <= budget)
    rows = {}
    for name, before, now in (("value at risk", var_before, var_now),
                              ("uplift", up_before, up_now)):  # fmt: skip
        b, n = _true_value(before, truth), _true_value(now, truth)
        rows[name] = {"before": round(b, 2), "now": round(n, 2),
                      "ratio": round(n / b, 2) if b > 0 else None}  # fmt: skip
    return rows


def simulated(budget: float = 1500.0) -> dict[str, Any]:
    """The simulated store: dropouts at the top, reason agreement, allocation on truth."""
    from crmkit.config.settings import FeatureConfig, ModelConfig
    from crmkit.models.churn import train
    from crmkit.models.registry import Registry

    root = DATA / "lists-sim"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    store, truth = _simulated_store(root)
    registry = Registry(root / "models")
    for day in (SIM_T1, SIM_T2):
        model = train(store, day, 90, ModelConfig(snapshots=6), FeatureConfig(), created=NOW)
        registry.save("churn", model.model, model.card)
        if day == SIM_T1:
            threshold = _campaign(store, registry, root)
    found, scores = dropouts(store, registry, truth)
    found["allocation_true_value_less_cost"] = allocation(store, registry, scores, threshold,
                                                          budget)  # fmt: skip
    found["budget"] = budget
    return found


def retail_alive() -> dict[str, Any]:
    """P(alive) and its threshold against what Online Retail II's customers did next.

    As of 2011-09-01 (a churn model of that date), the share of the top 250 and 500 of the
    retention list who bought in the next 90 days, with the one-time buyers' rule of
    :mod:`crmkit.models.alive` and with BG/NBD alone (P(alive) 1 for one-time buyers), at
    thresholds 0.1, 0.3 and 0.5; and the AUC of P(alive) among one-time buyers.
    """
    from sklearn.metrics import roc_auc_score

    import crmkit.models.alive as alive
    from crmkit.config.settings import FeatureConfig, ModelConfig, SegmentConfig
    from crmkit.features.customer import churn_labels
    from crmkit.models.churn import train
    from crmkit.models.registry import Registry, parse_ref
    from crmkit.models.scoring import score_customers
    from crmkit.store.core import Store

    day, root = dt.date(2011, 9, 1), DATA / "lists-alive"
    shutil.rmtree(root, ignore_errors=True)
    store, registry = Store(retail_store()), Registry(root / "models")
    model = train(store, day, 90, ModelConfig(snapshots=6), FeatureConfig(), created=NOW)
    registry.save("churn", model.model, model.card)
    rule, out = alive.one_time_alive, {}
    try:
        for name in ("one-time rule", "BG/NBD alone"):
            if name == "BG/NBD alone":
                alive.one_time_alive = lambda f: np.ones(f.height)  # type: ignore[assignment]
            for threshold in (0.1, 0.3, 0.5):
                scores = score_customers(store, day, parse_ref("churn"), registry,
                                         SegmentConfig(min_p_alive=threshold), 0).frame  # fmt: skip
                labels = churn_labels(store.transactions(), scores.lazy(), day, 90).collect()
                scored = scores.join(labels, on="customer_id")
                listed = scored.filter(
                    (pl.col("lifecycle") == "retain") & (pl.col("value_tier") != "adjust")
                ).sort("expected_value_at_risk", descending=True)
                once = scored.filter(pl.col("purchase_days") == 1)
                auc = (roc_auc_score(~once["churned"].to_numpy(), once["p_alive"].to_numpy())
                       if once["p_alive"].n_unique() > 1 else 0.5)  # fmt: skip
                out[f"{name}, min_p_alive {threshold}"] = {
                    f"top{n}_bought_again": round(1 - float(listed.head(n)["churned"].mean()), 3)
                    for n in (250, 500)
                } | {"one_time_in_top500": int((listed.head(500)["purchase_days"] == 1).sum()),
                     "one_time_auc": round(float(auc), 3)}  # fmt: skip
    finally:
        alive.one_time_alive = rule
    return out


def run(_rows: int = 0, _repeat: int = 1) -> None:
    """Print the figures of both parts and save them under ``bench/results``."""
    results = {}
    for part, measure in (("simulated", simulated), ("retail", retail),
                          ("retail alive", retail_alive)):  # fmt: skip
        results[part] = figures = measure()
        print(f"\n{part}", flush=True)
        for key, value in figures.items():
            print(f"  {key}: {value}", flush=True)
    save("lists", results)
