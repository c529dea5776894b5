from __future__ import annotations

import datetime as dt

import pytest

from crmkit.config import load_settings, parse_column_map
from crmkit.errors import ConfigError

from .conftest import RETAIL_CONFIG


def test_retail_config_loads():
    cfg = load_settings(RETAIL_CONFIG)
    assert cfg.ingest.columns["customer_id"] == "Customer ID"
    assert cfg.ingest.cancellations.order_id_prefix == "C"
    assert "product" in cfg.ingest.exclude


def test_defaults_without_file():
    cfg = load_settings(None)
    assert cfg.ingest.min_date == dt.date(1990, 1, 1)
    assert cfg.store.buckets == 16


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "crmkit.toml"
    path.write_text("[ingest]\ndayfrist = true\n")
    with pytest.raises(ConfigError, match=r"unknown key.*dayfrist"):
        load_settings(path)


def test_wrong_type_and_bad_literal(tmp_path):
    path = tmp_path / "crmkit.toml"
    path.write_text("[store]\nbuckets = 'many'\n")
    with pytest.raises(ConfigError, match="buckets"):
        load_settings(path)
    path.write_text("[ingest]\ndecimal = ';'\n")
    with pytest.raises(ConfigError, match="not one of"):
        load_settings(path)


def test_unknown_canonical_column(tmp_path):
    path = tmp_path / "crmkit.toml"
    path.write_text("[ingest.columns]\nclient = 'Client'\n")
    with pytest.raises(ConfigError, match="client is not a canonical column"):
        load_settings(path)


def test_invalid_toml(tmp_path):
    path = tmp_path / "crmkit.toml"
    path.write_text("[ingest\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("customer_id=CustomerID", {"customer_id": "CustomerID"}),
        ("CustomerID=customer_id", {"customer_id": "CustomerID"}),
        (
            "customer_id=Customer ID, ts=InvoiceDate",
            {"customer_id": "Customer ID", "ts": "InvoiceDate"},
        ),
    ],
)
def test_column_map_either_way_round(text, expected):
    assert parse_column_map(text) == expected


@pytest.mark.parametrize("text", ["customer_id", "foo=bar", "=x"])
def test_column_map_errors(text):
    with pytest.raises(ConfigError):
        parse_column_map(text)
