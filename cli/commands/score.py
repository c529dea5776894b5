from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from crmkit_cli.common import (
    DEFAULT_STORE,
    AsOfOpt,
    ConfigOpt,
    JsonOpt,
    QuietOpt,
    RegistryOpt,
    StoreOpt,
    emit_json,
    err,
    parse_date,
    settings,
    table,
    user_errors,
)

app = typer.Typer()


@app.command()
def score(
    as_of: AsOfOpt,
    out: Annotated[Path, typer.Option("--out", help="Output file (.csv or .parquet).")],
    model: Annotated[
        str | None, typer.Option("--model", help="NAME or NAME:VERSION (default: latest churn).")
    ] = None,
    registry: RegistryOpt = None,
    store: StoreOpt = DEFAULT_STORE,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Score every eligible customer: churn probability, risk decile, value at risk.

    The model file's sha256 is checked against its card before it is loaded (exit 5 on a
    mismatch, a missing model or a feature schema that does not match).

    Example: crmkit score --as-of 2024-07-01 --model churn --out scores.parquet
    """
    from crmkit.export import write_table
    from crmkit.registry import Registry, parse_ref
    from crmkit.scoring import score_customers
    from crmkit.store import Store

    with user_errors():
        cfg = settings(config)
        ref = parse_ref(model or cfg.model.name)
        result = score_customers(
            Store(store),
            parse_date(as_of, "--as-of"),
            ref,
            Registry(registry or Path(cfg.model.registry)),
            cfg.segments,
        )
        write_table(result.frame, out)
    summary = {**result.summary(), "out": str(out)}
    if as_json:
        emit_json(summary)
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}")
    if quiet:
        return
    rows = [[k.replace("_", " "), v] for k, v in summary.items() if k not in ("warnings",)]
    err.print(table(f"Scores as of {as_of} -> {out}", ["", "value"], rows))
    deciles = result.deciles()
    err.print(
        table(
            "Risk deciles (10 = highest churn risk)",
            ["decile", "customers", "mean probability", "value at risk"],
            [list(d.values()) for d in deciles],
        )
    )
