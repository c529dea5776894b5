from __future__ import annotations

from typing import Annotated

import typer
from crmkit_cli.common import (
    ConfigOpt,
    JsonOpt,
    QuietOpt,
    RegistryOpt,
    emit_json,
    err,
    open_registry,
    settings,
    table,
    user_errors,
)

app = typer.Typer(help="List and inspect registered models.", no_args_is_help=True)


@app.command("list")
def list_models(
    registry: RegistryOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """List model versions with as-of date, horizon and AUC.

    Example: crmkit models list --json
    """
    from crmkit.registry import list_models as rows_of

    with user_errors():
        cfg = settings(config)
        rows = rows_of(open_registry(cfg, registry))
    if as_json:
        emit_json(rows)
    if quiet:
        return
    cols = ["model", "created", "kind", "as_of", "horizon_days", "training_rows", "roc_auc"]
    err.print(table("Models", cols, [[r[c] for c in cols] for r in rows]))


@app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="NAME or NAME:VERSION of a registered model.")],
    registry: RegistryOpt = None,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Print a model's card (JSON): provenance, features, metrics.

    Example: crmkit models show churn:3
    """
    from crmkit.registry import parse_ref

    with user_errors():
        cfg = settings(config)
        card = open_registry(cfg, registry).card(parse_ref(ref))
    if not quiet:
        emit_json(card)
