from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from crmkit.campaigns.ledger import read_ledger
from crmkit.campaigns.ledger_import import import_assignments
from crmkit.errors import BadInputError
from crmkit.simulate.response import simulate_response
from crmkit.store.core import Store
from tests.conftest import NOW, invoke, trained_sample_store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store, _ = trained_sample_store(tmp_path_factory.mktemp("import"))
    return store


def _experiment(store, n=1500, seed=3):
    """A past experiment run elsewhere: two arms and one shared control group."""
    ids = store.transactions().select("customer_id").unique().sort("customer_id").collect()
    rng = __import__("numpy").random.default_rng(seed)
    pick = ids.sample(n, seed=seed)["customer_id"]
    group = rng.choice(["Treatment", "control", "treatment"], n)
    arm = [
        ("sms" if rng.uniform() < 0.5 else "call") if g.lower() == "treatment" else ""
        for g in group
    ]
    return pl.DataFrame({"Client ID": pick, "Sent": ["01/02/2025"] * n, "Arm": group, "Offer": arm})


def test_import_then_evaluate_two_arms_against_one_shared_control(store, tmp_path):
    frame = _experiment(store)
    path = tmp_path / "exp.csv"
    frame.write_csv(path)
    report = import_assignments(
        store,
        path,
        "old-exp",
        columns={"as_of": "Sent", "group": "Arm", "treatment": "Offer"},
        dayfirst=True,
    )
    assert report.rows == 1500
    assert report.dates == ("2025-02-01", "2025-02-01")
    treated = frame.filter(pl.col("Arm").str.to_lowercase() == "treatment")
    assert report.groups == {"treatment": treated.height, "control": 1500 - treated.height}
    rows = read_ledger(store).filter(pl.col("campaign_id") == "old-exp")
    assert rows.height == 1500
    assert set(rows.filter(pl.col("group") == "control")["treatment"]) == {"none"}
    assert set(rows["policy"]) == {"imported"}
    # outcomes with a known uplift for sms only; evaluate compares each arm with all controls
    listed = rows.with_columns(pl.lit(0.5).alias("churn_probability"))
    tx, _ = simulate_response(listed, {"sms": 0.3}, 30, seed=1)
    response = tmp_path / "response.csv"
    tx.write_csv(response, datetime_format="%Y-%m-%d %H:%M:%S")
    from crmkit.campaigns.evaluation import evaluate_with_outcomes

    result = evaluate_with_outcomes(store, "old-exp", 30, response, NOW)
    arms = {c["treatment"]: c for c in result.by_treatment}
    assert set(arms) == {"call", "sms"}
    controls = report.groups["control"]
    assert arms["sms"]["control"] == arms["call"]["control"] == controls
    assert abs(arms["sms"]["uplift"] - 0.3) < 0.1  # the simulated true uplift
    assert arms["sms"]["significant"]
    assert abs(arms["call"]["uplift"]) < 0.1  # no true uplift


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("C0000001,2025-02-01,treatment\nC0000002,2025-02-01,maybe\n", "a group other than"),
        ("C0000001,2025-02-01,treatment\nC0000001,2025-02-01,control\n", "twice on one date"),
        ("C0000001,2025-02-01,treatment\nC0000001,2025-02-08,control\n", "both treatment and"),
        ("C0000001,2025-02-01,treatment\nNOT-A-CUSTOMER,2025-02-01,control\n", "does not know"),
        ("C0000001,2025-02-01,treatment\nC0000002,someday,control\n", "cannot be read"),
        (",2025-02-01,treatment\n", "no customer id"),
    ],
)
def test_invalid_rows_import_nothing_and_are_named(store, tmp_path, rows, message):
    path = tmp_path / "bad.csv"
    path.write_text("customer_id,as_of,group\n" + rows)
    manifest = (store.root / "manifest.json").read_bytes()
    with pytest.raises(BadInputError, match=message) as info:
        import_assignments(store, path, "bad")
    assert info.value.exit_code == 3
    assert "line" in str(info.value)
    assert (store.root / "manifest.json").read_bytes() == manifest


def test_a_campaign_already_in_the_ledger_needs_replace(store, tmp_path, runner):
    path = tmp_path / "a.csv"
    path.write_text(
        "customer_id,date,group\nC0000001,2025-03-01,treatment\nC0000002,2025-03-01,control\n"
    )
    first = invoke(runner, "ledger", "import", str(path), "--campaign", "twice",
                   "--store", str(store.root), "--json")  # fmt: skip
    assert (first["rows"], first["status"]) == (2, "imported")
    manifest = (store.root / "manifest.json").read_bytes()
    same = invoke(runner, "ledger", "import", str(path), "--campaign", "twice",
                   "--store", str(store.root), "--json")  # fmt: skip
    assert (same["status"], same["rows"], same["replaced"]) == ("unchanged", 2, 0)
    assert (store.root / "manifest.json").read_bytes() == manifest
    path.write_text("customer_id,date,group\nC0000003,2025-03-01,control\n")
    again = invoke(runner, "ledger", "import", str(path), "--campaign", "twice",
                   "--store", str(store.root), code=3)  # fmt: skip
    assert "--replace" in again.stderr
    replaced = invoke(runner, "ledger", "import", str(path), "--campaign", "twice", "--replace",
                    "--store", str(store.root), "--json")  # fmt: skip
    assert (replaced["replaced"], replaced["status"]) == (2, "replaced")
    rows = read_ledger(Store(store.root)).filter(pl.col("campaign_id") == "twice")
    assert rows["customer_id"].to_list() == ["C0000003"]
    assert json.loads(json.dumps(replaced))["groups"] == {"treatment": 0, "control": 1}
    assert rows["as_of"].to_list() == [dt.date(2025, 3, 1)]


def test_a_campaign_that_targets_recorded_is_never_replaced(store, tmp_path, runner):
    """Its list files would no longer match the ledger."""
    from crmkit.campaigns.lists import write_targets
    from crmkit.config.policy import TargetPolicy
    from crmkit.config.settings import SegmentConfig
    from crmkit.models.registry import ModelRef, Registry
    from crmkit.models.scoring import score_customers

    registry = Registry(store.root.parent / "models")
    day = dt.date(2025, 1, 1)
    scores = score_customers(store, day, ModelRef("churn"), registry, SegmentConfig()).frame
    listed = write_targets(scores, store, "listed", day, TargetPolicy(size=40), tmp_path / "out")
    assignments = pl.read_csv(listed.paths["assignments"])
    before = read_ledger(store).filter(pl.col("campaign_id") == "listed")
    path = tmp_path / "other.csv"
    path.write_text("customer_id,as_of,group\nC0000003,2025-01-01,control\n")
    result = invoke(runner, "ledger", "import", str(path), "--campaign", "listed", "--replace",
                    "--store", str(store.root), code=3)  # fmt: skip
    assert "recorded by `crmkit targets`" in result.stderr
    after = read_ledger(Store(store.root)).filter(pl.col("campaign_id") == "listed")
    assert after.height == before.height == assignments.height
    assert pl.read_csv(listed.paths["assignments"]).equals(assignments)
