"""Dates across several files of one source: stored as written, or the file is refused.

Each case writes one source's daily files in one day/month order and format (slashed,
dashed or dotted, 2- or 4-digit years, with or without a time); most days are 12 or less,
so many files are ambiguous alone. Every file is ingested in turn; each is either stored
with every date as the source wrote it, or refused (exit 3) with nothing stored.
"""

from __future__ import annotations

import datetime as dt
import os

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmkit.config.settings import IngestConfig
from crmkit.errors import BadInputError
from crmkit.ingest import ingest_files
from crmkit.store.core import Store
from tests.conftest import NOW

SCALE = float(os.environ.get("CRMKIT_FUZZ_SCALE", "1"))


@st.composite
def source_files(draw: st.DrawFn) -> tuple[bool, list[list[dt.datetime]], str]:
    dayfirst = draw(st.booleans())
    sep = draw(st.sampled_from(["/", "-", "."]))
    if sep == ".":
        dayfirst = True  # dotted dates are day-first unless told otherwise
    year = draw(st.sampled_from(["%Y", "%y"]))
    clock = draw(st.sampled_from(["", " %H:%M", " %H:%M:%S"]))
    first, second = ("%d", "%m") if dayfirst else ("%m", "%d")
    fmt = f"{first}{sep}{second}{sep}{year}{clock}"
    small = st.integers(1, 12)
    day = st.one_of(small, small, small, st.integers(1, 28))
    stamp = st.builds(
        lambda y, m, d, s: dt.datetime(y, m, d) + dt.timedelta(seconds=s),
        st.integers(2015, 2025), st.integers(1, 12), day,
        st.integers(0, 86399) if clock else st.just(0),
    )  # fmt: skip
    files = draw(st.lists(st.lists(stamp, min_size=1, max_size=6), min_size=1, max_size=4))
    if not clock:
        files = [[s.replace(hour=0, minute=0, second=0) for s in f] for f in files]
    elif clock == " %H:%M":
        files = [[s.replace(second=0) for s in f] for f in files]
    return dayfirst, files, fmt


@settings(
    max_examples=max(1, int(50 * SCALE)),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=source_files())
def test_dates_of_one_source_are_stored_as_written(tmp_path_factory, case):
    _, files, fmt = case
    root = tmp_path_factory.mktemp("dates")
    store = Store(root / "s")
    for k, stamps in enumerate(files):
        path = root / "inbox" / f"sales_2024{k:04d}.csv"
        path.parent.mkdir(exist_ok=True)
        rows = [f"c{k}-{i},{s.strftime(fmt)},10" for i, s in enumerate(stamps)]
        path.write_text("customer_id,date,amount\n" + "\n".join(rows) + "\n")
        before = store.transactions().collect().height if store.exists() else 0
        try:
            ingest_files([path], store, IngestConfig(), now=NOW)
        except BadInputError as exc:
            assert "--dayfirst or --monthfirst" in str(exc)  # noqa: PT017 (not every file fails)
            after = store.transactions().collect().height if store.exists() else 0
            assert after == before  # nothing of a refused file is stored
            continue
        got = store.transactions().sort("customer_id").collect()
        wrong = got.join(
            pl.DataFrame(
                {
                    "customer_id": [
                        f"c{j}-{i}" for j, f in enumerate(files[: k + 1]) for i in range(len(f))
                    ],
                    "want": [s for f in files[: k + 1] for s in f],
                },
                schema={"customer_id": pl.String, "want": pl.Datetime("us")},
            ),
            on="customer_id",
        ).filter(pl.col("ts") != pl.col("want"))
        # a source's first files may all be ambiguous: read month-first until a day above
        # 12 shows otherwise; only files stored after the order was known must be exact
        known = [v for v in store.require().sources.values() if v.get("kind") == "file"]
        if known:
            assert wrong.filter(pl.col("customer_id").str.starts_with(f"c{k}-")).height == 0
