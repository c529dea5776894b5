from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor

import pytest

from crmkit.errors import ModelError
from crmkit.models.registry import ModelRef, Registry


def _save(root: str, i: int) -> int:
    version, _ = Registry(root).save("race", {"model": i}, {"kind": "test"})
    return version


def test_concurrent_saves_take_distinct_versions(tmp_path):
    with ProcessPoolExecutor(max_workers=4) as pool:
        versions = list(pool.map(_save, [str(tmp_path)] * 12, range(12)))
    assert sorted(versions) == list(range(1, 13))
    registry = Registry(tmp_path)
    assert registry.versions("race") == list(range(1, 13))
    for v in versions:
        card = registry.card(ModelRef("race", v))
        assert card["version"] == v


def test_a_card_that_is_not_an_object_or_a_model_that_is_not_one_exit_5(tmp_path):
    registry = Registry(tmp_path)
    registry.save("m", {"not": "a model"}, {"kind": "hgb"})
    with pytest.raises(ModelError, match="no predict_proba") as info:
        registry.load(ModelRef("m"))
    assert info.value.exit_code == 5
    (tmp_path / "m" / "1" / "card.json").write_text(json.dumps([]))
    with pytest.raises(ModelError, match="must be a JSON object"):
        registry.load(ModelRef("m"))
    # bytes that are not a pickle at all, with a matching hash
    import hashlib

    (tmp_path / "m" / "1" / "model.joblib").write_bytes(b"not a pickle")
    card = {"kind": "hgb", "sha256": hashlib.sha256(b"not a pickle").hexdigest()}
    (tmp_path / "m" / "1" / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="cannot be loaded"):
        registry.load(ModelRef("m"))


def test_signed_models_refuse_unsigned_and_tampered_cards(tmp_path):
    from sklearn.dummy import DummyClassifier

    from crmkit.errors import ConfigError
    from crmkit.models.registry import read_key

    key_file = tmp_path / "model.key"
    key_file.write_text("a-secret-key-of-enough-bytes\n")
    models = tmp_path / "models"
    key = read_key(str(key_file), models)
    model = DummyClassifier().fit([[0], [1]], [0, 1])
    Registry(models).save("plain", model, {"kind": "hgb"})
    Registry(models, key).save("signed", model, {"kind": "hgb"})
    signed = Registry(models, key)
    loaded, card = signed.load(ModelRef("signed"))
    assert len(card["signature"]) == 64
    assert loaded.predict_proba([[0]]).shape == (1, 2)
    with pytest.raises(ModelError, match="not signed"):
        signed.load(ModelRef("plain"))
    # an attacker who can write the registry rewrites the model and its hash, not the key
    card_path = models / "signed" / "1" / "card.json"
    tampered = json.loads(card_path.read_text())
    tampered["horizon_days"] = 7
    card_path.write_text(json.dumps(tampered))
    with pytest.raises(ModelError, match="signature does not match"):
        signed.load(ModelRef("signed"))
    assert Registry(models).load(ModelRef("plain"))[1]["kind"] == "hgb"  # no key: hash only
    with pytest.raises(ConfigError, match="inside the registry"):
        read_key(str(models / "k"), models)
    (tmp_path / "short.key").write_text("short")
    with pytest.raises(ConfigError, match="16 bytes"):
        read_key(str(tmp_path / "short.key"), models)


def test_score_refuses_an_unsigned_model_when_a_key_is_configured(tmp_path, runner, monkeypatch):
    from tests.conftest import invoke, trained_sample_store

    store, registry = trained_sample_store(tmp_path)
    key_file = tmp_path / "model.key"
    key_file.write_text("another-secret-key-0123456789")
    monkeypatch.setenv("CRMKIT_MODEL_KEY_FILE", str(key_file))
    args = ["--as-of", "2025-01-01", "--store", str(store.root), "--registry", str(registry.root)]
    result = invoke(runner, "score", *args, "--out", str(tmp_path / "s.csv"), code=5)
    assert "not signed" in result.stderr


def test_a_model_saves_the_same_bytes_however_many_threads_fitted_it(tmp_path):
    """Gradient boosting records its fit's threads; the registry saves none of that."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    from crmkit.models.estimators import make_hgb

    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, 4))
    y = (x[:, 0] + rng.normal(size=600) > 0).astype(int)
    registry = Registry(tmp_path)
    saved = []
    for n in (1, 2):
        with threadpool_limits(limits={"openmp": n}):
            model = make_hgb(7).fit(x, y)
        nested = {"arms": [("treated", model)], "note": "x"}  # found inside other objects
        _, directory = registry.save("m", nested, {"kind": "clv"})  # a kind of any object
        saved.append((directory / "model.joblib").read_bytes())
    assert saved[0] == saved[1]
    loaded, _ = registry.load(ModelRef("m", 2))
    assert isinstance(loaded, dict)
    assert np.array_equal(loaded["arms"][0][1].predict_proba(x), model.predict_proba(x))
