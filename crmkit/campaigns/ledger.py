"""The ledger of campaign assignments: one truth per (campaign, day).

Every target list is recorded in the store's ledger before its files are published, and
the files are always rendered from the ledger, so what evaluation measures is what was
sent. A day's list is fixed once recorded:

* a re-run that selects the same assignments changes nothing (the files are rewritten
  from the ledger, byte for byte);
* customers who opted out since the list was recorded are removed from it, ledger and
  files together;
* a re-run never adds customers to a recorded day: when the only difference is customers
  ranked below everyone on the list (the places opted-out customers freed under a size or
  budget limit, or customers who qualify since), the recorded list is kept;
* any other difference (new data, a new model, another policy) is refused unless the
  caller asks to replace the day's list, which swaps the ledger rows and the files in one
  commit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final, Literal

import polars as pl

from crmkit import schema
from crmkit.errors import BadInputError
from crmkit.store.core import Store
from crmkit.store.writer import StoreWriter

NO_TREATMENT: Final = "none"
LEDGER_SCHEMA: Final[dict[str, pl.DataType]] = {
    "campaign_id": pl.String(),
    schema.CUSTOMER_ID: pl.String(),
    "group": pl.String(),
    "treatment": pl.String(),
    "planned_treatment": pl.String(),
    "as_of": pl.Date(),
    "churn_probability": pl.Float64(),
    "customer_value": pl.Float64(),
    "expected_value_at_risk": pl.Float64(),
    "rank": pl.Int64(),
    "segment": pl.String(),
    "value_tier": pl.String(),
    "reasons": pl.String(),
    "policy": pl.String(),
    "uplift_model": pl.String(),
    "expected_uplift": pl.Float64(),
    "expected_profit": pl.Float64(),
    "uplift_spread": pl.Float64(),
}
#: What identifies an assignment: the customer, the group and the treatment arm.
_KEY: Final = (schema.CUSTOMER_ID, "group", "__arm")

Status = Literal["recorded", "unchanged", "optouts_removed", "replaced", "empty"]


class ListChangedError(BadInputError):
    """A re-run would change a list already recorded for its campaign and day (exit 3)."""


def arm() -> pl.Expr:
    """Return the treatment arm of an assignment: what the policy chose, for any group.

    Control and holdout rows carry ``treatment = "none"`` and their arm in
    ``planned_treatment``; rows written before that column existed carry it in
    ``treatment``.
    """
    return pl.coalesce(pl.col("planned_treatment"), pl.col("treatment"))


def read_ledger(store: Store) -> pl.DataFrame:
    """Every assignment ever recorded, in :data:`LEDGER_SCHEMA`."""
    return store.scan_kind("ledger", LEDGER_SCHEMA).collect()


def _day(campaign: str, as_of: dt.date) -> pl.Expr:
    return (pl.col("campaign_id") == campaign) & (pl.col("as_of") == as_of)


def _keys(frame: pl.DataFrame) -> pl.DataFrame:
    """Return the distinct assignment keys of ``frame``, sorted.

    A frame, not Python tuples: a day of a million customers takes about 300 MB as a set.
    """
    rows = frame.select(pl.col(schema.CUSTOMER_ID), pl.col("group"), arm().alias("__arm"))
    return rows.unique().sort(_KEY, nulls_last=True)


def _missing(keys: pl.DataFrame, other: pl.DataFrame) -> int:
    """Count the keys of ``keys`` (from :func:`_keys`) that ``other`` does not hold."""
    return keys.join(other, on=_KEY, how="anti", nulls_equal=True).height


@dataclass(frozen=True)
class DayRecord:
    """What the ledger holds for one (campaign, day) after recording a list."""

    rows: pl.DataFrame
    status: Status
    added: int
    optouts_removed: int
    differences: int = 0


def _refill_only(recorded: pl.DataFrame, new: pl.DataFrame, freed: int, covered: bool) -> bool:
    """Tell whether the new list is the recorded one plus customers ranked below them all.

    That is what a size or budget limit does once ``freed`` opted-out customers leave: at
    most that many places go to the next customers, whom a recorded day does not take.
    More customers than places freed means a larger size or budget: a changed list.
    ``covered``: every assignment key of ``recorded`` is one of ``new``'s.
    """
    if recorded.height == 0 or not covered:
        return False
    kept = new.filter(pl.col(schema.CUSTOMER_ID).is_in(recorded[schema.CUSTOMER_ID].implode()))
    extra = new.filter(~pl.col(schema.CUSTOMER_ID).is_in(recorded[schema.CUSTOMER_ID].implode()))
    if extra.height == 0:
        return True
    if extra.height > freed:
        return False
    return bool(extra["rank"].min() > kept["rank"].max())  # type: ignore[operator]


def _places_freed(recorded: pl.DataFrame, kept: pl.DataFrame) -> int:
    """Count the places opt-outs freed in a recorded list: now, or on an earlier re-run.

    A list is recorded with ranks 1..N; each customer removed since leaves a gap.
    """
    top = recorded["rank"].max()
    if not isinstance(top, int):
        return recorded.height - kept.height
    return max(top - kept.height, recorded.height - kept.height)


def plan_day(
    entries: pl.DataFrame | pl.LazyFrame,
    campaign: str,
    as_of: dt.date,
    new: pl.DataFrame,
    optouts: pl.Series,
    *,
    replace: bool = False,
) -> tuple[DayRecord, pl.DataFrame | None]:
    """Decide what recording ``new`` for (``campaign``, ``as_of``) does, writing nothing.

    Returns the day's record and the whole new ledger content (None: the ledger stays as
    it is, or a new day whose rows are just appended; ``entries`` with the day's rows
    otherwise). ``entries`` may be a scan: for a new day only its rows of the day are read,
    so that a long ledger is not held to append one day.

    Raises
    ------
    ListChangedError
        The day is recorded with other assignments and ``replace`` is false.
    """
    ledger = entries.lazy()
    recorded = ledger.filter(_day(campaign, as_of)).collect()
    new = new.select(list(LEDGER_SCHEMA)).cast(LEDGER_SCHEMA)  # type: ignore[arg-type]
    if recorded.height == 0:
        status: Status = "recorded" if new.height else "empty"
        return DayRecord(new, status, new.height, 0), None
    others = ledger.filter(~_day(campaign, as_of)).collect()
    kept = recorded.filter(~pl.col(schema.CUSTOMER_ID).is_in(optouts.implode()))
    removed = recorded.height - kept.height
    old_keys, new_keys = _keys(kept), _keys(new)
    covered = _missing(old_keys, new_keys) == 0
    same = old_keys.equals(new_keys) or _refill_only(
        kept, new, _places_freed(recorded, kept), covered
    )
    if same and not removed:
        return DayRecord(recorded, "unchanged", 0, 0), None
    if same:
        return DayRecord(kept, "optouts_removed", 0, removed), others.vstack(kept)
    differences = _missing(old_keys, new_keys) + _missing(new_keys, old_keys)
    if not replace:
        raise ListChangedError(
            f"campaign {campaign} already has a list for {as_of} ({recorded.height:,} "
            f"customers) and this run would change {differences:,} assignment(s) (new data, a "
            "model, policy, --size or --budget); the recorded list and its files are kept. "
            "Re-run with --replace to replace both"
        )
    return DayRecord(new, "replaced", new.height, removed, differences), others.vstack(new)


def record_day(
    writer: StoreWriter,
    campaign: str,
    as_of: dt.date,
    new: pl.DataFrame,
    optouts: pl.Series,
    *,
    replace: bool = False,
) -> DayRecord:
    """Record ``new`` as the list of (``campaign``, ``as_of``), or keep the recorded one.

    Commits the writer when the ledger changes: a new day is appended as one part; a
    change to a recorded day rewrites the ledger. ``new`` holds the ledger columns.

    Raises
    ------
    ListChangedError
        The day is recorded with other assignments and ``replace`` is false.
    """
    entries = writer.scan("ledger", LEDGER_SCHEMA)
    day, content = plan_day(entries, campaign, as_of, new, optouts, replace=replace)
    if day.status == "recorded":
        writer.add_frame("ledger", day.rows)
    elif content is not None:
        writer.replace_all("ledger", content)
    else:
        return day
    writer.commit()
    return day
