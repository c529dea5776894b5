"""Hostile input on every surface: never a traceback, and the store stays whole.

Property of every case: the command exits 0, 2, 3, 4 or 5 (never 1, an unexpected
error), and the store is either unchanged (same manifest bytes) or changed by exactly
what the command reports (``rows_read = stored + duplicate + quarantined`` and the store
grows by ``rows_stored`` and ``rows_quarantined``).

``make test`` runs 1,850 cases; ``make fuzz`` multiplies every count by
``CRMKIT_FUZZ_SCALE`` (default 5 there: 9,250 cases).
"""

from __future__ import annotations

import codecs
import gzip
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from crmkit_cli.main import app
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from crmkit.campaigns.optouts import read_optouts
from crmkit.errors import BadInputError
from crmkit.store.core import Store

from .conftest import NOW, SAMPLE_DATA, trained_sample_store

ALLOWED = {0, 2, 3, 4, 5, 6}
SCALE = float(os.environ.get("CRMKIT_FUZZ_SCALE", "1"))
COUNTS = {"files": 400, "configs": 300, "optouts": 600, "argv": 200, "ledgers": 250}
CASES = {k: max(1, int(v * SCALE)) for k, v in COUNTS.items()}


def fuzz(kind: str) -> settings:
    """Settings of one fuzz test: its number of cases, no deadline, reproducible."""
    return settings(
        max_examples=CASES[kind],
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def run(runner: CliRunner, *args: str) -> Any:
    result = runner.invoke(app, list(args), env={"CRMKIT_NOW": NOW.isoformat()})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{args}: unexpected {result.exception!r}") from result.exception
    assert result.exit_code in ALLOWED, (args, result.exit_code, result.stderr)
    assert "Traceback" not in result.stderr
    return result


def totals(store: Path) -> tuple[int, int]:
    if not (store / "manifest.json").exists():
        return 0, 0
    manifest = json.loads((store / "manifest.json").read_text())
    parts = manifest["parts"]
    return (
        sum(p["rows"] for p in parts["transactions"]),
        sum(p["rows"] for p in parts["quarantine"]),
    )


def manifest_bytes(store: Path) -> bytes | None:
    path = store / "manifest.json"
    return path.read_bytes() if path.exists() else None


def check_ingest(runner: CliRunner, store: Path, *args: str) -> Any:
    before, before_q = totals(store)
    manifest = manifest_bytes(store)
    result = run(runner, "ingest", *args, "--store", str(store), "--json")
    if result.exit_code != 0:
        assert manifest_bytes(store) == manifest, result.stderr
        return result
    report = json.loads(result.stdout)
    read = report["rows_read"]
    assert read == report["rows_stored"] + report["rows_duplicate"] + report["rows_quarantined"]
    after, after_q = totals(store)
    assert after == before + report["rows_stored"]
    assert after_q == before_q + report["rows_quarantined"]
    return result


# --- transaction files ------------------------------------------------------------------

HEADERS = [
    "customer_id", "Customer ID", "CustomerID", "client", "ts", "date", "InvoiceDate",
    "amount", "Total", "price", "quantity", "Qty", "UnitPrice", "order_id", "Invoice",
    "product", "category", "channel", "country", "", "x", "amount",
]  # fmt: skip
CELLS = st.one_of(
    st.sampled_from(
        [
            "", " ", "C1", "C2", "12346.0", "1\x000.00", "2024-01-02", "02/01/2024",
            "2024-01-02T10:00:00Z", "2024-13-45", "1999-01-01", "2090-01-01", "10.5",
            "-3", "1.234,56", "€1.234,56", "2,5", "1,234.56", "$ 9.99", "1e308", "nan",
            "inf", "=SUM(A1)", '"', '""', "a\nb", "\r", "\t", "C\u00e9", "\ufeff",
            "NULL", "(5.00)", "5-", "0x10", "١٢٣", "9" * 40,
        ]
    ),
    st.text(max_size=12),
)  # fmt: skip


GOOD_IDS = st.sampled_from(["C1", "C2", " C3 ", "12346.0", "4711"])
GOOD_DATES = st.sampled_from(
    ["2024-01-02", "2024-02-29 10:11:12", "03/04/2024", "2024-05-06T07:08:09Z"]
)
GOOD_AMOUNTS = st.sampled_from(["10.5", "-3.00", "1,234.56", "€ 7", "0", "2.50"])


@st.composite
def table_bytes(draw: st.DrawFn) -> bytes:
    usable = st.permutations(["customer_id", "date", "amount"]).flatmap(
        lambda cols: st.lists(st.sampled_from(HEADERS), max_size=3).map(lambda more: cols + more)
    )
    columns = draw(st.one_of(usable, usable, st.lists(st.sampled_from(HEADERS), max_size=7)))
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    good = {"customer_id": GOOD_IDS, "date": GOOD_DATES, "amount": GOOD_AMOUNTS}
    rows = [
        [
            draw(st.one_of(good.get(c, CELLS), CELLS) if draw(st.booleans()) else CELLS)
            for c in columns
        ]
        if draw(st.integers(0, 4))
        else draw(st.lists(CELLS, max_size=8))
        for _ in range(draw(st.integers(0, 8)))
    ]

    def line(cells: list[str]) -> str:
        quoted = [f'"{c}"' if draw(st.booleans()) else c for c in cells]
        return delimiter.join(quoted)

    text = "\n".join([line(columns), *(line(r) for r in rows)])
    text += draw(st.sampled_from(["", "\n", "\r\n", "\n\n"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "cp1252"]))
    data = text.encode(encoding, errors="replace")
    cut = draw(st.one_of(st.none(), st.integers(0, max(0, len(data)))))
    return data if cut is None else data[:cut]


FILES = st.one_of(
    table_bytes(),
    st.binary(max_size=300),
    st.builds(lambda b: codecs.BOM_UTF16_LE + b, st.binary(max_size=200)),
)


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    runner = CliRunner()
    run(runner, "ingest", str(SAMPLE_DATA / "messy" / "duplicates.csv"), "--store", str(root))
    return root


@fuzz("files")
@given(
    data=FILES,
    suffix=st.sampled_from([".csv", ".tsv", ".txt", ".csv.gz"]),
    strict=st.booleans(),
)
def test_transaction_files(fuzz_store, tmp_path_factory, data, suffix, strict):
    path = tmp_path_factory.mktemp("f") / f"export{suffix}"
    path.write_bytes(gzip.compress(data, mtime=0) if suffix.endswith(".gz") else data)
    result = check_ingest(CliRunner(), fuzz_store, str(path), *(["--strict"] if strict else []))
    event(f"exit {result.exit_code}")


# --- configuration files ------------------------------------------------------------------

SECTIONS = {
    "ingest": ["dayfirst", "decimal", "encoding", "delimiter", "date_format", "min_date",
               "max_future_days", "max_abs_amount", "dedupe"],
    "store": ["buckets", "max_parts_per_bucket"],
    "features": ["windows", "value_period_days", "value_discount_rate",
                 "projection_horizon_days", "annual_discount_rate", "season_window_days"],
    "segments": ["cycle_edges", "spend_edges", "one_time_buyers", "max_k", "seed"],
    "model": ["snapshots", "step_days", "lookback_days", "kind", "calibration", "threads",
              "seed", "registry", "name"],
    "targeting": ["control_fraction", "holdout_fraction", "size", "budget", "cooldown_days",
                  "min_churn_probability", "treatment_by", "optouts"],
}  # fmt: skip
VALUES = st.one_of(
    st.integers(-(2**40), 2**40).map(str),
    st.sampled_from(["0", "-1", "1", "0.5", "1.0", "2.0", "1e400", "nan", "inf", "true"]),
    st.sampled_from(['"auto"', '","', '";;"', '"%d/%m/%Y"', '"%Q"', '"%"', '""', '"x"']),
    st.sampled_from(["[]", "[1]", "[90, 30]", "[30, 90, 365]", '["a"]', "[1.5, 0.5]"]),
    st.sampled_from(["1990-01-01", "2999-12-31", '"not a date"', '"../../etc"']),
    st.text(max_size=10).map(json.dumps),
)


@st.composite
def config_text(draw: st.DrawFn) -> str:
    lines = []
    for section in draw(st.lists(st.sampled_from(sorted(SECTIONS)), max_size=3, unique=True)):
        lines.append(f"[{section}]")
        for key in draw(st.lists(st.sampled_from(SECTIONS[section]), max_size=3, unique=True)):
            lines.append(f"{key} = {draw(VALUES)}")
    if draw(st.booleans()):
        lines.append(draw(st.text(max_size=30)))
    return "\n".join(lines) + "\n"


@fuzz("configs")
@given(text=config_text())
def test_config_files(fuzz_store, tmp_path_factory, text):
    path = tmp_path_factory.mktemp("c") / "crmkit.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    source = SAMPLE_DATA / "messy" / "mixed_dates.csv"
    check_ingest(CliRunner(), fuzz_store, str(source), "--config", str(path))


# --- opt-out files ----------------------------------------------------------------------------


@fuzz("optouts")
@given(data=st.one_of(table_bytes(), st.binary(max_size=300)))
def test_optout_files(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("o") / "optouts.csv"
    path.write_bytes(data)
    try:
        ids = read_optouts(path)
    except BadInputError:  # exit 3; any other exception fails the test
        return
    assert ids.null_count() == 0
    assert ids.is_unique().all()


# --- imported ledgers ---------------------------------------------------------------------

KNOWN_IDS = ("C0001028", "C0000002", "C0000003", "C0000004", "C0000005", "C0000006")
LEDGER_CELLS = st.one_of(
    st.sampled_from(["C0001028", "C0000002", "C0000003", "", "NOPE", "12346.0", "2025-01-02",
                     "01/02/2025", "treatment", "Control", "holdout", "sms", "x"]),
    st.text(max_size=8),
)  # fmt: skip


@st.composite
def ledger_bytes(draw: st.DrawFn) -> bytes:
    header = draw(st.sampled_from(["customer_id,as_of,group,treatment", "customer_id,date,group",
                                   "Client ID;Sent;Arm", "a,b", ""]))  # fmt: skip
    delimiter = ";" if ";" in header else ","
    width = max(1, header.count(delimiter) + 1)
    if draw(st.booleans()):  # a valid experiment, now and then with one bad cell
        ids = draw(st.lists(st.sampled_from(KNOWN_IDS), min_size=1, max_size=6, unique=True))
        rows = [
            [c, "2025-01-02", draw(st.sampled_from(["treatment", "Control"])), "sms"][:width]
            for c in ids
        ]
        if draw(st.integers(0, 3)) == 0:
            rows[0][draw(st.integers(0, width - 1))] = draw(LEDGER_CELLS)
    else:
        rows = draw(st.lists(st.lists(LEDGER_CELLS, min_size=width, max_size=width), max_size=6))
    text = "\n".join([header, *(delimiter.join(r) for r in rows)]) + "\n"
    return text.encode(draw(st.sampled_from(["utf-8", "utf-16", "cp1252"])), errors="replace")


@fuzz("ledgers")
@given(data=st.one_of(ledger_bytes(), st.binary(max_size=200)), replace=st.booleans())
def test_imported_ledgers(trained, tmp_path_factory, data, replace):
    store, _, _ = trained
    path = tmp_path_factory.mktemp("l") / "assignments.csv"
    path.write_bytes(data)
    before = read_ledger_rows(store)
    manifest = manifest_bytes(store)
    args = ["ledger", "import", str(path), "--campaign", "fuzzed", "--store", str(store)]
    result = run(CliRunner(), *args, *(["--replace"] if replace else []), "--json")
    event(f"exit {result.exit_code}")
    if result.exit_code != 0:
        assert manifest_bytes(store) == manifest
        return
    report = json.loads(result.stdout)
    after = read_ledger_rows(store)
    event(f"status {report['status']}")
    if report["status"] == "unchanged":  # the ledger already held exactly these rows
        assert manifest_bytes(store) == manifest
        assert after == before
        return
    assert after == before - report["replaced"] + report["rows"]


def read_ledger_rows(store: Path) -> int:
    from crmkit.campaigns.ledger import read_ledger

    return read_ledger(Store(store)).height


# --- command lines --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("trained")
    store, registry = trained_sample_store(root)
    optouts = root / "optouts.csv"
    optouts.write_text('"customer_id"\n"C0000001"\n')
    return store.root, registry.root, optouts


#: Each command with the options it takes (beyond --store/--registry/--out, set below).
COMMANDS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("store", "info"): ("--json",),
    ("store", "quarantine"): ("--limit",),
    ("features",): ("--as-of", "--json"),
    ("segment",): ("--as-of", "--by", "--k", "--json"),
    ("score",): ("--as-of", "--model", "--json"),
    ("targets",): ("--as-of", "--campaign", "--size", "--budget", "--control-fraction",
                   "--model", "--format", "--replace", "--json"),
    ("run",): ("--date", "--campaign", "--model", "--format", "--replace", "--json"),
    ("evaluate",): ("--campaign", "--window", "--sequential", "--no-adjust", "--json"),
    ("plan",): ("--as-of", "--campaign-size", "--effect", "--metric", "--power",
                "--control-fraction", "--window", "--json"),
    ("models", "list"): ("--json",),
    ("models", "show"): (),
    ("clv", "fit"): ("--as-of", "--name", "--json"),
    ("clv", "predict"): ("--as-of", "--horizon", "--model", "--json"),
    ("report",): ("--as-of", "--campaign", "--window", "--model"),
    ("sample",): ("--customers", "--seed", "--start", "--end", "--json"),
    ("customer", "C0001028"): ("--as-of", "--model", "--json"),
    ("customer", "NOPE\u00e9"): ("--as-of", "--json"),
}  # fmt: skip
TAKES_OUT = {"store", "features", "segment", "score", "targets", "run", "clv", "report", "sample"}
TAKES_REGISTRY = {"score", "targets", "run", "models", "clv", "report", "customer"}
OPTION_VALUES = {
    "--as-of": ["2025-01-01", "2025-01-01", "2024-06-30", "1900-01-01", "2999-01-01",
                "2025-02-30", "x"],
    "--date": ["2025-01-01", "2025-01-01", "2024-12-31", "garbage"],
    "--campaign": ["spring", "spring", "winter", "../x", "a b", "", "x" * 80],
    "--by": ["rfm", "value", "kmeans", "nope"],
    "--k": ["2", "auto", "0", "-3", "999999"],
    "--size": ["0", "5", "50", "-1", "x"],
    "--budget": ["0", "10.5", "-5", "nan"],
    "--control-fraction": ["0", "0.5", "0.99", "1", "-0.1"],
    "--window": ["30", "0", "-1", "100000"],
    "--model": ["churn", "churn:1", "churn:99", "missing", "../m", "churn:0"],
    "--format": ["csv", "parquet", "xlsx"],
    "--customers": ["0", "20", "-5"],
    "--seed": ["0", "-1", "99999999999999999999"],
    "--start": ["2024-01-01", "2025-13-01"],
    "--end": ["2024-06-01", "2023-01-01"],
    "--horizon": ["90", "0", "-1"],
    "--limit": ["5", "0", "-2"],
    "--name": ["clv", "../x"],
    "--campaign-size": ["1000", "4", "3", "x", "100000000"],
    "--effect": ["2", "0", "-3", "0.001", "nan", "inf"],
    "--metric": ["retention", "revenue", "profit"],
    "--power": ["0.8", "0.5", "1", "0.2"],
    "--json": [],
    "--replace": [],
    "--sequential": [],
    "--no-adjust": [],
}  # fmt: skip


@st.composite
def command_line(draw: st.DrawFn) -> list[str]:
    command = draw(st.sampled_from(sorted(COMMANDS)))
    argv = list(command)
    options = COMMANDS[command]
    needed = ("--as-of", "--date", "--campaign", "--by", "--horizon", "--campaign-size")
    required = [o for o in needed if o in options]
    if draw(st.integers(0, 9)) == 0:  # now and then leave a required option out
        required = required[1:]
    chosen = draw(st.lists(st.sampled_from(options or ("",)), unique=True))
    for option in dict.fromkeys([*required, *chosen]):
        if not option or (option == "--campaign" and command == ("report",)):
            continue
        argv.append(option)
        if OPTION_VALUES[option]:
            argv.append(draw(st.sampled_from(OPTION_VALUES[option])))
    if draw(st.integers(0, 9)) == 0:
        argv.append(draw(st.sampled_from(["extra", "--unknown", "--as-of", "--quiet"])))
    return argv


def damage_store(store: Path, registry: Path, how: str) -> None:
    """Break a store or registry copy the ways hostile environments do."""
    manifest_path = store / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    parts = manifest["parts"]["transactions"]
    if how == "no_manifest":
        manifest_path.unlink()
    elif how == "manifest_list":
        manifest_path.write_text("[]")
    elif how == "manifest_garbage":
        manifest_path.write_bytes(b"\x00\xff{")
    elif how == "outside_path":
        parts[0]["path"] = "../outside.parquet"
        manifest_path.write_text(json.dumps(manifest))
    elif how == "truncated_part":
        part = store / parts[0]["path"]
        part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    elif how == "missing_part":
        (store / parts[-1]["path"]).unlink()
    elif how == "card_list":
        (registry / "churn" / "1" / "card.json").write_text("[]")
    elif how == "model_not_a_model":
        import hashlib
        import pickle

        blob = pickle.dumps({"not": "a model"})
        (registry / "churn" / "1" / "model.joblib").write_bytes(blob)
        card_path = registry / "churn" / "1" / "card.json"
        card = json.loads(card_path.read_text())
        card["sha256"] = hashlib.sha256(blob).hexdigest()
        card_path.write_text(json.dumps(card))


DAMAGE = st.sampled_from(
    [
        "none", "none", "none", "none", "no_manifest", "manifest_list", "manifest_garbage",
        "outside_path", "truncated_part", "missing_part", "card_list", "model_not_a_model",
    ]
)  # fmt: skip


@fuzz("argv")
@given(
    argv=command_line(),
    target=st.sampled_from(["out", "file", "missing/deep"]),
    damage=DAMAGE,
)
def test_command_lines(trained, tmp_path_factory, argv, target, damage):
    if argv[:2] in (["models", "show"], ["clv", "fit"]) and len(argv) == 2:
        argv = [*argv, "churn"] if argv[0] == "models" else argv
    store, registry, optouts = trained
    work = tmp_path_factory.mktemp("a")
    copy, models = work / "s", work / "models"
    shutil.copytree(store, copy)
    shutil.copytree(registry, models)
    damage_store(copy, models, damage)
    files = sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*.parquet"))
    out = work / target
    if target == "file":
        out.write_text("not a directory\n")
    if argv[0] in ("features", "segment", "score", "clv", "report", "store") and target != "file":
        out = out.with_suffix(".html" if argv[0] == "report" else ".csv")
    manifest = manifest_bytes(copy)
    args = [*argv]
    if argv[0] not in ("sample", "models"):
        args += ["--store", str(copy)]
    if argv[0] in TAKES_OUT and argv[:2] != ["store", "info"]:
        args += ["--out", str(out)]
    if argv[0] in TAKES_REGISTRY:
        args += ["--registry", str(models)]
    if argv[0] == "targets":
        args += ["--optouts", str(optouts)]
    result = run(CliRunner(), *args)
    event(f"{argv[0]} exit {result.exit_code}")
    event(f"damage {damage} exit {result.exit_code}")
    if result.exit_code != 0 and argv[0] != "run":
        assert manifest_bytes(copy) == manifest
    if damage == "none":
        Store(copy).manifest()  # whatever happened, the store still reads
    elif damage in ("no_manifest", "manifest_list", "manifest_garbage", "outside_path"):
        # a damaged store is never "repaired" by deleting its parts
        after = sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*.parquet"))
        assert set(files) <= set(after)
