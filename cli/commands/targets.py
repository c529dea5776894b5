from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from crmkit_cli.common import (
    DEFAULT_STORE,
    AsOfOpt,
    ConfigOpt,
    JsonOpt,
    QuietOpt,
    RegistryOpt,
    StoreOpt,
    ToOpt,
    ToTableOpt,
    destination,
    emit_json,
    human,
    parse_date,
    progress_bar,
    registry_path,
    settings,
    user_errors,
    warn,
)
from crmkit_cli.tables import FitTable, table

from crmkit.config.loading import overlay

app = typer.Typer()


class Format(StrEnum):
    """Target list file format."""

    csv = "csv"
    parquet = "parquet"


CampaignOpt = Annotated[
    str, typer.Option("--campaign", metavar="ID", help="Campaign id (letters, digits, _ . -).")
]
OutDirOpt = Annotated[
    Path, typer.Option("--out", metavar="PATH", help="Directory of target lists.")
]
FormatOpt = Annotated[Format, typer.Option("--format", help="csv or parquet.")]


class Policy(StrEnum):
    """How the list is chosen."""

    value_at_risk = "value_at_risk"
    uplift = "uplift"


PolicyOpt = Annotated[
    Policy | None,
    typer.Option(
        "--policy",
        help="value_at_risk (churn risk x value) or uplift (expected incremental profit of "
        "[targeting] uplift_model); default [targeting] policy.",
    ),
]


def spend_line(spend: dict[str, Any]) -> str:
    """One line: contacts and spend per treatment, the total, and the budget."""
    parts = []
    for name, item in spend["by_treatment"].items():
        cost = "no cost set" if item["spend"] is None else f"{item['spend']:,.2f}"
        parts.append(f"{name} {item['contacts']:,} ({cost})")
    budget = spend["budget"]
    against = f" of budget {budget:,.2f}" if budget is not None else ""
    line = f"spend {spend['total']:,.2f}{against}: {', '.join(parts) or 'no contacts'}"
    profit = spend.get("expected_profit")
    if profit:
        line += f"; expected incremental profit {profit['value']:,.2f}"
        if profit["low"] != profit["high"]:
            line += f" (model band {profit['low']:,.2f} to {profit['high']:,.2f})"
    return line + bought_text(spend)


def bought_text(spend: dict[str, Any]) -> str:
    """Return what the budget bought per treatment and the return of its last pound, or ""."""
    parts = [
        f"{name} {item['expected_customers']:,.1f} customers, {item['expected_value']:,.2f}"
        for name, item in (spend.get("bought") or {}).items()
    ]
    text = f"\nexpected incremental: {'; '.join(parts)}" if parts else ""
    marginal = spend.get("marginal_return")
    if marginal is not None:
        text += f"\nlast pound spent returns {marginal + 1:,.2f} (net {marginal:+,.2f})"
    return text


def balance_table(balance: list[dict[str, Any]]) -> FitTable:
    """Return the groups' sizes, covariate means and standardised differences as a table."""
    covariates = ("churn_probability", "customer_value", "recency_days")

    def smd(value: float | None) -> str:
        return "" if value is None or value != value else f"{value:+.2f}"

    rows = [
        [
            b["group"],
            b["customers"],
            *(b[f"mean_{c}"] for c in covariates),
            *(smd(b[f"smd_{c}"]) for c in covariates),
        ]
        for b in balance
    ]
    cols = ["group", "n", "churn p", "value", "recency", "SMD p", "SMD val", "SMD rec"]
    return table("Groups and balance (SMD against treatment)", cols, rows)


def render_targets(summary: dict[str, Any], *, quiet: bool) -> None:
    """Print the group sizes, balance table, exclusions and warnings of a target list."""
    for warning in summary["warnings"]:
        warn(warning, quiet=quiet)
    if quiet:
        return
    human.print(balance_table(summary["balance"]))
    excluded = ", ".join(f"{k} {v:,}" for k, v in summary["excluded"].items())
    human.print(f"customers: {excluded}")
    human.print(f"list {summary['status']}: {summary['contacts']:,} to contact")
    human.print(spend_line(summary["spend"]))
    if summary["contact_file"] is None:
        human.print("dry run: nothing was written")
        return
    human.print(f"contact file: {summary['contact_file']}")
    human.print(f"assignment file: {summary['assignment_file']}")
    if summary.get("destination"):
        human.print(destination_line(summary["destination"]))


def destination_line(written: dict[str, Any]) -> str:
    """One line: the table the list went to, rows written and rows of the day replaced."""
    return (
        f"table {written['table']} in {written['uri']}: {written['inserted']:,} row(s) "
        f"written, {written['replaced']:,} of the day replaced"
    )


DryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run", help="Build the list and its summary; write no ledger row and no file."
    ),
]
ReplaceOpt = Annotated[
    bool,
    typer.Option(
        "--replace",
        help="Replace the day's recorded list (ledger and files) when it would change.",
    ),
]


@app.command()
def targets(
    as_of: AsOfOpt,
    campaign: CampaignOpt,
    out: OutDirOpt = Path("out"),
    size: Annotated[
        int | None, typer.Option("--size", metavar="N", min=0, max=10**9, help="Most customers.")
    ] = None,
    budget: Annotated[
        float | None,
        typer.Option(
            "--budget",
            metavar="AMOUNT",
            min=0,
            max=1e15,
            help="Most spent on contacts ([targeting.costs] per treatment).",
        ),
    ] = None,
    control_fraction: Annotated[
        float | None,
        typer.Option(
            "--control-fraction", metavar="SHARE", min=0, max=0.99, help="Control share (0.2)."
        ),
    ] = None,
    optouts: Annotated[
        Path | None,
        typer.Option("--optouts", metavar="FILE", help="File of customer ids never to contact."),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", metavar="NAME[:VERSION]", help="NAME or NAME:VERSION.")
    ] = None,
    policy: PolicyOpt = None,
    fmt: FormatOpt = Format.csv,
    replace: ReplaceOpt = False,
    dry_run: DryRunOpt = False,
    to: ToOpt = None,
    to_table: ToTableOpt = None,
    registry: RegistryOpt = None,
    store: StoreOpt = DEFAULT_STORE,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Write the day's list: a contact and an assignment file (and a database table).

    Ranks customers by expected value at risk (or, with --policy uplift, by the expected
    incremental profit of each treatment), lets low-value ones go, honours opt-outs, the
    cool-down and the universal holdout, and records every assignment in the store's
    ledger. Writes OUT/CAMPAIGN/AS_OF.contacts.csv (treatment group: who to contact, with
    which treatment) and OUT/CAMPAIGN/AS_OF.assignments.csv (every group, for evaluation).
    A day's list is fixed once recorded: a re-run that would change it exits 3 unless
    --replace is given. With --to URI the contact list also replaces that campaign's
    rows of the day in a database table, in one transaction.

    Example: crmkit targets --as-of 2025-01-01 --campaign winback --size 500 --out lists
    """
    from crmkit.campaigns.daily import RunOptions, targets_for
    from crmkit.store.core import Store

    with user_errors():
        cfg = overlay(
            settings(config),
            "targeting",
            size=size,
            budget=budget,
            control_fraction=control_fraction,
            optouts=str(optouts) if optouts else None,
            policy=policy.value if policy else None,
        )
        day = parse_date(as_of, "--as-of")
        options = RunOptions(
            day, campaign, None, out, registry_path(cfg, registry), model, fmt=fmt.value,
            replace=replace, dry_run=dry_run, destination=destination(cfg, to, to_table),
        )  # fmt: skip
        with progress_bar("targets", disabled=quiet) as step:
            result = targets_for(Store(store), options, cfg, progress=step)
    summary = result.summary()
    if as_json:
        emit_json(summary)
    render_targets(summary, quiet=quiet)
