from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor

import pytest

from crmkit.errors import ModelError
from crmkit.registry import ModelRef, Registry


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
    with pytest.raises(ModelError, match="not a classifier") as info:
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
