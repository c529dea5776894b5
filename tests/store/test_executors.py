"""The per-bucket work on a real Dask cluster: two worker processes on this machine."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import socket

import polars as pl
import pytest

from crmkit.config.settings import FeatureConfig, ModelConfig, SegmentConfig
from crmkit.errors import ConfigError, UnavailableError
from crmkit.features.pipeline import features_of_buckets, store_features
from crmkit.features.vocabulary import learn_vocabulary
from crmkit.models.registry import ModelRef
from crmkit.models.scoring import score_customers
from crmkit.models.snapshots import training_set
from crmkit.store.executors import DaskExecutor, LocalExecutor, open_executor, using
from tests.conftest import invoke, trained_sample_store

distributed = pytest.importorskip("distributed")

AS_OF = dt.date(2024, 10, 1)


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of two single-threaded worker processes, and a client of it."""
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as local,
        distributed.Client(local) as client,
    ):
        yield local, DaskExecutor(client)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return trained_sample_store(tmp_path_factory.mktemp("compute"))


def test_features_on_the_cluster_equal_the_local_ones(trained, cluster):
    store, _ = trained
    _, dask = cluster
    local = store_features(store, AS_OF, FeatureConfig())
    remote = store_features(store, AS_OF, FeatureConfig(), executor=dask)
    assert remote.height == local.height > 1000
    assert remote.equals(local, null_equal=True)
    # the uplift training's features: one campaign's customers only
    ids = local["customer_id"].gather_every(7).sort()
    vocab = learn_vocabulary(store.transactions(), AS_OF, FeatureConfig())
    paths = store.bucket_paths()
    mine = features_of_buckets(store, paths, AS_OF, FeatureConfig(), vocab, customers=ids)
    theirs = features_of_buckets(
        store, paths, AS_OF, FeatureConfig(), vocab, executor=dask, customers=ids
    )
    assert mine.height == ids.len()
    assert theirs.equals(mine, null_equal=True)


def test_training_snapshots_and_scores_on_the_cluster_equal_the_local_ones(trained, cluster):
    store, registry = trained
    _, dask = cluster
    cfg = dataclasses.replace(ModelConfig(snapshots=3), max_training_rows=1500)
    features = FeatureConfig(season_window_days=90)
    local = training_set(store, AS_OF, 90, cfg, features)
    with using(dask):
        remote = training_set(store, AS_OF, 90, cfg, features)
    assert remote.frame.height == local.frame.height == 1500
    assert remote.frame.equals(local.frame, null_equal=True)
    assert remote.sample == local.sample
    day = dt.date(2025, 1, 1)
    here = score_customers(store, day, ModelRef("churn"), registry, SegmentConfig()).frame
    with using(dask):
        there = score_customers(store, day, ModelRef("churn"), registry, SegmentConfig()).frame
    assert there.height == here.height > 500
    assert there.equals(here, null_equal=True)
    assert there["churn_probability"].is_between(0, 1).all()


def test_cli_features_and_score_on_a_running_scheduler(trained, cluster, runner, tmp_path):
    store, registry = trained
    local_cluster, _ = cluster
    address = local_cluster.scheduler_address
    common = ["--store", str(store.root)]
    invoke(runner, "features", "--as-of", str(AS_OF), "--out", str(tmp_path / "a.parquet"), *common)
    invoke(
        runner,
        "features",
        "--as-of",
        str(AS_OF),
        "--out",
        str(tmp_path / "b.parquet"),
        "--executor",
        "dask",
        "--scheduler",
        address,
        *common,
    )
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    scored = []
    for name, extra in (("local", []), ("dask", ["--executor", "dask", "--scheduler", address])):
        out = tmp_path / f"{name}.csv"
        invoke(
            runner,
            "score",
            "--as-of",
            "2025-01-01",
            "--out",
            str(out),
            "--registry",
            str(registry.root),
            *extra,
            *common,
        )
        scored.append(pl.read_csv(out))
    assert scored[1].equals(scored[0])
    assert scored[0].height > 500


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_scheduler_is_exit_4_with_one_line(trained, runner, tmp_path):
    store, _ = trained
    address = f"tcp://127.0.0.1:{_free_port()}"
    result = invoke(
        runner,
        "features",
        "--as-of",
        str(AS_OF),
        "--out",
        str(tmp_path / "x.parquet"),
        "--executor",
        "dask",
        "--scheduler",
        address,
        "--store",
        str(store.root),
        code=4,
    )
    assert f"cannot reach the Dask scheduler at {address}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.parquet").exists()


def test_unknown_executor_is_refused():
    with pytest.raises(ConfigError, match="unknown executor"), open_executor("spark"):
        pass
    with open_executor("local") as run:
        assert isinstance(run, LocalExecutor)
        assert run.map(lambda x, k: x * k, [1, 2, 3], 10) == [10, 20, 30]


def test_unavailable_error_is_exit_4():
    assert UnavailableError.exit_code == 4
