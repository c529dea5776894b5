"""The Python API: the example of docs/python-api.md runs as written, on real values."""

from __future__ import annotations

import re
import shutil

import polars as pl
import pytest

import crmkit
from tests.conftest import ROOT, SAMPLE_DATA

DOC = ROOT / "docs" / "python-api.md"


def test_the_documented_notebook_runs(tmp_path, monkeypatch, capsys):
    shutil.copytree(SAMPLE_DATA, tmp_path / "sample_data")
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert len(blocks) == 2
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)  # noqa: S102 - the project's own doc
    printed = capsys.readouterr().out
    assert "17927 rows stored, 0 quarantined" in printed
    scores = namespace["scores"]
    assert isinstance(scores, pl.DataFrame)
    assert scores["churn_probability"].is_between(0, 1).all()
    assert namespace["trained"].saved_as == "churn:1"
    assert (tmp_path / "nb" / "models" / "churn" / "1" / "card.json").is_file()
    assert not (tmp_path / "nb" / "out").exists()  # a dry run writes nothing


def test_the_api_is_lazy_and_complete():
    import importlib

    assert set(crmkit.API) <= set(dir(importlib.import_module("crmkit.api")))
    for name in crmkit.API:
        assert callable(getattr(crmkit, name))
    with pytest.raises(AttributeError):
        _ = crmkit.no_such_function
    packages = {p.name for p in (ROOT / "crmkit").iterdir() if (p / "__init__.py").is_file()}
    assert not packages & set(crmkit.API)  # a subpackage would hide the function


def test_api_dates_are_checked(tmp_path):
    from crmkit.errors import UsageError

    with pytest.raises(UsageError, match="YYYY-MM-DD"):
        crmkit.feature_table(tmp_path / "s", "01/02/2025")
