from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmkit.campaigns.ledger import ListChangedError, read_ledger
from crmkit.campaigns.lists import write_targets
from crmkit.config.policy import TargetPolicy
from crmkit.store.core import Store

from .test_targeting import scores_frame

DAY = dt.date(2025, 1, 1)
POLICY = TargetPolicy(
    min_churn_probability=0.0,
    exclude_tiers=(),
    size=200,
    treatments={"platinum": "call"},
)


def _read(path: str) -> pl.DataFrame:
    return pl.read_csv(path, schema_overrides={"customer_id": pl.String, "as_of": pl.Date})


def _day(store: Store, campaign: str = "spring") -> pl.DataFrame:
    rows = read_ledger(store).filter(pl.col("campaign_id") == campaign, pl.col("as_of") == DAY)
    return rows.sort("rank")


def test_contact_file_holds_only_the_treatment_group(tmp_path):
    store = Store(tmp_path / "s")
    result = write_targets(scores_frame(1_000), store, "spring", DAY, POLICY, tmp_path / "out")
    contacts = _read(result.paths["contacts"])
    assignments = _read(result.paths["assignments"])
    assert result.paths["contacts"].endswith("spring/2025-01-01.contacts.csv")
    assert contacts.columns == [
        "customer_id",
        "campaign_id",
        "as_of",
        "treatment",
        "segment",
        "value_tier",
        "rank",
    ]
    assert assignments.height == 200
    groups = dict(assignments.group_by("group").len().iter_rows())
    assert contacts.height == groups["treatment"] > 100
    assert groups["control"] > 10
    treated = set(assignments.filter(pl.col("group") == "treatment")["customer_id"])
    assert set(contacts["customer_id"]) == treated
    assert set(contacts["treatment"]) == {"call", "email"}
    others = assignments.filter(pl.col("group") != "treatment")
    assert set(others["treatment"]) == {"none"}
    assert set(others["planned_treatment"]) == {"call", "email"}
    # both files are the ledger's content for the day
    day = _day(store)
    assert day["customer_id"].to_list() == assignments["customer_id"].to_list()
    assert day["group"].to_list() == assignments["group"].to_list()


def test_rerun_that_would_change_the_list_is_refused_then_replaced(tmp_path):
    store = Store(tmp_path / "s")
    out = tmp_path / "out"
    first = write_targets(scores_frame(1_000), store, "spring", DAY, POLICY, out)
    files = {k: Path(v).read_bytes() for k, v in first.paths.items()}
    manifest = (store.root / "manifest.json").read_bytes()
    changed = scores_frame(1_000, seed=1)  # new data: other scores
    with pytest.raises(ListChangedError, match="--replace") as info:
        write_targets(changed, store, "spring", DAY, POLICY, out)
    assert info.value.exit_code == 3
    assert (store.root / "manifest.json").read_bytes() == manifest
    assert {k: Path(v).read_bytes() for k, v in first.paths.items()} == files
    replaced = write_targets(changed, store, "spring", DAY, POLICY, out, replace=True)
    assert replaced.status == "replaced"
    day = _day(store)
    assert day.height == 200
    assignments = _read(replaced.paths["assignments"])
    assert day["customer_id"].to_list() == assignments["customer_id"].to_list()
    assert set(day["customer_id"]) != set(first.frame["customer_id"])
    # one truth per day: the other days and campaigns are untouched
    assert read_ledger(store).filter(pl.col("as_of") == DAY).height == 200


def test_optouts_since_the_list_was_recorded_are_removed_not_replaced(tmp_path):
    store = Store(tmp_path / "s")
    out = tmp_path / "out"
    scores = scores_frame(1_000)
    first = write_targets(scores, store, "spring", DAY, POLICY, out)
    contacts = _read(first.paths["contacts"])["customer_id"].to_list()
    leaving = contacts[:3]
    optouts = tmp_path / "optouts.csv"
    optouts.write_text('"customer_id","reason"\n' + "".join(f'"{c}","x"\n' for c in leaving))
    policy = TargetPolicy(**{**POLICY.__dict__, "optouts": str(optouts)})
    again = write_targets(scores, store, "spring", DAY, policy, out)
    assert again.status == "optouts_removed"
    assert again.optouts_removed == 3
    day = _day(store)
    assert day.height == 197
    assert not set(leaving) & set(day["customer_id"])
    assert set(day["customer_id"]) < set(first.frame["customer_id"])  # nobody added
    for kind in ("contacts", "assignments"):
        assert not set(leaving) & set(_read(again.paths[kind])["customer_id"])
    third = write_targets(scores, store, "spring", DAY, policy, out)
    assert third.status == "unchanged"


def test_unknown_optout_ids_are_counted(tmp_path):
    from crmkit.config.settings import IngestConfig
    from crmkit.ingest import ingest_files
    from tests.conftest import NOW, SAMPLE_DATA

    store = Store(tmp_path / "s")
    ingest_files([SAMPLE_DATA / "transactions.csv"], store, IngestConfig(), now=NOW)
    known = store.transactions().select("customer_id").unique().sort("customer_id").collect()
    ids = known["customer_id"].head(4).to_list()
    optouts = tmp_path / "o.txt"
    optouts.write_text("\n".join([*ids, "NOPE-1", "NOPE-2"]) + "\n")
    scores = scores_frame(50).with_columns(pl.Series("customer_id", known["customer_id"].head(50)))
    policy = TargetPolicy(min_churn_probability=0.0, exclude_tiers=(), optouts=str(optouts))
    result = write_targets(scores, store, "c", DAY, policy, tmp_path / "out")
    assert result.excluded["opted_out"] == 4
    assert result.excluded["optouts_unknown_to_store"] == 2
    assert any("2 of 6 opted-out id(s) name no customer" in w for w in result.warnings)
    assert any(f"{optouts} line 5, 6)" in w for w in result.warnings)
    assert not any("NOPE" in w for w in result.warnings)  # lines, never the file's content


def test_a_budget_with_unpriced_treatments_is_refused(tmp_path):
    from crmkit.errors import ConfigError

    policy = TargetPolicy(min_churn_probability=0.0, exclude_tiers=(), budget=100.0)
    with pytest.raises(ConfigError, match=r"--budget 100: treatment\(s\) email have no cost") as e:
        write_targets(scores_frame(100), Store(tmp_path / "s"), "c", DAY, policy, tmp_path / "o")
    assert e.value.exit_code == 2
    assert not (tmp_path / "s" / "manifest.json").exists()


def test_the_budget_binds_and_the_spend_is_reported(tmp_path):
    policy = TargetPolicy(
        min_churn_probability=0.0,
        exclude_tiers=(),
        budget=50.0,
        treatments={"platinum": "call"},
        costs={"call": 8.0},
        default_cost=0.5,
    )
    result = write_targets(scores_frame(1_000), Store(tmp_path / "s"), "c", DAY, policy, tmp_path)
    spend = result.summary()["spend"]
    contacts = _read(result.paths["contacts"])
    calls = contacts.filter(pl.col("treatment") == "call").height
    emails = contacts.filter(pl.col("treatment") == "email").height
    expected = {"email": {"contacts": emails, "spend": emails * 0.5}}
    if calls:
        expected["call"] = {"contacts": calls, "spend": calls * 8.0}
    assert spend["by_treatment"] == expected
    assert spend["total"] == calls * 8.0 + emails * 0.5 <= 50.0
    assert spend["total"] > 50.0 - 0.5  # the list stops at the budget, not before
    assert spend["budget"] == 50.0
    # the budget goes by value at risk per pound: a £0.50 email to a customer at risk
    # returns more per pound than an £8 call, so nobody left out beats anyone listed
    scores = (
        scores_frame(1_000)
        .with_columns(
            pl.when(pl.col("value_tier") == "platinum").then(8.0).otherwise(0.5).alias("cost")
        )
        .with_columns((pl.col("expected_value_at_risk") / pl.col("cost")).alias("per_pound"))
    )
    listed = scores.filter(pl.col("customer_id").is_in(_read(result.paths["assignments"])[
        "customer_id"].implode()))  # fmt: skip
    left = scores.join(listed, on="customer_id", how="anti").filter(pl.col("cost") == 0.5)
    assert listed["per_pound"].min() >= left["per_pound"].max()
    assert emails > 5 * max(calls, 1)


_KEY_ROWS = st.lists(
    st.tuples(
        st.sampled_from(["C1", "C2", "C3", "C4"]),
        st.sampled_from(["treatment", "control"]),
        st.sampled_from(["call", "email", None]),
    ),
    max_size=8,
)


def _key_frame(rows: list[tuple[str, str, str | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema={"customer_id": pl.String, "group": pl.String, "planned_treatment": pl.String},
        orient="row",
    ).with_columns(treatment=pl.col("planned_treatment"))  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(_KEY_ROWS, _KEY_ROWS)
def test_the_day_s_keys_compare_as_sets_of_tuples(a, b):
    from crmkit.campaigns.ledger import _keys, _missing

    left, right = _key_frame(a), _key_frame(b)
    assert _keys(left).equals(_keys(right)) == (set(a) == set(b))
    assert _missing(_keys(left), _keys(right)) == len(set(a) - set(b))


def test_a_new_day_is_appended_and_the_cooldown_read_from_the_ledger_as_stored(tmp_path):
    store = Store(tmp_path / "s")
    scores = scores_frame(1_000)
    first = write_targets(scores, store, "spring", DAY, POLICY, tmp_path / "out")
    parts = [p.path for p in store.manifest().parts_of("ledger")]
    later = DAY + dt.timedelta(days=3)
    cooled = dataclasses.replace(POLICY, cooldown_days=7)
    second = write_targets(scores, store, "summer", later, cooled, tmp_path / "out")
    now = [p.path for p in store.manifest().parts_of("ledger")]
    assert now[: len(parts)] == parts  # the recorded day's part is kept, not rewritten
    assert len(now) == len(parts) + 1
    assert second.excluded["cooldown"] == first.frame.height
    assert set(second.frame["customer_id"]).isdisjoint(first.frame["customer_id"])
    ledger = read_ledger(store)
    assert ledger.height == first.frame.height + second.frame.height
    again = write_targets(scores, store, "summer", later, cooled, tmp_path / "out")
    assert again.status == "unchanged"
    assert again.frame.equals(second.frame)
