from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

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
    open_registry,
    parse_date,
    progress_bar,
    settings,
    user_errors,
    utc_now,
)
from crmkit_cli.tables import table

if TYPE_CHECKING:
    from crmkit.models.churn import TrainResult

app = typer.Typer()


class Kind(StrEnum):
    """Classifier."""

    blend = "blend"
    hgb = "hgb"
    logreg = "logreg"


@app.command()
def train(
    as_of: AsOfOpt,
    horizon: Annotated[
        int,
        typer.Option(
            "--horizon",
            metavar="DAYS",
            min=1,
            max=3650,
            help="Churned = no purchase within this many days.",
        ),
    ],
    name: Annotated[
        str | None, typer.Option("--name", metavar="NAME", help="Model name (default: churn).")
    ] = None,
    snapshots: Annotated[
        int | None,
        typer.Option(
            "--snapshots", metavar="N", min=2, max=520, help="Training cutoffs (default 16)."
        ),
    ] = None,
    kind: Annotated[
        Kind | None, typer.Option("--model", help="blend (default), hgb or logreg.")
    ] = None,
    clv_features: Annotated[
        bool | None,
        typer.Option("--clv-features/--no-clv-features", help="Add BG/NBD + Gamma-Gamma features."),
    ] = None,
    executor: ExecutorOpt = None,
    scheduler: SchedulerOpt = None,
    registry: RegistryOpt = None,
    store: StoreOpt = DEFAULT_STORE,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train a calibrated churn model and register it.

    Fitted on point-in-time snapshots before the as-of date.

    Validates out of time on the newest snapshot against two baselines (recency alone,
    recency over typical spacing), then refits on all snapshots and saves
    models/NAME/VERSION/ with a card (sha256, versions, features, metrics).

    Example: crmkit train --as-of 2024-07-01 --horizon 90 --name churn
    """
    from crmkit.config.loading import overlay
    from crmkit.models.churn import train_and_save
    from crmkit.store.core import Store

    with user_errors():
        cfg = settings(config)
        kind_name = kind.value if kind else None
        cfg = overlay(
            cfg, "model", name=name, snapshots=snapshots, kind=kind_name, clv_features=clv_features
        )
        with computing(cfg, executor, scheduler), progress_bar("train", disabled=quiet) as advance:
            result = train_and_save(
                Store(store),
                parse_date(as_of, "--as-of"),
                horizon,
                cfg,
                open_registry(cfg, registry),
                created=utc_now(),
                progress=advance,
            )
    if as_json:
        emit_json(result.summary())
    if not quiet:
        render_train(result)


#: Short column and row names that keep the validation table within 80 columns.
METRIC_LABELS = {
    "roc_auc": "AUC",
    "pr_auc": "PR AUC",
    "brier": "Brier",
    "log_loss": "LogLoss",
    "top_decile_lift": "Lift10",
    "top_decile_capture": "Capt10",
    "ece": "ECE",
}
MODEL_LABELS = {"baseline_recency": "recency", "baseline_recency_frequency": "recency/spacing"}


def render_train(result: TrainResult) -> None:
    """Print the out-of-time validation, the top features and where the model went."""
    metric_names = [c for c in result.metrics.columns if c != "model"]
    rows = [
        [
            MODEL_LABELS.get(r["model"], r["model"].removesuffix(" (calibrated)")),
            *(r[m] for m in metric_names),
        ]
        for r in result.metrics.iter_rows(named=True)
    ]
    human.print(
        table(
            f"Out-of-time validation on {result.card['validation_snapshot']} "
            f"({result.card['horizon_days']}-day horizon; Lift10 and Capt10: lift and share "
            f"of churners in the top 10%; {result.card['calibration']} calibration)",
            ["model", *(METRIC_LABELS.get(m, m) for m in metric_names)],
            rows,
        )
    )
    top = [[r["feature"], r["auc_drop"]] for r in result.importance.head(10).iter_rows(named=True)]
    title = "Top features (permutation importance, ROC AUC drop)"
    human.print(table(title, ["feature", "auc_drop"], top))
    human.print(
        f"model {result.saved_as} saved to {result.directory} "
        f"({result.card['training_rows']:,} rows, churn rate {result.card['churn_rate']:.1%})"
    )
