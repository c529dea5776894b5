from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from crmkit_cli.common import (
    DEFAULT_STORE,
    AsOfOpt,
    ConfigOpt,
    ExecutorOpt,
    JsonOpt,
    OutcomesOpt,
    QuietOpt,
    RegistryOpt,
    SchedulerOpt,
    StoreOpt,
    computing,
    emit_json,
    err,
    human,
    open_registry,
    outcomes_from,
    parse_date,
    progress_bar,
    settings,
    user_errors,
    utc_now,
    warn,
)
from crmkit_cli.tables import table

app = typer.Typer(help="Learn whom each treatment changes, from campaigns.", no_args_is_help=True)

NameOpt = Annotated[str, typer.Option("--name", metavar="NAME", help="Model name in the registry.")]


@app.command("train")
def train_command(
    campaign: Annotated[
        str, typer.Option("--campaign", metavar="ID[,ID...]", help="Campaigns in the ledger.")
    ],
    window: Annotated[
        int,
        typer.Option(
            "--window", metavar="DAYS", min=1, max=3650, help="Outcome window after assignment."
        ),
    ],
    name: NameOpt = "uplift",
    learner: Annotated[
        str,
        typer.Option(
            "--learner",
            metavar="auto|t|x|dr|lt|li|ta",
            help="Learner (default auto: t, x, lt and, with attributes, ta compared).",
        ),
    ] = "auto",
    outcomes: OutcomesOpt = None,
    executor: ExecutorOpt = None,
    scheduler: SchedulerOpt = None,
    registry: RegistryOpt = None,
    store: StoreOpt = DEFAULT_STORE,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train per-treatment uplift models on randomised campaigns and validate them.

    Every treatment and control assignment whose outcome window has passed is a training
    row; validation is cross-fitted over customers, beside random, churn-risk and
    value-at-risk rankings. --outcomes counts a file's purchases as outcomes without
    ingesting it (a simulated response). Exit 3: no control group, windows not passed, too
    few responders.

    Example: crmkit uplift train --campaign winback --window 60
    """
    from crmkit.campaigns.names import check_campaign
    from crmkit.errors import UsageError
    from crmkit.models.uplift import train_uplift
    from crmkit.models.uplift_learners import LEARNERS
    from crmkit.store.core import Store

    with user_errors():
        campaigns = [c.strip() for c in campaign.split(",") if c.strip()]
        for c in campaigns:
            check_campaign(c)
        if learner not in ("auto", *LEARNERS):
            raise UsageError(f"--learner {learner!r}: use auto, {', '.join(LEARNERS)}")
        cfg = settings(config)
        with (
            computing(cfg, executor, scheduler),
            outcomes_from(outcomes) as (extra, note),
            progress_bar("uplift train", disabled=quiet) as advance,
        ):
            result = train_uplift(
                Store(store), campaigns, window, cfg.features, created=utc_now(), learner=learner,
                extra=extra, all_attributes=cfg.model.uplift_attributes == "all",
                progress=advance,
            )  # fmt: skip
        if note:
            warn(note, quiet=quiet, kind="note")
        version, directory = open_registry(cfg, registry).save(name, result.model, result.card)
    if as_json:
        emit_json({"model": f"{name}:{version}", "path": str(directory), **result.card["arms"]})
    if not quiet:
        render_training(result.card, f"{name}:{version}", directory)


def _range(interval: dict[str, float]) -> str:
    return f"[{interval['low']:+.2f}, {interval['high']:+.2f}]"


def _runner_up(second: Mapping[str, Any] | None) -> str:
    if not second:
        return ""
    return f" (runner-up {second['learner']}, Qini {second['qini']:+.2f})"


def _rankings_table(arm: str, rankings: Mapping[str, Any]) -> Any:  # noqa: ANN401
    """Tabulate the rankings of one arm: Qini with its interval, uplift in the top shares."""
    rows = [
        [
            name,
            f"{r['qini']['value']:+.2f}",
            _range(r["qini"]),
            f"{r['uplift_at_10']['value']:+.3f}",
            f"{r['uplift_at_30']['value']:+.3f}",
        ]
        for name, r in rankings.items()
    ]
    columns = ["ranking", "Qini", "95% interval", "top 10%", "top 30%"]
    return table(f"Cross-fitted validation, arm {arm} (95% intervals)", columns, rows)


def render_training(card: Mapping[str, Any], model: str, directory: Path) -> None:
    """Print, per arm, the groups and the cross-fitted rankings side by side."""
    for arm, info in card["arms"].items():
        human.print(
            f"arm {arm}: {info['rows']:,} rows, {info['treated']:,} treated "
            f"({info['response_treated']:.1%} bought), {info['controls']:,} controls "
            f"({info['response_control']:.1%} bought); learner {info['learner']}"
            + _runner_up(info.get("runner_up"))
        )
        human.print(_rankings_table(arm, info["rankings"]))
        later = info.get("out_of_time")
        if later:
            human.print(
                f"forward in time (fitted before {later['validated_from']}, "
                f"{later['rows']:,} rows from it): Qini {later['model']['qini']['value']:+.2f} "
                f"{_range(later['model']['qini'])}, random {later['random']['qini']['value']:+.2f}"
            )
    from crmkit.models.uplift_evidence import arm_evidence

    for arm, verdict in arm_evidence(card).items():
        human.print(("" if verdict.passed else "NO EVIDENCE: ") + verdict.describe(arm))
    for problem in card.get("skipped_arms", {}).values():
        err.print(f"[yellow]warning:[/yellow] left out: {problem}")
    human.print(f"uplift model {model} saved to {directory}")


@app.command("score")
def score_command(
    as_of: AsOfOpt,
    out: Annotated[
        Path, typer.Option("--out", metavar="PATH", help="Output file (.csv or .parquet).")
    ],
    model: Annotated[
        str, typer.Option("--model", metavar="NAME[:VERSION]", help="Uplift model.")
    ] = "uplift",
    executor: ExecutorOpt = None,
    scheduler: SchedulerOpt = None,
    registry: RegistryOpt = None,
    store: StoreOpt = DEFAULT_STORE,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Predict, per customer and treatment, the uplift in purchase probability and revenue.

    Example: crmkit uplift score --as-of 2025-01-01 --out uplift.csv
    """
    from crmkit.io.export import write_table
    from crmkit.models.registry import parse_ref
    from crmkit.models.uplift import score_uplift, uplift_summary
    from crmkit.store.core import Store

    with user_errors():
        cfg = settings(config)
        date = parse_date(as_of, "--as-of")
        registry_ = open_registry(cfg, registry)
        with computing(cfg, executor, scheduler):
            frame, card = score_uplift(
                Store(store), date, registry_, parse_ref(model),
                outside=cfg.targeting.uplift_outside,
            )  # fmt: skip
        write_table(frame, out)
    summary = {**uplift_summary(frame, card), "out": str(out)}
    if as_json:
        emit_json(summary)
    if not quiet:
        rows = [
            [k.replace("_", " "), ", ".join(v) if isinstance(v, list) else v]
            for k, v in summary.items()
        ]
        human.print(table(f"Uplift as of {as_of} -> {out}", ["", "value"], rows))
