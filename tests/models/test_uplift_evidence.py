"""The evidence gate and the exact random baseline."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmkit.campaigns.ledger_import import import_assignments
from crmkit.config.settings import FeatureConfig, IngestConfig
from crmkit.errors import ModelError
from crmkit.features.pipeline import store_features
from crmkit.ingest import ingest_files
from crmkit.models.uplift import train_uplift
from crmkit.models.uplift_evidence import arm_evidence, evidence, gated_arms
from crmkit.models.uplift_metrics import random_baseline, uplift_reports
from tests.conftest import NOW, invoke
from tests.models.test_uplift import AS_OF, WINDOW, experiment


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.tuples(st.booleans(), st.booleans()), min_size=4, max_size=60),
)
def test_random_baseline_is_exact(rows):
    y = np.array([float(r[0]) for r in rows])
    t = np.array([r[1] for r in rows])
    base = random_baseline(y, t, rounds=20, seed=1)
    assert base["qini"].value == 0.0
    assert base["auuc"].value == 0.0
    if t.all() or not t.any():
        assert np.isnan(base["uplift_at_10"].value)
        return
    treated = [v for v, g in zip(y, t, strict=True) if g]
    control = [v for v, g in zip(y, t, strict=True) if not g]
    effect = sum(treated) / len(treated) - sum(control) / len(control)
    assert base["uplift_at_10"].value == pytest.approx(effect)


def _verdicts(heterogeneous: bool, repetitions: int) -> list[bool]:
    """Judge a ranking by a covariate z on seeded randomised experiments."""
    out = []
    for seed in range(repetitions):
        rng = np.random.default_rng(seed)
        n = 3000
        z = rng.uniform(0, 1, n)
        t = rng.uniform(0, 1, n) < 0.5
        effect = 0.25 * z if heterogeneous else np.full(n, 0.05)  # same mean effect scale
        y = (rng.uniform(0, 1, n) < 0.1 + t * effect).astype(float)
        table = uplift_reports(y, t, {"t-learner": z}, rounds=100, seed=seed)
        table_json = {k: {m: i.to_json() for m, i in v.items()} for k, v in table.items()}
        out.append(evidence(table_json, "t").passed)
    return out


def test_the_gate_refuses_no_heterogeneity_and_accepts_real_heterogeneity():
    refused = 1 - np.mean(_verdicts(heterogeneous=False, repetitions=30))
    accepted = np.mean(_verdicts(heterogeneous=True, repetitions=30))
    assert refused >= 0.9
    assert accepted >= 0.8


def _null_experiment(store, tmp_path, campaign: str):
    """A randomised campaign that changes nobody: everyone buys at the same rate."""
    rng = np.random.default_rng(4)
    f = store_features(store, AS_OF, FeatureConfig()).filter(pl.col("recency_days") <= 365)
    treated = rng.uniform(0, 1, f.height) < 0.5
    path = tmp_path / f"{campaign}.csv"
    f.select(
        "customer_id",
        pl.lit(str(AS_OF)).alias("as_of"),
        pl.Series("group", np.where(treated, "treatment", "control")),
        pl.lit("email").alias("treatment"),
    ).write_csv(path)
    import_assignments(store, path, campaign)
    respond = rng.uniform(0, 1, f.height) < 0.3
    start = dt.datetime.combine(AS_OF, dt.time(12))
    buys = pl.DataFrame(
        {
            "customer_id": f["customer_id"].filter(pl.Series(respond)),
            "ts": [
                start + dt.timedelta(days=int(d)) for d in rng.integers(1, 30, int(respond.sum()))
            ],
            "amount": np.round(rng.uniform(20, 80, int(respond.sum())), 2),
            "order_id": [f"N-{campaign}-{i}" for i in range(int(respond.sum()))],
        }
    )
    buys.write_csv(tmp_path / f"{campaign}-buys.csv")
    ingest_files([tmp_path / f"{campaign}-buys.csv"], store, IngestConfig(), now=NOW)


@pytest.fixture
def store(sample_copy):
    return sample_copy


def test_a_model_without_evidence_drives_no_list(store, tmp_path, runner):
    _null_experiment(store, tmp_path, "nothing")
    common = ["--store", str(store.root), "--registry", str(tmp_path / "models")]
    trained = invoke(
        runner,
        "uplift",
        "train",
        "--campaign",
        "nothing",
        "--window",
        str(WINDOW),
        "--learner",
        "t",
        *common,
    )
    assert "NO EVIDENCE: arm email" in trained.stdout
    invoke(runner, "train", "--as-of", "2024-09-01", "--horizon", "90", "--model", "logreg",
           "--snapshots", "3", *common)  # fmt: skip
    config = tmp_path / "crmkit.toml"
    config.write_text('[targeting]\npolicy = "uplift"\ndefault_cost = 0.5\n', encoding="utf-8")
    args = ["targets", "--as-of", "2024-10-01", "--campaign", "next", "--out",
            str(tmp_path / "lists"), *common, "--config", str(config)]  # fmt: skip
    refused = invoke(runner, *args, code=5)
    assert "no arm with evidence" in refused.stderr
    assert "Qini" in refused.stderr
    assert not (tmp_path / "lists" / "next").exists()
    config.write_text(
        '[targeting]\npolicy = "uplift"\ndefault_cost = 0.5\nuplift_evidence = "value_at_risk"\n',
        encoding="utf-8",
    )
    fallback = invoke(runner, *args, "--json")
    assert any("ranked by value at risk instead" in w for w in fallback["warnings"])
    listed = pl.read_csv(tmp_path / "lists" / "next" / "2024-10-01.assignments.csv")
    assert set(listed["policy"]) == {"value_at_risk"}


def test_a_model_with_evidence_passes_and_old_cards_are_judged(store, tmp_path):
    experiment(store, tmp_path, "autumn")
    result = train_uplift(store, ["autumn"], WINDOW, FeatureConfig(), created=NOW)
    card = dict(result.card, name="uplift", version=1)
    verdict = arm_evidence(card)["email"]
    assert verdict.passed
    assert verdict.low > 0
    assert card["arms"]["email"]["rankings"]["random"]["qini"]["value"] == 0.0
    assert gated_arms(card, "refuse") == (["email"], [])
    old = {
        **card,
        "arms": {"email": {k: v for k, v in card["arms"]["email"].items() if k != "evidence"}},
    }
    assert arm_evidence(old)["email"] == verdict
    failing = {
        **card,
        "arms": {
            "email": {**card["arms"]["email"], "evidence": {**verdict.to_json(), "passed": False}}
        },
    }
    with pytest.raises(ModelError, match="no arm with evidence"):
        gated_arms(failing, "refuse")
    assert gated_arms(failing, "value_at_risk")[0] == []
    assert gated_arms(failing, "off")[0] == ["email"]
