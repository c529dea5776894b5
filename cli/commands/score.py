from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from crmkit_cli.common import (
    DEFAULT_STORE,
    AsOfOpt,
    ConfigOpt,
    ExecutorOpt,
    JsonOpt,
    QuietOpt,
    RegistryOpt,
    SchedulerOpt,
    StoreOpt,
    computing,
    emit_json,
    human,
    parse_date,
    progress_bar,
    registry_path,
    settings,
    user_errors,
    warn,
)
from crmkit_cli.tables import table

if TYPE_CHECKING:
    from crmkit.models.scoring import ScoreResult

app = typer.Typer()


@app.command()
def score(
    as_of: AsOfOpt,
    out: Annotated[
        Path, typer.Option("--out", metavar="PATH", help="Output file (.csv or .parquet).")
    ],
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            metavar="NAME[:VERSION]",
            help="NAME or NAME:VERSION (default: latest churn).",
        ),
    ] = None,
    executor: ExecutorOpt = None,
    scheduler: SchedulerOpt = None,
    registry: RegistryOpt = None,
    store: StoreOpt = DEFAULT_STORE,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Score eligible customers: churn probability and value at risk.

    Every eligible customer gets a churn probability, risk decile and value at risk.

    The model file's sha256 is checked against its card before it is loaded (exit 5 on a
    mismatch, a missing model or a feature schema that does not match).

    Example: crmkit score --as-of 2024-07-01 --model churn --out scores.parquet
    """
    from crmkit.campaigns.daily import RunOptions, score_for
    from crmkit.store.core import Store

    with user_errors():
        cfg = settings(config)
        date = parse_date(as_of, "--as-of")
        options = RunOptions(date, "score", None, out, registry_path(cfg, registry), model)
        with computing(cfg, executor, scheduler), progress_bar("score", disabled=quiet) as step:
            result = score_for(Store(store), options, cfg, progress=step)
        result.write(out)
    summary = {**result.summary(), "out": str(out)}
    if as_json:
        emit_json(summary)
    for warning in result.warnings:
        warn(warning, quiet=quiet)
    if not quiet:
        render_scores(result, summary, f"Scores as of {as_of} -> {out}")


def render_scores(result: ScoreResult, summary: dict[str, Any], title: str) -> None:
    """Print the headline numbers and the risk deciles."""
    rows = [[k.replace("_", " "), v] for k, v in summary.items() if k not in ("warnings",)]
    human.print(table(title, ["", "value"], rows))
    deciles = result.deciles()
    human.print(
        table(
            "Risk deciles (10 = highest churn risk)",
            ["decile", "customers", "mean probability", "value at risk"],
            [list(d.values()) for d in deciles],
        )
    )
