"""Value that is alive: weight each customer's value by the probability they are still active.

A customer's projected value (:func:`crmkit.features.derived.projected_value`) says what
they are worth *if they still buy as they did*. Someone who bought weekly and then
nothing for nine months is valued as a weekly buyer, and their churn probability is
near 1: as value at risk, a lost cause tops the retention list. So the scores carry

* ``p_alive``: the BG/NBD probability that the customer is still active as of the date
  (:class:`crmkit.models.clv_models.BetaGeo`, fitted on every customer with history as
  of the date, the same population as the segments), from their repeat purchase days,
  the time from first to last of them and their tenure;
* ``value_if_active``: the projected value;
* ``customer_value = p_alive * value_if_active``, the value that is alive (as lifetimes
  and PyMC-Marketing weigh value by default), and value at risk from it;
* ``lifecycle``: ``retain`` when ``p_alive`` is at least ``[segments] min_p_alive``,
  else ``win_back``. Retention lists take only ``retain``; ``win_back`` customers have
  their own opt-in campaign kind (``[targeting] lifecycle = "win_back"``).

Why BG/NBD rather than the churn model: the churn probability already multiplies the
value, and it is the probability of no purchase in the horizon, which is high both for
the drifting customer and for the one who left long ago. P(alive) tells the two apart
(the first is likely alive, the second not); ``bench/alive.py`` measures it against the
simulator's true dropout dates. Under BG/NBD a customer with no repeat purchase is
alive with probability 1 (dropout follows a repeat purchase): one-time buyers are never
``win_back``, and their value is the projected value's own (already scaled by the
population's repeat rate).
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import polars as pl

from crmkit.errors import BadInputError
from crmkit.models.clv import summary_statistics
from crmkit.models.clv_models import BetaGeo

RETAIN: Final = "retain"
WIN_BACK: Final = "win_back"
LIFECYCLES: Final = (RETAIN, WIN_BACK)


def alive_probability(features: pl.DataFrame, as_of: dt.date) -> pl.Series:
    """BG/NBD P(alive) of each row of ``features`` (fitted on the same rows), in row order.

    Raises
    ------
    BadInputError
        Too few customers or repeat buyers to fit the model.
    """
    stats = summary_statistics(features, as_of)
    model = BetaGeo().fit(stats)
    x, t_x, big_t = (stats[c].to_numpy() for c in ("x", "t_x", "T"))
    return pl.Series("p_alive", model.p_alive(x, t_x, big_t))


def with_alive_value(
    features: pl.DataFrame, as_of: dt.date, min_p_alive: float, *, clv_value: bool = False
) -> tuple[pl.DataFrame, list[str]]:
    """Add ``p_alive``, ``value_if_active``, ``alive_value`` and ``lifecycle``.

    ``customer_value`` stays the feature the models were trained on; scores replace it by
    ``alive_value`` once the model has predicted.

    With ``clv_value`` the customer value is a BG/NBD CLV, which is already weighted (the
    conditional expected purchases are P(alive) times those of an active customer): it is
    kept, and ``value_if_active`` is it divided by P(alive). Without a fit (too little
    history) P(alive) is null, the value unweighted and everyone ``retain``, with a warning.
    """
    warnings: list[str] = []
    if "clv_p_alive" in features.columns:
        alive = features["clv_p_alive"].alias("p_alive")
    else:
        try:
            alive = alive_probability(features, as_of)
        except BadInputError as exc:
            warnings.append(f"P(alive) not fitted ({exc}): customer value is not weighted by it")
            alive = pl.Series("p_alive", [None] * features.height, dtype=pl.Float64)
    value = pl.col("customer_value")
    p = pl.col("p_alive")
    if clv_value:
        if_active = pl.when(p > 0).then(value / p).otherwise(value)
        alive_value = value
    else:
        if_active = value
        alive_value = value * p.fill_null(1.0)
    out = features.with_columns(alive).with_columns(
        if_active.alias("value_if_active"),
        alive_value.alias("alive_value"),
        pl.when(p < min_p_alive)
        .then(pl.lit(WIN_BACK))
        .otherwise(pl.lit(RETAIN))
        .alias("lifecycle"),
    )
    return out, warnings


def lifecycle_counts(frame: pl.DataFrame) -> dict[str, int]:
    """Return the customers per lifecycle of a score table."""
    counts = dict.fromkeys(LIFECYCLES, 0)
    for row in frame.group_by("lifecycle").len().iter_rows():
        counts[str(row[0])] = int(row[1])
    return counts
