from __future__ import annotations

import datetime as dt
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmkit.campaigns.balance import balance_report
from crmkit.campaigns.daily import RunOptions, run_daily
from crmkit.campaigns.ledger import read_ledger as ledger
from crmkit.campaigns.lists import write_targets
from crmkit.campaigns.names import check_campaign
from crmkit.campaigns.targeting import assign_groups, select_targets
from crmkit.config.policy import TargetPolicy
from crmkit.config.settings import Settings
from crmkit.errors import BadInputError, ConfigError, StoreLockedError, UsageError
from crmkit.store.core import Store
from tests.conftest import CRMKIT, MESSY, NOW, subprocess_env, trained_sample_store

POLICY = TargetPolicy(min_churn_probability=0.0, exclude_tiers=())
NONE = pl.Series([], dtype=pl.String)


def groups_of(ids, campaign, policy=POLICY):
    frame = pl.LazyFrame({"customer_id": ids})
    out = assign_groups(frame, campaign, policy.control_fraction, policy).collect()
    return dict(zip(out["customer_id"], out["group"], strict=True))


# Fixed forever: changing the hash or the rule would move customers between groups.
GOLDEN = {
    ("spring", "C0000001"): "treatment",
    ("spring", "C0000002"): "treatment",
    ("spring", "C0000003"): "treatment",
    ("winback", "C0000001"): "treatment",
    ("winback", "C0000007"): "control",
    ("winback", "12346"): "treatment",
}


def test_golden_assignments():
    for (campaign, customer), group in GOLDEN.items():
        assert groups_of([customer], campaign)[customer] == group, (campaign, customer)


@given(
    st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=40, unique=True), st.randoms()
)
def test_groups_do_not_depend_on_list_size_or_order(ids, rnd):
    full = groups_of(ids, "camp")
    shuffled = ids[:]
    rnd.shuffle(shuffled)
    part = shuffled[: max(1, len(shuffled) // 2)]
    sub = groups_of(part, "camp")
    assert all(sub[c] == full[c] for c in part)


def scores_frame(n: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 1, n)
    value = rng.lognormal(5, 1, n)
    return pl.DataFrame(
        {
            "customer_id": [f"C{i:07d}" for i in range(n)],
            "churn_probability": p,
            "customer_value": value,
            "expected_value_at_risk": p * value,
            "rfm_segment": rng.choice(["champions", "at_risk", "lost"], n),
            "value_tier": rng.choice(["platinum", "gold", "silver"], n),
            "recency_days": rng.integers(1, 365, n),
        }
    )


def test_control_share_and_balance_over_100k():
    frame, _ = select_targets(scores_frame(100_000), "big", dt.date(2025, 1, 1), POLICY, NONE, NONE)
    non_holdout = frame.filter(pl.col("group") != "holdout")
    control_share = (non_holdout["group"] == "control").mean()
    assert abs(control_share - 0.2) < 0.01
    assert abs((frame["group"] == "holdout").mean() - 0.05) < 0.01
    balance, warnings = balance_report(frame)
    control = balance.filter(pl.col("group") == "control").row(0, named=True)
    for cov in ("churn_probability", "customer_value", "recency_days"):
        assert abs(control[f"smd_{cov}"]) < 0.05
    assert not [w for w in warnings if "control" in w]


def test_holdout_never_treated_in_any_campaign():
    ids = [f"C{i:07d}" for i in range(20_000)]
    holdout = None
    for campaign in ("a", "b", "winter-2025", "x.y"):
        groups = groups_of(ids, campaign)
        mine = {c for c, g in groups.items() if g == "holdout"}
        holdout = mine if holdout is None else holdout
        assert mine == holdout
        assert not any(groups[c] == "treatment" for c in holdout)
    assert 800 < len(holdout) < 1200


def test_size_and_budget_cut_the_ranked_list_without_moving_groups():
    scores = scores_frame(2_000)
    full, _ = select_targets(scores, "c", dt.date(2025, 1, 1), POLICY, NONE, NONE)
    small, counts = select_targets(
        scores,
        "c",
        dt.date(2025, 1, 1),
        TargetPolicy(size=100, min_churn_probability=0.0, exclude_tiers=()),
        NONE,
        NONE,
    )
    assert small.height == 100
    assert counts["over_size_or_budget"] == 1_900
    assert small["customer_id"].to_list() == full["customer_id"].head(100).to_list()
    assert small["group"].to_list() == full["group"].head(100).to_list()
    assert small["expected_value_at_risk"].is_sorted(descending=True)
    policy = TargetPolicy(
        budget=50.0,
        costs={"call": 10.0, "email": 0.0},  # a free treatment must be declared free
        treatments={"platinum": "call"},
        min_churn_probability=0.0,
        exclude_tiers=(),
    )
    budgeted, _ = select_targets(scores, "c", dt.date(2025, 1, 1), policy, NONE, NONE)
    spent = budgeted.filter(
        (pl.col("group") == "treatment") & (pl.col("treatment") == "call")
    ).height
    assert spent * 10.0 <= 50.0
    assert set(budgeted.filter(pl.col("value_tier") == "platinum")["treatment"]) <= {"call"}


def test_low_value_low_risk_and_tiers_are_let_go():
    scores = scores_frame(1_000)
    policy = TargetPolicy(
        min_churn_probability=0.5, min_customer_value=100.0, exclude_tiers=("silver",)
    )
    frame, counts = select_targets(scores, "c", dt.date(2025, 1, 1), policy, NONE, NONE)
    assert (frame["churn_probability"] >= 0.5).all()
    assert (frame["customer_value"] >= 100.0).all()
    assert "silver" not in set(frame["value_tier"])
    assert (
        counts["scored"]
        == 1_000
        == frame.height + sum(v for k, v in counts.items() if k != "scored")
    )


@given(
    st.integers(0, 2**16),
    st.sampled_from(["retain", "win_back"]),
    st.floats(0, 0.9),
    st.floats(0, 400),
    st.integers(1, 7),
)
def test_candidates_read_block_by_block_give_the_same_list_and_counts(
    seed, lifecycle, min_p, min_value, blocks
):
    from crmkit.campaigns.candidates import candidates

    rng = np.random.default_rng(seed)
    scores = scores_frame(300, seed).with_columns(
        pl.Series("lifecycle", [("retain", "win_back", None)[i] for i in rng.integers(0, 3, 300)]),
        pl.Series("value_if_active", rng.lognormal(5, 1, 300)),
        # nulls where real scores can have them: a filter drops them, so must the split
        pl.when(pl.Series(rng.uniform(size=300) < 0.05))
        .then(None)
        .otherwise(pl.col("customer_value"))
        .alias("customer_value"),
    )
    policy = TargetPolicy(
        lifecycle=lifecycle, min_churn_probability=min_p, min_customer_value=min_value,
        exclude_tiers=("silver",), control_fraction=0.3,
    )  # fmt: skip
    ids = scores["customer_id"]
    optouts, recent = ids.sample(20, seed=seed), ids.sample(40, seed=seed + 1)
    day = dt.date(2025, 1, 1)
    whole = select_targets(scores, "c", day, policy, recent, optouts)
    split = candidates(policy)
    parts = [split(block) for block in scores.iter_slices(-(-300 // blocks))]
    kept = pl.concat([k for k, _ in parts])
    dropped = pl.concat([d for _, d in parts])
    assert kept.height + dropped.height == 300
    read = select_targets(kept, "c", day, policy, recent, optouts, dropped=dropped)
    assert read[1] == whole[1]
    assert read[0].equals(whole[0])


def test_policy_errors():
    with pytest.raises(ConfigError, match="unknown value_tier name"):
        select_targets(
            scores_frame(10),
            "c",
            dt.date(2025, 1, 1),
            TargetPolicy(treatments={"diamond": "x"}),
            NONE,
            NONE,
        )
    with pytest.raises(ConfigError, match="exclude_tiers"):
        select_targets(
            scores_frame(10),
            "c",
            dt.date(2025, 1, 1),
            TargetPolicy(exclude_tiers=("cheap",)),
            NONE,
            NONE,
        )
    for bad in ("../x", "a b", "", "-x", "x/y"):
        with pytest.raises(UsageError):
            check_campaign(bad)


@pytest.fixture(scope="module")
def trained_store(tmp_path_factory):
    store, registry = trained_sample_store(tmp_path_factory.mktemp("daily"))
    return store, registry


def test_write_targets_idempotent_cooldown_and_optouts(trained_store, tmp_path):
    from crmkit.config.settings import SegmentConfig
    from crmkit.models.registry import ModelRef
    from crmkit.models.scoring import score_customers

    store, registry = trained_store
    day = dt.date(2025, 1, 1)
    scores = score_customers(store, day, ModelRef("churn"), registry, SegmentConfig()).frame
    before = ledger(store).height
    policy = TargetPolicy(size=300)
    first = write_targets(scores, store, "alpha", day, policy, tmp_path)
    again = write_targets(scores, store, "alpha", day, policy, tmp_path)
    assert first.paths == again.paths
    assert first.paths["assignments"] == str(tmp_path / "alpha" / "2025-01-01.assignments.csv")
    for kind in ("contacts", "assignments"):
        assert Path(first.paths[kind]).read_bytes() == Path(again.paths[kind]).read_bytes()
    assert again.status == "unchanged"
    assert first.ledger_rows == 300
    assert again.ledger_rows == 0
    assert ledger(store).height == before + 300
    # another campaign the next day skips everyone assigned within the cool-down
    optout = tmp_path / "optouts.txt"
    optout_ids = scores["customer_id"].tail(5).to_list()
    optout.write_text("\n".join(optout_ids) + "\n")
    second = write_targets(
        scores,
        store,
        "beta",
        day + dt.timedelta(days=1),
        TargetPolicy(size=300, optouts=str(optout)),
        tmp_path,
    )
    assert not set(second.frame["customer_id"]) & set(first.frame["customer_id"])
    assert not set(second.frame["customer_id"]) & set(optout_ids)
    overlap = len(set(optout_ids) & set(first.frame["customer_id"]))
    assert second.excluded["opted_out"] == 5
    assert second.excluded["cooldown"] == 300 - overlap
    # after the cool-down the same customers may be targeted again
    later = write_targets(
        scores, store, "gamma", day + dt.timedelta(days=40), TargetPolicy(size=50), tmp_path
    )
    assert set(later.frame["customer_id"]) & set(first.frame["customer_id"])


def test_formula_customer_id_is_neutralised(tmp_path):
    store = Store(tmp_path / "s")
    scores = scores_frame(3).with_columns(
        pl.Series("customer_id", ['=HYPERLINK("http://x")', "+1", "@SUM(A1)"])
    )
    result = write_targets(scores, store, "csv-safety", dt.date(2025, 1, 1), POLICY, tmp_path)
    text = Path(result.paths["assignments"]).read_text()
    assert "'=HYPERLINK" in text
    assert "'+1" in text
    assert "'@SUM(A1)" in text
    assert ledger(store)["customer_id"].str.starts_with("=").any()  # the ledger keeps real ids


def _options(tmp_path, registry, inbox=None):
    return RunOptions(
        date=dt.date(2025, 1, 1),
        campaign="daily",
        inbox=inbox,
        out_dir=tmp_path / "out",
        registry=registry.root,
    )


def test_run_with_a_bad_inbox_file_changes_nothing(trained_store, tmp_path):
    store, registry = trained_store
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    bad = inbox / "broken.csv"
    bad.write_text((MESSY / "wrong_columns.csv").read_text())
    manifest = (store.root / "manifest.json").read_bytes()
    with pytest.raises(BadInputError, match=r"broken\.csv"):
        run_daily(store, _options(tmp_path, registry, inbox), Settings(), lambda: NOW)
    assert bad.exists()
    assert not (tmp_path / "out").exists()
    assert (store.root / "manifest.json").read_bytes() == manifest
    log = (store.root / "logs" / "run.jsonl").read_text().strip().splitlines()
    assert '"exit_code": 3' in log[-1]


def test_run_twice_is_safe_and_moves_processed_files(trained_store, tmp_path):
    store, registry = trained_store
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "day.csv").write_text((MESSY / "duplicates.csv").read_text())
    opts = _options(tmp_path, registry, inbox)
    first = run_daily(store, opts, Settings(), lambda: NOW)
    assert (inbox / "processed" / "day.csv").exists()
    assert not (inbox / "day.csv").exists()
    rows = ledger(store).height
    second = run_daily(store, opts, Settings(), lambda: NOW)
    assert second.ingested_files == []
    for kind in ("contacts", "assignments"):
        first_bytes = Path(first.targets.paths[kind]).read_bytes()
        assert first_bytes == Path(second.targets.paths[kind]).read_bytes()
    assert ledger(store).height == rows


def test_concurrent_run_exits_4(trained_store, tmp_path):
    store, registry = trained_store
    with store.lock():
        with pytest.raises(StoreLockedError):
            run_daily(store, _options(tmp_path, registry), Settings(), lambda: NOW)
        start = time.monotonic()
        proc = subprocess.run(
            [
                *CRMKIT,
                "run",
                "--date",
                "2025-01-01",
                "--campaign",
                "daily",
                "--store",
                str(store.root),
                "--registry",
                str(registry.root),
                "--out",
                str(tmp_path / "o"),
            ],
            capture_output=True,
            text=True,
            env=subprocess_env(),
            check=False,
        )
    assert proc.returncode == 4
    assert "locked by another crmkit process" in proc.stderr
    assert time.monotonic() - start < 30


def test_inbox_passes_over_links_out_of_it_and_other_files_with_warnings(trained_store, tmp_path):
    store, registry = trained_store
    secret = tmp_path / "elsewhere" / "secret.csv"
    secret.parent.mkdir()
    secret.write_text("customer_id,date,amount\nSECRET-FIRST-LINE,2024-01-01,1\n")
    inbox = tmp_path / "inbox"
    (inbox / "sub").mkdir(parents=True)
    (inbox / "export.xlsx").write_bytes(b"PK")
    (inbox / "link.csv").symlink_to(secret)
    (inbox / "day.csv").write_text((MESSY / "duplicates.csv").read_text())
    (inbox / "inner.csv").symlink_to(inbox / "day.csv")
    result = run_daily(store, _options(tmp_path, registry, inbox), Settings(), lambda: NOW)
    assert [Path(f).name for f in result.ingested_files] == ["day.csv", "inner.csv"]
    warnings = result.summary()["warnings"]
    assert any("link.csv: a link to a file outside" in w for w in warnings)
    assert any("export.xlsx: not a" in w for w in warnings)
    assert any("sub: a directory" in w for w in warnings)
    assert (inbox / "link.csv").is_symlink()  # left where it is
    log = (store.root / "logs" / "run.jsonl").read_text()
    assert "SECRET-FIRST-LINE" not in log
    assert "link.csv" in log


def test_dry_runs_write_nothing_and_preview_the_real_list(trained_store, tmp_path):
    store, registry = trained_store
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "day.csv").write_text((MESSY / "duplicates.csv").read_text())
    options = RunOptions(
        date=dt.date(2025, 2, 1),
        campaign="preview",
        inbox=inbox,
        out_dir=tmp_path / "out",
        registry=registry.root,
        dry_run=True,
    )
    manifest = (store.root / "manifest.json").read_bytes()
    log = store.root / "logs" / "run.jsonl"
    log_before = log.read_bytes() if log.exists() else b""
    preview = run_daily(store, options, Settings(), lambda: NOW)
    assert (store.root / "manifest.json").read_bytes() == manifest
    assert (log.read_bytes() if log.exists() else b"") == log_before
    assert not (tmp_path / "out").exists()
    assert (inbox / "day.csv").exists()
    summary = preview.summary()
    assert summary["status"] == "dry run: recorded"
    assert summary["contact_file"] is None
    assert any("day.csv: not ingested (dry run)" in w for w in summary["warnings"])
    real = run_daily(store, replace(options, inbox=None, dry_run=False), Settings(), lambda: NOW)
    assert real.targets.frame.equals(preview.targets.frame)
    assert real.summary()["groups"] == summary["groups"]
    assert real.summary()["spend"] == summary["spend"]


def test_money_is_written_to_the_cent_in_csv_and_exact_in_parquet(tmp_path):
    from crmkit.io.export import write_table

    frame = pl.DataFrame(
        {
            "customer_id": ["A"],
            "customer_value": [169.36000000000058],
            "spend_90": [0.1 + 0.2],
            "spend_trend_90": [0.123456],
            "churn_probability": [0.123456789],
        }
    )
    text = write_table(frame, tmp_path / "t.csv").read_text()
    assert text.splitlines()[1] == "A,169.36,0.3,0.123456,0.123456789"
    back = pl.read_parquet(write_table(frame, tmp_path / "t.parquet"))
    assert back["customer_value"][0] == 169.36000000000058


def test_a_run_failing_after_ingest_keeps_the_ingest_and_says_so(tmp_path):
    import json

    from crmkit.errors import ModelError

    store = Store(tmp_path / "s")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "day.csv").write_text((MESSY / "duplicates.csv").read_text())
    options = RunOptions(
        date=dt.date(2025, 1, 1),
        campaign="daily",
        inbox=inbox,
        out_dir=tmp_path / "out",
        registry=tmp_path / "no-models",
    )
    with pytest.raises(ModelError, match="no model named 'churn'"):
        run_daily(store, options, Settings(), lambda: NOW)
    assert store.transactions().collect().height == 3  # the ingest step committed
    assert (inbox / "processed" / "day.csv").exists()
    assert not (tmp_path / "out").exists()  # no list
    end = json.loads((store.root / "logs" / "run.jsonl").read_text().splitlines()[-1])
    assert end["event"] == "end"
    assert end["exit_code"] == 5
    assert end["completed"] == ["ingest"]
