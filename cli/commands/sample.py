from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from crmkit_cli.common import (
    JsonOpt,
    QuietOpt,
    emit_json,
    human,
    parse_date,
    progress_bar,
    user_errors,
)

if TYPE_CHECKING:
    from crmkit.simulate.history import SampleResult
    from crmkit.simulate.response import ResponseResult

app = typer.Typer()


class Format(StrEnum):
    """Output file format."""

    csv = "csv"
    parquet = "parquet"


@app.command()
def sample(
    customers: Annotated[
        int, typer.Option("--customers", metavar="N", min=1, max=100_000_000, help="Customers.")
    ] = 2000,
    start: Annotated[
        str, typer.Option("--start", metavar="DATE", help="First day (YYYY-MM-DD).")
    ] = "2023-01-01",
    end: Annotated[
        str, typer.Option("--end", metavar="DATE", help="Day after the last (YYYY-MM-DD).")
    ] = "2025-01-01",
    seed: Annotated[
        int, typer.Option("--seed", metavar="N", min=0, max=2**32 - 1, help="Random seed.")
    ] = 0,
    out: Annotated[Path, typer.Option("--out", metavar="PATH", help="Output directory.")] = Path(
        "sample"
    ),
    fmt: Annotated[Format, typer.Option("--format", help="File format.")] = Format.csv,
    weekly: Annotated[
        float,
        typer.Option(
            "--weekly", metavar="AMPLITUDE", min=0, max=0.99, help="Weekly seasonality amplitude."
        ),
    ] = 0.0,
    yearly: Annotated[
        float,
        typer.Option(
            "--yearly", metavar="AMPLITUDE", min=0, max=0.99, help="Yearly (December) amplitude."
        ),
    ] = 0.0,
    spend_model: Annotated[
        str, typer.Option("--spend-model", metavar="MODEL", help="lognormal or gamma-gamma.")
    ] = "lognormal",
    respond_to: Annotated[
        Path | None,
        typer.Option(
            "--respond-to",
            metavar="FILE",
            help="Simulate purchases after this target list instead.",
        ),
    ] = None,
    uplift: Annotated[
        str,
        typer.Option(
            "--uplift", metavar="PAIRS", help="True uplift per treatment: call=0.1,email=0.02."
        ),
    ] = "",
    window: Annotated[
        int,
        typer.Option("--window", metavar="DAYS", min=1, max=3650, help="Response window (days)."),
    ] = 60,
    heterogeneous: Annotated[
        bool,
        typer.Option(
            "--heterogeneous",
            help="Uplift by customer type: persuadables, sure things, lost causes, sleeping dogs.",
        ),
    ] = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Generate synthetic transactions with known ground truth.

    Writes OUT/transactions.csv and OUT/ground_truth.csv (true purchase rate, dropout
    probability and dropout date of every customer). Same seed, same bytes.

    With --respond-to LIST, simulate instead how the customers of a target list buy in the
    WINDOW days after it, with a known true uplift per treatment in the treatment group:
    OUT/response.csv (to ingest) and OUT/response_truth.csv. --heterogeneous makes the
    uplift depend on the customer (3x for persuadables, -2x for sleeping dogs, 0 else).

    Example: crmkit sample --customers 5000 --start 2023-01-01 --end 2025-01-01 --seed 7 --out data
    """
    from crmkit.simulate.history import SimulationConfig, write_sample
    from crmkit.simulate.response import parse_uplift, write_response

    result: SampleResult | ResponseResult
    with user_errors():
        if respond_to is not None:
            result = write_response(
                respond_to, parse_uplift(uplift), window, seed, out, heterogeneous=heterogeneous
            )
        else:
            cfg = SimulationConfig(
                customers=customers,
                start=parse_date(start, "--start"),
                end=parse_date(end, "--end"),
                seed=seed,
                spend_model=spend_model,  # type: ignore[arg-type]
                weekly_amplitude=weekly,
                yearly_amplitude=yearly,
            )
            with progress_bar("sample", disabled=quiet) as advance:
                result = write_sample(cfg, out, fmt=fmt.value, progress=advance)
    if as_json:
        emit_json(result.summary())
    if not quiet:
        human.print(result.describe())
