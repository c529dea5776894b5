from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmkit.campaigns.ledger_import import import_assignments
from crmkit.campaigns.targeting import Uplift, select_targets
from crmkit.campaigns.uplift_policy import best_arms, rank_by_uplift
from crmkit.config.policy import TargetPolicy
from crmkit.config.settings import FeatureConfig, IngestConfig, ModelConfig, SegmentConfig
from crmkit.ingest import ingest_files
from crmkit.models.churn import train
from crmkit.models.registry import Registry, parse_ref
from crmkit.models.scoring import score_customers
from crmkit.models.uplift import score_uplift, train_uplift
from crmkit.simulate.history import SimulationConfig, write_sample
from crmkit.simulate.response import RESPONSE_TYPES, response_types, simulate_response
from crmkit.store.core import Store
from tests.conftest import NOW

NONE = pl.Series("customer_id", [], dtype=pl.String)
T1, T2, WINDOW = dt.date(2025, 1, 1), dt.date(2025, 2, 15), 45
UPLIFT = {"email": 0.08, "call": 0.12}
COSTS = {"email": 1.0, "call": 3.0}


def eligible(n: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(n)],
            "customer_value": np.round(rng.uniform(10, 500, n), 2),
            "group": rng.choice(["treatment", "control"], n, p=[0.8, 0.2]),
        }
    )


def predictions(frame: pl.DataFrame, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed + 1)
    parts = [
        frame.select(
            "customer_id",
            pl.lit(arm).alias("treatment"),
            pl.Series("uplift_probability", rng.normal(0.0, 0.1, frame.height)),
            pl.Series("uplift_revenue", rng.normal(0.0, 10.0, frame.height)),
        )
        for arm in ("call", "email")
    ]
    return pl.concat(parts)


def test_best_arm_is_the_most_profitable():
    values = pl.DataFrame({"customer_id": ["a", "b"], "customer_value": [100.0, 10.0]})
    uplift = pl.DataFrame(
        {
            "customer_id": ["a", "a", "b", "b"],
            "treatment": ["call", "email", "call", "email"],
            "uplift_probability": [0.10, 0.05, 0.10, 0.05],
            "uplift_revenue": [1.0, 30.0, 0.0, 0.0],
        }
    )
    policy = TargetPolicy(costs=COSTS)
    best = best_arms(uplift, values, policy).sort("customer_id").drop("uplift_spread")
    # a: call 0.10*100-3 = 7 > email 0.05*100-1 = 4; b: call -2 < email -0.5
    assert best.rows() == [("a", "call", 0.10, pytest.approx(7.0)), ("b", "email", 0.05, -0.5)]
    by_revenue = best_arms(uplift, values, TargetPolicy(costs=COSTS, uplift_value="revenue"))
    assert by_revenue.sort("customer_id")["treatment"].to_list() == ["email", "email"]
    # an uncertain uplift is taken down by its spread: a's call (0.10 - 0.08) * 100 - 3 = -1
    # loses to its email 0.05 * 100 - 1 = 4; without caution the call still wins
    spread = uplift.with_columns(pl.Series("uplift_spread", [0.08, 0.0, 0.0, 0.0]))
    cautious = best_arms(spread, values, TargetPolicy(costs=COSTS)).sort("customer_id")
    assert cautious.drop("uplift_spread").row(0) == ("a", "email", 0.05, pytest.approx(4.0))
    bold = best_arms(spread, values, TargetPolicy(costs=COSTS, uplift_caution=0.0))
    assert bold.sort("customer_id")["treatment"].to_list() == ["call", "email"]


@given(
    n=st.integers(0, 300),
    seed=st.integers(0, 10_000),
    explore=st.sampled_from([0.0, 0.1, 0.3]),
    size=st.one_of(st.none(), st.integers(0, 200)),
    budget=st.one_of(st.none(), st.floats(0, 400)),
)
def test_ranked_list_keeps_every_rule(n, seed, explore, size, budget):
    frame = eligible(n, seed)
    uplift = predictions(frame, seed)
    policy = TargetPolicy(costs=COSTS, explore_fraction=explore, size=size, budget=budget)
    ranked, counts = rank_by_uplift(frame, uplift, "c1", T2, policy)
    assert ranked["customer_id"].is_unique().all()
    assert ranked["rank"].to_list() == list(range(1, ranked.height + 1))
    if size is not None:
        assert ranked.height <= size
    spend = ranked.filter(pl.col("group") == "treatment")["treatment"].replace_strict(COSTS).sum()
    if budget is not None:
        assert spend <= budget + 1e-6
    main = ranked.filter(pl.col("policy") == "uplift")
    assert (main["expected_profit"] > 0).all()
    if size is None and budget is None:  # no limit: everyone's most profitable arm
        best = best_arms(uplift, frame, policy).filter(pl.col("expected_profit") > 0)
        assert main.sort("customer_id").select(best.columns).equals(best.sort("customer_id"))
    explored = ranked.filter(pl.col("policy") == "explore")
    assert explored.height <= round(main.height * explore / (1 - explore))
    assert (ranked.filter(pl.col("policy") == "explore")["rank"].min() or 10**9) > (
        main["rank"].max() or 0
    )
    assert counts["no_positive_profit"] + counts["over_size_or_budget"] + main.height == n
    again, _ = rank_by_uplift(frame.reverse(), uplift.reverse(), "c1", T2, policy)
    assert again.equals(ranked)


def test_explore_draws_at_random_with_every_arm():
    frame = eligible(4000)
    uplift = predictions(frame)
    ranked, _ = rank_by_uplift(frame, uplift, "c1", T2, TargetPolicy(explore_fraction=0.2))
    explored = ranked.filter(pl.col("policy") == "explore")
    main = ranked.filter(pl.col("policy") == "uplift")
    assert explored.height == round(main.height * 0.25)
    assert set(explored["treatment"]) == {"call", "email"}
    # the explored customers are not the model's: about as many expected losses as anyone
    assert (explored["expected_profit"] <= 0).mean() > 0.8
    other_day, _ = rank_by_uplift(
        frame, uplift, "c1", T2 + dt.timedelta(days=1), TargetPolicy(explore_fraction=0.2)
    )
    assert set(other_day.filter(pl.col("policy") == "explore")["customer_id"]) != set(
        explored["customer_id"]
    )


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    """A 20,000-customer simulated store with a churn model, a randomised two-arm campaign
    at T1 with a heterogeneous simulated response, and an uplift model learned from it."""
    root = tmp_path_factory.mktemp("policy")
    write_sample(SimulationConfig(customers=20000, end=dt.date(2025, 1, 1), seed=11), root / "d")
    store = Store(root / "s")
    ingest_files([root / "d" / "transactions.csv"], store, IngestConfig(), now=NOW)
    registry = Registry(root / "models")
    churn = train(
        store, T1, 90, ModelConfig(snapshots=3, kind="logreg"), FeatureConfig(), created=NOW
    )
    registry.save("churn", churn.model, churn.card)
    scores = score_customers(store, T1, parse_ref("churn"), registry, SegmentConfig()).frame
    rng = np.random.default_rng(7)
    control = rng.uniform(size=scores.height) < 0.5
    campaign = scores.with_columns(
        pl.lit(T1).alias("as_of"),
        pl.Series("group", np.where(control, "control", "treatment")),
        # one control group shared by both arms
        pl.Series(
            "treatment", np.where(control, None, rng.choice(["email", "call"], scores.height))
        ),
    )
    campaign.select("customer_id", pl.col("as_of").cast(pl.String), "group", "treatment").write_csv(
        root / "learn.csv"
    )
    import_assignments(store, root / "learn.csv", "learn")
    tx, _ = simulate_response(campaign, UPLIFT, WINDOW, 99, heterogeneous=True)
    tx.write_csv(root / "response.csv", datetime_format="%Y-%m-%d %H:%M:%S")
    ingest_files([root / "response.csv"], store, IngestConfig(), now=NOW)
    model = train_uplift(
        store, ["learn"], WINDOW, FeatureConfig(), created=NOW, bootstrap_rounds=20
    )
    registry.save("uplift", model.model, model.card)
    threshold = float(campaign["customer_value"].quantile(0.8))
    return store, registry, threshold


def true_incremental(targets: pl.DataFrame, truth: pl.DataFrame) -> float:
    treated = targets.filter(pl.col("group") == "treatment").join(truth, on="customer_id")
    pick = pl.when(pl.col("treatment") == "email").then("true_email").otherwise("true_call")
    return float(treated.select(pick.sum()).item())


def test_uplift_policy_beats_value_at_risk_on_the_true_outcome(learned):
    store, registry, threshold = learned
    scores = score_customers(store, T2, parse_ref("churn"), registry, SegmentConfig()).frame
    uplift, _ = score_uplift(store, T2, registry, parse_ref("uplift"))
    # the simulation's truth, by the same rule (and value threshold) as the campaign's
    types = response_types(scores, threshold)
    base = 1 - scores["churn_probability"].to_numpy()
    factor = types.replace_strict(RESPONSE_TYPES, return_dtype=pl.Float64).to_numpy()
    truth = scores.select("customer_id", types).with_columns(
        *(
            pl.Series(f"true_{arm}", np.clip(base + u * factor, 0, 1) - np.clip(base, 0, 1))
            for arm, u in UPLIFT.items()
        )
    )
    common = {
        "budget": 2000.0,
        "costs": COSTS,
        "treatments": {"platinum": "call", "gold": "call"},
        "holdout_fraction": 0.0,
    }
    at_risk, _ = select_targets(scores, "next", T2, TargetPolicy(**common), NONE, NONE)
    by_uplift, counts = select_targets(
        scores,
        "next",
        T2,
        TargetPolicy(policy="uplift", **common),
        NONE,
        NONE,
        Uplift("uplift:1", uplift),
    )
    spent = [
        t.filter(pl.col("group") == "treatment")["treatment"].replace_strict(COSTS).sum()
        for t in (at_risk, by_uplift)
    ]
    assert max(spent) <= 2000.0
    assert min(spent) > 1900.0  # the same budget, used
    gained = true_incremental(by_uplift, truth)
    assert gained > 0
    assert gained >= 1.3 * max(true_incremental(at_risk, truth), 1.0)
    assert set(by_uplift["policy"]) == {"uplift", "explore"}
    assert set(by_uplift["uplift_model"]) == {"uplift:1"}

    # sleeping dogs: the value-at-risk list seeks them out (valuable and drifting)
    def dog_rate(frame: pl.DataFrame) -> float:
        treated = frame.filter(pl.col("group") == "treatment").join(truth, on="customer_id")
        return float((treated["response_type"] == "sleeping_dog").mean())

    eligible_ids = scores.filter(pl.col("value_tier") != "adjust")["customer_id"]
    random_rate = float(
        (truth.filter(pl.col("customer_id").is_in(eligible_ids.implode()))["response_type"]
         == "sleeping_dog").mean()
    )  # fmt: skip
    assert dog_rate(at_risk) > 3 * random_rate
    # the uplift list, spread by return per pound over many cheap contacts, still holds a
    # fraction of the value-at-risk list's share
    assert dog_rate(by_uplift) < 0.6 * dog_rate(at_risk)
    assert counts["no_positive_profit"] > 0
