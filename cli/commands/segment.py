from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from crmkit_cli.common import (
    DEFAULT_STORE,
    AsOfOpt,
    ConfigOpt,
    JsonOpt,
    QuietOpt,
    StoreOpt,
    emit_json,
    human,
    parse_date,
    settings,
    user_errors,
)
from crmkit_cli.tables import table

if TYPE_CHECKING:
    from crmkit.segments.summary import SegmentSummary

app = typer.Typer()


class By(StrEnum):
    """Segmentation method."""

    rfm = "rfm"
    value = "value"
    kmeans = "kmeans"


def _parse_k(text: str) -> int | str:
    from crmkit.errors import UsageError

    if text == "auto":
        return "auto"
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise UsageError(f"--k: {text!r} is neither a positive number nor 'auto'")


@app.command()
def segment(
    as_of: AsOfOpt,
    by: Annotated[By, typer.Option("--by", help="rfm, value (tiers) or kmeans.")],
    out: Annotated[
        Path, typer.Option("--out", metavar="PATH", help="Output file (.csv or .parquet).")
    ],
    k: Annotated[
        str, typer.Option("--k", metavar="N|auto", help="Clusters for kmeans: a number or 'auto'.")
    ] = "auto",
    store: StoreOpt = DEFAULT_STORE,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Segment customers by RFM, value tier or k-means.

    As of a date, with a profile table per segment.

    The table shows customers, share of customers and of value, mean recency and frequency
    per segment, and how much value the top 5% and 20% of customers hold.

    Example: crmkit segment --as-of 2024-07-01 --by value --out tiers.csv
    """
    from crmkit.io.export import write_table
    from crmkit.segments.apply import segment_store
    from crmkit.store.core import Store

    with user_errors():
        date = parse_date(as_of, "--as-of")
        frame, summary = segment_store(
            Store(store),
            date,
            by.value,
            settings(config),
            _parse_k(k),  # type: ignore[arg-type]
        )
        write_table(frame, out)
    if as_json:
        emit_json({**summary.to_json(), "as_of": str(date), "out": str(out)})
    if not quiet:
        render_segments(summary, f"Segments by {by.value} as of {date}", out)


def render_segments(summary: SegmentSummary, title: str, out: Path) -> None:
    """Print the segment table, cluster profiles when there are any, and value concentration."""
    rows = [
        [
            str(r["segment"]),
            r["customers"],
            f"{r['customer_share']:.1%}",
            f"{r['value_share']:.1%}",
            r["mean_recency_days"],
            r["mean_frequency"],
        ]
        for r in summary.table.iter_rows(named=True)
    ]
    title = f"{title} ({summary.customers:,} customers) -> {out}"
    cols = ["segment", "customers", "customers %", "value %", "recency (d)", "frequency"]
    human.print(table(title, cols, rows))
    if summary.profile is not None:
        profile = summary.profile
        human.print(
            table(
                "Cluster profiles (means)",
                profile.columns,
                [list(r) for r in profile.iter_rows()],
            )
        )
    human.print(
        f"value concentration: top 5% of customers hold {summary.top5_value_share:.1%}, "
        f"top 20% hold {summary.top20_value_share:.1%}"
    )
