"""Scoring bucket by bucket gives what scoring the whole table at once gives, to the bit.

The reference below is the plain plan: every customer's features in one frame, the
population fits on it, one design matrix predicted in blocks of the whole table, the
reference customer from the whole lower-risk half.
"""

from __future__ import annotations

import datetime as dt
import gc
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmkit.config.settings import SegmentConfig
from crmkit.errors import StoreWriteError
from crmkit.features.eligibility import eligible, season_columns
from crmkit.features.pipeline import store_features
from crmkit.models.alive import with_alive_value
from crmkit.models.bucketed_files import global_blocks
from crmkit.models.design import Design
from crmkit.models.explain import categorical_mask, typical
from crmkit.models.explainer import build_explainer, explain_listed
from crmkit.models.reason_text import median_cycle, with_model_reasons
from crmkit.models.registry import parse_ref
from crmkit.models.scoring import (
    SCORE_COLUMNS,
    card_vocabulary,
    explained_rows,
    feature_config_of,
    predict_in_chunks,
    risk_deciles,
    score_customers,
    with_scores,
)
from crmkit.segments.apply import with_segments
from tests.conftest import fill, trained_sample_store

DAY = dt.date(2025, 1, 1)


def whole_table(store, registry, explain_rows: int, block: int) -> pl.DataFrame:
    """Score every customer in one frame: the plan bucketed scoring must reproduce."""
    model, card = registry.load(parse_ref("churn"))
    cfg = feature_config_of(card)
    everyone = store_features(store, DAY, cfg, vocab=card_vocabulary(card))
    everyone, _ = with_alive_value(everyone, DAY, SegmentConfig().min_p_alive)
    frame = eligible(with_segments(everyone, SegmentConfig()), int(card["lookback_days"]))
    frame = frame.with_columns(season_columns(DAY))
    names, categories = card["features"], card.get("categories") or {}
    dtype = np.float32 if card.get("matrix_dtype") == "float32" else np.float64
    design = Design.of(frame, names, categories, dtype)
    p = predict_in_chunks(model, design, block)
    scored = with_scores(frame, p, DAY, cfg).with_columns(
        risk_deciles(pl.col("churn_probability")).alias("risk_decile"), frame["customer_value"]
    )
    low = p <= np.median(p)
    mask = categorical_mask(names, categories)
    reference = np.array([typical(design.column(j)[low], mask[j]) for j in range(len(names))])
    explainer = build_explainer(
        model, card, dtype, reference, median_cycle(scored), lambda ids: scored, cfg.windows
    )
    rows = explained_rows(
        scored["value_at_risk"].to_numpy(), scored["customer_id"], explain_rows, ()
    )
    shares = np.full((scored.height, 5), np.nan)
    shares[rows] = explainer.shares(scored[rows])
    out = with_model_reasons(
        scored, shares, explainer.reference_probability, cfg.windows, explainer.cycle
    )
    return (
        out.with_columns(pl.col("alive_value").alias("customer_value"))
        .rename({"value_at_risk": "expected_value_at_risk"})
        .select(SCORE_COLUMNS)
        .sort("customer_id")
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return trained_sample_store(tmp_path_factory.mktemp("bucketed"))


@pytest.mark.parametrize(
    ("block", "share", "join", "group"),
    # every bucket in one read, about four buckets a read, each bucket in shares of its
    # customers; groups of one to every bucket for the later passes
    [(200_000, 1_000_000, 1_000_000, 200_000), (700, 9_000, 9_000, 1), (500, 1_500, 0, 900)],
)
def test_bucketed_scores_equal_the_whole_tables_bit_for_bit(
    trained, monkeypatch, block, share, join, group
):
    store, registry = trained
    monkeypatch.setattr("crmkit.models.scoring.PREDICT_ROWS", block)
    monkeypatch.setattr("crmkit.models.bucketed_files.SHARE_ROWS", share)  # buckets read in shares
    monkeypatch.setattr("crmkit.features.pipeline.JOIN_ROWS", join)  # or small ones together
    monkeypatch.setattr("crmkit.models.bucketed_files.GROUP_CUSTOMERS", group)  # and grouped
    result = score_customers(store, DAY, parse_ref("churn"), registry, SegmentConfig(), 120)
    expected = whole_table(store, registry, 120, block)
    assert len(store.bucket_paths()) > 1  # the sample store has several buckets
    assert result.frame.height == expected.height > 1_000
    assert result.frame.equals(expected)
    assert 100 < result.frame["top_driver"].drop_nulls().len() <= 120


def test_a_narrow_scoring_keeps_the_lists_columns_and_the_file_every_column(
    trained, tmp_path, monkeypatch
):
    store, registry = trained
    monkeypatch.setattr("crmkit.models.bucketed.WRITE_ROWS", 300)  # the file in many blocks
    ref = parse_ref("churn")
    full = score_customers(store, DAY, ref, registry, SegmentConfig(), 50)
    narrow = score_customers(store, DAY, ref, registry, SegmentConfig(), 50, narrow=True)
    assert narrow.frame.columns == [c for c in SCORE_COLUMNS if c != "rule_reasons"]
    explained = narrow.frame["top_driver"].drop_nulls().len()
    assert 40 < explained <= 50
    assert narrow.frame["reasons"].null_count() == narrow.frame.height - explained
    same = narrow.frame.drop("reasons")
    assert same.equals(full.frame.select(same.columns))
    narrow.write(tmp_path / "scores.parquet")
    assert pl.read_parquet(tmp_path / "scores.parquet").equals(full.frame)
    narrow.write(tmp_path / "scores.csv")
    text = pl.read_csv(tmp_path / "scores.csv", infer_schema_length=0)
    assert text.height == full.frame.height
    assert text.columns == list(SCORE_COLUMNS)


def test_the_working_files_go_when_the_scores_do(trained, monkeypatch):
    store, registry = trained
    result = score_customers(store, DAY, parse_ref("churn"), registry, SegmentConfig(), 0)
    assert result.parts is not None
    root = result.parts.root
    assert sorted(p.name.split("-")[0] for p in root.iterdir()) == sorted(
        ["features"] * len(result.parts.features) + ["scores"] * len(result.parts.parts)
    )
    ids = result.frame["customer_id"].head(30).to_list()
    assert result.explainer is not None
    whole = result.explainer.reasons(ids)
    monkeypatch.setattr("crmkit.models.explainer.REASON_BLOCK", 7)  # read in blocks
    assert result.explainer.reasons(ids).equals(whole)
    assert whole["customer_id"].to_list() == sorted(ids)
    assert result.explainer.reasons([]).height == 0
    del result
    gc.collect()
    assert not root.exists()


def test_a_full_temporary_disk_is_named_with_its_cure(trained, small_disk, monkeypatch):
    store, registry = trained
    fill(small_disk)  # take every block the disk has
    monkeypatch.setattr(tempfile, "tempdir", str(small_disk))
    with pytest.raises(StoreWriteError, match="set TMPDIR") as err:
        score_customers(store, DAY, parse_ref("churn"), registry, SegmentConfig(), 0)
    assert str(small_disk) in str(err.value)
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


@settings(max_examples=80, deadline=None)
@given(parts=st.lists(st.integers(0, 4), max_size=60), rows=st.integers(1, 25))
def test_global_blocks_find_each_blocks_rows_in_the_bucket_files(parts, rows):
    files: dict[int, list[int]] = {}
    for position, part in enumerate(parts):  # rows in customer order, by bucket file
        files.setdefault(part, []).append(position)
    got = []
    for start, ranges in global_blocks(pl.Series(parts, dtype=pl.Int32), rows):
        block = sorted(i for f, lo, hi in ranges for i in files[f][lo:hi])
        assert block == list(range(start, min(start + rows, len(parts))))
        got += block
    assert got == list(range(len(parts)))


def test_scoring_leaves_nothing_in_the_temporary_directory_after_an_error(tmp_path, monkeypatch):
    from crmkit.errors import BadInputError

    store, registry = trained_sample_store(tmp_path)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with pytest.raises(BadInputError, match="nothing to score"):
        score_customers(store, dt.date(2030, 1, 1), parse_ref("churn"), registry, SegmentConfig())
    assert list(Path(scratch).iterdir()) == []


def test_a_list_is_explained_in_blocks_in_its_own_order(trained, monkeypatch):
    store, registry = trained
    result = score_customers(
        store, DAY, parse_ref("churn"), registry, SegmentConfig(), 20, narrow=True
    )
    assert result.explainer is not None
    frame = result.frame
    explained = frame.filter(pl.col("top_driver").is_not_null()).head(10)
    rest = frame.filter(pl.col("top_driver").is_null()).head(40)
    # a list in rank order: the model's own explanations among the others, ids unsorted
    listed = pl.concat([rest.head(15), explained, rest.tail(25)]).reverse()
    monkeypatch.setattr("crmkit.models.explainer.REASON_BLOCK", 7)
    got = explain_listed(listed, result.explainer)
    assert got["customer_id"].to_list() == listed["customer_id"].to_list()
    assert got.drop("reasons", "top_driver").equals(listed.drop("reasons", "top_driver"))
    kept = got.filter(pl.col("customer_id").is_in(explained["customer_id"].implode()))
    assert (
        kept.select("customer_id", "reasons", "top_driver")
        .sort("customer_id")
        .equals(explained.select("customer_id", "reasons", "top_driver").sort("customer_id"))
    )
    wanted = result.explainer.reasons(rest["customer_id"])
    found = got.join(wanted, on="customer_id", how="inner", suffix="_alone")
    assert found.height == rest.height
    assert found["reasons"].equals(found["reasons_alone"], check_names=False)
    assert found["top_driver"].equals(found["top_driver_alone"], check_names=False)
    assert got["reasons"].null_count() == 0


def test_a_list_takes_the_scores_rows_and_keeps_the_count(trained):
    from crmkit.campaigns.candidates import Candidates, candidates
    from crmkit.config.policy import TargetPolicy

    store, registry = trained
    result = score_customers(
        store, DAY, parse_ref("churn"), registry, SegmentConfig(), 0, narrow=True,
        split=candidates(TargetPolicy()),
    )  # fmt: skip
    rows, dropped = result.frame, result.dropped
    assert dropped is not None
    assert rows.height
    assert dropped.height
    held = Candidates(*result.hand_over())
    assert result.customers == rows.height + dropped.height
    assert result.frame.height == 0
    assert result.frame.schema == rows.schema
    assert result.dropped is None
    taken = held.take()
    assert taken[0] is rows
    assert taken[1] is dropped
    with pytest.raises(RuntimeError, match="taken already"):
        held.take()
