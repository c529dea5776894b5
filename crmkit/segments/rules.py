"""The segment rules: RFM segment names by score, the value grid, quantile edges."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import polars as pl

from crmkit.errors import BadInputError

#: RFM segment rules, evaluated in order; the first match names the customer.
#: Each rule: (name, R range, F range, M range), ranges inclusive on 1..5 scores.
RFM_RULES: Final[tuple[tuple[str, tuple[int, int], tuple[int, int], tuple[int, int]], ...]] = (
    ("champions", (4, 5), (4, 5), (4, 5)),
    ("loyal", (3, 5), (4, 5), (1, 5)),
    ("cannot_lose", (1, 1), (4, 5), (4, 5)),
    ("at_risk", (1, 2), (3, 5), (1, 5)),
    ("potential_loyalist", (4, 5), (2, 3), (1, 5)),
    ("new_customers", (4, 5), (1, 1), (1, 5)),
    ("need_attention", (3, 3), (3, 3), (1, 5)),
    ("promising", (3, 3), (1, 2), (1, 5)),
    ("hibernating", (2, 2), (1, 2), (1, 5)),
    ("lost", (1, 1), (1, 2), (1, 5)),
)
RFM_SEGMENTS: Final = tuple(rule[0] for rule in RFM_RULES)


def _rfm_segment(r: int, f: int, m: int) -> str | None:
    for name, rr, fr, mr in RFM_RULES:
        if rr[0] <= r <= rr[1] and fr[0] <= f <= fr[1] and mr[0] <= m <= mr[1]:
            return name
    return None


#: The first matching rule of every score combination, by code ``100 r + 10 f + m``.
_RFM_BY_CODE: Final = {
    100 * r + 10 * f + m: _rfm_segment(r, f, m)
    for r in range(1, 6)
    for f in range(1, 6)
    for m in range(1, 6)
}

VALUE_GRID: Final[dict[tuple[str, str], str]] = {
    ("large", "short"): "platinum",
    ("large", "medium"): "gold",
    ("large", "long"): "silver",
    ("medium", "short"): "gold",
    ("medium", "medium"): "silver",
    ("medium", "long"): "development",
    ("small", "short"): "silver",
    ("small", "medium"): "development",
    ("small", "long"): "adjust",
}
VALUE_TIERS: Final = ("platinum", "gold", "silver", "development", "adjust", "one_time")
_CYCLE_CLASSES: Final = {0: "short", 1: "medium", 2: "long"}
_SPEND_CLASSES: Final = {0: "small", 1: "medium", 2: "large"}
#: Tier by code ``3 * spend class + cycle class`` (classes numbered as above).
_TIER_BY_CODE: Final = {
    3 * s + c: VALUE_GRID[(spend, cycle)]
    for s, spend in _SPEND_CLASSES.items()
    for c, cycle in _CYCLE_CLASSES.items()
}

_QUINTILES: Final = (0.2, 0.4, 0.6, 0.8)


def _require(frame: pl.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise BadInputError(f"feature table lacks column(s) {', '.join(missing)}")
    if frame.height == 0:
        raise BadInputError("no customers to segment (no purchases before the as-of date)")


def _edges(values: pl.Series, quantiles: Sequence[float]) -> list[float]:
    clean = values.drop_nulls().drop_nans() if values.dtype.is_float() else values.drop_nulls()
    if clean.len() == 0:
        return [0.0 for _ in quantiles]
    # one sort, then every quantile from it (linear interpolation, like Series.quantile)
    ordered = clean.cast(pl.Float64).sort()
    n = ordered.len()
    out = []
    for q in quantiles:
        pos = q * (n - 1)
        lo = int(pos)
        hi = min(lo + 1, n - 1)
        a, b = float(ordered[lo]), float(ordered[hi])
        out.append(a + (b - a) * (pos - lo))
    return out


def _score(column: str, edges: Sequence[float], *, reverse: bool) -> pl.Expr:
    """1 + number of edges strictly below the value (5 - that for ``reverse``).

    A value-based score: equal values always get equal scores, whatever their order.
    """
    below = pl.sum_horizontal([(pl.col(column) > e).cast(pl.Int8) for e in edges])
    score = (len(edges) + 1 - below) if reverse else (below + 1)
    return score.cast(pl.Int8)
