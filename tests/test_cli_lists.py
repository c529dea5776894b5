"""The lists an expert would sign, end to end: contact file, reasons, lifecycle, budget."""

from __future__ import annotations

import csv
from pathlib import Path

import polars as pl
import pytest
from crmkit_cli.main import app

from tests.conftest import SAMPLE_DATA, invoke, trained_sample_store


@pytest.fixture(scope="module")
def listed(tmp_path_factory):
    from typer.testing import CliRunner

    root = tmp_path_factory.mktemp("lists")
    store, registry = trained_sample_store(root)
    tx = pl.read_csv(SAMPLE_DATA / "transactions.csv", schema_overrides={"customer_id": pl.String})
    ids = tx["customer_id"].unique().sort()
    n = ids.len()
    pl.DataFrame(
        {
            "customer_id": ids,
            "email": [f"c{i}@example.org" if i % 5 else "" for i in range(n)],
            "phone": [f"+44 7700 9{i:05d}" if i % 2 else None for i in range(n)],
            "first_name": ['=HYPERLINK("http://x")' if i == 1 else f"N{i}" for i in range(n)],
        }
    ).write_csv(root / "customers.csv")
    config = root / "crmkit.toml"
    config.write_text(
        "[targeting]\nbudget = 300.0\n"
        'contact_columns = ["email", "phone", "first_name"]\n'
        '[targeting.treatments]\nplatinum = "call"\ngold = "voucher"\n'
        "[targeting.costs]\ncall = 8.0\nvoucher = 5.0\nemail = 0.1\n"
        "[targeting.effects]\nemail = 0.03\nvoucher = 0.08\ncall = 0.12\n"
        '[targeting.channel_columns]\ncall = "phone"\nemail = "email"\nvoucher = "email"\n'
        '[targeting.offer_codes]\nvoucher = "SAVE10"\n'
    )
    runner = CliRunner()
    common = ["--store", str(store.root), "--config", str(config), "--registry",
              str(registry.root)]  # fmt: skip
    invoke(runner, "ingest", "--kind", "customers", str(root / "customers.csv"),
           "--known-from", "2023-01-01", "--store", str(store.root), "-q")  # fmt: skip
    summary = invoke(runner, "targets", "--as-of", "2025-01-01", "--campaign", "spring",
                     "--out", str(root / "out"), *common, "--json")  # fmt: skip
    return root, summary, runner, common


def test_the_contact_file_loads_into_a_mail_tool_as_is(listed):
    _, summary, _, _ = listed
    with Path(summary["contact_file"]).open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows
    assert {"email", "phone", "first_name", "offer_code", "top_reason", "treatment"} <= set(rows[0])
    for row in rows:
        assert row["top_reason"]
        assert not any(v.startswith(("=", "+", "-", "@")) for v in row.values())
        if row["treatment"] == "call":
            assert row["phone"]
        if row["treatment"] == "email":
            assert row["email"]
        assert (row["offer_code"] == "SAVE10") == (row["treatment"] == "voucher")
    assert summary["excluded"]["no_contact_details"] > 0


def test_the_budget_buys_by_return_per_pound_and_says_what_it_bought(listed):
    _, summary, _, _ = listed
    spend = summary["spend"]
    assert spend["total"] <= 300.0
    assert spend["total"] > 300.0 - 8.0
    assert set(spend["bought"]) <= {"email", "voucher", "call"}
    assert all(b["expected_value"] > 0 for b in spend["bought"].values())
    assert spend["marginal_return"] > 0
    assert spend["by_treatment"]["email"]["contacts"] > 100


def test_every_listed_customer_has_a_reason_and_only_the_active_are_listed(listed):
    root, summary, runner, common = listed
    assignments = pl.read_csv(
        summary["assignment_file"], schema_overrides={"customer_id": pl.String}
    )
    assert (assignments["reasons"].fill_null("").str.len_chars() > 0).all()
    assert "no warning sign" not in " ".join(assignments["reasons"].to_list())
    assert summary["excluded"]["other_lifecycle"] > 0
    scores = root / "scores.csv"
    invoke(runner, "score", "--as-of", "2025-01-01", "--out", str(scores), *common, "-q")
    scored = pl.read_csv(scores, schema_overrides={"customer_id": pl.String})
    listed_ids = assignments["customer_id"].implode()
    on_list = scored.filter(pl.col("customer_id").is_in(listed_ids))
    assert (on_list["lifecycle"] == "retain").all()
    gone = scored.filter(pl.col("lifecycle") == "win_back")
    assert (gone["p_alive"] < 0.5).all()
    # a win-back campaign takes the others, valued by win_back_rate
    config = root / "crmkit.toml"
    win_back = root / "win_back.toml"
    win_back.write_text(config.read_text().replace("budget = 300.0", 'lifecycle = "win_back"'))
    options = [*common[:-4], "--config", str(win_back), *common[-2:]]
    back = invoke(runner, "targets", "--as-of", "2025-01-01", "--campaign", "back", "--out",
                  str(root / "out"), *options, "--json", "--dry-run")  # fmt: skip
    assert back["customers"] > 0
    assert back["excluded"]["other_lifecycle"] > back["customers"]


def test_listed_customers_beyond_the_explained_ones_get_the_models_reasons(listed):
    _, summary, _, _ = listed
    assignments = pl.read_csv(
        summary["assignment_file"], schema_overrides={"customer_id": pl.String}
    )
    assert assignments.height > 500  # more than [model] explain_rows: some asked for later
    text = " | ".join(assignments["reasons"].to_list())
    for rule_words in ("x their usual cycle", " down ", " days ago", "beyond [model] explain_rows"):
        assert rule_words not in text


def test_reasons_asked_later_equal_those_of_the_scoring(tmp_path):
    import datetime as dt

    from crmkit.config.settings import SegmentConfig
    from crmkit.models.registry import parse_ref
    from crmkit.models.scoring import score_customers

    store, registry = trained_sample_store(tmp_path)
    day, ref = dt.date(2025, 1, 1), parse_ref("churn")
    lazy = score_customers(store, day, ref, registry, SegmentConfig(), explain_rows=0)
    ids = lazy.frame["customer_id"].sample(40, seed=1).sort().to_list()
    eager = score_customers(store, day, ref, registry, SegmentConfig(), 0, ids).frame
    assert lazy.explainer is not None
    later = lazy.explainer.reasons(ids).sort("customer_id")
    then = eager.filter(pl.col("customer_id").is_in(ids)).select(later.columns).sort("customer_id")
    assert later.equals(then)
    assert lazy.frame.filter(pl.col("customer_id").is_in(ids))["top_driver"].null_count() == 40


def test_score_targets_and_run_report_each_pass_on_stderr_and_quiet_silences_them(listed):
    """No silent minutes: every pass of the scoring and the list's reasons say they are done."""
    import json
    import re

    root, _, runner, common = listed
    day = ["--campaign", "spring", "--out", str(root / "out-dry"), *common, "--dry-run"]
    done = invoke(runner, "run", "--date", "2025-01-01", *day, "--json")
    result = runner.invoke(app, ["run", "--date", "2025-01-01", *day])
    lines = [line for line in result.stderr.splitlines() if line.startswith("run: ")]
    steps = [re.sub(r" \(\d+/\d+\) [\d.]+ s$", "", line) for line in lines]
    assert steps == [
        "run: score: features of the buckets",
        "run: score: population fits",
        f"run: score: {done['scored']:,} eligible customers",
        "run: score: predictions",
        "run: score: reasons and score files",
        "run: list: reasons of the listed customers",
    ]
    counts = [re.search(r"\((\d+)/(\d+)\)", line).groups() for line in lines]  # type: ignore[union-attr]
    assert [int(a) for a, _ in counts[:5]] == [1, 2, 3, 4, 5] == [1, 2, 3, 4, int(counts[4][1])]
    listed_rows = str(done["customers"])  # every group of the list, explained
    assert counts[5] == (listed_rows, listed_rows)
    assert sum(done["groups"].values()) > 100
    scored = runner.invoke(
        app, ["score", "--as-of", "2025-01-01", "--out", str(root / "s.csv"), *common, "--json"]
    )
    assert json.loads(scored.stdout)["customers"] == done["scored"]  # --json alone on stdout
    assert "score: predictions (4/5)" in scored.stderr
    quiet = runner.invoke(app, ["targets", "--as-of", "2025-01-01", *day, "-q"])
    assert quiet.exit_code == 0
    assert quiet.stderr == ""
