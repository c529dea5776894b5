"""Simulated responses to a campaign: who buys in the window after a list, by response type.

The uplift of each treatment can depend on the customer (``--heterogeneous``), so the
uplift learners can be checked against a known truth.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import polars as pl

from crmkit.columns import SIMULATED_CHANNEL
from crmkit.config.loading import split_pairs
from crmkit.errors import UsageError


@dataclass(frozen=True)
class ResponseResult:
    """Paths and sizes written by :func:`write_response`."""

    transactions: Path
    truth: Path
    rows: int
    customers: int
    notes: tuple[str, ...] = ()

    def summary(self) -> dict[str, Any]:
        """Headline numbers for ``sample --respond-to``."""
        return {
            "transactions": str(self.transactions),
            "truth": str(self.truth),
            "rows": self.rows,
            "customers": self.customers,
            "notes": list(self.notes),
        }

    def describe(self) -> str:
        """One line for people."""
        return (
            f"{self.rows:,} purchases by {self.customers:,} listed customers -> {self.transactions}"
        )


#: Customer types of the heterogeneous response and their uplift, in units of ``--uplift``.
RESPONSE_TYPES: Final = {
    "persuadable": 3.0,
    "sure_thing": 0.0,
    "lost_cause": 0.0,
    "sleeping_dog": -2.0,
}


def response_types(targets: pl.DataFrame, value_threshold: float | None = None) -> pl.Series:
    """Type of each listed customer for the heterogeneous response.

    Sure things (churn probability below 0.45) buy anyway, lost causes (0.85 and above)
    leave anyway; between them, customers worth ``value_threshold`` or more (by default
    the list's 80th value percentile: its most valuable fifth) are sleeping dogs (contact
    annoys them into leaving) and the rest persuadables. A fixed threshold keeps the same
    rule for later lists, whose value percentiles differ.
    """
    c, v = pl.col("churn_probability"), pl.col("customer_value")
    threshold = v.quantile(0.8) if value_threshold is None else pl.lit(value_threshold)
    kind = (
        pl.when(c < 0.45)
        .then(pl.lit("sure_thing"))
        .when(c >= 0.85)
        .then(pl.lit("lost_cause"))
        .when(v >= threshold)
        .then(pl.lit("sleeping_dog"))
        .otherwise(pl.lit("persuadable"))
    )
    return targets.select(kind.alias("response_type")).to_series()


def simulate_response(
    targets: pl.DataFrame,
    uplift: Mapping[str, float],
    window_days: int,
    seed: int,
    *,
    heterogeneous: bool = False,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Simulate purchases after a campaign, with a known true uplift per treatment.

    A customer on the list buys in ``[as_of, as_of + window)`` with probability
    ``1 - churn_probability``, plus the true uplift (absolute, capped to [0, 1]) in the
    treatment group only. The true uplift is ``uplift[treatment]`` for everyone, or with
    ``heterogeneous`` that times the customer's :data:`RESPONSE_TYPES` factor (see
    :func:`response_types`). A buyer makes one order on a uniform day of the window with
    a lognormal amount. Returns (transactions, truth): the truth holds each customer's
    probability, type and true uplift under every treatment (``true_uplift_<name>``).

    Raises
    ------
    UsageError
        When the list lacks a needed column or an uplift is outside [-1, 1].
    """
    needed = {"customer_id", "as_of", "group", "treatment", "churn_probability"}
    missing = sorted(needed - set(targets.columns))
    if missing:
        raise UsageError(f"target list lacks column(s) {', '.join(missing)}")
    listed = set(targets.filter(pl.col("group") == "treatment")["treatment"].drop_nulls())
    unknown = sorted(set(uplift) - listed)
    if unknown:
        raise UsageError(
            f"--uplift names treatment(s) {', '.join(unknown)} that the list's treatment group "
            f"does not have; it has {', '.join(sorted(listed)) or 'none'}"
        )
    bad = sorted(k for k, v in uplift.items() if not -1 <= v <= 1)
    if bad:
        raise UsageError(f"uplift of {', '.join(bad)} must be between -1 and 1")
    rng = np.random.default_rng(seed)
    columns = sorted(needed | ({"customer_value"} if heterogeneous else set()))
    if heterogeneous and "customer_value" not in targets.columns:
        raise UsageError("target list lacks column customer_value (needed by --heterogeneous)")
    frame = targets.select(columns).with_columns(pl.col("as_of").cast(pl.Date))
    types = response_types(frame) if heterogeneous else pl.Series(["uniform"] * frame.height)
    factor = types.replace_strict(RESPONSE_TYPES, default=1.0, return_dtype=pl.Float64).to_numpy()
    treated = (frame["group"] == "treatment").to_numpy()
    lift = np.array([uplift.get(t, 0.0) for t in frame["treatment"].to_list()]) * factor
    base = 1.0 - frame["churn_probability"].to_numpy()
    p = np.clip(base + np.where(treated, lift, 0.0), 0.0, 1.0)
    buys = rng.uniform(0, 1, frame.height) < p
    day = rng.integers(0, window_days, frame.height)
    second = rng.integers(8 * 3600, 20 * 3600, frame.height)
    amount = np.round(rng.lognormal(3.6, 0.5, frame.height), 2)
    true_uplift = [
        pl.Series(
            f"true_uplift_{name}", np.clip(base + value * factor, 0.0, 1.0) - np.clip(base, 0, 1)
        )
        for name, value in sorted(uplift.items())
    ]
    truth = frame.with_columns(
        pl.Series("true_probability", p),
        pl.Series("bought", buys),
        types.alias("response_type"),
        *true_uplift,
    ).sort("customer_id", "as_of")
    bought = frame.with_columns(
        pl.Series("day", day), pl.Series("second", second), pl.Series("amount", amount)
    ).filter(pl.Series(buys))
    tx = bought.select(
        (pl.lit("RESP-") + pl.col("customer_id") + "-" + pl.col("as_of").cast(pl.String)).alias(
            "order_id"
        ),
        "customer_id",
        (
            pl.col("as_of").cast(pl.Datetime("us"))
            + pl.duration(days=pl.col("day"), seconds=pl.col("second"))
        ).alias("ts"),
        "amount",
        pl.lit(SIMULATED_CHANNEL).alias("channel"),
    ).sort("ts", "customer_id")
    return tx, truth


def write_response(
    targets_path: Path,
    uplift: Mapping[str, float],
    window_days: int,
    seed: int,
    out_dir: Path,
    *,
    heterogeneous: bool = False,
) -> ResponseResult:
    """Read a target list, simulate the response, write ``response.csv`` and ``response_truth.csv``.

    Raises
    ------
    UsageError
        Unreadable list or bad parameters.
    """
    try:
        if targets_path.suffix == ".parquet":
            targets = pl.read_parquet(targets_path)
        else:
            targets = pl.read_csv(
                targets_path, schema_overrides={"customer_id": pl.String}, try_parse_dates=True
            )
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise UsageError(f"{targets_path}: cannot read the target list ({exc})") from exc
    tx, truth = simulate_response(targets, uplift, window_days, seed, heterogeneous=heterogeneous)
    listed = targets.filter(pl.col("group") == "treatment")["treatment"].drop_nulls()
    without = sorted(set(listed) - set(uplift))
    notes = tuple(f"treatment {t} has no --uplift: its true uplift is 0" for t in without)
    out_dir.mkdir(parents=True, exist_ok=True)
    tx_path, truth_path = out_dir / "response.csv", out_dir / "response_truth.csv"
    tx.write_csv(tx_path, datetime_format="%Y-%m-%d %H:%M:%S")
    truth.write_csv(truth_path)
    return ResponseResult(tx_path, truth_path, tx.height, truth.height, notes)


def parse_uplift(text: str) -> dict[str, float]:
    """Parse ``call=0.1,email=0.02`` into treatment -> absolute uplift.

    Raises
    ------
    UsageError
        On a pair without ``=`` or a value that is not a number.
    """
    out: dict[str, float] = {}
    for name, value in split_pairs(text, "--uplift", "treatment=number"):
        try:
            out[name] = float(value)
        except ValueError as exc:
            raise UsageError(f"--uplift: {name}={value!r} is not a number") from exc
    return out
