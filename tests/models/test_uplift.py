from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from crmkit.campaigns.ledger_import import import_assignments
from crmkit.config.settings import FeatureConfig, IngestConfig
from crmkit.errors import BadInputError
from crmkit.features.pipeline import store_features
from crmkit.ingest import ingest_files
from crmkit.models.uplift import train_uplift
from crmkit.models.uplift_learners import customer_folds
from crmkit.store.core import Store
from tests.conftest import NOW

AS_OF = dt.date(2024, 7, 1)
WINDOW = 60


def experiment(
    store: Store, tmp_path, campaign: str, as_of=AS_OF, control=0.5, seed=1, *, ingest=True
):
    """Randomise every customer active in the year before ``as_of``; return the frame.

    Persuadables (three or more purchase days) buy again in the window with probability
    0.6 when treated; nobody else reacts to the treatment.
    """
    rng = np.random.default_rng(seed)
    f = store_features(store, as_of, FeatureConfig()).filter(pl.col("recency_days") <= 365)
    treated = rng.uniform(0, 1, f.height) >= control
    f = f.with_columns(
        pl.Series("group", np.where(treated, "treatment", "control")),
        (pl.col("purchase_days") >= 3).alias("persuadable"),
    )
    path = tmp_path / f"{campaign}.csv"
    f.select(
        "customer_id",
        pl.lit(str(as_of)).alias("as_of"),
        "group",
        pl.lit("email").alias("treatment"),
    ).write_csv(path)
    import_assignments(store, path, campaign)
    respond = treated & f["persuadable"].to_numpy() & (rng.uniform(0, 1, f.height) < 0.6)
    days = rng.integers(1, WINDOW - 5, int(respond.sum()))
    start = dt.datetime.combine(as_of, dt.time(12))
    buys = pl.DataFrame(
        {
            "customer_id": f["customer_id"].filter(pl.Series(respond)),
            "ts": [start + dt.timedelta(days=int(d)) for d in days],
            "amount": np.round(rng.uniform(20, 80, int(respond.sum())), 2),
            "order_id": [f"R-{campaign}-{i}" for i in range(int(respond.sum()))],
        }
    )
    buys.write_csv(tmp_path / f"{campaign}-buys.csv")
    if ingest:
        ingest_files([tmp_path / f"{campaign}-buys.csv"], store, IngestConfig(), now=NOW)
    return f


@pytest.fixture
def store(sample_copy) -> Store:
    return sample_copy


def test_learns_who_is_persuadable(store, tmp_path):
    truth = experiment(store, tmp_path, "spring")
    result = train_uplift(
        store, ["spring"], WINDOW, FeatureConfig(), created=NOW, bootstrap_rounds=50
    )
    arm = result.card["arms"]["email"]
    assert arm["rows"] == truth.height
    assert arm["treated"] + arm["controls"] == truth.height
    assert 0.4 < arm["propensity"] < 0.6
    rankings = arm["rankings"]
    chosen = rankings[f"{arm['learner']}-learner"]["qini"]
    assert chosen["value"] > 0.2
    assert chosen["low"] <= chosen["value"] <= chosen["high"]
    assert chosen["value"] > rankings["random"]["qini"]["value"] + 0.1
    # whom the model ranks first really respond more: true uplift 0.6 x persuadable
    scores = result.model.predict_uplift(
        store_features(store, AS_OF, FeatureConfig()).join(
            truth.select("customer_id", "persuadable"), on="customer_id"
        )
    )
    joined = scores.join(truth.select("customer_id", "persuadable"), on="customer_id")
    by = joined.group_by("persuadable").agg(pl.col("uplift_probability").mean())
    lift = dict(by.iter_rows())
    assert lift[True] > lift[False] + 0.2
    assert joined["uplift_revenue"].filter(joined["persuadable"]).mean() > 0


def test_refusals(store, tmp_path):
    experiment(store, tmp_path, "late", as_of=dt.date(2024, 12, 1))
    with pytest.raises(BadInputError, match="has not passed"):
        train_uplift(store, ["late"], WINDOW, FeatureConfig(), created=NOW)
    experiment(store, tmp_path, "none", control=0.0)
    with pytest.raises(BadInputError, match="no control group"):
        train_uplift(store, ["none"], WINDOW, FeatureConfig(), created=NOW)
    experiment(store, tmp_path, "tiny", control=0.5, seed=3)
    with pytest.raises(BadInputError, match="needs at least 100000"):
        train_uplift(store, ["tiny"], WINDOW, FeatureConfig(), created=NOW, min_responders=100_000)


def test_customer_folds_keep_a_customer_together():
    ids = pl.Series(["a", "b", "a", "c", "b"])
    folds = customer_folds(ids)
    assert folds[0] == folds[2]
    assert folds[1] == folds[4]
    assert set(folds.tolist()) <= set(range(5))


def test_cli_train_and_score(store, tmp_path, runner):
    from tests.conftest import invoke

    experiment(store, tmp_path, "autumn")
    common = ["--store", str(store.root), "--registry", str(tmp_path / "models")]
    args = ["uplift", "train", "--campaign", "autumn", "--window", str(WINDOW), *common]
    trained = invoke(runner, *args, "--json")
    assert trained["model"] == "uplift:1"
    assert trained["email"]["learner"] in ("t", "x")
    out = tmp_path / "uplift.csv"
    summary = invoke(
        runner, "uplift", "score", "--as-of", "2024-10-01", "--out", str(out), *common, "--json"
    )
    assert summary["treatments"] == ["email"]
    scores = pl.read_csv(out)
    assert scores.height == summary["customers"]
    assert scores["uplift_probability"].is_between(-1, 1).all()
    assert set(scores.columns) >= {
        "customer_id",
        "treatment",
        "uplift_revenue",
        "incremental_value",
    }
    shown = invoke(runner, "models", "show", "uplift", "--registry", str(tmp_path / "models"))
    assert "Arms (cross-fitted Qini)" in shown.stdout
    assert "autumn" in shown.stdout
    # windows not passed exit 3; an unknown learner exits 2
    invoke(runner, "uplift", "train", "--campaign", "autumn", "--window", "900", *common, code=3)
    invoke(
        runner,
        "uplift",
        "train",
        "--campaign",
        "autumn",
        "--window",
        "60",
        "--learner",
        "s",
        *common,
        code=2,
    )


def test_cli_targets_by_uplift_and_evaluate_by_policy(store, tmp_path, runner):
    from tests.conftest import invoke

    experiment(store, tmp_path, "autumn")
    config = tmp_path / "crmkit.toml"
    config.write_text(
        '[model]\nsnapshots = 3\nkind = "logreg"\n'
        '[targeting]\npolicy = "uplift"\nexplore_fraction = 0.2\nbudget = 40.0\n'
        "[targeting.costs]\nemail = 0.5\n",
        encoding="utf-8",
    )
    common = ["--store", str(store.root), "--registry", str(tmp_path / "models")]
    invoke(runner, "uplift", "train", "--campaign", "autumn", "--window", str(WINDOW), *common)
    invoke(
        runner,
        "train",
        "--as-of",
        "2024-09-01",
        "--horizon",
        "90",
        *common,
        "--config",
        str(config),
    )
    out = tmp_path / "lists"
    args = ["targets", "--as-of", "2024-10-01", "--campaign", "next", "--out", str(out)]
    summary = invoke(runner, *args, *common, "--config", str(config), "--json")
    assert summary["spend"]["total"] <= 40.0
    assert summary["excluded"]["no_positive_profit"] >= 0
    listed = pl.read_csv(out / "next" / "2024-10-01.assignments.csv")
    assert set(listed["policy"]) == {"uplift", "explore"}
    assert set(listed["uplift_model"]) == {"uplift:1"}
    main = listed.filter(pl.col("policy") == "uplift")
    assert (main["expected_profit"] > 0).all()
    assert listed.filter(pl.col("group") == "treatment")["treatment"].unique().to_list() == [
        "email"
    ]
    # a re-run is the same list; --policy value_at_risk would change it: refused
    again = invoke(runner, *args, *common, "--config", str(config), "--json")
    assert again["status"] == "unchanged"
    invoke(runner, *args, "--policy", "value_at_risk", *common, "--config", str(config), code=3)
    # a treatment without a cost: the profit cannot be weighed (a configuration error)
    config.write_text('[targeting]\npolicy = "uplift"\n', encoding="utf-8")
    invoke(runner, *args, "--replace", *common, "--config", str(config), code=2)
    # evaluate tells the model's part from the explored one
    evaluated = invoke(
        runner,
        "evaluate",
        "--campaign",
        "next",
        "--window",
        "30",
        "--store",
        str(store.root),
        "--json",
    )
    assert [p["policy"] for p in evaluated["by_policy"]] == ["explore", "uplift"]
    assert sum(p["treated"] + p["control"] for p in evaluated["by_policy"]) == (
        evaluated["treatment_vs_control"]["treated"] + evaluated["treatment_vs_control"]["control"]
    )


def test_validates_forward_in_time_over_several_dates_and_reports(store, tmp_path):
    from crmkit.config.settings import Settings
    from crmkit.models.registry import ModelRef, Registry
    from crmkit.report.gather import gather
    from crmkit.report.page import write_report

    experiment(store, tmp_path, "spring", as_of=AS_OF)
    later = experiment(store, tmp_path, "late-summer", as_of=dt.date(2024, 9, 1), seed=5)
    result = train_uplift(
        store, ["spring", "late-summer"], WINDOW, FeatureConfig(), created=NOW, bootstrap_rounds=20
    )
    arm = result.card["arms"]["email"]
    forward = arm["out_of_time"]
    assert forward["validated_from"] == "2024-09-01"
    assert forward["rows"] == later.height
    assert forward["training_rows"] == arm["rows"] - later.height
    # learned in July, it still finds September's persuadables
    assert forward["model"]["qini"]["value"] > forward["random"]["qini"]["value"] + 0.1
    # the card keeps each ranking's Qini curve, and the report draws them
    curves = arm["qini_curves"]
    assert len(curves["shares"]) == 21
    assert set(curves) == {
        "shares",
        "t-learner",
        "x-learner",
        "lt-learner",
        "random",
        "churn risk",
        "value at risk",
    }
    for name in set(curves) - {"shares"}:
        assert curves[name][0] == 0.0
        # every ranking ends at the same point: all customers targeted
        assert curves[name][-1] == pytest.approx(curves["random"][-1])
    registry = Registry(tmp_path / "models")
    registry.save("uplift", result.model, result.card)
    data = gather(store, AS_OF, Settings(), registry, ModelRef("churn"))
    text = write_report(tmp_path / "report.html", data).read_text()
    assert "Qini curves, treatment email (cross-fitted)" in text
    assert "Uplift model uplift:1" in text


def test_outcomes_from_a_file_train_the_same_model_without_touching_the_store(
    store, tmp_path, runner
):
    from tests.conftest import invoke

    experiment(store, tmp_path, "spring", ingest=False)
    manifest = (store.root / "manifest.json").read_bytes()
    common = ["--store", str(store.root), "--registry", str(tmp_path / "models")]
    buys = str(tmp_path / "spring-buys.csv")
    args = ["uplift", "train", "--campaign", "spring", "--window", str(WINDOW), "--learner", "t"]
    result = invoke(runner, *args, "--outcomes", buys, *common)
    assert "not ingested" in result.stderr
    assert (store.root / "manifest.json").read_bytes() == manifest
    invoke(runner, "ingest", buys, "--store", str(store.root), "--quiet")
    invoke(runner, *args, *common)
    from crmkit.models.registry import ModelRef, Registry

    registry = Registry(tmp_path / "models")
    first, second = (registry.card(ModelRef("uplift", v)) for v in (1, 2))
    assert first["arms"] == second["arms"]
