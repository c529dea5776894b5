from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmkit.hashing import (
    add_short_hash,
    add_stable_hash,
    bucket_expr,
    max_bytes,
    stable_hash_py,
    stable_hash_values,
    unit_interval_expr,
    words_for,
)

# Values fixed forever: a change here moves customers between buckets and groups.
GOLDEN = {
    "": 0,
    "a": 539006212844552474,
    "12346": 16488881248983869262,
    "C0000001": 9576585322270431545,
}


def test_golden_values_never_change():
    got = stable_hash_values(pl.Series(list(GOLDEN))).to_list()
    assert got == list(GOLDEN.values())
    assert [stable_hash_py(k) for k in GOLDEN] == list(GOLDEN.values())


@given(st.lists(st.text(max_size=120), min_size=1, max_size=30), st.none() | st.text(max_size=8))
def test_polars_matches_reference(texts, salt):
    got = stable_hash_values(pl.Series(texts, dtype=pl.String), salt=salt).to_list()
    assert got == [stable_hash_py(t, salt) for t in texts]


def test_long_ids_differing_in_the_middle_do_not_collide():
    ids = [f"{'x' * 60}{i:05d}{'y' * 20}" for i in range(1000)]
    assert stable_hash_values(pl.Series(ids)).n_unique() == 1000


def test_buckets_are_balanced_and_in_range():
    ids = pl.LazyFrame({"c": [f"C{i:07d}" for i in range(64_000)]})
    buckets = add_stable_hash(ids, "c", "h").select(bucket_expr("h", 16)).collect().to_series()
    counts = buckets.value_counts()["count"]
    assert buckets.min() == 0
    assert buckets.max() == 15
    assert counts.min() > 3_700
    assert counts.max() < 4_300


def test_unit_interval_depends_on_salt_and_is_uniform():
    ids = pl.LazyFrame({"c": [str(i) for i in range(50_000)]})
    a = add_stable_hash(ids, "c", "h", salt="spring").select(unit_interval_expr("h")).collect()
    b = add_stable_hash(ids, "c", "h", salt="autumn").select(unit_interval_expr("h")).collect()
    a, b = a.to_series(), b.to_series()
    assert 0 <= a.min() < 0.001
    assert 0.999 < a.max() < 1
    assert abs(a.mean() - 0.5) < 0.01
    assert abs(float((a < 0.2).mean()) - 0.2) < 0.01
    assert (a != b).mean() > 0.99


def test_batches_of_different_lengths_hash_like_the_reference():
    # the streaming engine hashes chunk by chunk, each reading only the words it needs
    chunks = [
        pl.DataFrame({"c": ["", None, "a"]}),
        pl.DataFrame({"c": ["C0000001", "x" * 100, "é" * 40]}),
        pl.DataFrame({"c": ["12346", None]}),
    ]
    frame = pl.concat(chunks, rechunk=False).lazy()
    got = add_stable_hash(frame, "c", "h", salt="s").collect(engine="streaming")["h"].to_list()
    texts = [t or "" for c in chunks for t in c["c"].to_list()]
    assert got == [stable_hash_py(t, "s") for t in texts]


@given(st.lists(st.text(max_size=40), min_size=1, max_size=30), st.none() | st.text(max_size=8))
def test_short_hash_matches_reference_within_its_words(texts, salt):
    salted = [(t if salt is None else salt + "\x1f" + t).encode() for t in texts]
    words = words_for(max(len(s) for s in salted))
    limit = max_bytes(words)
    assert limit is None or all(len(s) <= limit for s in salted)
    frame = pl.LazyFrame({"c": texts}, schema={"c": pl.String})
    got = add_short_hash(frame, "c", "h", words, salt=salt).collect(engine="streaming")
    assert got.columns == ["c", "h"]
    assert got["h"].to_list() == [stable_hash_py(t, salt) for t in texts]


def test_short_hash_with_every_word_hashes_any_length():
    texts = ["", "x" * 95, "y" * 96, "z" * 97, "é" * 300]
    frame = pl.LazyFrame({"c": texts})
    assert max_bytes(16) is None
    assert max_bytes(2) == 12
    got = add_short_hash(frame, "c", "h", 16).collect()["h"].to_list()
    assert got == [stable_hash_py(t) for t in texts]
    with pytest.raises(ValueError, match="between 0 and 16"):
        add_short_hash(frame, "c", "h", 17)
