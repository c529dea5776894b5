from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from crmkit_cli.main import app
from hypothesis import settings
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DATA = ROOT / "sample_data"
MESSY = SAMPLE_DATA / "messy"
SHARED = ROOT.parent / "shared" / "data"
RETAIL_SAMPLE = SHARED / "online_retail_ii" / "online_retail_ii_sample.csv.gz"
RETAIL_FULL = SHARED / "online_retail_ii" / "online_retail_ii.csv.gz"
RETAIL_CONFIG = SAMPLE_DATA / "online_retail_ii.toml"
NOW = dt.datetime(2026, 1, 1)
if os.environ.get("PYTEST_XDIST_WORKER"):
    # test processes share the cores: one OpenMP thread each (crmkit's threads = 0 reads it)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
CRMKIT = [sys.executable, "-m", "crmkit_cli"]

settings.register_profile("ci", derandomize=True, deadline=None, max_examples=60)
settings.load_profile("ci")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args: str, code: int = 0) -> Any:
    """Run a crmkit command in-process; assert its exit code; return parsed --json or result."""
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == code, f"exit {result.exit_code}: {result.stderr}"
    if "--json" in args and code == 0:
        return json.loads(result.stdout)
    return result


@pytest.fixture
def env_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMKIT_NOW", NOW.isoformat())


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["CRMKIT_NOW"] = NOW.isoformat()
    return env


def trained_sample_store(root: Path) -> tuple[Any, Any]:
    """A store of sample_data/ with a fast logistic churn model "churn" as of 2025-01-01."""
    from crmkit.config.settings import FeatureConfig, IngestConfig, ModelConfig
    from crmkit.ingest import ingest_files
    from crmkit.models.churn import train
    from crmkit.models.registry import Registry
    from crmkit.store.core import Store

    store = Store(root / "s")
    ingest_files([SAMPLE_DATA / "transactions.csv"], store, IngestConfig(), now=NOW)
    registry = Registry(root / "models")
    result = train(
        store,
        dt.date(2025, 1, 1),
        90,
        ModelConfig(snapshots=3, kind="logreg"),
        FeatureConfig(),
        created=dt.datetime(2026, 1, 1),
    )
    registry.save("churn", result.model, result.card)
    return store, registry


@pytest.fixture(scope="module")
def sample_base(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A store of sample_data/transactions.csv, built once per test module."""
    from crmkit.config.settings import IngestConfig
    from crmkit.ingest import ingest_files
    from crmkit.store.core import Store

    store = Store(tmp_path_factory.mktemp("sample") / "s")
    ingest_files([SAMPLE_DATA / "transactions.csv"], store, IngestConfig(), now=NOW)
    return store


@pytest.fixture
def sample_copy(sample_base: Any, tmp_path: Path) -> Any:
    """A private copy of :func:`sample_base` that a test may change."""
    import shutil

    from crmkit.store.core import Store

    shutil.copytree(sample_base.root, tmp_path / "s")
    return Store(tmp_path / "s")


@pytest.fixture(scope="session")
def pg() -> Any:
    """A real PostgreSQL server on a free local port, for every test of a test process."""
    from tests.pgserver import running_server

    with running_server() as server:
        yield server


def fill(disk: Path) -> None:
    """Write a file ``filler`` into ``disk`` until no block is left."""
    with (disk / "filler").open("wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB tmpfs (needs root, as in CI); skipped where mounting is not allowed."""
    import shutil
    import subprocess

    mount = tmp_path / "small"
    mount.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        # lazily: a process that still holds a file there must not keep the mount alive
        subprocess.run(["umount", "-l", str(mount)], check=False)
