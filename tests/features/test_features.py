from __future__ import annotations

import datetime as dt
import itertools
import math
import random

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmkit.config.settings import FeatureConfig
from crmkit.features.customer import (
    churn_labels,
    collect,
    customer_features,
    feature_schema,
)
from crmkit.features.vocabulary import learn_vocabulary, mix_schema
from crmkit.schema import TRANSACTION_SCHEMA
from tests.reference import close, reference_features

AS_OF = dt.date(2024, 7, 1)
CFG = FeatureConfig()


def frame(rows: list[dict]) -> pl.DataFrame:
    full = [{k: r.get(k) for k in TRANSACTION_SCHEMA} for r in rows]
    return pl.DataFrame(full, schema=TRANSACTION_SCHEMA)


def features(rows, as_of=AS_OF, cfg=CFG) -> pl.DataFrame:
    return collect(customer_features(frame(rows).lazy(), as_of, cfg))


def random_rows(seed: int, n: int = 600) -> list[dict]:
    rng = random.Random(seed)
    start = dt.datetime(2022, 1, 1)
    rows = []
    for i in range(n):
        ts = start + dt.timedelta(minutes=rng.randrange(0, 60 * 24 * 1000))
        amount = (
            round(rng.uniform(1, 200), 2) if rng.random() > 0.1 else -round(rng.uniform(1, 50), 2)
        )
        order = None if rng.random() < 0.2 else f"O{i // rng.choice([1, 2, 3])}"
        customer = rng.randrange(40)
        rows.append(
            {
                "customer_id": f"C{customer}",
                "ts": ts,
                "amount": amount,
                "order_id": order,
                "product": rng.choice([None, "p1", "p2", "p3", "p4", "p5", ""]),
                # every fifth customer's export has no category, every seventh no channel
                "category": None if customer % 5 == 0 else rng.choice([None, "a", "b", "c", "d"]),
                "channel": None if customer % 7 == 0 else rng.choice(["web", "shop", "phone"]),
                "quantity": rng.choice([None, 1.0, 2.0, 3.0, 0.5, -1.0]),
            }
        )
    return rows


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_feature_equals_the_reference(seed):
    rows = random_rows(seed)
    got = features(rows)
    expected = reference_features(rows, AS_OF, CFG)
    assert set(got["customer_id"]) == set(expected)
    vocab = learn_vocabulary(frame(rows).lazy(), AS_OF, CFG)
    assert vocab.channels == ("phone", "shop", "web") or len(set(vocab.channels)) == 3
    assert len(vocab.categories) == 4
    assert list(got.columns) == list(feature_schema(CFG, vocab))
    # the per-category and per-channel columns are not all null
    assert got["category_share_a"].drop_nulls().len() > 0
    assert got["channel_switch_90"].drop_nulls().len() > 0
    for row in got.iter_rows(named=True):
        want = expected[row["customer_id"]]
        for name, value in want.items():
            assert close(row[name], value), (row["customer_id"], name, row[name], value)


def test_hand_computed_customer():
    rows = [
        {"customer_id": "A", "ts": dt.datetime(2024, 6, 1, 10), "amount": 100.0, "order_id": "1"},
        {"customer_id": "A", "ts": dt.datetime(2024, 6, 1, 11), "amount": 50.0, "order_id": "2"},
        {"customer_id": "A", "ts": dt.datetime(2024, 6, 11), "amount": 30.0, "order_id": "3"},
        {"customer_id": "A", "ts": dt.datetime(2024, 6, 12), "amount": -30.0, "order_id": "C3"},
        {"customer_id": "A", "ts": dt.datetime(2024, 6, 21), "amount": 20.0, "order_id": "4"},
        {
            "customer_id": "A",
            "ts": dt.datetime(2024, 7, 1),
            "amount": 999.0,
            "order_id": "5",
        },  # after
        {"customer_id": "B", "ts": dt.datetime(2024, 3, 1), "amount": 10.0, "order_id": None},
    ]
    got = features(rows).to_dicts()
    a, b = got
    assert a["purchase_days"] == 3
    assert a["orders"] == 4
    assert a["gross_spend"] == 200.0
    assert a["refunds"] == 30.0
    assert a["net_spend"] == 170.0
    assert a["recency_days"] == 10
    assert a["tenure_days"] == 30
    assert a["mean_cycle_days"] == 10.0
    assert a["std_cycle_days"] == 0.0
    assert a["overdue_ratio"] == 1.0
    assert a["days_30"] == 3
    assert a["spend_30"] == 170.0
    assert a["mean_order_value"] == 50.0
    assert b["is_one_time"] is True
    assert b["mean_cycle_days"] is None
    # a one-time buyer gets the median cycle of repeat buyers in the projection, a spend
    # shrunk toward the median spend per purchase day (170 / 3 and 10: 33.33) with one
    # pseudo-day on the log scale, and the repeat rate of customers who had a median cycle
    # to come back (A did, B did not: 0.5)
    shrunk = math.exp((math.log1p((170 / 3 + 10) / 2) + math.log1p(10.0)) / 2) - 1
    assert b["projected_value"] == pytest.approx(0.5 * shrunk / 10.0 * 365 / 1.1 ** (365 / 730))
    assert b["projected_value"] < 10.0 / 10.0 * 365 / 1.1 ** (365 / 730)


def test_hand_computed_mix():
    def line(day, amount, category, channel, product="p", quantity=1.0):
        return {
            "customer_id": "A",
            "ts": dt.datetime(2024, 6, day) if day > 0 else dt.datetime(2024, 3, 1),
            "amount": amount,
            "order_id": f"o{day}{category}",
            "product": product,
            "category": category,
            "channel": channel,
            "quantity": quantity,
        }

    rows = [
        line(0, 60.0, "shoes", "shop", "s1", 2.0),  # 122 days before: the window before
        line(0, 40.0, "bags", "shop", "b1", 1.0),
        line(10, 30.0, "shoes", "web", "s1", 3.0),
        line(20, 70.0, "shoes", "web", "s2", 1.0),
        line(21, -35.0, "shoes", "web", "s2", -1.0),
    ]
    got = features(rows, cfg=FeatureConfig(mix_window_days=120, top_categories=1)).to_dicts()[0]
    assert got["distinct_products"] == 3
    assert got["distinct_products_120"] == 2
    assert got["distinct_products_change_120"] == 2 - 2  # {s1, s2} against {s1, b1}
    assert got["distinct_categories"] == 2
    assert got["distinct_categories_change_120"] == 1 - 2
    assert got["top_category_share"] == pytest.approx(160 / 200)
    p = [160 / 200, 40 / 200]
    assert got["category_entropy"] == pytest.approx(-sum(x * math.log(x) for x in p) / math.log(2))
    assert got["category_refund_share_max"] == pytest.approx(35 / 160)
    assert got["channel_switch_120"] is True  # shop 122 days before, web recently
    assert got["units_per_order"] == pytest.approx(7 / 4)
    assert got["mean_unit_price"] == pytest.approx(200 / 7)
    assert got["lines_per_order"] == 1.0
    assert got["category_share_shoes"] == pytest.approx(160 / 200)
    assert got["channel_share_web"] == pytest.approx(100 / 200)
    assert got["channel_days_share_shop"] == pytest.approx(1 / 3)
    short = features(rows, cfg=FeatureConfig(mix_window_days=30)).to_dicts()[0]
    assert short["channel_switch_30"] is None  # no purchase 31 to 60 days before
    assert short["top_category_share_change_30"] is None


def test_an_export_without_mix_columns_gives_null_mix_features():
    rows = [{"customer_id": "A", "ts": dt.datetime(2024, 6, 1), "amount": 10.0}]
    got = features(rows).to_dicts()[0]
    for name in ("distinct_products", "distinct_categories", "distinct_channels",
                 "top_category_share", "channel_switch_90", "units_per_order",
                 "mean_unit_price", "category_refund_share_max"):  # fmt: skip
        assert got[name] is None, name
    assert got["lines_per_order"] == 1.0


def test_mix_off_gives_null_mix_features_and_the_same_other_features():
    rows = random_rows(5)
    on = features(rows)
    off_cfg = FeatureConfig(mix=False)
    tx = frame(rows).lazy()
    assert learn_vocabulary(tx, AS_OF, off_cfg).to_json() == {"categories": [], "channels": []}
    off = features(rows, cfg=off_cfg)
    mix = set(feature_schema(CFG, learn_vocabulary(tx, AS_OF, CFG))) - set(feature_schema(CFG))
    assert mix  # the share columns of the learned vocabulary
    assert set(on.columns) - set(off.columns) == mix
    assert off.columns == list(feature_schema(off_cfg))
    assert off.height == on.height == 40
    nulls = mix_schema(off_cfg, learn_vocabulary(tx, AS_OF, off_cfg))
    for name in nulls:
        assert off[name].null_count() == off.height, name
        assert on[name].null_count() < on.height, name
    kept = [c for c in off.columns if c not in nulls]
    assert {"gross_spend", "purchase_days", "customer_value"} <= set(kept)
    assert off.select(kept).equals(on.select(kept))


def test_customers_with_only_refunds_are_not_customers():
    rows = [{"customer_id": "R", "ts": dt.datetime(2024, 1, 1), "amount": -5.0}]
    assert features(rows).height == 0


tx_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "customer_id": st.sampled_from(["a", "b", "c", "d"]),
            "ts": st.datetimes(
                min_value=dt.datetime(2023, 1, 1), max_value=dt.datetime(2024, 12, 31)
            ),
            "amount": st.floats(min_value=-100, max_value=500, allow_nan=False).map(
                lambda x: round(x, 2)
            ),
            "order_id": st.none() | st.sampled_from(["o1", "o2", "o3"]),
            "product": st.none() | st.sampled_from(["p1", "p2", "", "p3"]),
            "category": st.none() | st.sampled_from(["shoes", "bags", "hats"]),
            "channel": st.none() | st.sampled_from(["web", "shop"]),
            "quantity": st.none() | st.sampled_from([1.0, 2.0, 0.25, -3.0]),
        }
    ),
    max_size=40,
)


@given(tx_strategy, tx_strategy)
def test_transactions_at_or_after_as_of_never_change_features(before, extra):
    cutoff = dt.datetime.combine(AS_OF, dt.time())
    past = [r for r in before if r["ts"] < cutoff]
    future = [{**r, "ts": max(r["ts"], cutoff)} for r in extra]
    base = features(past)
    assert features(past + future).equals(base)


@given(tx_strategy, st.randoms(use_true_random=False))
def test_features_do_not_depend_on_row_order(rows, rnd):
    shuffled = rows[:]
    rnd.shuffle(shuffled)
    a, b = features(rows), features(shuffled)
    assert a.columns == b.columns
    for name in a.columns:
        if a.schema[name] == pl.Float64:
            assert ((a[name] - b[name]).abs().fill_null(0).max() or 0.0) <= 1e-9
            assert a[name].is_null().equals(b[name].is_null())
        else:
            assert a[name].equals(b[name])


def test_labels_use_only_the_horizon():
    rows = [
        {"customer_id": "A", "ts": dt.datetime(2024, 6, 1), "amount": 10.0},
        {"customer_id": "B", "ts": dt.datetime(2024, 6, 1), "amount": 10.0},
        {"customer_id": "C", "ts": dt.datetime(2024, 6, 1), "amount": 10.0},
        {"customer_id": "A", "ts": dt.datetime(2024, 7, 1), "amount": 5.0},  # first day: kept
        {"customer_id": "B", "ts": dt.datetime(2024, 9, 29), "amount": 5.0},  # day 90: outside
        {
            "customer_id": "C",
            "ts": dt.datetime(2024, 7, 5),
            "amount": -5.0,
        },  # refund: not a purchase
    ]
    tx = frame(rows).lazy()
    labels = (
        churn_labels(tx, customer_features(tx, AS_OF, CFG), AS_OF, 90).collect().sort("customer_id")
    )
    assert labels["churned"].to_list() == [False, True, True]


def test_schema_follows_windows():
    cfg = FeatureConfig(windows=(7, 28))
    names = list(feature_schema(cfg))
    assert "days_7" in names
    assert "spend_trend_28" in names
    assert "days_30" not in names
    rows = random_rows(4)
    vocab = learn_vocabulary(frame(rows).lazy(), AS_OF, cfg)
    assert list(features(rows, cfg=cfg).columns) == list(feature_schema(cfg, vocab))
    assert list(feature_schema(cfg, vocab))[: len(names)] == names


@pytest.mark.parametrize("join", [0, 5_000, 1_000_000])  # alone, some joined, all joined
def test_bucketed_store_features_equal_the_single_plan(tmp_path, monkeypatch, join):
    from crmkit.config.settings import IngestConfig
    from crmkit.features.pipeline import joined_buckets, store_features
    from crmkit.ingest import ingest_files
    from crmkit.store.core import Store
    from tests.conftest import NOW, SAMPLE_DATA

    monkeypatch.setattr("crmkit.features.pipeline.JOIN_ROWS", join)
    store = Store(tmp_path / "s")
    ingest_files([SAMPLE_DATA / "transactions.csv"], store, IngestConfig(), now=NOW)
    bucketed = store_features(store, AS_OF, CFG)
    single = collect(customer_features(store.transactions(), AS_OF, CFG))
    assert len(store.bucket_scans()) == 16
    tasks = len(joined_buckets(store, store.bucket_paths()))
    assert tasks in {0: range(16, 17), 5_000: range(2, 16), 1_000_000: range(1, 2)}[join]
    assert bucketed.equals(single)


@pytest.mark.parametrize(
    ("as_of", "customers"), [(dt.date(2023, 1, 3), 9), (dt.date(2022, 6, 1), 0)]
)
def test_store_features_with_empty_buckets(tmp_path, as_of, customers):
    """Two days into the data most buckets hold no purchase yet; before it, none does."""
    from crmkit.config.settings import IngestConfig
    from crmkit.features.pipeline import store_features
    from crmkit.ingest import ingest_files
    from crmkit.store.core import Store
    from tests.conftest import NOW, SAMPLE_DATA

    store = Store(tmp_path / "s")
    ingest_files([SAMPLE_DATA / "transactions.csv"], store, IngestConfig(), now=NOW)
    bucketed = store_features(store, as_of, CFG)
    vocab = learn_vocabulary(store.transactions(), as_of, CFG)
    assert len(vocab.categories) == (0 if customers == 0 else 4)
    assert sorted(vocab.channels) == ([] if customers == 0 else ["app", "store", "web"])
    assert bucketed.schema == feature_schema(CFG, vocab)
    assert bucketed.height == customers
    assert bucketed["customer_id"].is_sorted()
    assert bucketed.equals(collect(customer_features(store.transactions(), as_of, CFG)))


def bare(rows: list[dict]) -> list[dict]:
    """The rows as an export without product, category and channel would give them."""
    return [{**r, "product": None, "category": None, "channel": None} for r in rows]


def test_an_export_without_mix_columns_equals_the_reference():
    rows = bare(random_rows(6))
    got = features(rows)
    expected = reference_features(rows, AS_OF, CFG)
    assert got["lines_per_order"].null_count() == 0
    assert got["units_per_order"].drop_nulls().len() > 0
    for row in got.iter_rows(named=True):
        for name, value in expected[row["customer_id"]].items():
            assert close(row[name], value), (row["customer_id"], name, row[name], value)
    # a model's vocabulary from another store names share columns that stay null here
    vocab = learn_vocabulary(frame(random_rows(6)).lazy(), AS_OF, CFG)
    shared = collect(customer_features(frame(rows).lazy(), AS_OF, CFG, vocab))
    names = [c for c in shared.columns if c.startswith(("category_share_", "channel_"))]
    assert names
    assert all(shared[c].null_count() == shared.height for c in names)
    assert shared.select(got.columns).equals(got)


@pytest.mark.parametrize("join", [0, 1_000_000])  # each bucket its own task, or all one
def test_buckets_with_and_without_mix_columns_equal_the_single_plan(tmp_path, monkeypatch, join):
    """Buckets whose lines have no product, category or channel skip the mix pass."""
    from crmkit.config.settings import IngestConfig
    from crmkit.features.pipeline import store_features
    from crmkit.ingest import ingest_files
    from crmkit.store.core import Store
    from tests.conftest import NOW

    monkeypatch.setattr("crmkit.features.pipeline.JOIN_ROWS", join)
    rows = random_rows(7, n=1500)
    rows = [r if int(r["customer_id"][1:]) < 8 else bare([r])[0] for r in rows]
    path = tmp_path / "tx.csv"
    frame(rows).drop("quantity", "unit_price", "country").write_csv(path)
    store = Store(tmp_path / "s")
    ingest_files([path], store, IngestConfig(), now=NOW)
    bucketed = store_features(store, AS_OF, CFG)
    single = collect(customer_features(store.transactions(), AS_OF, CFG))
    assert bucketed["distinct_products"].null_count() not in (0, bucketed.height)
    assert bucketed.equals(single)


@given(st.lists(st.integers(0, 50), max_size=30), st.integers(0, 120))
def test_small_buckets_are_joined_in_order_up_to_the_limit(rows, limit):
    from crmkit.features.pipeline import join_small

    sized = [([i], n) for i, n in enumerate(rows)]
    groups = join_small(sized, limit)
    assert [i for g in groups for i in g] == list(range(len(rows)))  # nothing lost or moved
    totals = [sum(rows[i] for i in g) for g in groups]
    for g, total in zip(groups, totals, strict=True):
        assert len(g) == 1 or total <= limit  # only a lone bucket may be larger
    for g, nxt in itertools.pairwise(groups):  # greedy: the next did not fit
        assert sum(rows[i] for i in g) + rows[nxt[0]] > limit
