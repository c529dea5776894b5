"""The model card: one reader, one compatibility check, old cards upgraded."""

from __future__ import annotations

import json

import pytest

from crmkit.errors import ModelError
from crmkit.features.names import FEATURE_VERSION
from crmkit.models.card import CARD_VERSION, ModelCard
from crmkit.models.registry import ModelRef, Registry
from tests.models.test_registry_compat import FIXTURE


def test_a_card_of_the_previous_release_reads_as_version_1():
    data = json.loads((FIXTURE / "churn" / "1" / "card.json").read_text())
    assert "card_version" not in data
    card = ModelCard.from_json(data)
    assert (card.kind, card.card_version, card.name, card.version) == ("churn", 1, "churn", 1)
    assert card.classifier == data["kind"] == "blend"
    assert card.feature_version == FEATURE_VERSION
    assert card.features == tuple(data["features"])
    assert card["horizon_days"] == data["horizon_days"]  # the kind's own content
    assert dict(card) == data
    card.require("churn")
    assert (
        ModelCard.from_json(json.loads((FIXTURE / "clv" / "1" / "card.json").read_text())).kind
        == "clv"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": 7}, "kind is not a name"),
        ({"feature_version": "3"}, "feature_version is not a int"),
        ({"features": "a,b"}, "features are not a list"),
        ({"version": True}, "version is not a int"),
    ],
)
def test_malformed_cards_are_model_errors(change, message):
    with pytest.raises(ModelError, match=message):
        ModelCard.from_json({"name": "m", **change}, "m/card.json")
    with pytest.raises(ModelError, match="JSON object"):
        ModelCard.from_json([1, 2])


def test_one_check_for_kind_and_feature_version():
    churn = ModelCard.from_json({"name": "churn", "version": 2, "feature_version": FEATURE_VERSION})
    with pytest.raises(ModelError, match=r"is not a churn model \(it is forest"):
        ModelCard.from_json({"name": "f", "kind": "forest"}).require("churn")
    with pytest.raises(ModelError, match="churn:2 is not an uplift model"):
        churn.require("uplift")
    old = ModelCard.from_json({"name": "clv", "version": 1, "kind": "clv", "feature_version": 1})
    with pytest.raises(
        ModelError,
        match=f"feature version 1, this crmkit computes version {FEATURE_VERSION}: refit it",
    ):
        old.require("clv")
    assert old.to_json()["card_version"] == CARD_VERSION


def test_saved_cards_carry_the_card_version_and_kind(tmp_path):
    registry = Registry(tmp_path / "models")
    version, _ = registry.save(
        "m", {"a": 1}, {"features": ["x"], "feature_version": FEATURE_VERSION}
    )
    card = registry.card(ModelRef("m", version))
    assert (card.kind, card.card_version, card.features) == ("churn", CARD_VERSION, ("x",))
    assert card.sha256 is not None
