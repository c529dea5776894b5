from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from crmkit.config.settings import FeatureConfig
from crmkit.errors import BadInputError
from crmkit.features.customer import collect, customer_features
from crmkit.models.clv import fit_clv, predict_clv, summary_statistics
from crmkit.models.clv_models import BetaGeo, GammaGamma, bgnbd_loglik, gamma_gamma_loglik
from crmkit.schema import TRANSACTION_SCHEMA
from crmkit.simulate.history import SimulationConfig, write_sample

PUBLISHED = BetaGeo.from_params(r=0.243, alpha=4.414, a=0.793, b=2.426)


def test_published_conditional_expectation():
    # Fader, Hardie & Lee (2005): x=2, t_x=30.43, T=38.86 weeks, next 39 weeks -> 1.226
    got = PUBLISHED.expected_purchases(39.0, np.array([2.0]), np.array([30.43]), np.array([38.86]))
    assert got[0] == pytest.approx(1.226, abs=5e-4)


def test_one_time_buyers_are_alive_for_sure():
    x = np.array([0.0, 0.0, 3.0])
    t_x = np.array([0.0, 0.0, 5.0])
    T = np.array([10.0, 80.0, 80.0])
    alive = PUBLISHED.p_alive(x, t_x, T)
    assert alive[0] == alive[1] == 1.0
    assert alive[2] < 0.5  # three purchases long ago: probably gone
    quiet = PUBLISHED.p_no_purchase(13.0, x, t_x, T)
    assert ((quiet > 0) & (quiet < 1)).all()


def slow_bgnbd(params, x, t_x, T):
    r, alpha, a, b = params
    total = 0.0
    for xi, txi, Ti in zip(x, t_x, T, strict=True):
        a1 = math.lgamma(r + xi) - math.lgamma(r) + r * math.log(alpha)
        a2 = math.lgamma(a + b) + math.lgamma(b + xi) - math.lgamma(b) - math.lgamma(a + b + xi)
        term = (alpha + Ti) ** -(r + xi)
        if xi > 0:
            term += a / (b + xi - 1) * (alpha + txi) ** -(r + xi)
        total += a1 + a2 + math.log(term)
    return total


def slow_gg(params, x, m):
    p, q, g = params
    return sum(
        math.lgamma(p * xi + q)
        - math.lgamma(p * xi)
        - math.lgamma(q)
        + q * math.log(g)
        + (p * xi - 1) * math.log(mi)
        + p * xi * math.log(xi)
        - (p * xi + q) * math.log(g + mi * xi)
        for xi, mi in zip(x, m, strict=True)
    )


def numeric_gradient(f, params, step=1e-6):
    out = []
    for i in range(len(params)):
        up, down = np.array(params, float), np.array(params, float)
        up[i] += step * params[i]
        down[i] -= step * params[i]
        out.append((f(up) - f(down)) / (up[i] - down[i]))
    return np.array(out)


def test_bgnbd_likelihood_and_gradient():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 8, 60).astype(float)
    T = rng.uniform(5, 80, 60)
    t_x = np.where(x > 0, T * rng.uniform(0, 1, 60), 0.0)
    params = np.array([0.7, 6.0, 0.9, 3.1])
    ll, grad = bgnbd_loglik(params, x, t_x, T)
    assert ll == pytest.approx(slow_bgnbd(params, x, t_x, T), rel=1e-10)
    numeric = numeric_gradient(lambda p: slow_bgnbd(p, x, t_x, T), params)
    assert grad == pytest.approx(numeric, rel=1e-5)


def test_gamma_gamma_likelihood_and_gradient():
    rng = np.random.default_rng(1)
    x = rng.integers(1, 10, 50).astype(float)
    m = rng.gamma(4, 10, 50)
    params = np.array([5.0, 3.5, 12.0])
    ll, grad = gamma_gamma_loglik(params, x, m)
    assert ll == pytest.approx(slow_gg(params, x, m), rel=1e-10)
    assert grad == pytest.approx(numeric_gradient(lambda p: slow_gg(p, x, m), params), rel=1e-5)


def test_expected_spend_by_hand():
    gg = GammaGamma.from_params(p=6.0, q=4.0, gamma=15.0)
    got = gg.expected_spend(np.array([0.0, 3.0]), np.array([0.0, 50.0]), gg.population_mean())
    assert got[0] == pytest.approx(6 * 15 / 3)
    assert got[1] == pytest.approx(6 * (15 + 3 * 50) / (6 * 3 + 4 - 1))


def simulated_features(seed: int, tmp_path) -> tuple[pl.DataFrame, SimulationConfig]:
    cfg = SimulationConfig(customers=20_000, seed=seed, spend_model="gamma-gamma", refund_rate=0.0)
    result = write_sample(cfg, tmp_path / f"sim{seed}")
    tx = (
        pl.scan_csv(
            result.transactions,
            schema_overrides={"customer_id": pl.String, "order_id": pl.String},
            try_parse_dates=True,
        )
        .select(
            "customer_id",
            pl.col("ts").cast(pl.Datetime("us")),
            "amount",
            "order_id",
            *(
                pl.lit(None, dtype=d).alias(c)
                for c, d in TRANSACTION_SCHEMA.items()
                if c not in ("customer_id", "ts", "amount", "order_id")
            ),
        )
        .select(list(TRANSACTION_SCHEMA))
    )
    return collect(customer_features(tx, cfg.end, FeatureConfig())), cfg


@pytest.mark.parametrize("seed", [1, 3])
def test_parameters_are_recovered_from_the_simulator(seed, tmp_path):
    features, cfg = simulated_features(seed, tmp_path)
    model, info = fit_clv(features, cfg.end)
    assert info["bgnbd"].converged
    assert info["gamma_gamma"].converged
    bg, gg = model.bgnbd, model.spend
    # Tolerances from 3 seeds of 20k customers: sampling spread of a few %, plus alpha read
    # ~8% high because purchases on the same day collapse into one purchase day.
    assert bg.r_ == pytest.approx(cfg.r, rel=0.10)
    assert bg.alpha_ == pytest.approx(cfg.alpha / 7, rel=0.15)
    assert bg.a_ == pytest.approx(cfg.a, rel=0.15)
    assert bg.b_ == pytest.approx(cfg.b, rel=0.15)
    assert gg.p_ == pytest.approx(cfg.gg_p, rel=0.15)
    assert gg.q_ == pytest.approx(cfg.gg_q, rel=0.10)
    assert gg.gamma_ == pytest.approx(cfg.gg_gamma, rel=0.20)


def test_predictions_and_statistics(tmp_path):
    features, cfg = simulated_features(2, tmp_path)
    model, _ = fit_clv(features, cfg.end)
    stats = summary_statistics(features, cfg.end)
    assert (stats["x"] == features["purchase_days"] - 1).all()
    assert (stats["t_x"] <= stats["T"]).all()
    out = predict_clv(model, features, cfg.end, 90)
    assert out.height == features.height
    assert out["p_alive"].is_between(0, 1).all()
    assert out["p_no_purchase"].is_between(0, 1).all()
    assert (out["clv"] >= 0).all()
    one_timers = out.filter(pl.col("x") == 0)
    assert (one_timers["p_alive"] == 1.0).all()
    longer = predict_clv(model, features, cfg.end, 365)
    assert (longer["expected_purchases"] >= out["expected_purchases"]).all()


def test_too_little_data():
    tiny = pl.DataFrame({"x": [0.0] * 5, "t_x": [0.0] * 5, "T": [1.0] * 5, "monetary": [None] * 5})
    with pytest.raises(BadInputError, match="BG/NBD needs"):
        BetaGeo().fit(tiny)
    with pytest.raises(BadInputError, match="Gamma-Gamma needs"):
        GammaGamma().fit(tiny)
    _ = dt


def test_the_models_are_scikit_learn_estimators():
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError

    model = BetaGeo(penalty=0.1)
    assert clone(model).get_params() == {"penalty": 0.1}
    with pytest.raises(NotFittedError):
        model.p_alive(np.array([1.0]), np.array([1.0]), np.array([2.0]))
    assert PUBLISHED.params() == {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    assert GammaGamma.from_params(p=6.0, q=4.0, gamma=15.0).population_mean() == 30.0


def test_the_likelihood_in_blocks_is_the_whole_likelihood(monkeypatch):
    import crmkit.models.clv_models as models

    rng = np.random.default_rng(8)
    n = 5000
    big_t = rng.uniform(5, 100, n)
    t_x = big_t * rng.uniform(0, 1, n)
    x = np.where(rng.uniform(size=n) < 0.4, 0, rng.poisson(3, n)).astype(float)
    t_x = np.where(x > 0, t_x, 0.0)
    params = np.array([0.3, 4.0, 0.8, 2.5])
    whole = bgnbd_loglik(params, x, t_x, big_t)
    one = models.chunked_loglik(x, t_x, big_t)(params)
    assert one[0] == whole[0]  # one block: the same computation, bit for bit
    assert np.array_equal(one[1], whole[1])
    monkeypatch.setattr(models, "LOGLIK_ROWS", 700)
    blocks = models.chunked_loglik(x, t_x, big_t)(params)
    assert blocks[0] == pytest.approx(whole[0], rel=1e-12)
    assert blocks[1] == pytest.approx(whole[1], rel=1e-10)
    stats = pl.DataFrame({"x": x, "t_x": t_x, "T": big_t})
    in_blocks = BetaGeo().fit(stats)
    monkeypatch.setattr(models, "LOGLIK_ROWS", 1 << 18)
    at_once = BetaGeo().fit(stats)
    # the optimiser stops within its tolerance of the same maximum. On these data a and b
    # run to their bound along a ridge where only a / (a + b) matters, so where along it
    # each fit stops moves with the last bits of exp and log (which differ between CPUs'
    # vector paths): the likelihoods and predictions agree, the far parameters need not.
    best = [bgnbd_loglik(np.array(list(m.params().values())), x, t_x, big_t)[0]
            for m in (in_blocks, at_once)]  # fmt: skip
    assert best[0] == pytest.approx(best[1], rel=1e-6)
    shape = ("r", "alpha")
    assert [in_blocks.params()[k] for k in shape] == pytest.approx(
        [at_once.params()[k] for k in shape], rel=1e-2
    )
    alive = in_blocks.p_alive(x, t_x, big_t) - at_once.p_alive(x, t_x, big_t)
    assert np.abs(alive).max() < 1e-3
