"""Opt-out files of every shape: whoever opted out is on no contact list, ever.

Each case opts out a random set of real customers, writes them the ways exports and
people do (encodings, byte-order marks in the middle from ``cat``, NULs, Ctrl-Z marks,
zero-width spaces, line endings, delimiters, quoting, ids exported as floats), builds a
day's list, and checks the contact file, the assignment file and the ledger.
``make test`` runs the counts below; ``make fuzz`` multiplies them by
``CRMKIT_FUZZ_SCALE``.
"""

from __future__ import annotations

import os

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmkit.campaigns.ledger import read_ledger
from crmkit.campaigns.lists import write_targets
from crmkit.campaigns.optouts import read_optouts
from crmkit.config.policy import TargetPolicy
from crmkit.config.settings import IngestConfig
from crmkit.ingest import ingest_files
from crmkit.store.core import Store
from tests.conftest import NOW, SAMPLE_DATA

from .test_ledger import DAY
from .test_targeting import scores_frame

SCALE = float(os.environ.get("CRMKIT_FUZZ_SCALE", "1"))
DIRT = ["", "", "\x00", "\ufeff", "\x1a", "\u200b", "\u200c", "\u200d", "\u2060", "\u00ad",
        "\u200e", " ", "\t", "\u00a0", "\x7f", "\x1f"]  # fmt: skip


def settings_for(cases: int) -> settings:
    return settings(
        max_examples=max(1, int(cases * SCALE)),
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@pytest.fixture(scope="module")
def listed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, pl.DataFrame]:
    store = Store(tmp_path_factory.mktemp("optout-fuzz") / "s")
    ingest_files([SAMPLE_DATA / "transactions.csv"], store, IngestConfig(), now=NOW)
    ids = store.transactions().select("customer_id").unique().sort("customer_id").collect()
    scores = scores_frame(120).with_columns(pl.Series("customer_id", ids["customer_id"][:120]))
    return store, scores


def dirty(draw: st.DrawFn, value: str, delimiter: str | None) -> str:
    at = draw(st.sampled_from(["before", "after", "inside", "float"]))
    dirt = draw(st.sampled_from([d for d in DIRT if d != delimiter]))  # a tab splits a TSV
    if at == "inside" and dirt in (" ", "\t", "\u00a0"):
        at = "after"  # a space inside an id is part of it
    if at == "before":
        return dirt + value
    if at == "inside":
        cut = draw(st.integers(0, len(value)))
        return value[:cut] + dirt + value[cut:]
    return value + dirt


@st.composite
def optout_file(draw: st.DrawFn, ids: list[str]) -> tuple[bytes, set[str]]:
    chosen = draw(st.lists(st.sampled_from(ids), min_size=1, max_size=12, unique=True))
    delimiter = draw(st.sampled_from([",", ";", "\t", "|", None]))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    quote = draw(st.booleans())
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le"]))

    def row(value: str) -> str:
        cell = f'"{value}"' if quote and '"' not in value else value
        return cell if delimiter is None else delimiter.join(["x@y.z", cell, "2024"])

    header = "customer_id" if delimiter is None else delimiter.join(["email", "CustomerID", "at"])
    parts: list[bytes] = []
    pieces = draw(st.integers(1, 3))  # exports joined with cat, each with its header and mark
    for k in range(pieces):
        share = chosen[k::pieces]
        lines = [header, *(row(dirty(draw, v, delimiter)) for v in share)]
        marked = encoding in ("utf-8-sig", "utf-16")  # each piece starts with a mark
        last = k == pieces - 1
        ends = ["", newline, newline * 2] if marked or last else [newline, newline * 2]
        text = newline.join(lines) + draw(st.sampled_from(ends))
        parts.append(text.encode(encoding))
    data = b"".join(parts) + draw(st.sampled_from([b"", b"\x1a"]))
    return data, set(chosen)


@settings_for(150)
@given(data=st.data())
def test_no_opted_out_customer_is_ever_listed(listed, tmp_path_factory, data):
    store, scores = listed
    ids = scores["customer_id"].to_list()
    raw, opted = data.draw(optout_file(ids))
    root = tmp_path_factory.mktemp("case")
    path = root / "optouts.csv"
    path.write_bytes(raw)
    assert opted <= set(read_optouts(path).to_list())
    policy = TargetPolicy(min_churn_probability=0.0, exclude_tiers=(), optouts=str(path))
    campaign = f"c{root.name.replace('_', '')}"[:40]
    result = write_targets(scores, store, campaign, DAY, policy, root / "out")
    assert result.excluded["opted_out"] == len(opted)
    for kind in ("contacts", "assignments"):
        written = pl.read_csv(result.paths[kind], schema_overrides={"customer_id": pl.String})
        assert not opted & set(written["customer_id"].to_list())
    ledger = read_ledger(store).filter(pl.col("campaign_id") == campaign)
    assert not opted & set(ledger["customer_id"].to_list())
    assert result.excluded["optouts_unknown_to_store"] == 0
