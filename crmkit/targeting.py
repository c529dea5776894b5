"""Retention target lists: policy, treatments, exclusions, groups, balance, ledger.

Groups are a pure function of (campaign id, customer id): a customer's unit number
``u = stable_hash(campaign + customer)`` in [0, 1) puts them in ``control`` when
``u < control_fraction``, else in ``treatment``. A universal holdout does the same with
its own salt and no campaign, so the same customers are held out of every campaign. The
assignment therefore never flips between daily runs, machines, list sizes or row orders.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import polars as pl

from crmkit import schema
from crmkit.config import TargetPolicy
from crmkit.errors import BadInputError, ConfigError, UsageError
from crmkit.export import write_table
from crmkit.hashing import add_stable_hash, unit_interval_expr
from crmkit.numbers import as_float
from crmkit.segments import RFM_SEGMENTS, VALUE_TIERS
from crmkit.store import Store, StoreWriter

_CAMPAIGN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
GROUPS: Final = ("treatment", "control", "holdout")
TARGET_COLUMNS: Final = (
    schema.CUSTOMER_ID,
    "campaign_id",
    "as_of",
    "group",
    "treatment",
    "segment",
    "value_tier",
    "churn_probability",
    "customer_value",
    "expected_value_at_risk",
    "rank",
)
LEDGER_SCHEMA: Final[dict[str, pl.DataType]] = {
    "campaign_id": pl.String(),
    schema.CUSTOMER_ID: pl.String(),
    "group": pl.String(),
    "treatment": pl.String(),
    "as_of": pl.Date(),
    "churn_probability": pl.Float64(),
    "customer_value": pl.Float64(),
    "segment": pl.String(),
    "value_tier": pl.String(),
}
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
    """Validate a policy: fractions in range, treatments naming real segments.

    Raises
    ------
    ConfigError
        On a fraction outside [0, 1), an unknown segment name or a negative cost.
    """
    if not 0 <= policy.control_fraction < 1:
        raise ConfigError(f"control_fraction {policy.control_fraction} must be in [0, 1)")
    if not 0 <= policy.holdout_fraction < 1:
        raise ConfigError(f"holdout_fraction {policy.holdout_fraction} must be in [0, 1)")
    known = VALUE_TIERS if policy.treatment_by == "value_tier" else RFM_SEGMENTS
    unknown = sorted(set(policy.treatments) - set(known))
    if unknown:
        raise ConfigError(
            f"[targeting.treatments]: unknown {policy.treatment_by} name(s) "
            f"{', '.join(unknown)}; known: {', '.join(known)}"
        )
    bad_tiers = sorted(set(policy.exclude_tiers) - set(VALUE_TIERS))
    if bad_tiers:
        raise ConfigError(
            f"[targeting] exclude_tiers: unknown tier(s) {', '.join(bad_tiers)}; "
            f"known: {', '.join(VALUE_TIERS)}"
        )
    negative = sorted(t for t, c in policy.costs.items() if c < 0)
    if negative:
        raise ConfigError(f"[targeting.costs]: negative cost for {', '.join(negative)}")
    if policy.size is not None and policy.size < 0:
        raise ConfigError("size must not be negative")


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


def read_optouts(path: Path) -> pl.Series:
    """Read opted-out customer ids: a CSV with ``customer_id`` or one id per line.

    Raises
    ------
    BadInputError
        When the file is missing or unreadable.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"opt-out file {path}: cannot be read ({exc})") from exc
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if lines and "," in lines[0]:
        header = [h.strip().lower() for h in lines[0].split(",")]
        if schema.CUSTOMER_ID not in header:
            raise BadInputError(f"opt-out file {path}: no customer_id column in {lines[0]!r}")
        i = header.index(schema.CUSTOMER_ID)
        ids = [ln.split(",")[i].strip() for ln in lines[1:]]
    else:
        ids = [ln for ln in lines if ln.lower() != schema.CUSTOMER_ID]
    return pl.Series(schema.CUSTOMER_ID, ids, dtype=pl.String)


@dataclass(frozen=True)
class TargetResult:
    """A target list with its balance report and what was excluded."""

    frame: pl.DataFrame
    balance: pl.DataFrame
    excluded: dict[str, int]
    warnings: tuple[str, ...]
    path: Path | None = None
    ledger_rows: int = 0

    def summary(self) -> dict[str, Any]:
        """Headline numbers for the CLI."""
        groups = self.frame.group_by("group").len()
        by_group = dict(zip(groups["group"], groups["len"], strict=True))
        return {
            "path": str(self.path) if self.path else None,
            "customers": self.frame.height,
            "groups": {g: int(by_group.get(g, 0)) for g in GROUPS},
            "excluded": self.excluded,
            "ledger_rows_added": self.ledger_rows,
            "balance": self.balance.to_dicts(),
            "warnings": list(self.warnings),
        }


def _treatment_expr(policy: TargetPolicy) -> pl.Expr:
    column = pl.col(policy.treatment_by)
    out = pl.lit(policy.default_treatment)
    for name, treatment in sorted(policy.treatments.items()):
        out = pl.when(column == name).then(pl.lit(treatment)).otherwise(out)
    return out


def _cost_expr(policy: TargetPolicy) -> pl.Expr:
    cost = pl.lit(0.0)
    for treatment, value in sorted(policy.costs.items()):
        cost = pl.when(pl.col("treatment") == treatment).then(pl.lit(value)).otherwise(cost)
    return pl.when(pl.col("group") == "treatment").then(cost).otherwise(0.0)


def select_targets(
    scores: pl.DataFrame,
    campaign: str,
    as_of: dt.date,
    policy: TargetPolicy,
    recently_assigned: pl.Series,
    optouts: pl.Series,
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Apply the policy to scored customers; return the ranked list and exclusion counts.

    ``scores`` needs ``customer_id, churn_probability, customer_value,
    expected_value_at_risk, rfm_segment, value_tier, recency_days``.
    """
    check_campaign(campaign)
    check_policy(policy)
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
        spent = ranked.select(_cost_expr(policy).cum_sum()).to_series()
        ranked = ranked.filter(spent <= policy.budget)
    counts["over_size_or_budget"] = before - ranked.height
    out = ranked.with_columns(
        pl.lit(campaign).alias("campaign_id"),
        pl.lit(as_of).alias("as_of"),
        pl.col("rfm_segment").alias("segment"),
    )
    return out, counts


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


def ledger(store: Store) -> pl.DataFrame:
    """Every assignment ever recorded (campaign, customer, group, treatment, as_of, ...)."""
    return store.scan_kind("ledger", LEDGER_SCHEMA).collect()


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
) -> TargetResult:
    """Build the day's list, write ``out_dir/<campaign>/<as_of>.<fmt>``, record the ledger.

    The file is written atomically; the ledger gets the list's rows once per (campaign,
    date), so running the same day again writes the same bytes and adds nothing.

    Raises
    ------
    UsageError
        Bad campaign id or format.
    ConfigError
        Bad policy.
    BadInputError
        Unreadable opt-out file.
    """
    check_campaign(campaign)
    if fmt not in ("csv", "parquet"):
        raise UsageError(f"--format {fmt!r}: use csv or parquet")
    optouts = pl.Series([], dtype=pl.String)
    if policy.optouts:
        optouts = read_optouts(Path(policy.optouts))
    with store.writer(locked=locked) as writer:
        entries = _ledger_of(writer)
        recent = recently_assigned(entries, campaign, as_of, policy.cooldown_days)
        frame, excluded = select_targets(scores, campaign, as_of, policy, recent, optouts)
        balance, warnings = balance_report(frame)
        out = frame.select(TARGET_COLUMNS)
        path = out_dir / campaign / f"{as_of.isoformat()}.{fmt}"
        write_table(out, path)
        done = entries.filter((pl.col("campaign_id") == campaign) & (pl.col("as_of") == as_of))
        added = 0
        if done.height == 0 and out.height:
            rows = out.select(list(LEDGER_SCHEMA)).cast(LEDGER_SCHEMA)  # type: ignore[arg-type]
            writer.add_frame("ledger", rows)
            writer.commit()
            added = rows.height
        elif done.height and set(done[schema.CUSTOMER_ID]) != set(out[schema.CUSTOMER_ID]):
            warnings.append(
                f"campaign {campaign} already has a ledger entry for {as_of} with other "
                "customers; the ledger keeps the first assignment"
            )
    return TargetResult(out, balance, excluded, tuple(warnings), path, added)


def _ledger_of(writer: StoreWriter) -> pl.DataFrame:
    return writer.scan("ledger", LEDGER_SCHEMA).collect()
