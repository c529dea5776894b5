"""The feature table of Online Retail II's sample, column by column, against a recorded digest.

The digests were recorded from the pipeline before the mix aggregates grouped on integer
codes; a faster pipeline must give the same bytes. A deliberate change of a feature
definition comes with a new feature version, and new digests
(``python -m tests.features.test_golden``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import polars as pl

from tests.conftest import RETAIL_CONFIG, RETAIL_SAMPLE

DIGESTS = Path(__file__).parents[1] / "fixtures" / "retail_sample_features.json"
AS_OF = dt.date(2011, 9, 1)


def column_digest(series: pl.Series) -> str:
    """SHA-256 of a column's values, bit for bit, and of where its nulls are."""
    h = hashlib.sha256(series.dtype.__class__.__name__.encode())
    h.update(series.is_null().to_numpy().tobytes())
    if series.dtype == pl.String:
        h.update("\0".join(series.fill_null("").to_list()).encode())
    elif series.dtype == pl.Date:
        h.update(series.cast(pl.Int32).fill_null(0).to_numpy().tobytes())
    else:
        filled = series.fill_null(False if series.dtype == pl.Boolean else 0).to_numpy()
        h.update(np.ascontiguousarray(filled).tobytes())
    return h.hexdigest()


def retail_features(root: Path) -> pl.DataFrame:
    """Ingest the sample with the shipped config; return its feature table as of AS_OF."""
    from crmkit.config.loading import load_settings
    from crmkit.features.pipeline import store_features
    from crmkit.ingest import ingest_files
    from crmkit.store.core import Store

    settings = load_settings(RETAIL_CONFIG)
    store = Store(root)
    ingest_files([RETAIL_SAMPLE], store, settings.ingest, now=dt.datetime(2026, 1, 1))
    return store_features(store, AS_OF, settings.features)


def digests(frame: pl.DataFrame) -> dict[str, str]:
    """Each column's :func:`column_digest`, and the row count."""
    return {"rows": str(frame.height)} | {c: column_digest(frame[c]) for c in frame.columns}


def test_retail_sample_features_are_the_recorded_ones(tmp_path):
    got = digests(retail_features(tmp_path / "s"))
    want = json.loads(DIGESTS.read_text())
    assert list(got) == list(want)
    assert [c for c in want if got[c] != want[c]] == []


if __name__ == "__main__":  # record the digests
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        table = digests(retail_features(Path(tmp) / "s"))
    DIGESTS.write_text(json.dumps(table, indent=1) + "\n")
    sys.stdout.write(f"{len(table) - 1} columns, {table['rows']} rows -> {DIGESTS}\n")
