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
  reported when a result is not significant.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import math
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from crmkit import schema
from crmkit.campaigns.ledger import NO_TREATMENT, arm, read_ledger
from crmkit.campaigns.names import check_campaign
from crmkit.campaigns.stats import (
    holm,
    minimum_detectable,
    newcombe,
    ratio_interval,
    two_proportion_p,
    welch,
)
from crmkit.campaigns.uplift_policy import POLICY_VALUE_AT_RISK
from crmkit.columns import SIMULATED_CHANNEL
from crmkit.errors import BadInputError
from crmkit.store.core import Store


def treatment_arms(rows: pl.DataFrame) -> list[str]:
    """Return the treatment arms that have customers in the treatment group, by name."""
    treated = rows.filter(pl.col("group") == "treatment")["treatment"].drop_nulls()
    return sorted(set(treated.to_list()) - {NO_TREATMENT})


def arm_rows(rows: pl.DataFrame, name: str) -> pl.DataFrame:
    """Return the treatment group of arm ``name`` with its control group.

    Control customers carry the arm the policy would have given them; controls without an
    arm (imported experiments with one shared control group) serve every arm.
    """
    arm_of = pl.col("treatment")
    shared = arm_of.is_null() | (arm_of == NO_TREATMENT)
    control = (pl.col("group") == "control") & ((arm_of == name) | shared)
    return rows.filter(((pl.col("group") == "treatment") & (arm_of == name)) | control)


def evaluate_with_outcomes(
    store: Store,
    campaign: str,
    window_days: int,
    outcomes_file: Path,
    now: dt.datetime,
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
        result = evaluate_campaign(store, campaign, window_days, extra=sandbox)
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


def with_holm(subsets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add ``p_value_holm`` to each subgroup comparison, adjusted over all of them."""
    p_values = [float(c.get("p_value", float("nan"))) for c in subsets]
    return [c | {"p_value_holm": q} for c, q in zip(subsets, holm(p_values), strict=True)]


def compare(frame: pl.DataFrame, alpha: float = 0.05) -> dict[str, Any]:
    """Treatment against control on a frame of outcomes (``group, retained, revenue``)."""
    t = frame.filter(pl.col("group") == "treatment")
    c = frame.filter(pl.col("group") == "control")
    n1, n2 = t.height, c.height
    k1, k2 = int(t["retained"].sum()), int(c["retained"].sum())
    out: dict[str, Any] = {"treated": n1, "control": n2}
    if n1 == 0 or n2 == 0:
        return out | {"note": "needs both a treatment and a control group"}
    low, high = newcombe(k1, n1, k2, n2, alpha)
    rel_low, rel_high = ratio_interval(k1, n1, k2, n2, alpha)
    p = two_proportion_p(k1, n1, k2, n2)
    diff = k1 / n1 - k2 / n2
    rev, rev_low, rev_high, rev_p = welch(t["revenue"].to_list(), c["revenue"].to_list(), alpha)
    out |= {
        "retention_treatment": k1 / n1,
        "retention_control": k2 / n2,
        "uplift": diff,
        "uplift_low": low,
        "uplift_high": high,
        "relative_uplift": diff / (k2 / n2) if k2 else float("nan"),
        "relative_low": rel_low,
        "relative_high": rel_high,
        "p_value": p,
        "significant": p < alpha,
        "incremental_customers": diff * n1,
        "incremental_customers_low": low * n1,
        "incremental_customers_high": high * n1,
        "revenue_uplift_per_customer": rev,
        "revenue_uplift_low": rev_low,
        "revenue_uplift_high": rev_high,
        "revenue_p_value": rev_p,
        "incremental_revenue": rev * n1,
    }
    if p >= alpha:
        out["minimum_detectable_uplift"] = minimum_detectable(k2 / n2, n1, n2, alpha)
    return out


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
            "warnings": list(self.warnings),
        }


def outcomes(
    store: Store, campaign: str, window_days: int, extra: Store | None = None
) -> tuple[pl.DataFrame, dt.date]:
    """Join a campaign's ledger rows with purchases in their outcome windows.

    Returns the rows (with ``retained``, ``revenue``, ``complete`` and ``simulated``: a
    purchase in the window came from ``crmkit sample --respond-to``) and the first day
    without data. ``extra`` adds the transactions of another store (``--outcomes``).

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
    return _window_outcomes(entries, tx, window_days, data_end), data_end


def _window_outcomes(
    entries: pl.DataFrame, tx: pl.DataFrame, window_days: int, data_end: dt.date
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
            pl.first("group", "treatment", "segment", "value_tier", "policy"),
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
) -> Evaluation:
    """Evaluate ``campaign``: per group, treatment vs control overall, per treatment and segment.

    ``extra`` adds another store's transactions to the outcomes (``--outcomes``).

    Raises
    ------
    BadInputError
        Unknown campaign or a window below one day.
    """
    check_campaign(campaign)
    if window_days < 1:
        raise BadInputError("--window must be at least 1 day")
    rows, data_end = outcomes(store, campaign, window_days, extra)
    warnings = _outcome_warnings(rows, window_days, data_end)
    incomplete = int((~rows["complete"]).sum())
    status = "pending" if incomplete == rows.height else "partial" if incomplete else "complete"
    if status == "pending":
        return _pending(campaign, window_days, rows, warnings, str(data_end))
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
    by_treatment, by_segment, by_policy = _subgroups(rows, alpha)
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
        campaign, window_days, groups, compare(rows, alpha), by_treatment, by_segment,
        tuple(warnings), by_policy, status, str(data_end),
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


Subgroups = list[dict[str, Any]]


def _subgroups(rows: pl.DataFrame, alpha: float) -> tuple[Subgroups, Subgroups, Subgroups]:
    """Compare per treatment arm, per segment and per policy, with Holm-adjusted p-values."""
    by_treatment = [
        {"treatment": name, **compare(arm_rows(rows, name), alpha)} for name in treatment_arms(rows)
    ]
    by_segment = [
        {"by": column, "segment": name, **compare(rows.filter(pl.col(column) == name), alpha)}
        for column in ("segment", "value_tier")
        for name in sorted(rows[column].drop_nulls().unique().to_list())
    ]
    policies = sorted(rows["policy"].unique().to_list())
    by_policy = (
        [{"policy": p, **compare(rows.filter(pl.col("policy") == p), alpha)} for p in policies]
        if len(policies) > 1
        else []
    )
    adjusted = with_holm([*by_treatment, *by_segment, *by_policy])
    cut = len(by_treatment) + len(by_segment)
    return adjusted[: len(by_treatment)], adjusted[len(by_treatment) : cut], adjusted[cut:]
