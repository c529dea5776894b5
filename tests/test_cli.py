from __future__ import annotations

import re

import polars as pl
import pytest
import typer
from crmkit_cli.main import app

from crmkit import __version__
from crmkit.store.core import Store

from .conftest import MESSY, RETAIL_CONFIG, RETAIL_SAMPLE, ROOT, invoke


def test_version(runner):
    assert invoke(runner, "--version").stdout.strip() == f"crmkit {__version__}"


def test_sample_ingest_info_end_to_end(runner, tmp_path, env_now):
    out = invoke(
        runner,
        "sample",
        "--customers",
        "500",
        "--seed",
        "3",
        "--out",
        str(tmp_path / "d"),
        "--json",
    )
    assert out["customers"] == 500
    store = str(tmp_path / "s")
    report = invoke(runner, "ingest", out["transactions"], "--store", store, "--json")
    assert report["rows_read"] == out["rows"] == report["rows_stored"]
    assert report["rows_duplicate"] == report["rows_quarantined"] == 0
    info = invoke(runner, "store", "info", "--store", store, "--json")
    assert info["rows"] == out["rows"]
    assert info["customers"] == 500
    assert info["files_ingested"] == 1
    again = invoke(runner, "ingest", out["transactions"], "--store", store, "--json")
    assert again["files_skipped"] == 1
    assert again["rows_read"] == 0


def test_ingest_glob_and_reconciliation(runner, tmp_path, env_now):
    report = invoke(
        runner,
        "ingest",
        str(MESSY / "*_ids.csv"),
        str(MESSY / "dup*.csv"),
        "--store",
        str(tmp_path / "s"),
        "--json",
    )
    assert report["files_ingested"] == 2
    assert report["rows_read"] == 15
    assert report["rows_read"] == (
        report["rows_stored"] + report["rows_duplicate"] + report["rows_quarantined"]
    )
    assert Store(tmp_path / "s").quarantine().height == report["rows_quarantined"] == 7


def test_ingest_map_option(runner, tmp_path, env_now):
    report = invoke(
        runner,
        "ingest",
        str(MESSY / "semicolon_decimal_comma.csv"),
        "--map",
        "customer_id=Kundennummer,Datum=ts,amount=Betrag,order_id=Bestellnummer",
        "--store",
        str(tmp_path / "s"),
        "--json",
    )
    assert report["rows_stored"] == 5
    tx = Store(tmp_path / "s").transactions().collect()
    assert sorted(tx["order_id"].to_list()) == ["B-1", "B-2", "B-3", "B-4", "B-5"]


def test_wrong_columns_exit_3_with_message(runner, tmp_path):
    result = invoke(
        runner, "ingest", str(MESSY / "wrong_columns.csv"), "--store", str(tmp_path / "s"), code=3
    )
    assert "wrong_columns.csv: required column(s) customer_id, ts" in result.stderr
    assert "[ingest.columns]" in result.stderr
    assert not (tmp_path / "s" / "manifest.json").exists()


def test_strict_exit_3(runner, tmp_path, env_now):
    result = invoke(
        runner,
        "ingest",
        str(MESSY / "missing_ids.csv"),
        "--strict",
        "--store",
        str(tmp_path / "s"),
        code=3,
    )
    assert "missing_ids.csv line 3: missing_customer_id" in result.stderr


def test_bad_config_exit_2(runner, tmp_path):
    cfg = tmp_path / "crmkit.toml"
    cfg.write_text("[ingest]\nnope = 1\n")
    result = invoke(
        runner,
        "ingest",
        str(MESSY / "duplicates.csv"),
        "--config",
        str(cfg),
        "--store",
        str(tmp_path / "s"),
        code=2,
    )
    assert "unknown key(s) nope" in result.stderr


def test_store_info_without_store_exit_6(runner, tmp_path):
    result = invoke(runner, "store", "info", "--store", str(tmp_path / "none"), code=6)
    assert "no crmkit store" in result.stderr


def test_retail_config_and_quarantine_export(runner, tmp_path, env_now):
    store = str(tmp_path / "s")
    report = invoke(
        runner,
        "ingest",
        str(RETAIL_SAMPLE),
        "--config",
        str(RETAIL_CONFIG),
        "--store",
        store,
        "--json",
    )
    assert report["rows_read"] == 100_816
    out = tmp_path / "q.csv"
    invoke(runner, "store", "quarantine", "--store", store, "--out", str(out))
    q = pl.read_csv(out)
    assert q.height == report["rows_quarantined"]
    assert set(q["reason"]) == {"missing_customer_id", "excluded_by_rule"}


def test_every_command_is_documented():
    """Each command has help, a section of the guides, and its page of the reference."""
    from crmkit_cli.reference import command_names, reference

    guides = "".join(
        p.read_text() for p in sorted((ROOT / "docs").glob("*.md")) if p.name != "cli.md"
    )
    group = typer.main.get_command(app)
    for command in group.commands.values():
        assert command.help, f"{command.name} has no help"
    for args in command_names():
        name = " ".join(args)
        assert re.search(rf"crmkit {name}\b", guides), f"`crmkit {name}` is in no page of docs/"
    assert (ROOT / "docs" / "cli.md").read_text() == reference(), (
        "docs/cli.md is stale: python -m crmkit_cli.reference > docs/cli.md"
    )


def test_features_and_segments_csv_and_parquet(runner, tmp_path, env_now):
    from .conftest import SAMPLE_DATA

    store = str(tmp_path / "s")
    invoke(runner, "ingest", str(SAMPLE_DATA / "transactions.csv"), "--store", store, "--quiet")
    pq, csv = tmp_path / "f.parquet", tmp_path / "f.csv"
    summary = invoke(
        runner, "features", "--as-of", "2024-07-01", "--out", str(pq), "--store", store, "--json"
    )
    invoke(
        runner, "features", "--as-of", "2024-07-01", "--out", str(csv), "--store", store, "--quiet"
    )
    a = pl.read_parquet(pq)
    b = pl.read_csv(csv, schema_overrides={"customer_id": pl.String})
    assert a.height == b.height == summary["customers"] > 1000
    assert a["customer_id"].to_list() == b["customer_id"].to_list()
    assert a["recency_days"].to_list() == b["recency_days"].to_list()
    assert str(a["last_purchase"].max()) < "2024-07-01"
    assert {"rfm_segment", "value_tier", "customer_value"} <= set(a.columns)
    again = tmp_path / "g.parquet"
    invoke(
        runner,
        "features",
        "--as-of",
        "2024-07-01",
        "--out",
        str(again),
        "--store",
        store,
        "--quiet",
    )
    assert again.read_bytes() == pq.read_bytes()
    for by in ("rfm", "value", "kmeans"):
        out = tmp_path / f"{by}.csv"
        seg = invoke(
            runner,
            "segment",
            "--as-of",
            "2024-07-01",
            "--by",
            by,
            "--k",
            "auto",
            "--out",
            str(out),
            "--store",
            store,
            "--json",
        )
        frame = pl.read_csv(out)
        assert frame.height == summary["customers"]
        assert sum(s["customers"] for s in seg["segments"]) == frame.height
        assert 0 < seg["top5_value_share"] < seg["top20_value_share"] < 1


def test_segment_bad_options(runner, tmp_path, env_now):
    from .conftest import SAMPLE_DATA

    store = str(tmp_path / "s")
    invoke(runner, "ingest", str(SAMPLE_DATA / "transactions.csv"), "--store", store, "--quiet")
    bad_k = invoke(
        runner,
        "segment",
        "--as-of",
        "2024-07-01",
        "--by",
        "kmeans",
        "--k",
        "zero",
        "--out",
        str(tmp_path / "x.csv"),
        "--store",
        store,
        code=2,
    )
    assert "--k: 'zero'" in bad_k.stderr
    bad_date = invoke(
        runner,
        "features",
        "--as-of",
        "2024-13-01",
        "--out",
        str(tmp_path / "x.csv"),
        "--store",
        store,
        code=2,
    )
    assert "'2024-13-01' is not a date" in bad_date.stderr
    bad_ext = invoke(
        runner,
        "features",
        "--as-of",
        "2024-07-01",
        "--out",
        str(tmp_path / "x.xlsx"),
        "--store",
        store,
        code=2,
    )
    assert "must end in .csv or .parquet" in bad_ext.stderr


def test_train_score_models_and_tampering(runner, tmp_path, env_now):
    from .conftest import SAMPLE_DATA

    store, registry = str(tmp_path / "s"), str(tmp_path / "models")
    invoke(runner, "ingest", str(SAMPLE_DATA / "transactions.csv"), "--store", store, "--quiet")
    trained = invoke(
        runner,
        "train",
        "--as-of",
        "2024-10-01",
        "--horizon",
        "90",
        "--snapshots",
        "3",
        "--model",
        "logreg",
        "--name",
        "retention",
        "--store",
        store,
        "--registry",
        registry,
        "--json",
    )
    assert trained["model"] == "retention:1"
    assert trained["validation_metrics"][0]["roc_auc"] > 0.7
    out = tmp_path / "scores.csv"
    scored = invoke(
        runner,
        "score",
        "--as-of",
        "2024-10-01",
        "--model",
        "retention",
        "--out",
        str(out),
        "--store",
        store,
        "--registry",
        registry,
        "--json",
    )
    frame = pl.read_csv(out)
    assert frame.height == scored["customers"] > 1000
    assert frame["churn_probability"].is_between(0, 1).all()
    listed = invoke(runner, "models", "list", "--registry", registry, "--json")
    assert [m["model"] for m in listed] == ["retention:1"]
    shown = invoke(runner, "models", "show", "retention:1", "--registry", registry, "--json")
    assert shown["horizon_days"] == 90
    summary = invoke(runner, "models", "show", "retention:1", "--registry", registry)
    assert "90-day horizon" in summary.stdout  # a human table on stdout, as gh and dbt do
    assert "signed" in summary.stdout
    model_file = tmp_path / "models" / "retention" / "1" / "model.joblib"
    model_file.write_bytes(model_file.read_bytes() + b"\0")
    refused = invoke(
        runner,
        "score",
        "--as-of",
        "2024-10-01",
        "--model",
        "retention",
        "--out",
        str(out),
        "--store",
        store,
        "--registry",
        registry,
        code=5,
    )
    assert "does not match the sha256" in refused.stderr
    missing = invoke(
        runner,
        "score",
        "--as-of",
        "2024-10-01",
        "--model",
        "nope",
        "--out",
        str(out),
        "--store",
        store,
        "--registry",
        registry,
        code=5,
    )
    assert "no model named 'nope'" in missing.stderr
    unsafe = invoke(
        runner,
        "score",
        "--as-of",
        "2024-10-01",
        "--model",
        "../x",
        "--out",
        str(out),
        "--store",
        store,
        "--registry",
        registry,
        code=2,
    )
    assert "model name '../x'" in unsafe.stderr


def test_campaign_loop_sample_response_evaluate_report(runner, tmp_path, env_now):
    from .conftest import SAMPLE_DATA

    store, registry = str(tmp_path / "s"), str(tmp_path / "models")
    common = ["--store", store, "--registry", registry]
    invoke(runner, "ingest", str(SAMPLE_DATA / "transactions.csv"), "--store", store, "--quiet")
    invoke(
        runner,
        "train",
        "--as-of",
        "2025-01-01",
        "--horizon",
        "90",
        "--snapshots",
        "3",
        "--model",
        "logreg",
        *common,
        "--quiet",
    )
    lists = tmp_path / "lists"
    targets = invoke(
        runner,
        "targets",
        "--as-of",
        "2025-01-01",
        "--campaign",
        "spring",
        "--out",
        str(lists),
        *common,
        "--json",
    )
    assert targets["groups"]["treatment"] > 0
    listed = lists / "spring" / "2025-01-01.assignments.csv"
    assert targets["assignment_file"] == str(listed)
    response = invoke(
        runner,
        "sample",
        "--respond-to",
        str(listed),
        "--uplift",
        "email=0.2",
        "--window",
        "30",
        "--seed",
        "3",
        "--out",
        str(tmp_path / "resp"),
        "--json",
    )
    typo = invoke(
        runner, "sample", "--respond-to", str(listed), "--uplift", "emial=0.2",
        "--out", str(tmp_path / "typo"), code=2,
    )  # fmt: skip
    assert "emial" in typo.stderr
    manifest = (tmp_path / "s" / "manifest.json").read_bytes()
    result = invoke(
        runner, "evaluate", "--campaign", "spring", "--window", "30", "--store", store,
        "--outcomes", response["transactions"], "--json",
    )  # fmt: skip
    assert (tmp_path / "s" / "manifest.json").read_bytes() == manifest  # the store is untouched
    assert any("not a real campaign" in w for w in result["warnings"])
    assert any("not ingested" in w for w in result["warnings"])
    overall = result["treatment_vs_control"]
    assert overall["treated"] == targets["groups"]["treatment"]
    assert overall["uplift_low"] <= 0.2 <= overall["uplift_high"]
    _adjusted_and_sequential(runner, tmp_path, store, response["transactions"], overall)
    invoke(runner, "ingest", response["transactions"], "--store", store, "--quiet")
    report = tmp_path / "r.html"
    invoke(
        runner,
        "report",
        "--as-of",
        "2025-01-01",
        "--campaign",
        "spring",
        "--window",
        "30",
        "--out",
        str(report),
        *common,
    )
    assert report.read_text().count("<svg") == 6
    assert "adjusted by earlier purchases (95% CI)" in report.read_text()
    bad = invoke(
        runner, "report", "--as-of", "2025-01-01", "--out", str(tmp_path / "r.pdf"), *common, code=2
    )
    assert "use a .html file name" in bad.stderr
    missing = invoke(runner, "evaluate", "--campaign", "autumn", "--store", store, code=3)
    assert "no assignments" in missing.stderr


def _adjusted_and_sequential(runner, tmp_path, store, outcomes, overall):
    """The adjusted estimate beside the plain one; always-valid intervals when asked."""
    adjusted = overall["adjusted"]
    assert set(adjusted) >= {
        "uplift", "uplift_low", "uplift_high", "revenue_uplift_per_customer",
        "revenue_uplift_low", "revenue_uplift_high", "variance_reduction",
    }  # fmt: skip
    assert adjusted["uplift_low"] <= 0.2 <= adjusted["uplift_high"]
    assert 0 < adjusted["variance_reduction"]["retention"] < 1
    assert "sequential" not in overall
    args = ["evaluate", "--campaign", "spring", "--window", "30", "--store", store]
    both = invoke(runner, *args, "--outcomes", outcomes, "--sequential", "--json")
    sequential = both["treatment_vs_control"]["sequential"]
    assert sequential["basis"] == "adjusted"
    assert sequential["uplift"] == pytest.approx(adjusted["uplift"])
    # valid at every look: wider than one look's interval around the same estimate
    assert sequential["uplift_low"] < adjusted["uplift_low"]
    assert sequential["uplift_high"] > adjusted["uplift_high"]
    assert both["estimates"] == {
        "plain": True, "adjusted": True, "sequential": True, "sequential_tuning_customers": 5000,
    }  # fmt: skip
    config = tmp_path / "evaluate.toml"
    config.write_text("[evaluate]\nsequential = true\nadjust = false\n")
    shown = invoke(runner, *args, "--outcomes", outcomes, "--config", str(config)).stdout
    assert "always valid [95% CS]" in shown
    assert "adjusted [95% CI]" not in shown
    assert "a confidence sequence around the plain estimate" in shown
    plain = invoke(runner, *args, "--outcomes", outcomes, "--no-adjust", "--json")
    assert "adjusted" not in plain["treatment_vs_control"]
    assert plain["treatment_vs_control"]["uplift"] == overall["uplift"]


def test_clv_fit_predict_and_churn_features(runner, tmp_path, env_now):
    from .conftest import SAMPLE_DATA

    store, registry = str(tmp_path / "s"), str(tmp_path / "models")
    common = ["--store", store, "--registry", registry]
    invoke(runner, "ingest", str(SAMPLE_DATA / "transactions.csv"), "--store", store, "--quiet")
    fitted = invoke(runner, "clv", "fit", "--as-of", "2024-10-01", *common, "--json")
    assert fitted["model"] == "clv:1"
    assert fitted["fit"]["bgnbd"]["converged"]
    assert set(fitted["parameters"]["bgnbd"]) == {"r", "alpha", "a", "b"}
    out = tmp_path / "clv.parquet"
    predicted = invoke(
        runner,
        "clv",
        "predict",
        "--as-of",
        "2024-10-01",
        "--horizon",
        "90",
        "--out",
        str(out),
        *common,
        "--json",
    )
    frame = pl.read_parquet(out)
    assert frame.height == predicted["customers"] > 2000
    assert frame["p_alive"].is_between(0, 1).all()
    earlier = invoke(
        runner,
        "clv",
        "predict",
        "--as-of",
        "2024-01-01",
        "--horizon",
        "90",
        "--out",
        str(out),
        *common,
        code=3,
    )
    assert "would use information from after it" in earlier.stderr
    trained = invoke(
        runner,
        "train",
        "--as-of",
        "2024-10-01",
        "--horizon",
        "90",
        "--snapshots",
        "3",
        "--model",
        "logreg",
        "--clv-features",
        "--name",
        "withclv",
        *common,
        "--json",
    )
    card = invoke(runner, "models", "show", trained["model"], "--registry", registry, "--json")
    assert "clv_p_alive" in card["features"]
    scored = invoke(
        runner,
        "score",
        "--as-of",
        "2024-10-01",
        "--model",
        "withclv",
        "--out",
        str(tmp_path / "s.csv"),
        *common,
        "--json",
    )
    assert scored["customers"] > 1000
    wrong = invoke(
        runner,
        "clv",
        "predict",
        "--as-of",
        "2024-10-01",
        "--horizon",
        "90",
        "--model",
        "withclv",
        "--out",
        str(out),
        *common,
        code=5,
    )
    assert "is not a CLV model" in wrong.stderr


def test_allocator_default_is_set_only_when_the_environment_has_none():
    import subprocess
    import sys

    from crmkit_cli.main import KEEP_FREED_PAGES, allocator_settings

    assert allocator_settings(["crmkit", "features"], {}) == {"_RJEM_MALLOC_CONF": KEEP_FREED_PAGES}
    for command in ("ingest", "score", "targets", "run"):  # flat memory: polars' setting
        assert allocator_settings(["crmkit", command], {}) == {}
    assert allocator_settings(["crmkit", "features"], {"_RJEM_MALLOC_CONF": "narenas:2"}) == {}
    # the setting can only work if loading the CLI does not load polars before main() runs
    code = "import sys, crmkit_cli.main; print('polars' in sys.modules)"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "False"


def _plan_on_real_history(runner, store, cfg):
    """``crmkit plan`` on Online Retail II: fewer controls with the adjustment."""
    from statsmodels.stats.power import NormalIndPower

    args = ["plan", "--as-of", "2011-10-01", "--campaign-size", "3000", "--store", store, *cfg]
    planned = invoke(runner, *args, "--effect", "8", "--json")
    assert planned["baseline"]["base"] == "2011-08-02"
    assert planned["effect"] == pytest.approx(0.08)
    plain, adjusted = planned["plain"], planned["adjusted"]
    assert 20 <= adjusted["control"] < plain["control"] < 1500
    assert plain["control"] + plain["treatment"] == 3000
    peer = NormalIndPower().power(0.08 / plain["sd"], plain["treatment"], 0.05,
                                  plain["control"] / plain["treatment"])  # fmt: skip
    assert peer == pytest.approx(plain["achieved_power"], rel=1e-9)
    assert 0.8 <= peer < 0.81
    shown = invoke(runner, *args, "--metric", "revenue", "--control-fraction", "0.2").stdout
    assert "minimum detectable effect" in shown
    assert "eligible customers on 2011-08-02" in shown
    refused = invoke(runner, *args, "--effect", "0", code=2)
    assert "--effect must be a number other than zero" in refused.stderr


def test_walkthrough_on_online_retail_with_the_shipped_config(runner, tmp_path, env_now):
    store, models, lists = str(tmp_path / "s"), str(tmp_path / "m"), tmp_path / "lists"
    cfg = ["--config", str(RETAIL_CONFIG)]
    common = ["--store", store, "--registry", models, *cfg]
    day = ["--as-of", "2011-12-10"]
    invoke(runner, "ingest", str(RETAIL_SAMPLE), "--store", store, *cfg, "--quiet")
    _plan_on_real_history(runner, store, cfg)
    invoke(runner, "segment", *day, "--by", "value", "--out", str(tmp_path / "v.csv"),
           "--store", store, *cfg, "--quiet")  # fmt: skip
    invoke(runner, "train", "--as-of", "2011-09-01", "--horizon", "90", "--snapshots", "3",
           "--model", "logreg", *common, "--quiet")  # fmt: skip
    unpriced = invoke(runner, "targets", *day, "--campaign", "xmas", "--budget", "2000",
                      "--out", str(lists), *common, code=2)  # fmt: skip
    assert "have no cost" in unpriced.stderr  # the shipped config prices no treatment
    listed = invoke(runner, "targets", *day, "--campaign", "xmas", "--size", "200",
                    "--out", str(lists), *common, "--json")  # fmt: skip
    assert listed["customers"] == 200
    manifest = (tmp_path / "s" / "manifest.json").read_bytes()
    response = invoke(runner, "sample", "--respond-to", listed["assignment_file"],
                      "--uplift", "email=0.2", "--window", "30", "--seed", "1",
                      "--out", str(tmp_path / "resp"), "--json")  # fmt: skip
    result = invoke(runner, "evaluate", "--campaign", "xmas", "--window", "30",
                    "--outcomes", response["transactions"], "--store", store,
                    "--json")  # fmt: skip
    assert result["treatment_vs_control"]["treated"] == listed["contacts"]
    assert any("not a real campaign" in w for w in result["warnings"])
    assert (tmp_path / "s" / "manifest.json").read_bytes() == manifest  # the store is unchanged
