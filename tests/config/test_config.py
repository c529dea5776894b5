from __future__ import annotations

import datetime as dt

import pytest

from crmkit.config.loading import load_settings, parse_column_map
from crmkit.errors import ConfigError
from tests.conftest import RETAIL_CONFIG


def test_retail_config_loads():
    cfg = load_settings(RETAIL_CONFIG)
    assert cfg.ingest.columns["customer_id"] == "Customer ID"
    assert cfg.ingest.cancellations.order_id_prefix == "C"
    assert "product" in cfg.ingest.exclude


def test_defaults_without_file():
    cfg = load_settings(None)
    assert cfg.ingest.min_date == dt.date(1990, 1, 1)
    assert cfg.store.buckets == 16
    assert cfg.features.mix is True


def test_mix_switch_is_a_yes_or_no(tmp_path):
    path = tmp_path / "crmkit.toml"
    path.write_text("[features]\nmix = false\n")
    assert load_settings(path).features.mix is False
    path.write_text("[features]\nmix = 'no'\n")
    with pytest.raises(ConfigError, match="mix"):
        load_settings(path)


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


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ("[store]\nbuckets = 0\n", r"\[store\] buckets = 0: must be between 1 and 4096"),
        ("[store]\nbuckets = 100000\n", r"\[store\] buckets"),
        ("[model]\nthreads = -1\n", r"\[model\] threads"),
        ("[model]\nmax_training_rows = 10\n", r"\[model\] max_training_rows"),
        ("[compute]\nworkers = 0\n", r"\[compute\] workers"),
        ("[model]\nseed = -1\n", r"\[model\] seed"),
        ("[model]\nsnapshots = 0\n", r"\[model\] snapshots"),
        ("[features]\nwindows = [90, 30]\n", r"\[features\] windows"),
        ("[features]\nwindows = []\n", r"\[features\] windows"),
        ("[features]\nseason_window_days = 0\n", r"\[features\] season_window_days"),
        ("[segments]\nmax_k = 1\n", r"\[segments\] max_k"),
        ("[segments]\ncycle_edges = [30.0, 10.0]\n", r"\[segments\] cycle_edges"),
        ("[targeting]\ncontrol_fraction = 1.0\n", r"\[targeting\] control_fraction"),
        ("[targeting]\nholdout_fraction = -0.1\n", r"\[targeting\] holdout_fraction"),
        ("[targeting]\nmin_churn_probability = 2.0\n", r"\[targeting\] min_churn_probability"),
        ("[targeting.costs]\ncall = -1.0\n", r"\[targeting\] costs"),
        ("[ingest]\ndelimiter = ';;'\n", r"\[ingest\] delimiter"),
        ("[ingest]\nmax_abs_amount = 0.0\n", r"\[ingest\] max_abs_amount"),
        ("[ingest.exclude]\nproduct = '(unclosed'\n", r"\[ingest.exclude\] product"),
    ],
)
def test_out_of_range_settings_are_named(tmp_path, toml, named):
    path = tmp_path / "crmkit.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=named) as info:
        load_settings(path)
    assert info.value.exit_code == 2


def test_command_line_overrides_are_checked_too():
    from crmkit.config.loading import overlay
    from crmkit.config.settings import Settings

    cfg = overlay(Settings(), "targeting", size=10, budget=None)
    assert cfg.targeting.size == 10
    assert cfg.targeting.budget is None
    with pytest.raises(ConfigError, match=r"command line \[targeting\] control_fraction"):
        overlay(Settings(), "targeting", control_fraction=1.5)


def test_canonical_names_match_the_schema():
    from crmkit import columns, schema

    assert tuple(schema.TRANSACTION_SCHEMA) == columns.CANONICAL


def test_the_settings_reference_is_current():
    from crmkit.config.reference import settings_reference
    from tests.conftest import ROOT

    text = settings_reference()
    assert (ROOT / "docs" / "settings.md").read_text() == text, (
        "docs/settings.md is stale: python -m crmkit.config.reference > docs/settings.md"
    )
    assert "| `max_future_days` | `int` | `1` | between 0 and 36500 |" in text
    assert "## `[ingest.cancellations]`" in text
