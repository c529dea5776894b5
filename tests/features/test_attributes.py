from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmkit.config.settings import FeatureConfig, ModelConfig
from crmkit.errors import BadInputError, ConfigError
from crmkit.features.attributes import (
    attribute_name,
    attribute_schema,
    detect_type,
    load_attributes,
    stored_types,
)
from crmkit.features.pipeline import store_features
from crmkit.store.core import Store
from tests.conftest import NOW

HEADER = "Customer ID;Region;Signup Date;Loyalty Card;Spend Limit;Postcode\n"


@pytest.fixture
def store(sample_copy) -> Store:
    return sample_copy


def customers(store: Store, n: int) -> list[str]:
    ids = store.transactions().select("customer_id").unique().sort("customer_id").collect()
    return ids["customer_id"].head(n).to_list()


def write(path, lines: list[str]):
    path.write_text(HEADER + "".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def good_lines(ids: list[str], region: str = "North") -> list[str]:
    return [
        f"{c};{region};2023-0{1 + i % 9}-1{i % 10};yes;{100 + i};0{i:04d}"
        for i, c in enumerate(ids)
    ]


def test_types_quarantine_and_reconciliation(store, tmp_path):
    ids = customers(store, 40)
    lines = good_lines(ids)
    lines += [
        f"{ids[0]};North;2023-01-10;yes;100;00000",  # the same row again: a duplicate
        f"{ids[1]};South;2023-02-11;yes;101;00001",  # a different region for ids[1]: conflict
        ";West;2023-03-01;no;5;12345",  # no id
        "C9;West;soon;no;5;12345",  # not a date (39 of 40 dates are)
        "C10;West;2023-03-01;no;lots;12345",  # not a number
    ]
    report = load_attributes(store, write(tmp_path / "c.csv", lines), now=NOW)
    assert report.types == {
        "region": "text",
        "signup_date": "date",
        "loyalty_card": "bool",
        "spend_limit": "number",
        "postcode": "text",  # leading zeros: a code, not a number
    }
    assert report.rows_read == 45
    assert report.rows_duplicate == 1
    assert report.reasons == {
        "bad_date:signup_date": 1,
        "bad_number:spend_limit": 1,
        "conflicting_duplicate": 2,
        "missing_customer_id": 1,
    }
    assert report.rows_quarantined == 5
    assert report.rows_stored == 39
    assert report.rows_read == report.rows_stored + report.rows_duplicate + report.rows_quarantined
    quarantine = store.quarantine().filter(pl.col("source_file").str.ends_with("c.csv"))
    assert quarantine.height == 5
    assert sorted(quarantine["line"].to_list()) == [3, 43, 44, 45, 46]
    assert stored_types(store)["signup_date"] == "date"


def test_loading_twice_changes_nothing(store, tmp_path):
    path = write(tmp_path / "c.csv", good_lines(customers(store, 20)))
    load_attributes(store, path, now=NOW)
    before = store.manifest()
    again = load_attributes(store, path, now=NOW + dt.timedelta(days=3))
    assert again.status == "already loaded"
    assert again.rows_read == again.rows_stored == 0
    assert store.manifest().parts == before.parts


def test_a_later_load_counts_from_when_it_is_known(store, tmp_path):
    ids = customers(store, 20)
    cfg = FeatureConfig(attributes=("region", "signup_date"))
    load_attributes(
        store, write(tmp_path / "a.csv", good_lines(ids)), now=NOW, known_from=dt.date(2024, 1, 1)
    )
    later = dt.datetime(2024, 3, 1, 10, 30)  # loaded during 1 March
    load_attributes(store, write(tmp_path / "b.csv", good_lines(ids, "South")), now=later)

    def regions(day: dt.date) -> set:
        f = store_features(store, day, cfg)
        return set(f.filter(pl.col("customer_id").is_in(ids))["region"].to_list())

    assert regions(dt.date(2023, 12, 31)) == {None}
    assert regions(dt.date(2024, 1, 1)) == {"North"}
    assert regions(dt.date(2024, 3, 1)) == {"North"}  # loaded after the day began
    assert regions(dt.date(2024, 3, 2)) == {"South"}
    f = store_features(store, dt.date(2024, 3, 2), cfg)
    assert f.schema["signup_date_age_days"] == pl.Int64
    known = f.filter(pl.col("region").is_not_null())
    assert known.height > 0
    for row in known.iter_rows(named=True):
        i = ids.index(row["customer_id"])
        signup = dt.date(2023, 1 + i % 9, 10 + i % 10)
        assert row["signup_date_age_days"] == (dt.date(2024, 3, 2) - signup).days


def test_types_are_kept_from_the_first_load(store, tmp_path):
    ids = customers(store, 20)
    load_attributes(store, write(tmp_path / "a.csv", good_lines(ids)), now=NOW)
    lines = [f"{c};North;2023-01-01;yes;unknown;01234" for c in ids[:3]]
    report = load_attributes(store, write(tmp_path / "b.csv", lines), now=NOW)
    assert report.types["spend_limit"] == "number"
    assert report.reasons == {"bad_number:spend_limit": 3}


def test_unknown_attribute_and_missing_id_column(store, tmp_path):
    with pytest.raises(ConfigError, match="region"):
        attribute_schema(store, ["region"])
    path = tmp_path / "x.csv"
    path.write_text("name,region\nA,North\n", encoding="utf-8")
    with pytest.raises(BadInputError, match="no customer id column"):
        load_attributes(store, path, now=NOW)


def test_models_use_categorical_attributes(store, tmp_path):
    from crmkit.config.settings import SegmentConfig
    from crmkit.models.churn import train
    from crmkit.models.registry import ModelRef, Registry
    from crmkit.models.scoring import score_customers

    ids = store.transactions().select("customer_id").unique().sort("customer_id").collect()
    regions = ["North", "South", "East", "West"]
    lines = [
        f"{c};{regions[i % 4]};2022-0{1 + i % 9}-15;{'yes' if i % 3 else 'no'};{i % 50};X{i}"
        for i, c in enumerate(ids["customer_id"])
    ]
    load_attributes(
        store, write(tmp_path / "c.csv", lines), now=NOW, known_from=dt.date(2023, 1, 1)
    )
    cfg = FeatureConfig(attributes=("region", "signup_date", "loyalty_card"))
    fast = ModelConfig(snapshots=4, step_days=45, kind="hgb")
    result = train(store, dt.date(2025, 1, 1), 90, fast, cfg, created=NOW)
    card = result.card
    assert card["categories"] == {"region": sorted(regions)}
    assert card["attributes"] == [
        ["region", "String"],
        ["signup_date_age_days", "Int64"],
        ["loyalty_card", "Boolean"],
    ]
    assert {"region", "signup_date_age_days", "loyalty_card"} <= set(card["features"])
    model = result.model.estimator_.model_
    assert model.is_categorical_ is not None
    assert model.is_categorical_.sum() == 1
    registry = Registry(tmp_path / "models")
    registry.save("churn", result.model, card)
    scores = score_customers(
        store, dt.date(2025, 1, 1), ModelRef("churn"), registry, SegmentConfig()
    )
    p = scores.frame["churn_probability"].to_numpy()
    assert np.all((p > 0) & (p < 1))


@given(st.lists(st.integers(-(10**6), 10**6), min_size=1, max_size=30))
def test_integers_without_leading_zeros_are_numbers(values):
    text = pl.Series([str(v) for v in values])
    assert detect_type(text, None) == "number"
    padded = pl.Series([f"0{abs(v)}" for v in values])
    assert detect_type(padded, None) == "text"


@given(st.lists(st.sampled_from(["yes", "No", "TRUE", "f", "Y", "n"]), min_size=1, max_size=30))
def test_yes_no_values_are_bool(values):
    assert detect_type(pl.Series(values), None) == "bool"


@given(st.text(min_size=1, max_size=40))
def test_attribute_names_are_safe(header):
    name = attribute_name(header)
    assert name[0].isalpha()
    assert all(c.isalnum() or c == "_" for c in name)
    assert name.isascii()


def test_cli_ingest_customers(runner, tmp_path, store):
    from tests.conftest import invoke

    path = write(tmp_path / "c.csv", [*good_lines(customers(store, 10)), ";x;2023-01-01;no;1;9"])
    args = ["ingest", "--kind", "customers", str(path), "--store", str(store.root), "--json"]
    (report,) = invoke(runner, *args, "--known-from", "2024-02-01")
    assert report["status"] == "loaded"
    assert (report["rows_read"], report["rows_stored"], report["rows_quarantined"]) == (11, 10, 1)
    assert report["known_from"] == "2024-02-01T00:00:00"
    (again,) = invoke(runner, *args)
    assert again["status"] == "already loaded"
    bad = tmp_path / "bad.csv"
    bad.write_text("name,region\nA,North\n", encoding="utf-8")
    result = invoke(
        runner, "ingest", "--kind", "customers", str(bad), "--store", str(store.root), code=3
    )
    assert "no customer id column" in result.stderr
    result = invoke(runner, *args, "--known-from", "soon", code=2)
    assert "--known-from" in result.stderr


def test_gzip_customer_files_and_a_truncated_one(store, tmp_path):
    import gzip

    plain = write(tmp_path / "c.csv", good_lines(customers(store, 5)))
    packed = tmp_path / "c.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    report = load_attributes(store, packed, now=NOW)
    assert (report.rows_read, report.rows_stored) == (5, 5)
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(packed.read_bytes()[:40])
    with pytest.raises(BadInputError, match="cannot be read as gzip"):
        load_attributes(store, cut, now=NOW)


@pytest.mark.parametrize(
    "column", ["customer_value", "value_tier", "recency_days", "days_90", "churn_probability"]
)
def test_attributes_named_like_computed_columns_are_refused(store, tmp_path, column):
    """Never renamed (``customer_value_right``) nor dropped behind a computed column."""
    ids = customers(store, 5)
    path = tmp_path / "c.csv"
    path.write_text(
        f"customer_id,region,{column}\n" + "".join(f"{c},North,7\n" for c in ids),
        encoding="utf-8",
    )
    load_attributes(store, path, now=NOW)
    assert column in stored_types(store)
    with pytest.raises(ConfigError, match=f"attributes: {column} would replace a column"):
        store_features(store, dt.date(2024, 6, 1), FeatureConfig(attributes=(column,)))
    ok = store_features(store, dt.date(2024, 6, 1), FeatureConfig(attributes=("region",)))
    assert "region" in ok.columns
    assert not [c for c in ok.columns if c.endswith("_right")]


def test_every_column_computed_after_features_is_reserved():
    from crmkit.campaigns.targeting import TARGET_COLUMNS
    from crmkit.features.attribute_names import DOWNSTREAM, refuse_computed_names
    from crmkit.models.scoring import SCORE_COLUMNS

    computed = set(SCORE_COLUMNS) | set(TARGET_COLUMNS)
    for column in sorted(computed):
        with pytest.raises(ConfigError):
            refuse_computed_names([column])
    assert {"rfm_segment", "value_tier", "r_score", "cycle_class"} <= DOWNSTREAM
    refuse_computed_names(["region", "signup_date_age_days", "loyalty_card"])
