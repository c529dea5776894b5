"""Exports shaped like a real retailer's e-mail experiment, made without crmkit's simulator.

What makes them unlike the simulator: ids like ``CU-004512``, day-first dates with times,
no product, category or channel column, histories of one to a dozen orders, a few
refunds, one send date, two e-mail variants sharing one control group, about 1%
conversion in the window, and a weak effect carried by two customer attributes (loyalty
members in two regions react to the discount; nobody reacts much to the newsletter).
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SEND = dt.date(2024, 3, 4)
WINDOW = 30
REGIONS = ("North", "South", "East", "West", "Scotland")
ARMS = ("email_discount", "email_news")


@dataclass(frozen=True)
class Export:
    """The files of one export and the truth behind them."""

    orders: Path
    customers: Path
    assignments: Path
    responses: Path  # every order from the send date to two weeks after the window
    ids: list[str]
    arm: list[str]  # "" for the control group
    true_uplift: dict[str, np.ndarray]  # per arm, per customer


def _when(rng: np.random.Generator, day: dt.date) -> str:
    stamp = dt.datetime.combine(day, dt.time(int(rng.integers(8, 22)), int(rng.integers(0, 60))))
    return stamp.strftime("%d/%m/%Y %H:%M")


def _orders(rng, ids, path: Path) -> None:
    """One to a dozen orders per customer in the two years before the send date."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["Order No", "Cust. ID", "Order Date", "Net Amount"])
        n = 0
        for cid in ids:
            orders = int(min(12, rng.geometric(0.35)))
            for _ in range(orders):
                day = SEND - dt.timedelta(days=int(rng.integers(1, 730)))
                amount = round(float(rng.lognormal(3.4, 0.7)), 2)
                n += 1
                out.writerow([f"SO{n:07d}", cid, _when(rng, day), f"{amount:.2f}"])
                if rng.random() < 0.03:  # a refund a few days later
                    n += 1
                    back = min(day + dt.timedelta(days=3), SEND - dt.timedelta(days=1))
                    out.writerow([f"SO{n:07d}", cid, _when(rng, back), f"{-amount:.2f}"])


def write_export(root: Path, customers: int = 16000, seed: int = 0, split: float = 0.0) -> Export:
    """Write the export's four files under ``root``; ``split`` > 0 also writes a held-out
    part (``assignments-test.csv``: that share of the customers, a campaign of its own)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    ids = [f"CU-{i:06d}" for i in rng.choice(900_000, customers, replace=False)]
    region = rng.choice(REGIONS, customers)
    loyal = rng.random(customers) < 0.3
    band = rng.choice(["18-24", "25-34", "35-44", "45-54", "55+"], customers)
    _orders(rng, ids, root / "orders.csv")
    with (root / "customers.csv").open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["Customer ID", "Region", "Loyalty Member", "Age Band"])
        for row in zip(ids, region, np.where(loyal, "Y", "N"), band, strict=True):
            out.writerow(row)
    draw = rng.random(customers)
    arm = np.where(draw < 0.35, ARMS[0], np.where(draw < 0.7, ARMS[1], ""))
    keen = loyal & np.isin(region, ["North", "Scotland"])
    true = {ARMS[0]: np.where(keen, 0.03, 0.001), ARMS[1]: np.full(customers, 0.002)}
    base = 0.008 + 0.004 * loyal
    p = base + np.select([arm == ARMS[0], arm == ARMS[1]], [true[ARMS[0]], true[ARMS[1]]], 0.0)
    bought = rng.random(customers) < p
    test = rng.random(customers) < split
    for name, part in (("assignments.csv", ~test), ("assignments-test.csv", test)):
        if name.endswith("test.csv") and not split:
            continue
        with (root / name).open("w", newline="", encoding="utf-8") as fh:
            out = csv.writer(fh)
            out.writerow(["Customer ID", "Send Date", "Variant", "Offer"])
            for i in np.flatnonzero(part):
                group = "control" if not arm[i] else "treatment"
                out.writerow([ids[i], SEND.strftime("%d/%m/%Y"), group, arm[i]])
    with (root / "responses.csv").open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["Order No", "Cust. ID", "Order Date", "Net Amount"])
        later = rng.random(customers) < 0.005  # the export runs two weeks past the window
        orders = [(i, int(rng.integers(0, WINDOW))) for i in np.flatnonzero(bought)]
        orders += [(i, int(rng.integers(WINDOW, WINDOW + 14))) for i in np.flatnonzero(later)]
        for k, (i, offset) in enumerate(orders):
            day = SEND + dt.timedelta(days=offset)
            amount = round(float(rng.lognormal(3.6, 0.6)), 2)
            out.writerow([f"RS{k:07d}", ids[i], _when(rng, day), f"{amount:.2f}"])
    return Export(
        root / "orders.csv", root / "customers.csv", root / "assignments.csv",
        root / "responses.csv", ids, arm.tolist(), true,
    )  # fmt: skip
