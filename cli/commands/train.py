from __future__ import annotations

import dataclasses
from enum import StrEnum
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
    progress_bar,
    settings,
    table,
    user_errors,
    utc_now,
)

app = typer.Typer()


class Kind(StrEnum):
    """Classifier."""

    hgb = "hgb"
    logreg = "logreg"


@app.command()
def train(
    as_of: AsOfOpt,
    horizon: Annotated[
        int, typer.Option("--horizon", min=1, help="Churned = no purchase within this many days.")
    ],
    name: Annotated[str | None, typer.Option("--name", help="Model name (default: churn).")] = None,
    snapshots: Annotated[
        int | None, typer.Option("--snapshots", min=2, help="Training cutoffs (default 12).")
    ] = None,
    kind: Annotated[Kind | None, typer.Option("--model", help="hgb or logreg.")] = None,
    clv_features: Annotated[
        bool | None,
        typer.Option("--clv-features/--no-clv-features", help="Add BG/NBD + Gamma-Gamma features."),
    ] = None,
    registry: RegistryOpt = None,
    store: StoreOpt = DEFAULT_STORE,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train a calibrated churn model on point-in-time snapshots and register it.

    Validates out of time on the newest snapshot against two baselines (recency alone,
    recency over typical spacing), then refits on all snapshots and saves
    models/NAME/VERSION/ with a card (sha256, versions, features, metrics).

    Example: crmkit train --as-of 2024-07-01 --horizon 90 --name churn
    """
    from crmkit.model import train as fit
    from crmkit.registry import Registry, parse_ref
    from crmkit.store import Store

    with user_errors():
        cfg = settings(config)
        model_cfg = dataclasses.replace(
            cfg.model,
            name=name or cfg.model.name,
            snapshots=snapshots or cfg.model.snapshots,
            kind=kind.value if kind else cfg.model.kind,
            clv_features=cfg.model.clv_features if clv_features is None else clv_features,
        )
        ref = parse_ref(model_cfg.name)
        reg = Registry(registry or Path(model_cfg.registry))
        with progress_bar("train", disabled=quiet) as advance:
            result = fit(
                Store(store),
                parse_date(as_of, "--as-of"),
                horizon,
                model_cfg,
                cfg.features,
                created=utc_now(),
                progress=advance,
            )
        version, directory = reg.save(ref.name, result.model, result.card)
    summary = {
        "model": f"{ref.name}:{version}",
        "path": str(directory),
        "training_rows": result.card["training_rows"],
        "churn_rate": result.card["churn_rate"],
        "validation_snapshot": result.card["validation_snapshot"],
        "validation_metrics": result.card["validation_metrics"],
        "top_features": result.card["top_features"][:10],
    }
    if as_json:
        emit_json(summary)
    if quiet:
        return
    metric_names = [c for c in result.metrics.columns if c != "model"]
    err.print(
        table(
            f"Out-of-time validation on {result.card['validation_snapshot']} "
            f"({result.card['horizon_days']}-day horizon)",
            ["model", *metric_names],
            [list(r) for r in result.metrics.iter_rows()],
        )
    )
    err.print(
        table(
            "Top features (permutation importance, ROC AUC drop)",
            ["feature", "auc_drop"],
            [
                [r["feature"], r["auc_drop"]]
                for r in result.importance.head(10).iter_rows(named=True)
            ],
        )
    )
    err.print(
        f"model {ref.name}:{version} saved to {directory} "
        f"({result.card['training_rows']:,} rows, churn rate {result.card['churn_rate']:.1%})"
    )
