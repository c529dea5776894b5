"""Uplift on campaigns shaped like real exports: columns without a value, one date."""

from __future__ import annotations

import dataclasses

import polars as pl
import pytest

from crmkit.config.settings import FeatureConfig, IngestConfig
from crmkit.features.pipeline import store_features
from crmkit.ingest import ingest_files
from crmkit.models.uplift import train_uplift
from crmkit.store.core import Store
from tests.conftest import NOW, SAMPLE_DATA

from .test_uplift import AS_OF, WINDOW, experiment


@pytest.fixture
def bare_store(tmp_path) -> Store:
    """The sample history without product, category and channel columns (an order export)."""
    frame = pl.read_csv(SAMPLE_DATA / "transactions.csv", infer_schema=False)
    keep = [c for c in frame.columns if c not in ("product", "category", "channel")]
    path = tmp_path / "orders.csv"
    frame.select(keep).write_csv(path)
    store = Store(tmp_path / "bare")
    ingest_files([path], store, IngestConfig(), now=NOW)
    return store


@pytest.mark.parametrize("mix", [True, False])
def test_columns_without_a_value_are_left_out_and_recorded(bare_store, tmp_path, mix):
    cfg = dataclasses.replace(FeatureConfig(), mix=mix)
    experiment(bare_store, tmp_path, "spring")
    result = train_uplift(bare_store, ["spring"], WINDOW, cfg, created=NOW, bootstrap_rounds=20)
    dropped = result.card["dropped_features"]
    assert "category_share_max" in dropped or any(n.startswith("category") for n in dropped)
    assert not set(dropped) & set(result.card["features"])
    scores = result.model.predict_uplift(store_features(bare_store, AS_OF, cfg))
    assert scores["uplift_probability"].is_finite().all()


def test_uplift_train_and_score_commands_on_an_order_export(bare_store, tmp_path, runner):
    from tests.conftest import invoke

    experiment(bare_store, tmp_path, "orders")
    config = tmp_path / "c.toml"
    config.write_text("[features]\nmix = false\n")
    common = ["--store", str(bare_store.root), "--registry", str(tmp_path / "models"),
              "--config", str(config)]  # fmt: skip
    trained = invoke(
        runner, "uplift", "train", "--campaign", "orders", "--window", str(WINDOW), *common,
        "--json",
    )  # fmt: skip
    assert trained["model"] == "uplift:1"
    out = tmp_path / "uplift.csv"
    invoke(runner, "uplift", "score", "--as-of", "2024-10-01", "--out", str(out), *common)
    scores = pl.read_csv(out)
    assert scores["uplift_probability"].is_between(-1, 1).all()
    assert scores.height > 100


def test_the_churn_card_records_the_columns_an_order_export_cannot_fill(bare_store, tmp_path):
    from crmkit.config.settings import ModelConfig
    from crmkit.models.churn import train

    result = train(
        bare_store, AS_OF, 90, ModelConfig(snapshots=2, kind="logreg"), FeatureConfig(),
        created=NOW,
    )  # fmt: skip
    unobserved = result.card["unobserved_features"]
    assert "distinct_categories" in unobserved
    assert "recency_days" not in unobserved
    assert set(unobserved) <= set(result.card["features"])
    # the saved model still scores: its features are the matrix layout, as before
    from crmkit.config.settings import SegmentConfig
    from crmkit.models.registry import Registry, parse_ref
    from crmkit.models.scoring import score_customers

    registry = Registry(tmp_path / "models")
    registry.save("churn", result.model, result.card)
    scored = score_customers(bare_store, AS_OF, parse_ref("churn"), registry, SegmentConfig())
    assert scored.frame.height > 0
