"""`crmkit policy compare` on the sample store: a model from another campaign, refusals."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.conftest import invoke
from tests.models.test_uplift import AS_OF, WINDOW, experiment


@pytest.fixture
def two_campaigns(sample_copy, tmp_path, runner):
    """Persuadables (three or more purchase days) respond to e-mail in both campaigns."""
    experiment(sample_copy, tmp_path, "spring")
    experiment(sample_copy, tmp_path, "autumn", as_of=AS_OF + dt.timedelta(days=92), seed=2)
    config = tmp_path / "crmkit.toml"
    config.write_text("[targeting.costs]\nemail = 0.5\n", encoding="utf-8")
    common = ["--store", str(sample_copy.root), "--registry", str(tmp_path / "models")]
    common += ["--config", str(config)]
    return common


def test_a_model_is_proved_on_a_campaign_it_never_saw(two_campaigns, runner):
    common = two_campaigns
    invoke(runner, "uplift", "train", "--campaign", "spring", "--window", str(WINDOW), *common,
           "--quiet")  # fmt: skip
    compare = ["policy", "compare", "--window", str(WINDOW), "--budget", "200", *common]
    found = invoke(runner, *compare, "--campaign", "autumn", "--model", "uplift", "--json")
    assert found["uplift_source"] == "uplift model uplift"
    assert not found["shared_control"]
    rows = {p["policy"]: p for p in found["policies"]}
    assert set(rows) == {"value at risk", "random", "treat all", "uplift"}
    for name in ("value at risk", "random", "uplift"):
        assert rows[name]["cost"] <= 200
    # the model finds the persuadables: more extra buyers than random at the same budget
    uplift, random = (
        rows["uplift"]["incremental_customers"],
        rows["random"]["incremental_customers"],
    )
    assert uplift["dr"]["value"] > random["dr"]["value"] + 10
    assert uplift["dr"]["low"] > 0
    assert rows["treat all"]["contacts"] == found["customers"]
    # a model trained on the campaign itself would be judged on what it learned from
    refused = invoke(runner, *compare, "--campaign", "spring", "--model", "uplift", code=3)
    assert "trained on campaign spring" in refused.stderr


def test_without_a_cost_the_budget_cannot_be_shared(two_campaigns, runner, tmp_path):
    common = [a for a in two_campaigns if not a.endswith("crmkit.toml") and a != "--config"]
    free = tmp_path / "free.toml"
    free.write_text("[targeting]\nmin_customer_value = 0\n", encoding="utf-8")
    args = ["policy", "compare", "--campaign", "autumn", "--window", str(WINDOW)]
    result = invoke(runner, *args, "--budget", "100", *common, "--config", str(free), code=2)
    assert "no cost" in result.stderr
    invoke(runner, *args, "--budget", "0", *two_campaigns, code=3)
