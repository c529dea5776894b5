"""The feature version and the internal column names and constants of the feature pipeline."""

from __future__ import annotations

import datetime as dt
from typing import Final

import polars as pl

FEATURE_VERSION: Final = 3

_EPOCH: Final = dt.date(1970, 1, 1)
MICRO: Final = 1_000_000
# Multiply, never divide, by constants: polars may turn `x / c` into `x * (1 / c)` on some
# chunks and not others, which changes the last bit of a result from run to run.
_PER_MICRO: Final = 1e-6
_GROSS: Final = "gross"
_REFUNDS: Final = "refunds"
_ORDERS: Final = "orders"
_BUY: Final = "_buy"
_NET: Final = "_net"
_AGE: Final = "_age"
_CODE: Final = "_code"
_KEY: Final = "_key"
_MICRO: Final = "_micro"
_OKEY: Final = "_okey"
_FIRST: Final = "_first"
# customer code in the high 32 bits of a sort or group key, the day in the low 32
_SHIFT: Final = 2**32
_HALF: Final = 2**31


def _is_purchase() -> pl.Expr:
    return pl.col(_BUY)


def _net() -> pl.Expr:
    return pl.col(_NET)


def _age() -> pl.Expr:
    return pl.col(_AGE)


def _day_of(age: pl.Expr, as_of: dt.date) -> pl.Expr:
    """Return the date ``age`` days before ``as_of``."""
    return (pl.lit((as_of - _EPOCH).days, pl.Int32) - age).cast(pl.Date)
