from __future__ import annotations

import polars as pl

from tests.conftest import SAMPLE_DATA, invoke


def test_customer_view_history_risk_reasons_and_campaigns(runner, tmp_path, env_now):
    store, models, lists = str(tmp_path / "s"), str(tmp_path / "m"), tmp_path / "lists"
    common = ["--store", store, "--registry", models]
    invoke(runner, "ingest", str(SAMPLE_DATA / "transactions.csv"), "--store", store, "--quiet")
    invoke(runner, "train", "--as-of", "2025-01-01", "--horizon", "90", "--snapshots", "2",
           "--model", "logreg", *common, "--quiet")  # fmt: skip
    listed = invoke(runner, "targets", "--as-of", "2025-01-01", "--campaign", "spring",
                    "--out", str(lists), *common, "--json")  # fmt: skip
    assignments = pl.read_csv(
        listed["assignment_file"], schema_overrides={"customer_id": pl.String}
    )
    assert "reasons" in assignments.columns
    assert assignments["reasons"].drop_nulls().len() > 0
    top = assignments.row(0, named=True)
    view = invoke(
        runner, "customer", top["customer_id"], "--as-of", "2025-01-01", *common, "--json"
    )
    assert view["churn_probability"] == top["churn_probability"]
    assert view["features"]["value_tier"] == top["value_tier"]
    assert view["features"]["rfm_segment"] == top["segment"]
    assert "; ".join(view["reasons"]) == (top["reasons"] or "")
    assert [c["campaign_id"] for c in view["campaigns"]] == ["spring"]
    assert view["campaigns"][0]["group"] == top["group"]
    tx = pl.read_csv(SAMPLE_DATA / "transactions.csv", schema_overrides={"customer_id": pl.String})
    mine = tx.filter(
        (pl.col("customer_id") == top["customer_id"])
        & (pl.col("ts") < "2025-01-01")
        & (pl.col("amount") > 0)
    )
    assert view["features"]["orders"] == mine["order_id"].n_unique()  # refunds are not orders
    # the default date is the day after the last transaction; no model gives a note
    later = invoke(runner, "customer", top["customer_id"], "--store", store,
                   "--registry", str(tmp_path / "none"), "--json")  # fmt: skip
    assert later["as_of"] == "2025-01-01"
    assert later["churn_probability"] is None
    assert "no model named 'churn'" in later["notes"][0]
    missing = invoke(runner, "customer", "NOPE", *common, code=3)
    assert "has no purchase before" in missing.stderr
