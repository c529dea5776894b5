"""Tables for the terminal: columns that fit the width, numbers right-aligned."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text


class FitTable:
    """A table that is never cut: drawn as a grid when it fits, else row by row.

    At 80 columns (a default terminal, cron mail) a wide grid would cut cells to ``…``;
    when the grid's natural width exceeds the space, each row is printed instead as its
    first cell followed by one ``column: value`` line per other cell.
    """

    def __init__(self, title: str, columns: list[str], rows: list[list[Any]]) -> None:
        self.title = title
        self.columns = columns
        self.rows = rows

    def grid(self) -> Table:
        """Return the rich table; numbers are right-aligned."""
        out = Table(title=self.title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
        for i, name in enumerate(self.columns):
            numeric = bool(self.rows) and all(_numeric(row[i]) for row in self.rows)
            out.add_column(name, justify="right" if numeric else "left", no_wrap=True)
        for row in self.rows:
            out.add_row(*(fmt(v) for v in row))
        return out

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        grid = self.grid()
        unbounded = options.update_width(100_000)
        if Measurement.get(console, unbounded, grid).maximum <= options.max_width:
            yield grid
            return
        yield Text(self.title, style="italic")
        for row in self.rows:
            yield Text(fmt(row[0]), style="bold")
            for name, value in zip(self.columns[1:], row[1:], strict=True):
                if fmt(value):
                    yield Text(f"  {name}: {fmt(value)}")


def _numeric(value: Any) -> bool:  # noqa: ANN401
    if isinstance(value, str):
        return bool(value) and value.lstrip("+-").replace(",", "").replace(".", "").isdigit()
    return isinstance(value, int | float) and not isinstance(value, bool)


def table(title: str, columns: list[str], rows: list[list[Any]]) -> FitTable:
    """Build a table for stderr that fits any terminal width (see :class:`FitTable`)."""
    return FitTable(title, columns, rows)


def fmt(value: Any) -> str:  # noqa: ANN401
    """Format a cell: thousands separators; one decimal, or 3 significant digits below 1."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 1 else f"{value:.3g}"
    return str(value)
