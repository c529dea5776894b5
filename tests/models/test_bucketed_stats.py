"""The population table's sort: the rows of every bucket's file, in customer order."""

from __future__ import annotations

import itertools

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from crmkit.models.bucketed_stats import sorted_by_id

rows = st.tuples(
    st.one_of(st.none(), st.integers(-(2**40), 2**40)),
    st.one_of(st.none(), st.floats(allow_nan=True)),
    st.one_of(st.none(), st.text(max_size=20)),
)


@settings(max_examples=60, deadline=None)
@given(
    ids=st.lists(st.text(min_size=1, max_size=16), unique=True, max_size=80),
    values=st.data(),
    cuts=st.lists(st.integers(0, 80), max_size=6),
)
def test_sorted_by_id_gives_the_rows_of_the_pieces_as_a_plain_sort_does(ids, values, cuts):
    drawn = [values.draw(rows) for _ in ids]
    frame = pl.DataFrame(
        {
            "customer_id": ids,
            "n": [r[0] for r in drawn],
            "x": [r[1] for r in drawn],
            "s": [r[2] for r in drawn],
        },
        schema={"customer_id": pl.String, "n": pl.Int64, "x": pl.Float64, "s": pl.String},
    )
    edges = sorted({0, len(ids), *(c for c in cuts if c <= len(ids))})
    pieces = [frame.slice(a, b - a) for a, b in itertools.pairwise(edges)] or [frame]
    got = sorted_by_id(pieces)
    assert pieces == []
    expected = sorted(zip(ids, drawn, strict=True), key=lambda pair: pair[0].encode())
    assert got["customer_id"].to_list() == [i for i, _ in expected]
    assert got.equals(frame.sort("customer_id"))
    assert got.columns == frame.columns
    assert all(got[c].n_chunks() == 1 for c in got.columns)
