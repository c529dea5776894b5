"""The whole learning loop, end to end, on exports shaped like a real e-mail experiment.

ledger import -> evaluate -> uplift train -> the evidence gate -> policy compare ->
targets --policy uplift, with every outcome read from a file (nothing simulated enters the
store), on data the simulator did not make (:mod:`tests.realistic`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from tests.conftest import invoke as _invoke
from tests.realistic import ARMS, SEND, WINDOW, write_export

SETTINGS = """
[targeting]
uplift_evidence = "value_at_risk"
default_cost = 0.05
[targeting.costs]
email_discount = 0.5
email_news = 0.05
"""


def invoke(args: list[str], code: int = 0):
    """Run one crmkit command; return its parsed --json, else the result."""
    return _invoke(CliRunner(), *args, code=code)


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    root = tmp_path_factory.mktemp("real-campaign")
    export = write_export(root / "export", customers=16000, seed=5)
    config = root / "crmkit.toml"
    config.write_text(SETTINGS, encoding="utf-8")
    common = ["--store", str(root / "store"), "--config", str(config)]
    registry = ["--registry", str(root / "models")]
    invoke(["ingest", str(export.orders), "--dayfirst", *common, "--quiet"])
    invoke(
        ["ingest", "--kind", "customers", str(export.customers), "--known-from", "2022-01-01",
         *common, "--quiet"]
    )  # fmt: skip
    ledger = ["ledger", "import", str(export.assignments), "--campaign", "spring", *common]
    # one send date, 04/03/2024, in a store of day-first exports: never guessed
    refused = invoke(ledger, code=3)
    assert "--dayfirst" in refused.stderr
    imported = invoke([*ledger, "--dayfirst", "--json"])
    outcomes = ["--outcomes", str(export.responses)]
    return root, export, common, registry, outcomes, imported


def test_import_and_evaluate_read_the_export_as_it_is(loop):
    _root, export, common, _, outcomes, imported = loop
    assert imported["rows"] == len(export.ids)
    assert imported["dates"] == [str(SEND), str(SEND)]
    summary = invoke(
        ["evaluate", "--campaign", "spring", "--window", str(WINDOW), *outcomes, *common, "--json"]
    )
    arms = {row["treatment"]: row for row in summary["by_treatment"]}
    assert set(arms) == set(ARMS)
    for arm in ARMS:
        # each arm against the one control group shared by both
        assert arms[arm]["treated"] == export.arm.count(arm)
        assert arms[arm]["control"] == export.arm.count("")
    responses = pl.read_csv(export.responses)
    rate = responses.height / len(export.ids)
    assert 0.005 < rate < 0.02  # about 1% bought in the window
    # an imported ledger has no churn probability: the history's covariates alone adjust
    overall = summary["treatment_vs_control"]
    adjusted = overall["adjusted"]
    assert 1 <= adjusted["covariates"] <= 7
    for key in ("uplift", "revenue_uplift_per_customer"):
        assert math.isfinite(adjusted[key])
    width = {k: overall[f"{k}_high"] - overall[f"{k}_low"] for k in ("uplift", "revenue_uplift")}
    assert adjusted["uplift_high"] - adjusted["uplift_low"] <= width["uplift"] * 1.01
    assert 0 <= adjusted["variance_reduction"]["revenue"] < 1


def test_the_loop_from_import_to_an_uplift_list(loop):
    """One test: training is the expensive step, and every later step builds on it."""
    root, export, common, registry, outcomes, _ = loop
    trained = invoke(
        ["uplift", "train", "--campaign", "spring", "--window", str(WINDOW), *outcomes,
         *registry, *common, "--json"]
    )  # fmt: skip
    card = json.loads((Path(trained["path"]) / "card.json").read_text(encoding="utf-8"))
    # the customer table's attributes are used without being listed in the settings
    assert {"region", "loyalty_member", "age_band"} <= set(card["features"])
    # no category or channel column: those features are dropped, by name, with why
    assert any("categor" in name or "channel" in name for name in card["dropped_features"])
    arms = trained
    assert set(arms) - {"model", "path"} == set(ARMS)
    for arm in ARMS:
        info = card["arms"][arm]
        assert info["runner_up"]["learner"] != info["learner"]
        assert "passed" in info["evidence"]
    # the newsletter changes almost nobody: its gate must not pass
    assert card["arms"]["email_news"]["evidence"]["passed"] is False
    compared = invoke(
        ["policy", "compare", "--campaign", "spring", "--window", str(WINDOW), "--budget", "300",
         *outcomes, *common, "--json"]
    )  # fmt: skip
    names = {p["policy"] for p in compared["policies"]}
    assert names >= {"uplift", *(f"value at risk ({a})" for a in ARMS)}
    assert compared["shared_control"] is True
    assert compared["customers"] == len(export.ids)
    for policy in compared["policies"]:
        if policy["policy"].startswith("treat all"):
            continue
        assert policy["cost"] <= 300 + 1e-9
        for kind in ("incremental_customers", "incremental_value"):
            dr = policy[kind]["dr"]
            assert dr["low"] <= dr["value"] <= dr["high"]
    assert (root / "store" / "comparisons" / "spring.json").is_file()
    page = root / "report.html"
    invoke(
        ["report", "--as-of", str(SEND), "--campaign", "spring", "--window", str(WINDOW),
         "--out", str(page), *outcomes, *registry, *common, "--quiet"]
    )  # fmt: skip
    text = page.read_text(encoding="utf-8")
    assert "Policies replayed on campaign spring" in text
    assert "value at risk (email_discount)" in text
    _targets_by_uplift(root, export, common, registry)


def _targets_by_uplift(root, export, common, registry):
    # the weeks after the send date arrive in the store, as the next export would
    invoke(["ingest", str(export.responses), "--dayfirst", *common, "--quiet"])
    as_of = str(SEND + dt.timedelta(days=40))  # after the campaign's 30-day cooldown
    invoke(
        ["train", "--as-of", as_of, "--horizon", "60", "--name", "churn", "--snapshots", "3",
         "--model", "logreg", *registry, *common, "--quiet"]
    )  # fmt: skip
    summary = invoke(
        ["targets", "--as-of", as_of, "--campaign", "next", "--policy", "uplift", "--budget",
         "100", "--out", str(root / "lists"), *registry, *common, "--json"]
    )  # fmt: skip
    contacts = pl.read_csv(next((root / "lists" / "next").glob("*.contacts.csv")))
    assert contacts.height == summary["contacts"] > 0
    # the discount's signal lives in two attributes: the attributes-only learner finds it
    # and passes the gate; the newsletter has no evidence, so nobody gets it by uplift
    card = json.loads((root / "models" / "uplift" / "1" / "card.json").read_text("utf-8"))
    assert card["arms"]["email_discount"]["learner"] == "ta"
    assert card["arms"]["email_discount"]["evidence"]["passed"] is True
    assert set(contacts["treatment"]) == {"email_discount"}
    band = summary["spend"]["expected_profit"]
    assert band["low"] <= band["value"] <= band["high"]
    assert summary["spend"]["total"] <= 100 + 1e-9
