from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmkit.config.settings import FeatureConfig, IngestConfig, SegmentConfig, Settings
from crmkit.errors import BadInputError
from crmkit.ingest import ingest_files
from crmkit.segments.apply import segment_frame, segment_store
from crmkit.segments.estimators import KMeansSegments, RFMScorer, ValueTiers
from crmkit.segments.rules import RFM_SEGMENTS
from crmkit.segments.summary import summarise, value_concentration
from crmkit.store.core import Store
from tests.conftest import NOW, SAMPLE_DATA

AS_OF = dt.date(2024, 7, 1)


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("seg") / "s")
    ingest_files([SAMPLE_DATA / "transactions.csv"], store, IngestConfig(), now=NOW)
    return store


def tier_frame(cycles, spends, recency=None, days=None) -> pl.DataFrame:
    """Customers of one purchase day's net spend ``spends`` unless ``days`` says otherwise."""
    days = days or [1] * len(cycles)
    return pl.DataFrame(
        {
            "mean_cycle_days": cycles,
            "recency_days": recency or [0] * len(cycles),
            "net_spend": [s * d for s, d in zip(spends, days, strict=True)],
            "purchase_days": days,
        },
        schema={"mean_cycle_days": pl.Float64, "recency_days": pl.Int64,
                "net_spend": pl.Float64, "purchase_days": pl.Int64},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("cycle", "spend", "tier"),
    [
        (5.0, 500.0, "platinum"),
        (20.0, 500.0, "gold"),
        (90.0, 500.0, "silver"),
        (5.0, 50.0, "gold"),
        (20.0, 50.0, "silver"),
        (90.0, 50.0, "development"),
        (5.0, 5.0, "silver"),
        (20.0, 5.0, "development"),
        (90.0, 5.0, "adjust"),
        (None, 500.0, "silver"),
        (None, 5.0, "adjust"),
    ],
)
def test_value_grid_every_cell(cycle, spend, tier):
    tiers = ValueTiers(cycle_edges=(10, 30), spend_edges=(10, 100)).fit(tier_frame([1.0], [1.0]))
    assert tiers.transform(tier_frame([cycle], [spend]))["value_tier"].item() == tier


def test_one_time_buyers_separate_and_edges_inclusive():
    tiers = ValueTiers(cycle_edges=(10, 30), spend_edges=(10, 100), one_time_buyers="separate")
    out = tiers.fit(tier_frame([1.0], [1.0])).transform(
        tier_frame([None, 10.0, 30.0], [500.0, 100.0, 10.0])
    )
    assert out["value_tier"].to_list() == ["one_time", "gold", "development"]


def test_value_tertiles_learned_at_fit_and_applied_later():
    train = tier_frame([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, None], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    tiers = ValueTiers().fit(train)
    assert tiers.cycle_edges_ == pytest.approx([2 + 2 / 3, 4 + 1 / 3])
    later = tiers.transform(tier_frame([1.0], [100.0]))
    assert later["value_tier"].item() == "platinum"


def test_tiers_use_net_spend_so_refunds_never_make_platinum_or_gold():
    tiers = ValueTiers(cycle_edges=(10, 30), spend_edges=(10, 100)).fit(tier_frame([1.0], [1.0]))
    # bought 168,000 over two days and cancelled all but 2.90 of it; refunded more than bought
    out = tiers.transform(tier_frame([5.0, 5.0], [1.45, -20.0], days=[2, 2]))
    assert out["value_tier"].to_list() == ["silver", "silver"]
    assert out["spend_class"].to_list() == ["small", "small"]


def test_recency_longer_than_the_cycle_counts_as_the_cycle():
    tiers = ValueTiers(cycle_edges=(10, 30), spend_edges=(10, 100)).fit(tier_frame([1.0], [1.0]))
    # a weekly buyer of large baskets: platinum while active, silver after 200 days away
    out = tiers.transform(tier_frame([7.0, 7.0, 7.0], [500.0] * 3, recency=[3, 20, 200]))
    assert out["value_tier"].to_list() == ["platinum", "gold", "silver"]


def test_bad_explicit_edges():
    with pytest.raises(BadInputError, match="two increasing numbers"):
        ValueTiers(cycle_edges=(30, 10)).fit(tier_frame([1.0], [1.0]))


def rfm_frame(recency, frequency, monetary) -> pl.DataFrame:
    return pl.DataFrame(
        {"recency_days": recency, "purchase_days": frequency, "net_spend": monetary},
        schema={"recency_days": pl.Int64, "purchase_days": pl.Int64, "net_spend": pl.Float64},
    )


def test_rfm_scores_and_segments():
    frame = rfm_frame(
        list(range(1, 11)), list(range(10, 0, -1)), [float(x) for x in range(10, 0, -1)]
    )
    out = RFMScorer().fit_transform(frame)
    assert out["r_score"].to_list() == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    assert out["f_score"].to_list() == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    assert out["rfm_segment"].to_list()[:2] == ["champions", "champions"]
    assert out["rfm_segment"].to_list()[-1] == "lost"
    assert out["rfm_score"][0] == "555"
    assert set(out["rfm_segment"]) <= set(RFM_SEGMENTS)


@given(
    st.lists(
        st.tuples(st.integers(0, 50), st.integers(1, 5), st.integers(0, 3)), min_size=1, max_size=60
    )
)
def test_rfm_ties_share_scores_and_order_does_not_matter(rows):
    frame = rfm_frame([r[0] for r in rows], [r[1] for r in rows], [float(r[2]) for r in rows])
    out = RFMScorer().fit_transform(frame)
    assert out["rfm_segment"].null_count() == 0
    assert out["r_score"].is_between(1, 5).all()
    groups = out.group_by("recency_days").agg(pl.col("r_score").n_unique())
    assert (groups["r_score"] == 1).all()
    reversed_out = RFMScorer().fit_transform(frame.reverse()).reverse()
    assert reversed_out["rfm_score"].equals(out["rfm_score"])


def test_segment_frames_are_reproducible(sample_store):
    settings = Settings()
    for by in ("rfm", "value", "kmeans"):
        first, summary = segment_store(sample_store, AS_OF, by, settings, k="auto")
        again, _ = segment_store(sample_store, AS_OF, by, settings, k="auto")
        assert first.equals(again)
        assert summary.table["customers"].sum() == first.height
        assert summary.table["customer_share"].sum() == pytest.approx(1.0)
        assert summary.table["value_share"].sum() == pytest.approx(1.0)


def test_kmeans_fixed_k_orders_clusters_by_value(sample_store):
    features, _ = segment_store(sample_store, AS_OF, "rfm", Settings())
    full = segment_store(sample_store, AS_OF, "kmeans", Settings(), k=4)[0]
    assert sorted(full["cluster"].unique().to_list()) == [0, 1, 2, 3]
    means = full.group_by("cluster").agg(pl.col("net_spend").mean()).sort("cluster")["net_spend"]
    assert means.is_sorted(descending=True)
    other_seed = Settings(segments=SegmentConfig(seed=1))
    assert (
        segment_store(sample_store, AS_OF, "kmeans", other_seed, k=4)[0].height == features.height
    )


def test_kmeans_on_mix_features(sample_store):
    mix = (
        "recency_days",
        "purchase_days",
        "category_entropy",
        "distinct_products",
        "top_category_share",
    )
    settings = Settings(segments=SegmentConfig(kmeans_features=mix))
    frame = segment_store(sample_store, AS_OF, "kmeans", settings, k=3)[0]
    assert sorted(frame["cluster"].unique().to_list()) == [0, 1, 2]
    assert frame["category_entropy"].drop_nulls().is_between(0, 1).all()
    again = segment_store(sample_store, AS_OF, "kmeans", settings, k=3)[0]
    assert again.equals(frame)


def test_kmeans_refuses_features_without_values(sample_store):
    chosen = ("recency_days", "distinct_products", "category_entropy")
    settings = Settings(
        features=FeatureConfig(mix=False), segments=SegmentConfig(kmeans_features=chosen)
    )
    with pytest.raises(BadInputError, match="distinct_products, category_entropy hold no value"):
        segment_store(sample_store, AS_OF, "kmeans", settings, k=3)


def test_kmeans_refuses_text_columns():
    frame = pl.DataFrame({"region": ["a", "b", "c", "d"], "net_spend": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(BadInputError, match="region hold text"):
        KMeansSegments(["region"], k=2).fit(frame)


def test_kmeans_needs_customers():
    tiny = pl.DataFrame({"a": [1.0, 2.0], "net_spend": [1.0, 2.0]})
    with pytest.raises(BadInputError, match="needs more than 2"):
        KMeansSegments(["a"], k=2).fit(tiny)


def test_concentration():
    values = pl.Series([float(x) for x in [100, 0, 0, 0, 0, 0, 0, 0, 0, 0] * 2])
    assert value_concentration(values, 0.05) == pytest.approx(0.5)
    assert value_concentration(values, 0.20) == pytest.approx(1.0)
    frame = pl.DataFrame(
        {
            "seg": ["a", "b"],
            "net_spend": [3.0, 1.0],
            "recency_days": [1, 2],
            "purchase_days": [1, 1],
            "mean_spend_per_day": [3.0, 1.0],
        }
    )
    summary = summarise(frame, "seg")
    assert summary.table["value_share"].to_list() == [0.75, 0.25]


def test_empty_store_segment_error(tmp_path):
    store = Store(tmp_path / "s")
    path = tmp_path / "h.csv"
    path.write_text("customer_id,ts,amount\n")
    ingest_files([path], store, IngestConfig(), now=NOW)
    with pytest.raises(BadInputError, match="holds no transactions"):
        segment_store(store, AS_OF, "rfm", Settings())


def test_segment_frame_before_any_purchase_errors(sample_store):
    with pytest.raises(BadInputError, match="no customers"):
        segment_store(sample_store, dt.date(2020, 1, 1), "value", Settings())


def test_segment_frame_value_columns(sample_store):
    frame, summary = segment_store(sample_store, AS_OF, "value", Settings())
    assert set(frame["value_tier"]) <= {"platinum", "gold", "silver", "development", "adjust"}
    assert 0 < summary.top5_value_share < summary.top20_value_share < 1
    _ = segment_frame


@pytest.mark.parametrize(
    "segmenter",
    [
        lambda: RFMScorer(),
        lambda: ValueTiers(one_time_buyers="separate"),
        lambda: KMeansSegments(["recency_days", "net_spend"], k=3),
    ],
)
def test_segmenters_are_scikit_learn_estimators(segmenter):
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError

    estimator = segmenter()
    copy = clone(estimator)
    assert copy.get_params() == estimator.get_params()
    with pytest.raises(NotFittedError):
        estimator.transform(pl.DataFrame({"recency_days": [1]}))
