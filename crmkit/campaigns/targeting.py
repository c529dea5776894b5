"""Retention target lists: policy, treatments, exclusions, groups, balance, ledger.

Groups are a pure function of (campaign id, customer id): a customer's unit number
``u = stable_hash(campaign + customer)`` in [0, 1) puts them in ``control`` when
``u < control_fraction``, else in ``treatment``. A universal holdout does the same with
its own salt and no campaign, so the same customers are held out of every campaign. The
assignment therefore never flips between daily runs, machines, list sizes or row orders.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import polars as pl

from crmkit import schema
from crmkit.campaigns.ledger import (
    LEDGER_SCHEMA,
    NO_TREATMENT,
    arm,
    plan_day,
    read_ledger,
    record_day,
)
from crmkit.campaigns.optouts import read_optout_lines
from crmkit.campaigns.uplift_policy import (
    POLICY_UPLIFT,
    POLICY_VALUE_AT_RISK,
    rank_by_uplift,
    spend_expr,
)
from crmkit.config.policy import TargetPolicy
from crmkit.config.rules import validate
from crmkit.config.settings import Settings
from crmkit.errors import ConfigError, UsageError
from crmkit.hashing import add_stable_hash, unit_interval_expr
from crmkit.io.export import write_table
from crmkit.numbers import as_float
from crmkit.segments import RFM_SEGMENTS, VALUE_TIERS
from crmkit.store.core import Store

_CAMPAIGN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
GROUPS: Final = ("treatment", "control", "holdout")
TARGET_COLUMNS: Final = (
    schema.CUSTOMER_ID,
    "campaign_id",
    "as_of",
    "group",
    "treatment",
    "planned_treatment",
    "segment",
    "value_tier",
    "churn_probability",
    "customer_value",
    "expected_value_at_risk",
    "rank",
    "reasons",
    "policy",
    "uplift_model",
    "expected_uplift",
    "expected_profit",
)
#: The contact file: what a sending system needs, for the treatment group only.
CONTACT_COLUMNS: Final = (
    schema.CUSTOMER_ID,
    "campaign_id",
    "as_of",
    "treatment",
    "segment",
    "value_tier",
    "rank",
)
BALANCE_COVARIATES: Final = ("churn_probability", "customer_value", "recency_days")
SMD_WARNING: Final = 0.1


def check_campaign(campaign: str) -> str:
    """Return ``campaign`` if it is a safe id (it becomes a directory name).

    Raises
    ------
    UsageError
        When it has characters other than letters, digits, ``_ . -``.
    """
    if not _CAMPAIGN.match(campaign):
        raise UsageError(
            f"campaign id {campaign!r} must be 1-64 letters, digits, '_', '.' or '-' and "
            "start with a letter or digit"
        )
    return campaign


def check_policy(policy: TargetPolicy) -> None:
    """Validate a policy: ranges (:func:`crmkit.config.settings.validate`), then segment names.

    Raises
    ------
    ConfigError
        On a value out of range or an unknown segment or tier name.
    """
    validate(Settings(targeting=policy), "policy")
    known = VALUE_TIERS if policy.treatment_by == "value_tier" else RFM_SEGMENTS
    unknown = sorted(set(policy.treatments) - set(known))
    if unknown:
        raise ConfigError(
            f"[targeting.treatments]: unknown {policy.treatment_by} name(s) "
            f"{', '.join(unknown)}; known: {', '.join(known)}"
        )
    free = sorted(t for t in policy_treatments(policy) if t not in policy.costs)
    if policy.budget is not None and free and policy.default_cost is None:
        raise ConfigError(
            f"--budget {policy.budget:g}: treatment(s) {', '.join(free)} have no cost in "
            "[targeting.costs], so the budget would count them as free; give them a cost "
            "or set [targeting] default_cost"
        )
    bad_tiers = sorted(set(policy.exclude_tiers) - set(VALUE_TIERS))
    if bad_tiers:
        raise ConfigError(
            f"[targeting] exclude_tiers: unknown tier(s) {', '.join(bad_tiers)}; "
            f"known: {', '.join(VALUE_TIERS)}"
        )


def assign_groups(
    frame: pl.LazyFrame, campaign: str, control_fraction: float, holdout: TargetPolicy
) -> pl.LazyFrame:
    """Add ``group``: holdout, control or treatment, from salted hashes of the customer id."""
    with_units = add_stable_hash(
        add_stable_hash(frame, schema.CUSTOMER_ID, "__h_campaign", salt=campaign),
        schema.CUSTOMER_ID,
        "__h_holdout",
        salt=holdout.holdout_salt,
    )
    group = (
        pl.when(unit_interval_expr("__h_holdout") < holdout.holdout_fraction)
        .then(pl.lit("holdout"))
        .when(unit_interval_expr("__h_campaign") < control_fraction)
        .then(pl.lit("control"))
        .otherwise(pl.lit("treatment"))
    )
    return with_units.with_columns(group.alias("group")).drop("__h_campaign", "__h_holdout")


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


def _treatment_expr(policy: TargetPolicy) -> pl.Expr:
    column = pl.col(policy.treatment_by)
    out = pl.lit(policy.default_treatment)
    for name, treatment in sorted(policy.treatments.items()):
        out = pl.when(column == name).then(pl.lit(treatment)).otherwise(out)
    return out


def policy_treatments(policy: TargetPolicy) -> list[str]:
    """Every treatment the policy can choose: the mapped ones and the default."""
    return sorted({*policy.treatments.values(), policy.default_treatment})


def spend_report(contacts: pl.DataFrame, policy: TargetPolicy) -> dict[str, Any]:
    """Contacts and spend per treatment of a contact file, against the budget."""
    rows = (
        contacts.group_by("treatment")
        .agg(pl.len().alias("contacts"))
        .with_columns(
            (
                pl.col("contacts")
                * pl.col("treatment").replace_strict(
                    dict(policy.costs), default=policy.default_cost, return_dtype=pl.Float64
                )
            ).alias("spend")
        )
        .sort("treatment")
    )
    by_treatment = {
        r["treatment"]: {
            "contacts": r["contacts"],
            "spend": None if r["spend"] is None else round(r["spend"], 2),
        }
        for r in rows.iter_rows(named=True)
    }
    known = [v["spend"] for v in by_treatment.values() if v["spend"] is not None]
    unpriced = sorted(t for t, v in by_treatment.items() if v["spend"] is None)
    return {
        "by_treatment": by_treatment,
        "total": round(sum(known), 2),
        "budget": policy.budget,
        "unpriced": unpriced,
    }


def select_targets(
    scores: pl.DataFrame,
    campaign: str,
    as_of: dt.date,
    policy: TargetPolicy,
    recently_assigned: pl.Series,
    optouts: pl.Series,
    uplift: Uplift | None = None,
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Apply the policy to scored customers; return the ranked list and exclusion counts.

    ``scores`` needs ``customer_id, churn_probability, customer_value,
    expected_value_at_risk, rfm_segment, value_tier, recency_days``; the ``uplift`` policy
    also needs the uplift model's predictions (:class:`Uplift`).

    Raises
    ------
    UsageError
        The ``uplift`` policy without predictions.
    """
    check_campaign(campaign)
    check_policy(policy)
    if "reasons" not in scores.columns:  # scores made without reason codes
        scores = scores.with_columns(pl.lit(None, dtype=pl.String).alias("reasons"))
    counts: dict[str, int] = {"scored": scores.height}
    frame = scores.filter(~pl.col(schema.CUSTOMER_ID).is_in(optouts.implode()))
    counts["opted_out"] = counts["scored"] - frame.height
    before = frame.height
    frame = frame.filter(~pl.col(schema.CUSTOMER_ID).is_in(recently_assigned.implode()))
    counts["cooldown"] = before - frame.height
    before = frame.height
    frame = frame.filter(
        (pl.col("customer_value") >= policy.min_customer_value)
        & ~pl.col("value_tier").is_in(list(policy.exclude_tiers))
    )
    counts["low_value"] = before - frame.height
    if policy.policy == POLICY_UPLIFT:
        if uplift is None:
            raise UsageError("the uplift policy needs an uplift model's predictions")
        grouped = assign_groups(frame.lazy(), campaign, policy.control_fraction, policy)
        ranked, more = rank_by_uplift(grouped.collect(), uplift.frame, campaign, as_of, policy)
        counts |= more
        ranked = ranked.with_columns(pl.lit(uplift.model).alias("uplift_model"))
    else:
        ranked, more = _rank_by_value_at_risk(frame, campaign, policy)
        counts |= more
    out = ranked.with_columns(
        pl.lit(campaign).alias("campaign_id"),
        pl.lit(as_of).alias("as_of"),
        pl.col("rfm_segment").alias("segment"),
        pl.col("treatment").alias("planned_treatment"),
    )
    return out, counts


@dataclass(frozen=True)
class Uplift:
    """An uplift model's predictions for the day.

    ``model`` is its ``NAME:VERSION``, ``frame`` the table of
    :meth:`crmkit.models.uplift.UpliftModel.predict_uplift` (customer, treatment, uplifts).
    """

    model: str
    frame: pl.DataFrame


def _rank_by_value_at_risk(
    frame: pl.DataFrame, campaign: str, policy: TargetPolicy
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Rank by expected value at risk, treatment by segment, cut by size and budget."""
    counts = {}
    before = frame.height
    frame = frame.filter(pl.col("churn_probability") >= policy.min_churn_probability)
    counts["low_risk"] = before - frame.height
    ranked = (
        assign_groups(frame.lazy(), campaign, policy.control_fraction, policy)
        .with_columns(_treatment_expr(policy).alias("treatment"))
        .sort(["expected_value_at_risk", schema.CUSTOMER_ID], descending=[True, False])
        .with_columns(pl.int_range(1, pl.len() + 1).alias("rank"))
        .collect()
    )
    before = ranked.height
    if policy.size is not None:
        ranked = ranked.head(policy.size)
    if policy.budget is not None:
        spent = ranked.select(spend_expr(policy).cum_sum()).to_series()
        ranked = ranked.filter(spent <= policy.budget)
    counts["over_size_or_budget"] = before - ranked.height
    return ranked.with_columns(
        pl.lit(POLICY_VALUE_AT_RISK).alias("policy"),
        pl.lit(None, dtype=pl.String).alias("uplift_model"),
        pl.lit(None, dtype=pl.Float64).alias("expected_uplift"),
        pl.lit(None, dtype=pl.Float64).alias("expected_profit"),
    ), counts


def smd(a: pl.Series, b: pl.Series) -> float:
    """Standardised mean difference (mean_a - mean_b) / sqrt((var_a + var_b) / 2)."""
    if a.len() < 2 or b.len() < 2:
        return float("nan")
    va, vb = as_float(a.var()), as_float(b.var())
    scale = ((va + vb) / 2) ** 0.5
    diff = as_float(a.mean()) - as_float(b.mean())
    return diff / scale if scale > 0 else 0.0


def balance_report(frame: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    """Per group: size and covariate means; SMD of treatment against control and holdout."""
    rows = []
    warnings = []
    treated = frame.filter(pl.col("group") == "treatment")
    for group in GROUPS:
        part = frame.filter(pl.col("group") == group)
        row: dict[str, Any] = {"group": group, "customers": part.height}
        for cov in BALANCE_COVARIATES:
            row[f"mean_{cov}"] = as_float(part[cov].mean()) if part.height else None
            value = smd(treated[cov], part[cov]) if group != "treatment" else 0.0
            row[f"smd_{cov}"] = value
            if group != "treatment" and not math.isnan(value) and abs(value) > SMD_WARNING:
                warnings.append(
                    f"treatment and {group} differ on {cov}: standardised mean difference "
                    f"{value:+.2f} (above {SMD_WARNING}); the groups may be too small"
                )
        rows.append(row)
    return pl.DataFrame(rows), warnings


def recently_assigned(
    entries: pl.DataFrame, campaign: str, as_of: dt.date, cooldown_days: int
) -> pl.Series:
    """Return customers put in any group of any campaign in ``[as_of - cooldown, as_of]``.

    The same campaign's own list of the same day does not count, so a re-run of a day
    reproduces its list.
    """
    start = as_of - dt.timedelta(days=cooldown_days)
    recent = entries.filter(
        (pl.col("as_of") >= start)
        & (pl.col("as_of") <= as_of)
        & ~((pl.col("campaign_id") == campaign) & (pl.col("as_of") == as_of))
    )
    return recent[schema.CUSTOMER_ID].unique()


def render_day(rows: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return (assignment file, contact file) of a day's ledger rows, ranked.

    ``treatment`` is the treatment to send in the treatment group and ``none`` elsewhere;
    ``planned_treatment`` is the arm the policy chose, for every group.
    """
    planned = arm()
    assignments = (
        rows.with_columns(
            pl.when(pl.col("group") == "treatment")
            .then(planned)
            .otherwise(pl.lit(NO_TREATMENT))
            .alias("treatment"),
            planned.alias("planned_treatment"),
            pl.col("policy").fill_null(POLICY_VALUE_AT_RISK),
        )
        .sort(["rank", schema.CUSTOMER_ID], nulls_last=True)
        .select(TARGET_COLUMNS)
    )
    contacts = assignments.filter(pl.col("group") == "treatment").select(CONTACT_COLUMNS)
    return assignments, contacts


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
    entries: pl.DataFrame,
    scores: pl.DataFrame,
    campaign: str,
    as_of: dt.date,
    policy: TargetPolicy,
    optouts: pl.Series,
    uplift: Uplift | None,
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Select the day's list in ledger columns from the scores, ledger and opt-outs."""
    recent = recently_assigned(entries, campaign, as_of, policy.cooldown_days)
    return select_targets(scores, campaign, as_of, policy, recent, optouts, uplift)


def write_targets(
    scores: pl.DataFrame,
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
) -> TargetResult:
    """Build the day's list, record it in the ledger, write its two files from the ledger.

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
        return _write_day(scores, store, campaign, as_of, policy, paths, dry_run, locked,
                          replace, uplift)  # fmt: skip
    except BaseException:
        _remove_created(created)
        raise


def _write_day(
    scores: pl.DataFrame,
    store: Store,
    campaign: str,
    as_of: dt.date,
    policy: TargetPolicy,
    paths: Mapping[str, Path],
    dry_run: bool,
    locked: bool,
    replace: bool,
    uplift: Uplift | None,
) -> TargetResult:
    """Build, record and write the day's list once its directory exists."""
    lines = pl.DataFrame(schema={"line": pl.Int64, schema.CUSTOMER_ID: pl.String})
    if policy.optouts:
        lines = read_optout_lines(Path(policy.optouts))
    optouts = lines[schema.CUSTOMER_ID].unique().sort()
    if dry_run:
        entries = read_ledger(store)
        new, excluded = _day_list(entries, scores, campaign, as_of, policy, optouts, uplift)
        day, _ = plan_day(entries, campaign, as_of, new, optouts, replace=replace)
    else:
        with store.writer(locked=locked) as writer:
            entries = writer.scan("ledger", LEDGER_SCHEMA).collect()
            new, excluded = _day_list(entries, scores, campaign, as_of, policy, optouts, uplift)
            day = record_day(writer, campaign, as_of, new, optouts, replace=replace)
    assignments, contacts = render_day(day.rows)
    if not dry_run:
        write_table(contacts, paths["contacts"])
        write_table(assignments, paths["assignments"])
    unknown_lines = optouts_unknown(store, lines)
    unknown = len(unknown_lines)
    warnings = []
    if unknown:
        shown = ", ".join(map(str, unknown_lines[:10])) + (", ..." if unknown > 10 else "")
        warnings.append(
            f"{unknown:,} of {lines.height:,} opted-out id(s) name no customer in the store "
            f"({policy.optouts} line {shown}); check the opt-out file's id format"
        )
    covariates = scores.select(schema.CUSTOMER_ID, "recency_days")
    balance, balance_warnings = balance_report(
        assignments.join(covariates, on=schema.CUSTOMER_ID, how="left")
    )
    return TargetResult(
        frame=assignments,
        contacts=contacts,
        balance=balance,
        excluded=excluded | {"optouts_unknown_to_store": unknown},
        warnings=(*warnings, *balance_warnings),
        status=f"dry run: {day.status}" if dry_run else day.status,
        spend=spend_report(contacts, policy),
        paths={} if dry_run else {k: str(v) for k, v in paths.items()},
        ledger_rows=0 if dry_run else day.added,
        optouts_removed=day.optouts_removed,
    )
