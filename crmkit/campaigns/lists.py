"""The day's list on disk: recorded in the ledger, then written as two files from it.

Writes ``out_dir/<campaign>/<as_of>.contacts.<fmt>`` (the treatment group: who to contact
with which treatment) and ``<as_of>.assignments.<fmt>`` (every group, for evaluation).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from crmkit import schema
from crmkit.campaigns.balance import balance_report
from crmkit.campaigns.budget import bought
from crmkit.campaigns.candidates import Candidates
from crmkit.campaigns.contacts import contact_details, with_contact_columns
from crmkit.campaigns.ledger import (
    LEDGER_SCHEMA,
    NO_TREATMENT,
    arm,
    plan_day,
    record_day,
)
from crmkit.campaigns.names import GROUPS, check_campaign
from crmkit.campaigns.optouts import read_optout_lines
from crmkit.campaigns.targeting import (
    CONTACT_COLUMNS,
    TARGET_COLUMNS,
    Uplift,
    recently_assigned,
    select_targets,
    spend_report,
)
from crmkit.campaigns.uplift_policy import (
    POLICY_VALUE_AT_RISK,
    profit_report,
)
from crmkit.config.policy import TargetPolicy
from crmkit.errors import UsageError
from crmkit.io.export import write_table
from crmkit.models.explainer import Explainer, explain_listed
from crmkit.progress import ProgressFn
from crmkit.store.core import Store


@dataclass(frozen=True)
class TargetResult:
    """A day's target list as recorded in the ledger, with balance and exclusions.

    ``frame`` is the assignment file's content (every group); ``contacts`` the contact
    file's (treatment group only). ``status`` says what the ledger did: ``recorded`` (a new
    day), ``unchanged`` (a re-run), ``optouts_removed`` (customers who opted out since the
    list was recorded were removed), ``replaced`` (``--replace``) or ``empty``.
    """

    frame: pl.DataFrame
    contacts: pl.DataFrame
    balance: pl.DataFrame
    excluded: dict[str, int]
    warnings: tuple[str, ...]
    status: str = "recorded"
    spend: dict[str, Any] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    ledger_rows: int = 0
    optouts_removed: int = 0
    #: What the write into ``[targeting] destination`` did (None: no destination).
    destination: dict[str, Any] | None = None

    def summary(self) -> dict[str, Any]:
        """Headline numbers for the CLI."""
        groups = self.frame.group_by("group").len()
        by_group = dict(zip(groups["group"], groups["len"], strict=True))
        return {
            "contact_file": self.paths.get("contacts"),
            "assignment_file": self.paths.get("assignments"),
            "status": self.status,
            "customers": self.frame.height,
            "contacts": self.contacts.height,
            "groups": {g: int(by_group.get(g, 0)) for g in GROUPS},
            "excluded": self.excluded,
            "ledger_rows_added": self.ledger_rows,
            "optouts_removed_since_recorded": self.optouts_removed,
            "spend": self.spend,
            "balance": self.balance.to_dicts(),
            "warnings": list(self.warnings),
            "destination": self.destination,
        }


def render_day(
    rows: pl.DataFrame,
    details: pl.DataFrame | None = None,
    policy: TargetPolicy | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return (assignment file, contact file) of a day's ledger rows, ranked.

    ``treatment`` is the treatment to send in the treatment group and ``none`` elsewhere;
    ``planned_treatment`` is the arm the policy chose, for every group. The contact file
    gets the contact columns, offer code and top reason (:mod:`crmkit.campaigns.contacts`).
    """
    planned = arm()
    assignments = rows.with_columns(
        pl.when(pl.col("group") == "treatment")
        .then(planned)
        .otherwise(pl.lit(NO_TREATMENT))
        .alias("treatment"),
        planned.alias("planned_treatment"),
        pl.col("policy").fill_null(POLICY_VALUE_AT_RISK),
    )
    if not _in_rank_order(rows):  # a day just recorded is: no copy of its rows then
        assignments = assignments.sort(["rank", schema.CUSTOMER_ID], nulls_last=True)
    assignments = assignments.select(TARGET_COLUMNS)
    policy = policy or TargetPolicy()
    # the reasons are copied only when the contact file shows the top one
    shown = ["reasons"] if details is not None or policy.offer_codes else []
    treated = (
        assignments.lazy()
        .filter(pl.col("group") == "treatment")
        .select(*CONTACT_COLUMNS, *shown)
        .collect()
    )
    return assignments, with_contact_columns(treated, details, policy)


def _in_rank_order(rows: pl.DataFrame) -> bool:
    """Tell whether every row has a rank and the ranks strictly increase."""
    rank = rows["rank"]
    return rank.null_count() == 0 and bool((rank.diff().drop_nulls() > 0).all())


def list_paths(out_dir: Path, campaign: str, as_of: dt.date, fmt: str) -> dict[str, Path]:
    """Paths of a day's contact and assignment files under ``out_dir/<campaign>/``."""
    base = out_dir / check_campaign(campaign)
    stem = as_of.isoformat()
    return {
        "contacts": base / f"{stem}.contacts.{fmt}",
        "assignments": base / f"{stem}.assignments.{fmt}",
    }


def optouts_unknown(store: Store, optouts: pl.DataFrame) -> list[int]:
    """Return the lines of opt-out ids (:func:`read_optout_lines`) that name no customer.

    Such an id is likely in another format than the store's (after the cleaning every id
    gets, an id that still matches nobody is reported by line, never by its text).
    """
    if optouts.height == 0:
        return []
    known = (
        store.transactions()
        .select(schema.CUSTOMER_ID)
        .filter(pl.col(schema.CUSTOMER_ID).is_in(optouts[schema.CUSTOMER_ID].implode()))
        .unique()
        .collect()
    )
    unknown = optouts.join(known, on=schema.CUSTOMER_ID, how="anti")
    return sorted(unknown["line"].to_list())


def _prepare_directory(directory: Path) -> list[Path]:
    """Create the list's directory before anything is recorded, or fail with nothing done.

    Returns the directories it created, deepest first, for :func:`_remove_created`.

    Raises
    ------
    UsageError
        When a path on the way is a file.
    """
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise UsageError(
            f"--out: cannot create directory {directory}: a file is in the way"
        ) from exc
    return missing


def _remove_created(created: list[Path]) -> None:
    """Remove the directories a failed run created, if they are still empty."""
    for directory in created:
        with contextlib.suppress(OSError):
            directory.rmdir()


def _day_list(
    entries: pl.LazyFrame,
    candidates: Candidates,
    details: pl.DataFrame | None,
    campaign: str,
    as_of: dt.date,
    policy: TargetPolicy,
    optouts: pl.Series,
    uplift: Uplift | None,
    explainer: Explainer | None = None,
    progress: ProgressFn | None = None,
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Select the day's list from the scores, ledger and opt-outs; explain whom it lists.

    The candidates are let go of once the list is selected, before it is explained.
    """
    scores, dropped = candidates.take()
    if details is not None:
        scores = scores.join(details, on=schema.CUSTOMER_ID, how="left", maintain_order="left")
    recent = recently_assigned(entries, campaign, as_of, policy.cooldown_days)
    listed, counts = select_targets(
        scores, campaign, as_of, policy, recent, optouts, uplift, dropped
    )
    del scores, dropped
    return explain_listed(listed, explainer, progress), counts


def write_targets(
    scores: pl.DataFrame | Candidates,
    store: Store,
    campaign: str,
    as_of: dt.date,
    policy: TargetPolicy,
    out_dir: Path,
    *,
    fmt: str = "csv",
    locked: bool = False,
    replace: bool = False,
    dry_run: bool = False,
    uplift: Uplift | None = None,
    explainer: Explainer | None = None,
    dropped: pl.DataFrame | None = None,
    progress: ProgressFn | None = None,
) -> TargetResult:
    """Build the day's list, record it in the ledger, write its two files from the ledger.

    ``explainer`` (the scores') gives every listed customer the model's reasons
    (``progress`` hears of each block of them). ``dropped``: scored customers left out of
    ``scores`` as they were read, because the list cannot take them
    (:func:`~crmkit.campaigns.candidates.candidates`). ``scores`` may be
    :class:`~crmkit.campaigns.candidates.Candidates` (rows and dropped), which the list
    takes and lets go of once selected.

    Writes ``out_dir/<campaign>/<as_of>.contacts.<fmt>`` (treatment group: who to contact
    with which treatment) and ``<as_of>.assignments.<fmt>`` (every group, for evaluation).
    Both are rendered from the ledger after it is committed and written atomically, so a
    re-run of the day rewrites the same bytes (see :mod:`crmkit.campaigns.ledger` for re-runs).
    With ``dry_run`` the list and its summary are what a real run would give, and nothing
    is written: no ledger row, no file, no directory.

    Raises
    ------
    UsageError
        Bad campaign id or format.
    ConfigError
        Bad policy.
    BadInputError
        Unreadable opt-out file; a re-run that would change a recorded list without
        ``replace`` (:class:`crmkit.campaigns.ledger.ListChangedError`).
    """
    check_campaign(campaign)
    if fmt not in ("csv", "parquet"):
        raise UsageError(f"--format {fmt!r}: use csv or parquet")
    paths = list_paths(out_dir, campaign, as_of, fmt)
    created = [] if dry_run else _prepare_directory(paths["contacts"].parent)
    try:
        held = scores if isinstance(scores, Candidates) else Candidates(scores, dropped)
        del scores, dropped
        return _write_day(held, store, campaign, as_of, policy, paths, dry_run, locked,
                          replace, uplift, explainer, progress)  # fmt: skip
    except BaseException:
        _remove_created(created)
        raise


def _unknown_optouts(unknown_lines: list[int], total: int, policy: TargetPolicy) -> list[str]:
    """Return the warning of opted-out ids that name no customer (by line), if any."""
    unknown = len(unknown_lines)
    if not unknown:
        return []
    shown = ", ".join(map(str, unknown_lines[:10])) + (", ..." if unknown > 10 else "")
    return [
        f"{unknown:,} of {total:,} opted-out id(s) name no customer in the store "
        f"({policy.optouts} line {shown}); check the opt-out file's id format"
    ]


def _write_day(
    candidates: Candidates,
    store: Store,
    campaign: str,
    as_of: dt.date,
    policy: TargetPolicy,
    paths: Mapping[str, Path],
    dry_run: bool,
    locked: bool,
    replace: bool,
    uplift: Uplift | None,
    explainer: Explainer | None = None,
    progress: ProgressFn | None = None,
) -> TargetResult:
    """Build, record and write the day's list once its directory exists."""
    lines = pl.DataFrame(schema={"line": pl.Int64, schema.CUSTOMER_ID: pl.String})
    if policy.optouts:
        lines = read_optout_lines(Path(policy.optouts))
    optouts = lines[schema.CUSTOMER_ID].unique().sort()
    details = contact_details(store, as_of, policy)
    selection = (candidates, details, campaign, as_of, policy, optouts, uplift, explainer, progress)
    if dry_run:
        entries = store.scan_kind("ledger", LEDGER_SCHEMA)
        new, excluded = _day_list(entries, *selection)
        day, _ = plan_day(entries, campaign, as_of, new, optouts, replace=replace)
    else:
        with store.writer(locked=locked) as writer:
            entries = writer.scan("ledger", LEDGER_SCHEMA)  # read as far as needed
            new, excluded = _day_list(entries, *selection)
            day = record_day(writer, campaign, as_of, new, optouts, replace=replace)
    assignments, contacts = render_day(day.rows, details, policy)
    if not dry_run:  # streamed: the files' text is never held beside the frames
        write_table(contacts.lazy(), paths["contacts"])
        write_table(assignments.lazy(), paths["assignments"])
    unknown_lines = optouts_unknown(store, lines)
    unknown = len(unknown_lines)
    warnings = _unknown_optouts(unknown_lines, lines.height, policy)
    # the day's rows are all of the new list's customers (a re-run keeps them or fails)
    covariates = new.select(schema.CUSTOMER_ID, "recency_days")
    balance, balance_warnings = balance_report(
        assignments.select(schema.CUSTOMER_ID, "group", "churn_probability", "customer_value").join(
            covariates, on=schema.CUSTOMER_ID, how="left"
        )
    )
    return TargetResult(
        frame=assignments,
        contacts=contacts,
        balance=balance,
        excluded=excluded | {"optouts_unknown_to_store": unknown},
        warnings=(*warnings, *balance_warnings),
        status=f"dry run: {day.status}" if dry_run else day.status,
        spend=spend_report(contacts, policy) | profit_report(day.rows) | bought(new, policy),
        paths={} if dry_run else {k: str(v) for k, v in paths.items()},
        ledger_rows=0 if dry_run else day.added,
        optouts_removed=day.optouts_removed,
    )
