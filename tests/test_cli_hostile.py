"""What real operations do to the commands: full terminals, missing inboxes, odd settings."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from crmkit.store.core import Store

from .conftest import CRMKIT, SAMPLE_DATA, fill, invoke, subprocess_env, trained_sample_store


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    store, registry = trained_sample_store(tmp_path_factory.mktemp("hostile"))
    return store.root, registry.root


def crmkit(*args: str, stdout: object = subprocess.PIPE, stderr: object = subprocess.PIPE):
    return subprocess.run(
        [*CRMKIT, *args], stdout=stdout, stderr=stderr, text=True, env=subprocess_env(), check=False
    )


def test_a_full_stdout_and_stderr_change_nothing(tmp_path):
    store = tmp_path / "s"
    with Path("/dev/full").open("w") as full:
        done = crmkit(
            "ingest", str(SAMPLE_DATA / "transactions.csv"), "--store", str(store), "--json",
            stdout=full, stderr=full,
        )  # fmt: skip
        assert done.returncode == 0
        assert Store(store).transactions().collect().height == 17_927
        info = crmkit("store", "info", "--store", str(store), "--json", stdout=full)
        assert info.returncode == 0
        assert "Traceback" not in info.stderr


def test_human_tables_on_stdout_json_alone_with_json(tmp_path, runner):
    store = str(tmp_path / "s")
    ingested = invoke(runner, "ingest", str(SAMPLE_DATA / "transactions.csv"), "--store", store)
    assert "rows_read 17,927 = stored 17,927" in ingested.stdout
    shown = invoke(runner, "store", "info", "--store", store)
    assert "transactions" in shown.stdout
    as_json = invoke(runner, "store", "info", "--store", store, "--json")
    assert as_json["rows"] == 17_927  # invoke parses stdout: nothing but the JSON is there


def test_store_commands_and_evaluate_take_config(tmp_path, runner):
    store = str(tmp_path / "s")
    config = str(SAMPLE_DATA / "crmkit.toml")
    invoke(runner, "ingest", str(SAMPLE_DATA / "transactions.csv"), "--store", store)
    invoke(runner, "store", "info", "--store", store, "--config", config)
    invoke(runner, "store", "quarantine", "--store", store, "--config", config)
    missing = invoke(
        runner, "evaluate", "--campaign", "nope", "--store", store, "--config", config, code=3
    )
    assert "no such option" not in missing.stderr


def test_missing_or_wrong_inbox_stops_the_run(trained, tmp_path, runner, env_now):
    store, registry = trained
    base = ["run", "--date", "2025-01-01", "--campaign", "daily", "--out", str(tmp_path / "o"),
            "--store", str(store), "--registry", str(registry)]  # fmt: skip
    gone = invoke(runner, *base, "--inbox", str(tmp_path / "unmounted"), code=4)
    assert "unmounted" in gone.stderr
    a_file = tmp_path / "file.csv"
    a_file.write_text("x\n")
    invoke(runner, *base, "--inbox", str(a_file), code=3)
    assert not (tmp_path / "o" / "daily").exists()
    lines = [json.loads(x) for x in (store / "logs" / "run.jsonl").read_text().splitlines()]
    ends = [x for x in lines if x["event"] == "end"]
    assert [e["exit_code"] for e in ends[-2:]] == [4, 3]


def test_a_run_refused_by_the_lock_is_logged(trained, tmp_path, runner, env_now):
    store, registry = trained
    with Store(store).lock():
        refused = invoke(
            runner, "run", "--date", "2025-01-01", "--campaign", "locked", "--out",
            str(tmp_path / "o"), "--store", str(store), "--registry", str(registry), code=4,
        )  # fmt: skip
    assert "locked" in refused.stderr
    last = [json.loads(x) for x in (store / "logs" / "run.jsonl").read_text().splitlines()][-2:]
    assert [x["event"] for x in last] == ["start", "end"]
    assert last[1]["exit_code"] == 4


def test_quiet_prints_no_warning(trained, tmp_path, runner, env_now):
    store, registry = trained
    optouts = tmp_path / "o.txt"
    optouts.write_text("NOPE-1\nNOPE-2\n")
    config = tmp_path / "c.toml"
    config.write_text(f'[targeting]\noptouts = "{optouts}"\nmin_churn_probability = 0.0\n')
    args = ["targets", "--as-of", "2025-01-01", "--campaign", "quiet", "--out",
            str(tmp_path / "o"), "--store", str(store), "--registry", str(registry),
            "--config", str(config)]  # fmt: skip
    loud = invoke(runner, *args, "--dry-run")
    said = " ".join(loud.stderr.split())  # a warning wraps at the console's width
    assert "name no customer" in said
    assert "line 1, 2" in said
    assert "NOPE" not in said
    quiet = invoke(runner, *args, "--dry-run", "--quiet")
    assert quiet.stderr == ""


@pytest.mark.parametrize(
    ("setting", "text"),
    [
        ("[ingest]\nmax_future_days = 99999999999999999999\n", "max_future_days"),
        ('[ingest]\ndelimiter = "\\""\n', "delimiter"),
        ('[ingest]\ndelimiter = "\\n"\n', "delimiter"),
        ('[ingest]\ndate_format = "%Q"\n', "date_format"),
        ('[ingest]\ndate_format = ""\n', "date_format"),
        ("[ingest]\nmin_date = 2999-01-01\n", "min_date"),
        ("[ingest]\nmax_abs_amount = inf\n", "max_abs_amount"),
        ("[targeting.costs]\nemail = inf\n", "costs"),
        ('[targeting.treatments]\nplatinum = ""\n', "treatments"),
        ('[targeting]\ndefault_treatment = ""\n', "default_treatment"),
    ],
)
def test_out_of_range_settings_are_configuration_errors(tmp_path, runner, env_now, setting, text):
    config = tmp_path / "c.toml"
    config.write_text(setting)
    bad = invoke(
        runner, "ingest", str(SAMPLE_DATA / "transactions.csv"), "--store", str(tmp_path / "s"),
        "--config", str(config), code=2,
    )  # fmt: skip
    assert text in bad.stderr
    assert not (tmp_path / "s" / "manifest.json").exists()


def test_huge_options_are_usage_errors(trained, tmp_path, runner, env_now):
    store, registry = trained
    args = ["targets", "--as-of", "2025-01-01", "--campaign", "big", "--out", str(tmp_path),
            "--store", str(store), "--registry", str(registry)]  # fmt: skip
    invoke(runner, *args, "--size", "9" * 20, code=2)
    invoke(runner, *args, "--budget", "inf", code=2)
    invoke(runner, "ingest", str(SAMPLE_DATA / "transactions.csv"), "--store",
           str(tmp_path / "s"), "--date-format", "%Q", code=2)  # fmt: skip


def test_customer_id_written_as_a_float(tmp_path, runner, env_now):
    store = str(tmp_path / "s")
    csv = tmp_path / "t.csv"
    csv.write_text("customer_id,date,amount\n12346,2024-01-02,5\n12346,2024-02-02,7\n")
    invoke(runner, "ingest", str(csv), "--store", store)
    shown = invoke(
        runner, "customer", "12346.0", "--as-of", "2024-06-01", "--store", store, "--json"
    )
    assert shown["customer_id"] == "12346"


def test_lone_carriage_return_file_is_read(tmp_path, runner, env_now):
    csv = tmp_path / "mac.csv"
    csv.write_bytes(b'customer_id,date,amount\r"a",2024-01-02,5\rb,2024-01-03,6\r')
    report = invoke(runner, "ingest", str(csv), "--store", str(tmp_path / "s"), "--json")
    assert report["rows_stored"] == 2


def test_one_line_file_error_quotes_no_content(tmp_path, runner, env_now):
    csv = tmp_path / "one.csv"
    csv.write_bytes(b"customer_id;date;" + b"secret-value," * 20_000)
    bad = invoke(runner, "ingest", str(csv), "--store", str(tmp_path / "s"), code=3)
    assert len(bad.stderr) < 2000  # at most 20 header names of at most 40 characters
    assert "and 19,981 more" in bad.stderr


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_outputs_on_a_full_disk_exit_6_and_leave_no_partial_file(
    trained, small_disk, runner, env_now, suffix
):
    store, _ = trained
    fill(small_disk)  # take every block the disk has
    out = small_disk / f"features.{suffix}"
    full = invoke(
        runner, "features", "--as-of", "2025-01-01", "--out", str(out), "--store", str(store),
        code=6,
    )  # fmt: skip
    assert "cannot write" in full.stderr
    assert str(out) in full.stderr
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


def test_a_changed_size_or_budget_on_a_same_day_rerun_needs_replace(trained, tmp_path, runner):
    store, registry = trained
    out = tmp_path / "o"
    config = tmp_path / "c.toml"
    config.write_text("[targeting]\ndefault_cost = 1.0\n")
    args = ["targets", "--as-of", "2025-01-01", "--campaign", "rerun", "--out", str(out),
            "--store", str(store), "--registry", str(registry), "--config", str(config),
            "--json"]  # fmt: skip
    first = invoke(runner, *args, "--size", "100")
    assert (first["status"], first["customers"]) == ("recorded", 100)
    contacts = (out / "rerun" / "2025-01-01.contacts.csv").read_bytes()
    same = invoke(runner, *args, "--size", "100")
    assert same["status"] == "unchanged"
    for changed in (["--size", "150"], ["--size", "60"], ["--size", "100", "--budget", "50"]):
        refused = invoke(runner, *args[:-1], *changed, code=3)
        assert "--replace" in refused.stderr
        assert (out / "rerun" / "2025-01-01.contacts.csv").read_bytes() == contacts
    replaced = invoke(runner, *args, "--size", "150", "--replace")
    assert replaced["status"] == "replaced"
    assert len((out / "rerun" / "2025-01-01.assignments.csv").read_text().splitlines()) == 151


def test_a_failed_targets_leaves_no_directory(trained, tmp_path, runner):
    store, registry = trained
    out = tmp_path / "new" / "out"
    optouts = tmp_path / "missing-optouts.txt"
    config = tmp_path / "c.toml"
    config.write_text(f'[targeting]\noptouts = "{optouts}"\n')
    failed = invoke(runner, "targets", "--as-of", "2025-01-01", "--campaign", "gone", "--out",
                    str(out), "--store", str(store), "--registry", str(registry), "--config",
                    str(config), code=3)  # fmt: skip
    assert "missing-optouts.txt" in failed.stderr
    assert not (tmp_path / "new").exists()
