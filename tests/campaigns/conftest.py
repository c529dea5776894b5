"""Fixtures of the campaign tests."""

from __future__ import annotations

import datetime as dt

import pytest

from crmkit.campaigns.planning import baseline_frame
from crmkit.ingest import ingest_files
from crmkit.store.core import Store
from tests.conftest import NOW, RETAIL_CONFIG, RETAIL_SAMPLE


@pytest.fixture(scope="session")
def retail(tmp_path_factory):
    """Customers of the Online Retail II sample eligible on 2011-08-02, real outcomes."""
    from crmkit.config.loading import load_settings

    store = Store(tmp_path_factory.mktemp("retail") / "store")
    ingest_files([RETAIL_SAMPLE], store, load_settings(RETAIL_CONFIG).ingest, now=NOW)
    base, frame = baseline_frame(store, dt.date(2011, 10, 1), 60, 365)
    return store, base, frame


@pytest.fixture(scope="session")
def simulated(tmp_path_factory):
    """Customers of the simulator's sample store eligible on 2024-11-02, its own outcomes."""
    from crmkit.config.settings import IngestConfig
    from tests.conftest import SAMPLE_DATA

    store = Store(tmp_path_factory.mktemp("simulated") / "store")
    ingest_files([SAMPLE_DATA / "transactions.csv"], store, IngestConfig(), now=NOW)
    base, frame = baseline_frame(store, dt.date(2025, 1, 1), 60, 365)
    return store, base, frame
