"""Synthetic transactions with known ground truth, for demos, tests and benchmarks.

The process is the BG/NBD story (Fader, Hardie & Lee 2005) with spend on top:

* customers arrive uniformly over ``[start, end)`` and buy at arrival;
* while alive, a customer buys at a Poisson rate ``lam ~ Gamma(r, rate=alpha)`` per day,
  optionally modulated by weekly and yearly seasonality (by thinning);
* after each repeat purchase the customer drops out with probability ``p ~ Beta(a, b)``;
* each customer has a log-mean spend ``mu ~ Normal(spend_log_mean, spend_log_sd_between)``
  and each order costs ``exp(Normal(mu, spend_log_sd_within))``; or, with
  ``spend_model="gamma-gamma"``, ``nu ~ Gamma(q, rate=gamma)`` and each order costs
  ``Gamma(p, rate=nu)`` (the Gamma-Gamma model's own story);
* a small share of orders is refunded a few days later (a negative row).

Customers are simulated in chunks with vectorised numpy, so memory is bounded by the chunk
size; the chunks are then merged in time order by polars' streaming engine.
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import polars as pl

from crmkit.errors import UsageError

ProgressFn = Callable[[int, int, str], None]
CHANNELS: Final = ("web", "app", "store")
CATEGORIES: Final = ("apparel", "footwear", "home", "beauty", "sports")
REGIONS: Final = ("north", "south", "east", "west")
ACQUISITION: Final = ("search", "social", "referral", "store")
_SECONDS_PER_DAY: Final = 86_400
_YEARLY_PEAK_DAY: Final = 340.0  # early December


@dataclass(frozen=True)
class SimulationConfig:
    """Parameters of the synthetic population (rates are per day)."""

    customers: int = 2_000
    start: dt.date = dt.date(2023, 1, 1)
    end: dt.date = dt.date(2025, 1, 1)
    seed: int = 0
    r: float = 0.9
    alpha: float = 30.0
    a: float = 1.0
    b: float = 6.0
    spend_log_mean: float = 3.6
    spend_log_sd_between: float = 0.6
    spend_log_sd_within: float = 0.4
    refund_rate: float = 0.03
    spend_model: Literal["lognormal", "gamma-gamma"] = "lognormal"
    gg_p: float = 6.0
    gg_q: float = 4.0
    gg_gamma: float = 15.0
    weekly_amplitude: float = 0.0
    yearly_amplitude: float = 0.0
    chunk_customers: int = 50_000

    def validate(self) -> None:
        """Raise UsageError when a parameter is out of range."""
        if self.customers < 1:
            raise UsageError("--customers must be at least 1")
        if self.end <= self.start:
            raise UsageError("--end must be after --start")
        if min(self.r, self.alpha, self.a, self.b) <= 0:
            raise UsageError("r, alpha, a and b must be positive")
        if not 0 <= self.refund_rate < 1:
            raise UsageError("refund_rate must be in [0, 1)")
        if self.spend_model not in ("lognormal", "gamma-gamma"):
            raise UsageError(f"--spend-model {self.spend_model!r}: use lognormal or gamma-gamma")
        if min(self.gg_p, self.gg_q, self.gg_gamma) <= 0:
            raise UsageError("gamma-gamma parameters must be positive")
        if not (0 <= self.weekly_amplitude < 1 and 0 <= self.yearly_amplitude < 1):
            raise UsageError("seasonality amplitudes must be in [0, 1)")


@dataclass(frozen=True)
class SampleResult:
    """Paths and sizes written by :func:`write_sample`."""

    transactions: Path
    ground_truth: Path
    rows: int
    customers: int
    alive_at_end: int

    def summary(self) -> dict[str, Any]:
        """Headline numbers for the ``sample`` command."""
        return {
            "transactions": str(self.transactions),
            "ground_truth": str(self.ground_truth),
            "rows": self.rows,
            "customers": self.customers,
            "alive_at_end": self.alive_at_end,
        }

    def describe(self) -> str:
        """One line for people."""
        return (
            f"{self.rows:,} transactions of {self.customers:,} customers "
            f"({self.alive_at_end:,} alive at the end) -> {self.transactions}"
        )


def _season(t: np.ndarray, start: dt.date, cfg: SimulationConfig) -> np.ndarray:
    day = t + start.toordinal()
    weekly = 1 + cfg.weekly_amplitude * np.cos(2 * np.pi * ((day % 7) - 5) / 7)
    doy = (t + (start - dt.date(start.year, 1, 1)).days) % 365.25
    yearly = 1 + cfg.yearly_amplitude * np.cos(2 * np.pi * (doy - _YEARLY_PEAK_DAY) / 365.25)
    return np.asarray(weekly * yearly)


def simulate_chunk(
    cfg: SimulationConfig, first_id: int, n: int, rng: np.random.Generator
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Simulate customers ``first_id .. first_id + n - 1``; return (transactions, truth)."""
    span = float((cfg.end - cfg.start).days)
    arrival = rng.uniform(0, span, n)
    lam = rng.gamma(cfg.r, 1 / cfg.alpha, n)
    p = rng.beta(cfg.a, cfg.b, n)
    mu = rng.normal(cfg.spend_log_mean, cfg.spend_log_sd_between, n)
    gamma_gamma = cfg.spend_model == "gamma-gamma"
    # Gamma-Gamma spend scale per customer (drawn only then: the default stream is unchanged)
    nu = rng.gamma(cfg.gg_q, 1 / cfg.gg_gamma, n) if gamma_gamma else np.ones(n)
    m_max = (1 + cfg.weekly_amplitude) * (1 + cfg.yearly_amplitude)

    cust = [np.arange(n)]
    times = [arrival]
    dropout = np.full(n, np.nan)
    t = arrival.copy()
    active = np.arange(n)
    while active.size:
        t_next = t[active] + rng.exponential(1.0, active.size) / (lam[active] * m_max)
        inside = t_next < span
        active, t_next = active[inside], t_next[inside]
        t[active] = t_next
        accept = rng.uniform(0, 1, active.size) * m_max < _season(t_next, cfg.start, cfg)
        buyers = active[accept]
        cust.append(buyers)
        times.append(t[buyers])
        dies = rng.uniform(0, 1, buyers.size) < p[buyers]
        dropout[buyers[dies]] = t[buyers[dies]]
        dead = np.zeros(n, dtype=bool)
        dead[buyers[dies]] = True
        active = active[~dead[active]]

    idx = np.concatenate(cust)
    ts_days = np.concatenate(times)
    order = np.lexsort((ts_days, idx))
    idx, ts_days = idx[order], ts_days[order]
    amount: np.ndarray
    if gamma_gamma:
        amount = np.round(rng.gamma(cfg.gg_p, 1 / nu[idx]), 2)
        mean_spend = cfg.gg_p / nu
    else:
        amount = np.round(np.exp(rng.normal(mu[idx], cfg.spend_log_sd_within)), 2)
        mean_spend = np.exp(mu + cfg.spend_log_sd_within**2 / 2)
    channel = rng.integers(0, len(CHANNELS), idx.size)
    refund = rng.uniform(0, 1, idx.size) < cfg.refund_rate
    refund_t = ts_days + rng.uniform(1, 14, idx.size)
    refund &= refund_t < span

    # what each purchase is, from a generator of its own so the columns above never change
    mix = np.random.default_rng(rng.bit_generator.seed_seq.spawn(1)[0])  # type: ignore[attr-defined]
    taste = mix.dirichlet(np.full(len(CATEGORIES), 0.6), n)
    pick = (mix.uniform(0, 1, idx.size)[:, None] > np.cumsum(taste[idx], axis=1)).sum(axis=1)
    category = np.asarray(CATEGORIES)[np.minimum(pick, len(CATEGORIES) - 1)]
    item = np.minimum(mix.zipf(1.6, idx.size), 60)
    prefix = np.char.upper(np.asarray(CATEGORIES).astype("U3"))[
        np.minimum(pick, len(CATEGORIES) - 1)
    ]
    product = np.char.add(np.char.add(prefix, "-"), np.char.zfill(item.astype(str), 3))
    quantity = 1 + mix.poisson(0.6, idx.size)
    ids = np.char.add("C", np.char.zfill((first_id + idx).astype(str), 7))
    order_no = np.arange(idx.size) + first_id * 1_000
    order_ids = np.char.add("O", np.char.zfill(order_no.astype(str), 10))
    base = dt.datetime.combine(cfg.start, dt.time())
    tx = pl.DataFrame(
        {
            "order_id": np.concatenate([order_ids, np.char.add(order_ids[refund], "-R")]),
            "customer_id": np.concatenate([ids, ids[refund]]),
            "seconds": np.concatenate([ts_days, refund_t[refund]]) * _SECONDS_PER_DAY,
            "amount": np.concatenate([amount, -amount[refund]]),
            "channel": np.asarray(CHANNELS)[np.concatenate([channel, channel[refund]])],
            "category": np.concatenate([category, category[refund]]),
            "product": np.concatenate([product, product[refund]]),
            "quantity": np.concatenate([quantity, -quantity[refund]]),
        }
    ).select(
        "order_id",
        "customer_id",
        (pl.lit(base) + pl.duration(seconds=pl.col("seconds").floor().cast(pl.Int64))).alias("ts"),
        "amount",
        "channel",
        "category",
        "product",
        "quantity",
    )
    n_purchases = np.bincount(idx, minlength=n)
    truth = pl.DataFrame(
        {
            "customer_id": np.char.add(
                "C", np.char.zfill((first_id + np.arange(n)).astype(str), 7)
            ),
            "first_purchase_days": arrival,
            "dropout_days": dropout,
            "rate_per_day": lam,
            "dropout_probability": p,
            "purchases": n_purchases,
            "mean_spend": mean_spend,
        }
    ).select(
        "customer_id",
        (
            pl.lit(base)
            + pl.duration(seconds=(pl.col("first_purchase_days") * 86_400).cast(pl.Int64))
        ).alias("first_purchase"),
        pl.when(pl.col("dropout_days").is_not_nan())
        .then(pl.lit(base) + pl.duration(seconds=(pl.col("dropout_days") * 86_400).cast(pl.Int64)))
        .alias("dropout_ts"),
        pl.col("dropout_days").is_nan().alias("alive_at_end"),
        "rate_per_day",
        "dropout_probability",
        "purchases",
        pl.col("mean_spend").round(2),
    )
    return tx, truth


def simulate_attributes(truth: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """Simulate what a company knows of its customers: an attribute table.

    ``region`` and ``acquisition`` channel at random; ``signup_date`` some days before the
    first purchase; ``loyalty_card`` more often for customers with a high purchase rate.
    """
    n = truth.height
    rate = truth["rate_per_day"].to_numpy()
    loyal = rng.uniform(0, 1, n) < np.clip(0.15 + 6.0 * rate, 0.0, 0.9)
    lead = np.floor(rng.exponential(20.0, n)).astype(np.int64)
    return truth.select(
        "customer_id",
        pl.Series("region", np.asarray(REGIONS)[rng.integers(0, len(REGIONS), n)]),
        (pl.col("first_purchase").dt.date() - pl.duration(days=pl.lit(pl.Series(lead)))).alias(
            "signup_date"
        ),
        pl.Series("loyalty_card", np.where(loyal, "yes", "no")),
        pl.Series("acquisition", np.asarray(ACQUISITION)[rng.integers(0, len(ACQUISITION), n)]),
    )


def write_sample(
    cfg: SimulationConfig,
    out_dir: Path,
    *,
    fmt: Literal["csv", "parquet"] = "csv",
    progress: ProgressFn | None = None,
) -> SampleResult:
    """Simulate ``cfg.customers`` customers and write transactions and ground truth.

    Writes ``out_dir/transactions.<fmt>`` (sorted by time), ``out_dir/ground_truth.<fmt>``
    and ``out_dir/customers.<fmt>`` (customer attributes, :func:`simulate_attributes`).
    The same configuration and seed give byte-identical files.

    Raises
    ------
    UsageError
        When a parameter is out of range.
    """
    cfg.validate()
    out_dir.mkdir(parents=True, exist_ok=True)
    work = out_dir / ".crmkit-sample-chunks"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    chunks = math.ceil(cfg.customers / cfg.chunk_customers)
    seeds = np.random.SeedSequence(cfg.seed).spawn(chunks)
    try:
        for i in range(chunks):
            first = i * cfg.chunk_customers
            n = min(cfg.chunk_customers, cfg.customers - first)
            tx, truth = simulate_chunk(cfg, first, n, np.random.default_rng(seeds[i]))
            tx.write_parquet(work / f"tx-{i:05d}.parquet")
            truth.write_parquet(work / f"truth-{i:05d}.parquet")
            known = simulate_attributes(truth, np.random.default_rng(seeds[i].spawn(2)[1]))
            known.write_parquet(work / f"customers-{i:05d}.parquet")
            if progress is not None:
                progress(i + 1, chunks, "customers simulated")
        transactions = out_dir / f"transactions.{fmt}"
        ground_truth = out_dir / f"ground_truth.{fmt}"
        tx_plan = pl.scan_parquet(str(work / "tx-*.parquet")).sort(
            "ts", "customer_id", "order_id", maintain_order=True
        )
        truth_plan = pl.scan_parquet(str(work / "truth-*.parquet"))
        _sink(tx_plan, transactions, fmt, float_precision=2)
        _sink(truth_plan, ground_truth, fmt, float_precision=None)
        attributes = pl.scan_parquet(str(work / "customers-*.parquet"))
        _sink(attributes, out_dir / f"customers.{fmt}", fmt, float_precision=None)
        counts = (
            pl.scan_parquet(str(work / "truth-*.parquet"))
            .select(pl.len().alias("customers"), pl.col("alive_at_end").sum().alias("alive"))
            .collect()
            .row(0)
        )
        rows = pl.scan_parquet(str(work / "tx-*.parquet")).select(pl.len()).collect().item()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return SampleResult(transactions, ground_truth, int(rows), int(counts[0]), int(counts[1]))


def _sink(plan: pl.LazyFrame, path: Path, fmt: str, *, float_precision: int | None) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    if fmt == "csv":
        plan.sink_csv(tmp, datetime_format="%Y-%m-%d %H:%M:%S", float_precision=float_precision)
    else:
        plan.sink_parquet(tmp)
    tmp.replace(path)


def read_truth(path: Path) -> pl.DataFrame:
    """Read a ground-truth file written by :func:`write_sample` (CSV or Parquet)."""
    if path.suffix == ".parquet":
        return pl.read_parquet(path)
    return pl.read_csv(path, try_parse_dates=True, schema_overrides={"customer_id": pl.String})
