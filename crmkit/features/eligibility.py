"""Who is scored, and the season of a cutoff: the columns every model adds to the features."""

from __future__ import annotations

import datetime as dt
import math
from typing import Final

import polars as pl

SEASON: Final = ("season_sin", "season_cos")


def season_columns(cutoff: dt.date) -> list[pl.Expr]:
    """Day of year of the cutoff as a point on the unit circle."""
    angle = 2 * math.pi * (cutoff.timetuple().tm_yday - 1) / 365.25
    return [pl.lit(math.sin(angle)).alias(SEASON[0]), pl.lit(math.cos(angle)).alias(SEASON[1])]


def eligible(features: pl.DataFrame, lookback_days: int) -> pl.DataFrame:
    """Keep customers whose last purchase is at most ``lookback_days`` before the as-of date."""
    return features.filter(pl.col("recency_days") <= lookback_days)
