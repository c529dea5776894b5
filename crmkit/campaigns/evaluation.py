"""Campaign evaluation: treatment against control, after the fact, with intervals.

Every ledger assignment is one unit. Its outcome window is ``[as_of, as_of + window)``;
*retained* means a purchase (positive amount) in the window, *revenue* its net spend.

Statistics (two-sided, level ``1 - alpha``):

* retention rates with Wilson score intervals; the difference treatment - control with
  Newcombe's hybrid score interval (Newcombe 1998, method 10) and a pooled two-proportion
  z-test p-value; the relative uplift with the Katz log interval of the rate ratio;
* revenue per customer: difference of means with a Welch interval and Welch t-test;
* incremental retained customers and revenue: the differences times the treated count;
* the minimum detectable difference in retention at 80% power for the current sizes,
  reported when a result is not significant;
* beside them, estimates adjusted by each customer's history before the assignment
  (:mod:`crmkit.campaigns.adjustment`) and, when asked, always-valid intervals
  (:mod:`crmkit.campaigns.sequential`): see :mod:`crmkit.campaigns.estimates`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import math
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from crmkit import schema
from crmkit.campaigns.adjustment import LEDGER_COVARIATES, assignment_covariates
from crmkit.campaigns.comparisons import arm_rows as arm_rows
from crmkit.campaigns.comparisons import compare, subgroups
from crmkit.campaigns.comparisons import treatment_arms as treatment_arms
from crmkit.campaigns.estimates import Analysis
from crmkit.campaigns.ledger import arm, read_ledger
from crmkit.campaigns.names import check_campaign
from crmkit.campaigns.uplift_policy import POLICY_VALUE_AT_RISK
from crmkit.columns import SIMULATED_CHANNEL
from crmkit.errors import BadInputError
from crmkit.store.core import Store


def evaluate_with_outcomes(
    store: Store,
    campaign: str,
    window_days: int,
    outcomes_file: Path,
    now: dt.datetime,
    analysis: Analysis | None = None,
) -> Evaluation:
    """Evaluate against the store's purchases plus those of a file, without ingesting it.

    The file (e.g. ``response.csv`` of ``crmkit sample --respond-to``) is read, validated
    and de-duplicated like any ingest, into a temporary store that is deleted afterwards:
    the real store is never changed.

    Raises
    ------
    BadInputError
        An unreadable outcomes file, or as :func:`evaluate_campaign`.
    """
    with outcome_store(outcomes_file, now) as (sandbox, note):
        result = evaluate_campaign(store, campaign, window_days, extra=sandbox, analysis=analysis)
    return dataclasses.replace(result, warnings=(note, *result.warnings))


@contextlib.contextmanager
def outcome_store(outcomes_file: Path, now: dt.datetime) -> Iterator[tuple[Store, str]]:
    """Read an outcomes file into a temporary store, deleted afterwards; yield it and a note.

    The file is read, validated and de-duplicated like any ingest; the real store is never
    changed.

    Raises
    ------
    BadInputError
        An unreadable outcomes file.
    """
    from crmkit.config.settings import IngestConfig
    from crmkit.ingest import ingest_files

    with tempfile.TemporaryDirectory(prefix="crmkit-outcomes-") as tmp:
        sandbox = Store(Path(tmp) / "store")
        report = ingest_files([outcomes_file], sandbox, IngestConfig(), now=now)
        yield (
            sandbox,
            (
                f"outcomes include {report.rows_stored:,} purchases read from {outcomes_file} "
                f"(not ingested; {report.rows_quarantined:,} of its rows unusable)"
            ),
        )


@dataclass(frozen=True)
class Evaluation:
    """The evaluation of one campaign."""

    campaign: str
    window_days: int
    groups: pl.DataFrame
    overall: dict[str, Any]
    by_treatment: list[dict[str, Any]]
    by_segment: list[dict[str, Any]]
    warnings: tuple[str, ...]
    by_policy: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    #: ``complete`` (every window ended), ``partial`` (some) or ``pending`` (none: no
    #: result yet, and no figure but the group sizes).
    status: str = "complete"
    #: The first day after the data (the outcomes are known up to the day before).
    data_end: str | None = None
    #: Which estimates were added to the plain ones.
    analysis: Analysis = dataclasses.field(default_factory=Analysis)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "campaign": self.campaign,
            "status": self.status,
            "data_end": self.data_end,
            "window_days": self.window_days,
            "groups": self.groups.to_dicts(),
            "treatment_vs_control": self.overall,
            "by_treatment": self.by_treatment,
            "by_segment": self.by_segment,
            "by_policy": self.by_policy,
            "estimates": {
                "plain": True,
                "adjusted": self.analysis.adjust,
                "sequential": self.analysis.sequential,
                "sequential_tuning_customers": self.analysis.tuning,
            },
            "warnings": list(self.warnings),
        }


def outcomes(
    store: Store,
    campaign: str,
    window_days: int,
    extra: Store | None = None,
    keep: Sequence[str] = (),
) -> tuple[pl.DataFrame, dt.date]:
    """Join a campaign's ledger rows with purchases in their outcome windows.

    Returns the rows (with ``retained``, ``revenue``, ``complete`` and ``simulated``: a
    purchase in the window came from ``crmkit sample --respond-to``) and the first day
    without data. ``extra`` adds the transactions of another store (``--outcomes``);
    ``keep`` names more ledger columns to carry.

    Raises
    ------
    BadInputError
        When the campaign has no ledger rows.
    """
    entries = (
        read_ledger(store)
        .filter(pl.col("campaign_id") == campaign)
        .with_columns(arm().alias("treatment"), pl.col("policy").fill_null(POLICY_VALUE_AT_RISK))
    )
    if entries.height == 0:
        raise BadInputError(f"campaign {campaign!r} has no assignments in the ledger")
    sources = [store.transactions()] + ([extra.transactions()] if extra is not None else [])
    purchases = pl.concat(sources)
    last = purchases.select(pl.col(schema.TS).max()).collect().item()
    data_end = (last.date() + dt.timedelta(days=1)) if last else dt.date.min
    first_day = entries["as_of"].min()
    if not isinstance(first_day, dt.date):
        raise BadInputError(f"campaign {campaign!r}: ledger rows without a date")
    start = dt.datetime.combine(first_day, dt.time())
    customers = entries.select(schema.CUSTOMER_ID).unique()
    tx = (
        purchases.filter(pl.col(schema.TS) >= start)
        .join(customers.lazy(), on=schema.CUSTOMER_ID, how="semi")
        .select(schema.CUSTOMER_ID, schema.TS, schema.AMOUNT, schema.CHANNEL)
        .collect()
    )
    return _window_outcomes(entries, tx, window_days, data_end, keep), data_end


def _window_outcomes(
    entries: pl.DataFrame,
    tx: pl.DataFrame,
    window_days: int,
    data_end: dt.date,
    keep: Sequence[str] = (),
) -> pl.DataFrame:
    """Per assignment: retained, revenue, simulated and complete, over its outcome window."""
    window = pl.duration(days=window_days)
    start = pl.col("as_of").cast(pl.Datetime("us"))
    inside = ((pl.col(schema.TS) >= start) & (pl.col(schema.TS) < start + window)).fill_null(
        value=False
    )
    joined = entries.join(tx, on=schema.CUSTOMER_ID, how="left").with_columns(
        inside.alias("inside")
    )
    keys = ["campaign_id", schema.CUSTOMER_ID, "as_of"]
    in_window = pl.col("inside")
    return (
        joined.group_by(keys, maintain_order=True)
        .agg(
            pl.first("group", "treatment", "segment", "value_tier", "policy", *keep),
            ((pl.col(schema.AMOUNT) > 0) & in_window).any().alias("retained"),
            pl.when(in_window).then(pl.col(schema.AMOUNT)).otherwise(0.0).sum().alias("revenue"),
            ((pl.col(schema.CHANNEL) == SIMULATED_CHANNEL) & in_window).any().alias("simulated"),
        )
        .with_columns((pl.col("as_of") + window <= pl.lit(data_end)).alias("complete"))
        .sort(keys)
    )


def evaluate_campaign(
    store: Store,
    campaign: str,
    window_days: int = 60,
    alpha: float = 0.05,
    extra: Store | None = None,
    analysis: Analysis | None = None,
) -> Evaluation:
    """Evaluate ``campaign``: per group, treatment vs control overall, per treatment and segment.

    ``extra`` adds another store's transactions to the outcomes (``--outcomes``).
    ``analysis`` says which estimates are added to the plain ones (by default the adjusted
    estimates, without always-valid intervals).

    Raises
    ------
    BadInputError
        Unknown campaign or a window below one day.
    """
    check_campaign(campaign)
    if window_days < 1:
        raise BadInputError("--window must be at least 1 day")
    analysis = dataclasses.replace(analysis or Analysis(), window_days=window_days)
    keep = LEDGER_COVARIATES if analysis.adjust else ()
    rows, data_end = outcomes(store, campaign, window_days, extra, keep)
    warnings = _outcome_warnings(rows, window_days, data_end)
    incomplete = int((~rows["complete"]).sum())
    status = "pending" if incomplete == rows.height else "partial" if incomplete else "complete"
    if status == "pending":
        return dataclasses.replace(
            _pending(campaign, window_days, rows, warnings, str(data_end)), analysis=analysis
        )
    groups = (
        rows.group_by("group")
        .agg(
            pl.len().alias("customers"),
            pl.col("retained").mean().alias("retention_rate"),
            pl.col("revenue").mean().alias("revenue_per_customer"),
            pl.col("retained").sum().alias("retained"),
        )
        .sort("group")
    )
    if analysis.adjust:
        covariates = assignment_covariates(store, rows, window_days, extra)
        rows = rows.join(covariates, on=[schema.CUSTOMER_ID, "as_of"], how="left")
    by_treatment, by_segment, by_policy = subgroups(rows, alpha, analysis)
    tested = sum(
        1 for c in (*by_treatment, *by_segment, *by_policy) if not math.isnan(c["p_value_holm"])
    )
    if tested > 1:
        warnings.append(
            f"{tested} subgroup comparisons: with this many, some look significant by chance. "
            "Their p-values are also given adjusted for multiple testing (Holm, 'p adj'); "
            "trust a subgroup only where its adjusted p is below 0.05, and small subgroups "
            "least"
        )
    return Evaluation(
        campaign, window_days, groups, compare(rows, alpha, analysis), by_treatment, by_segment,
        tuple(warnings), by_policy, status, str(data_end), analysis,
    )  # fmt: skip


def _pending(
    campaign: str, window_days: int, rows: pl.DataFrame, warnings: list[str], data_end: str
) -> Evaluation:
    """No window has ended: the group sizes, and no outcome at all."""
    groups = rows.group_by("group").agg(pl.len().alias("customers")).sort("group")
    first_end = rows.select(pl.col("as_of").min() + pl.duration(days=window_days)).item()
    note = (
        f"no result yet: the first {window_days}-day outcome window ends on {first_end:%Y-%m-%d} "
        f"(the data ends {data_end})"
    )
    return Evaluation(
        campaign, window_days, groups, {"note": note}, [], [], tuple(warnings), [],
        "pending", data_end,
    )  # fmt: skip


def _outcome_warnings(rows: pl.DataFrame, window_days: int, data_end: object) -> list[str]:
    """Warn of simulated purchases and of windows that have not ended yet."""
    warnings = []
    simulated = int(rows["simulated"].sum())
    if simulated:
        warnings.append(
            f"{simulated:,} of {rows.height:,} assignments have purchases from a simulation "
            f"(channel '{SIMULATED_CHANNEL}') in their window: this is not a real campaign's "
            "result"
        )
    incomplete = int((~rows["complete"]).sum())
    if incomplete == rows.height:
        warnings.append(
            f"no assignment's {window_days}-day window has ended yet (data ends {data_end}): "
            "ingest the purchases made since, then evaluate again"
        )
    elif incomplete:
        warnings.append(
            f"{incomplete} of {rows.height} assignments have a window ending after the data "
            f"({data_end}): their outcomes are not all known yet"
        )
    return warnings
