"""Experiments run elsewhere: import their assignments into the ledger, validated.

An assignment file has one row per customer and assignment date: ``customer_id``,
``as_of`` and ``group`` (``treatment`` or ``control``), and optionally ``treatment`` (the
arm's name). Column names are matched like ingest's (case, spaces and punctuation
ignored, common aliases), or mapped with ``--map``. Nothing is written unless every row
is valid: an unknown group, a customer twice on one date, a customer in treatment on one
date and in control on another, an id the store does not know, a date that cannot be
read, or a campaign already in the ledger with other rows (without ``replace``) is an
error (exit 3) that names the rows. Importing the same rows again changes nothing.
A campaign that ``crmkit targets`` recorded is never replaced by an import: its list
files would no longer match the ledger.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import polars as pl

from crmkit import schema
from crmkit.campaigns.ledger import LEDGER_SCHEMA, NO_TREATMENT
from crmkit.campaigns.names import check_campaign
from crmkit.errors import BadInputError
from crmkit.ingest import parse, sniff
from crmkit.store.core import Store
from crmkit.store.writer import StoreWriter

COLUMNS: Final = ("customer_id", "as_of", "group", "treatment")
ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "customer_id": (
        "customerid",
        *schema.ALIASES[schema.CUSTOMER_ID],
    ),
    "as_of": ("asof", "date", "assigned", "assignedon", "assignmentdate", "senddate", "day"),
    "group": ("group", "arm", "variant", "cell", "assignment"),
    "treatment": ("treatment", "action", "offer", "treatmentname", "channel"),
}
GROUPS: Final = ("treatment", "control")
_EXAMPLES: Final = 5


@dataclass(frozen=True)
class ImportReport:
    """What an import added to the ledger."""

    campaign: str
    source: str
    rows: int
    groups: dict[str, int]
    treatments: dict[str, int]
    dates: tuple[str, str]
    replaced: int
    #: ``imported``, ``replaced``, or ``unchanged`` (the ledger already held these rows).
    status: str = "imported"

    def summary(self) -> dict[str, Any]:
        """Headline numbers for the CLI."""
        return dict(self.__dict__)


def _mapping(header: list[str], explicit: Mapping[str, str], source: Path) -> dict[str, str]:
    by_norm = {sniff.norm_name(h): h for h in header}
    found: dict[str, str] = {}
    for name in COLUMNS:
        wanted = explicit.get(name)
        if wanted is not None:
            if wanted not in header:
                raise BadInputError(f"{source}: mapped column {wanted!r} (for {name}) is missing")
            found[name] = wanted
            continue
        for alias in (sniff.norm_name(name), *ALIASES[name]):
            if alias in by_norm and by_norm[alias] not in found.values():
                found[name] = by_norm[alias]
                break
    missing = [c for c in COLUMNS[:3] if c not in found]
    if missing:
        shown = ", ".join(repr(h) for h in header)
        raise BadInputError(
            f"{source}: column(s) {', '.join(missing)} not found; columns found: {shown}. "
            "Map them with --map customer_id=NAME,as_of=NAME,group=NAME"
        )
    return found


def read_assignments(
    path: Path,
    explicit: Mapping[str, str],
    dayfirst: bool | None = None,
    store_dayfirst: bool = False,
) -> pl.DataFrame:
    """Read and clean an assignment file; rows keep their line number.

    ``store_dayfirst`` says the store holds day-first sources: a file whose dates cannot
    tell day from month (every day 12 or less) is then refused unless ``dayfirst`` says.

    Raises
    ------
    BadInputError
        When the file cannot be read, lacks a required column, or its dates are ambiguous
        in a store of day-first data.
    """
    raw = sniff.read_small_table(path, "assignment file")
    found = _mapping(raw.columns, explicit, path)
    dates = parse.detect_date_formats(raw[found["as_of"]].drop_nulls().head(10_000), dayfirst)
    if dates.decided == "default" and store_dayfirst:
        raise BadInputError(
            f"{path}: its dates cannot tell day from month (every day is 12 or less) and the "
            "store holds day-first data; pass --dayfirst or --monthfirst to say which they are"
        )
    treatment = (
        parse.clean_text(pl.col(found["treatment"]))
        if "treatment" in found
        else pl.lit(None, dtype=pl.String)
    )
    return raw.with_row_index("line", offset=2).select(
        "line",
        parse.clean_customer_id(pl.col(found["customer_id"])).alias(schema.CUSTOMER_ID),
        parse.parse_datetime(pl.col(found["as_of"]), dates.formats).dt.date().alias("as_of"),
        pl.col(found["as_of"]).alias("as_of_text"),
        parse.clean_text(pl.col(found["group"])).str.to_lowercase().alias("group"),
        treatment.alias("treatment"),
    )


def _problems(rows: pl.DataFrame, known: pl.Series) -> list[str]:
    known_group = pl.col("group").is_in(GROUPS).fill_null(value=False)
    checks = [
        ("no customer id", pl.col(schema.CUSTOMER_ID).is_null()),
        ("a date that cannot be read", pl.col("as_of").is_null()),
        ("a group other than treatment or control", ~known_group),
        ("a customer twice on one date", pl.struct(schema.CUSTOMER_ID, "as_of").is_duplicated()),
        ("a customer in both treatment and control",
         known_group & (pl.col("group").n_unique().over(schema.CUSTOMER_ID) > 1)),
        ("a customer the store does not know", ~pl.col(schema.CUSTOMER_ID).is_in(known.implode())),
    ]  # fmt: skip
    out = []
    for what, condition in checks:
        bad = rows.filter(condition.fill_null(value=False))
        if bad.height:
            lines = ", ".join(str(n) for n in bad["line"].head(_EXAMPLES))
            out.append(f"{bad.height:,} row(s) with {what} (lines {lines})")
    return out


def _ledger_rows(rows: pl.DataFrame, campaign: str) -> pl.DataFrame:
    """Ledger rows of valid assignments; an unnamed treatment arm is called ``imported``.

    Control rows carry ``treatment = none`` and the arm only when the file names one, so
    that one shared control group serves every arm in evaluation.
    """
    arm = pl.col("treatment")
    treated = pl.col("group") == "treatment"
    given = rows.select(
        pl.lit(campaign).alias("campaign_id"),
        schema.CUSTOMER_ID,
        "group",
        pl.when(treated).then(arm.fill_null("imported")).otherwise(pl.lit(NO_TREATMENT)),
        pl.when(treated).then(arm.fill_null("imported")).otherwise(arm).alias("planned_treatment"),
        "as_of",
        pl.lit("imported").alias("policy"),  # chosen by another system
    )
    empty = [
        pl.lit(None, dtype=dtype).alias(name)
        for name, dtype in LEDGER_SCHEMA.items()
        if name not in given.columns
    ]
    schema_map: dict[str, pl.DataType] = dict(LEDGER_SCHEMA)
    return given.with_columns(empty).select(list(LEDGER_SCHEMA)).cast(schema_map)  # type: ignore[arg-type]


def _known_customers(writer: StoreWriter, rows: pl.DataFrame) -> pl.Series:
    """Return the file's customer ids that the store knows."""
    wanted = rows[schema.CUSTOMER_ID].drop_nulls().implode()
    return (
        writer.scan("transactions", schema.TRANSACTION_SCHEMA)
        .select(schema.CUSTOMER_ID)
        .filter(pl.col(schema.CUSTOMER_ID).is_in(wanted))
        .unique()
        .collect()[schema.CUSTOMER_ID]
    )


def import_assignments(
    store: Store,
    path: Path,
    campaign: str,
    *,
    columns: Mapping[str, str] | None = None,
    replace: bool = False,
    dayfirst: bool | None = None,
) -> ImportReport:
    """Add the assignments of ``path`` to the ledger as campaign ``campaign``.

    Dates are detected as ingest detects them; ``dayfirst`` (``[ingest] dayfirst``) decides
    ``01/02/2025`` when the file cannot.

    Raises
    ------
    BadInputError
        On any invalid row (all problems are named, with line numbers) or a campaign that
        is already in the ledger without ``replace``; nothing is written.
    UsageError
        A campaign id that is not a safe name.
    """
    from crmkit.ingest.conventions import Memory

    check_campaign(campaign)
    manifest = store.manifest() if store.manifest_path.exists() else None
    day_first = manifest is not None and Memory(manifest.sources).any_dayfirst()
    rows = read_assignments(path, columns or {}, dayfirst, day_first)
    if rows.height == 0:
        raise BadInputError(f"{path}: no assignment rows")
    with store.writer() as writer:
        problems = _problems(rows, _known_customers(writer, rows))
        if problems:
            raise BadInputError(f"{path}: nothing imported; " + "; ".join(problems))
        entries = writer.scan("ledger", LEDGER_SCHEMA).collect()
        mine = entries.filter(pl.col("campaign_id") == campaign)
        new = _ledger_rows(rows, campaign)
        status = _check_existing(mine, new, campaign, replace)
        if status == "replaced":
            others = entries.filter(pl.col("campaign_id") != campaign)
            writer.replace_all("ledger", others.vstack(new))
        elif status == "imported":
            writer.add_frame("ledger", new)
        if status != "unchanged":
            writer.commit()
    groups = dict(new.group_by("group").len().sort("group").iter_rows())
    arms = new.filter(pl.col("group") == "treatment").group_by("treatment").len().sort("treatment")
    return ImportReport(
        campaign,
        str(path),
        new.height,
        {g: int(groups.get(g, 0)) for g in GROUPS},
        {str(k): int(v) for k, v in arms.iter_rows()},
        (str(new["as_of"].min()), str(new["as_of"].max())),
        mine.height if status == "replaced" else 0,
        status,
    )


def _same_rows(a: pl.DataFrame, b: pl.DataFrame) -> bool:
    keys = [schema.CUSTOMER_ID, "as_of", "group"]
    return a.height == b.height and a.sort(keys).equals(b.sort(keys))


def _check_existing(mine: pl.DataFrame, new: pl.DataFrame, campaign: str, replace: bool) -> str:
    """Say what importing ``new`` over the campaign's ``mine`` rows does, or refuse it.

    Raises
    ------
    BadInputError
        Other rows for a campaign in the ledger without ``replace``, or a campaign that
        ``crmkit targets`` recorded.
    """
    if not mine.height:
        return "imported"
    if _same_rows(mine, new):
        return "unchanged"
    listed = mine.filter(pl.col("policy") != "imported")
    if listed.height:
        raise BadInputError(
            f"campaign {campaign} was recorded by `crmkit targets` ({listed.height:,} ledger "
            "rows, with list files written for them): an import cannot replace it without "
            "leaving those files out of step; import under another campaign id"
        )
    if not replace:
        raise BadInputError(
            f"campaign {campaign} already has {mine.height:,} other ledger rows; choose another "
            "id, or --replace to replace them"
        )
    return "replaced"
