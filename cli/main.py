"""The ``crmkit`` command: composes one sub-app per command module."""

from __future__ import annotations

from typing import Annotated

import typer
from crmkit_cli.commands import (
    clv,
    evaluate,
    features,
    ingest,
    models,
    report,
    run,
    sample,
    score,
    segment,
    store,
    targets,
    train,
)

from crmkit import __version__

app = typer.Typer(
    name="crmkit",
    help="Customer segmentation and churn retention from the command line.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"crmkit {__version__}")
        raise typer.Exit


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Segment customers and keep the valuable ones who are drifting away."""


app.add_typer(sample.app)
app.add_typer(ingest.app)
app.add_typer(store.app, name="store")
app.add_typer(features.app)
app.add_typer(segment.app)
app.add_typer(train.app)
app.add_typer(models.app, name="models")
app.add_typer(score.app)
app.add_typer(targets.app)
app.add_typer(run.app)
app.add_typer(evaluate.app)
app.add_typer(report.app)
app.add_typer(clv.app, name="clv")


def main() -> None:
    """Console-script entry point."""
    app()
