"""Human output fits a default terminal: every command at 80 columns, nothing cut."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import CRMKIT, MESSY, NOW, SAMPLE_DATA

ELLIPSIS = "…"


@pytest.fixture(scope="module")
def narrow(tmp_path_factory):
    root = tmp_path_factory.mktemp("narrow")
    env = {**os.environ, "COLUMNS": "80", "CRMKIT_NOW": NOW.isoformat()}
    store, models, lists = str(root / "s"), str(root / "m"), str(root / "lists")

    def run(*args: str) -> str:
        done = subprocess.run(
            [*CRMKIT, *args], capture_output=True, text=True, env=env, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout + done.stderr

    common = ["--store", store, "--config", str(SAMPLE_DATA / "crmkit.toml")]
    outputs = {
        "ingest": run("ingest", str(SAMPLE_DATA / "transactions.csv"), *common),
        "ingest messy": run("ingest", str(MESSY / "missing_ids.csv"), *common),
        "ingest customers": run(
            "ingest", "--kind", "customers", str(SAMPLE_DATA / "customers.csv"),
            "--known-from", "2023-01-01", *common,
        ),
        "store info": run("store", "info", "--store", store),
        "store quarantine": run("store", "quarantine", "--store", store),
        "train": run(
            "train", "--as-of", "2025-01-01", "--horizon", "90", "--snapshots", "3",
            "--model", "logreg", "--registry", models, *common,
        ),
        "models list": run("models", "list", "--registry", models),
        "score": run(
            "score", "--as-of", "2025-01-01", "--out", str(root / "sc.csv"),
            "--registry", models, *common,
        ),
        "targets": run(
            "targets", "--as-of", "2025-01-01", "--campaign", "spring", "--out", lists,
            "--registry", models, *common,
        ),
        "features": run("features", "--as-of", "2025-01-01", "--out", str(root / "f.csv"), *common),
    }  # fmt: skip
    for by in ("rfm", "value", "kmeans"):
        outputs[f"segment {by}"] = run(
            "segment", "--as-of", "2025-01-01", "--by", by, "--out", str(root / f"{by}.csv"),
            *common,
        )  # fmt: skip
    response = root / "resp"
    outputs["sample respond"] = run(
        "sample", "--respond-to", f"{lists}/spring/2025-01-01.assignments.csv",
        "--uplift", "email=0.1", "--window", "30", "--out", str(response),
    )  # fmt: skip
    outputs["evaluate"] = run(
        "evaluate", "--campaign", "spring", "--window", "30", "--store", store,
        "--outcomes", str(response / "response.csv"),
    )  # fmt: skip
    outputs["clv fit"] = run("clv", "fit", "--as-of", "2025-01-01", "--registry", models, *common)
    outputs["clv predict"] = run(
        "clv", "predict", "--as-of", "2025-01-01", "--horizon", "90",
        "--out", str(root / "clv.csv"), "--registry", models, *common,
    )  # fmt: skip
    outputs["customer"] = run("customer", "C0001028", "--registry", models, *common)
    outputs["models show"] = run("models", "show", "churn", "--registry", models)
    return outputs


def test_every_command_fits_80_columns_without_cutting(narrow):
    assert len(narrow) == 19
    for name, text in narrow.items():
        assert ELLIPSIS not in text, f"{name} cuts a value at 80 columns:\n{text}"
        assert max(len(line) for line in text.splitlines()) <= 80, name
    # the numbers are all there: the evaluation shows uplifts in percentage points
    assert " pp [" in narrow["evaluate"]
    assert "spend " in narrow["targets"]


def test_progress_is_plain_lines_with_elapsed_times_off_a_terminal(narrow):
    lines = narrow["train"].splitlines()
    stages = [ln for ln in lines if ln.startswith("train: ")]
    assert stages[0].startswith("train: snapshot ")
    for stage in ("fitting on the older snapshots", "permutation importance",
                  "final fit on every snapshot (3/4)", "done (4/4)"):  # fmt: skip
        assert any(stage in ln for ln in stages), stage
    assert all(ln.endswith(" s") for ln in stages)


def test_help_keeps_brackets_and_shows_real_metavars(runner):
    from tests.conftest import invoke

    text = invoke(runner, "targets", "--help").stdout
    assert "(default: [model] registry)" in text
    assert "--as-of DATE" in text
    assert "--budget AMOUNT" in text
    assert "<bool>" not in text
    assert "<str>" not in text
