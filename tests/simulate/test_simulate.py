from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from crmkit.errors import UsageError
from crmkit.simulate.history import SimulationConfig, read_truth, write_sample


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    cfg = SimulationConfig(customers=4_000, seed=11, weekly_amplitude=0.3, yearly_amplitude=0.4)
    return cfg, write_sample(cfg, tmp_path_factory.mktemp("sim"))


def test_same_seed_same_bytes(tmp_path, sample):
    cfg, first = sample
    again = write_sample(cfg, tmp_path / "again")
    assert again.transactions.read_bytes() == first.transactions.read_bytes()
    assert again.ground_truth.read_bytes() == first.ground_truth.read_bytes()
    other = write_sample(SimulationConfig(customers=4_000, seed=12), tmp_path / "other")
    assert other.transactions.read_bytes() != first.transactions.read_bytes()


def test_ground_truth_matches_transactions(sample):
    cfg, result = sample
    tx = pl.read_csv(result.transactions, try_parse_dates=True)
    truth = read_truth(result.ground_truth)
    assert truth.height == cfg.customers == result.customers
    assert tx.height == result.rows
    assert tx["ts"].is_sorted()
    purchases = (
        tx.filter(pl.col("amount") > 0)
        .group_by("customer_id")
        .agg(n=pl.len(), first=pl.col("ts").min(), last=pl.col("ts").max())
    )
    joined = truth.join(purchases, on="customer_id", how="left")
    assert (joined["n"] == joined["purchases"]).all()
    # nothing is bought after dropping out; the dropout happens at the last purchase
    dead = joined.filter(~pl.col("alive_at_end"))
    assert (dead["last"] == dead["dropout_ts"]).all()
    assert dead.height + truth["alive_at_end"].sum() == cfg.customers
    assert tx["ts"].min() >= dt.datetime(2023, 1, 1)
    assert tx["ts"].max() < dt.datetime(2025, 1, 1)
    refunds = tx.filter(pl.col("amount") < 0)
    assert 0 < refunds.height < 0.06 * tx.height
    assert refunds["order_id"].str.ends_with("-R").all()


def test_parameters_are_recovered(sample):
    cfg, result = sample
    truth = read_truth(result.ground_truth)
    assert truth["rate_per_day"].mean() == pytest.approx(cfg.r / cfg.alpha, rel=0.08)
    assert truth["dropout_probability"].mean() == pytest.approx(cfg.a / (cfg.a + cfg.b), rel=0.08)


def test_yearly_seasonality_peaks_in_december(sample):
    _, result = sample
    tx = pl.read_csv(result.transactions, try_parse_dates=True).filter(pl.col("amount") > 0)
    by_month = tx.group_by(pl.col("ts").dt.month().alias("m")).len().sort("m")["len"].to_list()
    assert by_month[11] > by_month[5]


def test_bad_parameters():
    with pytest.raises(UsageError, match="--end must be after --start"):
        SimulationConfig(start=dt.date(2024, 1, 1), end=dt.date(2023, 1, 1)).validate()
    with pytest.raises(UsageError):
        SimulationConfig(customers=0).validate()


def test_parse_uplift():
    from crmkit.simulate.response import parse_uplift

    assert parse_uplift("call=0.1, email=0.02,") == {"call": 0.1, "email": 0.02}
    for bad in ("call", "call=x", "=0.1"):
        with pytest.raises(UsageError, match="--uplift"):
            parse_uplift(bad)
