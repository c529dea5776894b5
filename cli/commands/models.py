from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import typer
from crmkit_cli.common import (
    ConfigOpt,
    JsonOpt,
    QuietOpt,
    RegistryOpt,
    emit_json,
    err,
    human,
    open_registry,
    settings,
    user_errors,
)
from crmkit_cli.tables import table

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
    from crmkit.models.registry import list_models as rows_of

    with user_errors():
        cfg = settings(config)
        rows = rows_of(open_registry(cfg, registry))
    if as_json:
        emit_json(rows)
    if quiet:
        return
    cols = ["model", "created", "kind", "as_of", "horizon_days", "training_rows", "roc_auc"]
    human.print(table("Models", cols, [[r[c] for c in cols] for r in rows]))


@app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="NAME or NAME:VERSION of a registered model.")],
    registry: RegistryOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Summarise a model: provenance, validation, top features (--json: the whole card).

    Example: crmkit models show churn:3
    """
    from crmkit.models.registry import parse_ref

    with user_errors():
        cfg = settings(config)
        card = open_registry(cfg, registry).card(parse_ref(ref))
    if as_json:
        emit_json(card)
    if not quiet:
        render_card(card)


def render_uplift_card(card: Mapping[str, Any]) -> None:
    """Print an uplift model's campaigns, window and, per arm, its learner and Qini."""
    facts = [
        ["model", f"{card.get('name')}:{card.get('version')} (uplift)"],
        ["created", card.get("created")],
        ["campaigns", ", ".join(card.get("campaigns", []))],
        ["outcome window", f"{card.get('window_days')} days"],
        ["training rows", card.get("training_rows")],
        ["features", f"{len(card.get('features', []))} (version {card.get('feature_version')})"],
        ["signed", "yes" if card.get("signature") else "no"],
        ["sha256", str(card.get("sha256", ""))[:16] + "..."],
    ]
    human.print(table("Model card", ["", "value"], facts))
    rows = []
    for arm, info in card.get("arms", {}).items():
        learner = info.get("learner")
        qini = info.get("rankings", {}).get(f"{learner}-learner", {}).get("qini", {})
        second = info.get("runner_up") or {}
        evidence = (info.get("evidence") or {}).get("passed")
        rows.append([
            arm, learner, info.get("treated"), info.get("controls"), qini.get("value"),
            second.get("learner", ""), "" if evidence is None else ("yes" if evidence else "no"),
        ])  # fmt: skip
    columns = ["arm", "learner", "treated", "controls", "Qini", "runner-up", "evidence"]
    human.print(table("Arms (cross-fitted Qini)", columns, rows))
    for problem in card.get("skipped_arms", {}).values():
        err.print(f"left out: {problem}")


def render_card(card: Mapping[str, Any]) -> None:
    """Print what a reader of a model card looks for first."""
    if card.get("kind") == "uplift":
        render_uplift_card(card)
        return
    versions = card.get("versions", {})
    facts = [
        ["model", f"{card.get('name')}:{card.get('version')} ({card.get('kind')})"],
        ["created", card.get("created")],
        ["trained as of", f"{card.get('as_of')}, {card.get('horizon_days')}-day horizon"],
        ["training rows", card.get("training_rows")],
        ["churn rate", f"{card.get('churn_rate', float('nan')):.1%}"],
        ["calibration", card.get("calibration")],
        ["features", f"{len(card.get('features', []))} (version {card.get('feature_version')})"],
        ["crmkit / scikit-learn", f"{versions.get('crmkit')} / {versions.get('scikit-learn')}"],
        ["signed", "yes" if card.get("signature") else "no"],
        ["sha256", str(card.get("sha256", ""))[:16] + "..."],
    ]
    human.print(table("Model card", ["", "value"], facts))
    metrics = card.get("validation_metrics") or []
    if metrics:
        keys = ["roc_auc", "pr_auc", "brier", "ece"]
        rows = [[m.get("model"), *(m.get(k) for k in keys)] for m in metrics]
        title = f"Out-of-time validation on {card.get('validation_snapshot')}"
        human.print(table(title, ["model", "AUC", "PR AUC", "Brier", "ECE"], rows))
    top = card.get("top_features") or []
    if top:
        rows = [[t.get("feature"), t.get("auc_drop")] for t in top[:8]]
        human.print(table("Top features (AUC drop)", ["feature", "auc_drop"], rows))
