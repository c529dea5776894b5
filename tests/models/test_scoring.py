from __future__ import annotations

import polars as pl

from tests.conftest import SAMPLE_DATA, invoke


def _segments(path, *columns):
    return dict(
        pl.read_csv(path, schema_overrides={"customer_id": pl.String})
        .select("customer_id", pl.concat_str(columns, separator="/").alias("s"))
        .iter_rows()
    )


def test_every_command_gives_a_customer_the_same_segment_and_tier(runner, tmp_path, env_now):
    store, registry = str(tmp_path / "s"), str(tmp_path / "models")
    common = ["--store", store, "--registry", registry]
    day = ["--as-of", "2025-01-01"]
    invoke(runner, "ingest", str(SAMPLE_DATA / "transactions.csv"), "--store", store, "--quiet")
    invoke(
        runner,
        "train",
        *day,
        "--horizon",
        "90",
        "--snapshots",
        "2",
        "--model",
        "logreg",
        *common,
        "--quiet",
    )
    features, rfm, value, scores = (tmp_path / f"{n}.csv" for n in ("f", "rfm", "value", "sc"))
    invoke(runner, "features", *day, "--out", str(features), "--store", store, "--quiet")
    invoke(runner, "segment", *day, "--by", "rfm", "--out", str(rfm), "--store", store, "--quiet")
    invoke(
        runner, "segment", *day, "--by", "value", "--out", str(value), "--store", store, "--quiet"
    )
    invoke(runner, "score", *day, "--out", str(scores), *common, "--quiet")
    listed = invoke(
        runner, "targets", *day, "--campaign", "c", "--out", str(tmp_path / "l"), *common, "--json"
    )
    everyone = _segments(features, "rfm_segment", "value_tier")
    by_segment = {
        c: f"{r}/{v}"
        for (c, r), v in zip(
            _segments(rfm, "rfm_segment").items(),
            _segments(value, "value_tier").values(),
            strict=True,
        )
    }
    assert by_segment == everyone
    scored = _segments(scores, "rfm_segment", "value_tier")
    assert 0 < len(scored) < len(everyone)  # only eligible customers are scored
    assert {c: everyone[c] for c in scored} == scored
    targets = _segments(listed["assignment_file"], "segment", "value_tier")
    assert targets
    assert {c: everyone[c] for c in targets} == targets
