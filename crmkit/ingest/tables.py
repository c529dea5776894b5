"""Typed sources staged for ingest: Parquet files and database query results.

Ingest validates text fields (:mod:`crmkit.ingest.plan`), and takes a typed timestamp and
float or integer amounts as they are (:func:`keeps_type`). A typed source's other values
are written as text in the canonical forms the parsers read first: timestamps as
``YYYY-MM-DD HH:MM:SS[.ffffff]`` (time-zone aware ones in UTC), dates as ``YYYY-MM-DD``,
numbers as their shortest exact decimal text. The same values from a CSV export, a
Parquet file or a database table therefore become the same stored rows.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from queue import Empty, Queue
from typing import Final, TypeVar

import polars as pl

from crmkit import schema
from crmkit.errors import BadInputError

T = TypeVar("T")
TIMESTAMP_TEXT: Final = "%Y-%m-%d %H:%M:%S%.f"
STAGED_ROW_GROUP: Final = 65_536


def text_expr(name: str, dtype: pl.DataType, source: str) -> pl.Expr:
    """Return column ``name`` of type ``dtype`` as text in its canonical form.

    Raises
    ------
    BadInputError
        A list of lists or structs, which has no text form (select the columns you need).
    """
    column = pl.col(name)
    if isinstance(dtype, pl.BaseExtension):
        # e.g. PostgreSQL numeric read through ADBC: its text kept in an extension type
        column, dtype = column.ext.storage(), dtype.ext_storage()  # type: ignore[assignment]
    return _text(column, dtype, name, source).alias(name)


def _text(column: pl.Expr, dtype: pl.DataType, name: str, source: str) -> pl.Expr:
    if dtype == pl.String:
        return column
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            column = column.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return column.dt.strftime(TIMESTAMP_TEXT)
    if dtype == pl.Date:
        return column.dt.strftime("%Y-%m-%d")
    if dtype.is_numeric() or dtype in (pl.Boolean, pl.Categorical, pl.Enum, pl.Time, pl.Null):
        return column.cast(pl.String)
    if dtype == pl.Binary:
        return column.bin.encode("hex")
    if isinstance(dtype, pl.Struct):
        return pl.when(column.is_not_null()).then(column.struct.json_encode())
    if isinstance(dtype, (pl.List, pl.Array)) and not dtype.inner.is_nested():
        items = column.cast(pl.List(pl.String)).list.join(",")
        return pl.concat_str(pl.lit("["), items, pl.lit("]"))
    raise BadInputError(
        f"{source}: column {name!r} is of type {dtype}, which ingest cannot read as text; "
        "leave it out (a --query that selects the columns you need)"
    )


def typed_expr(name: str, dtype: pl.DataType) -> pl.Expr:
    """Column ``name`` as a naive UTC ``Datetime("us")`` (timestamps, dates) or Float64."""
    column = pl.col(name)
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        column = column.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    target = pl.Datetime("us") if dtype.is_temporal() else pl.Float64
    return column.cast(target).alias(name)


def keeps_type(canonical: str, dtype: pl.DataType) -> bool:
    """Tell whether a source column of ``dtype`` mapped to ``canonical`` is taken as it is.

    Timestamps and dates for the date, integers and floats for amounts, quantities and
    prices; anything else (decimals among them) is written as text and parsed.
    """
    if canonical == schema.TS:
        return isinstance(dtype, (pl.Datetime, pl.Date))
    if canonical in schema.NUMERIC_COLUMNS:
        return dtype.is_integer() or dtype.is_float()
    return False


def as_text(
    frame: pl.LazyFrame | pl.DataFrame, source: str, keep: frozenset[str] = frozenset()
) -> pl.LazyFrame:
    """Every column of ``frame`` as text (:func:`text_expr`) but those in ``keep``.

    Columns in ``keep`` become :func:`typed_expr`'s types; the order stays.
    """
    lazy = frame.lazy()
    types = lazy.collect_schema()
    return lazy.select(
        typed_expr(n, t) if n in keep else text_expr(n, t, source) for n, t in types.items()
    )


def parquet_schema(path: Path) -> dict[str, pl.DataType]:
    """Return the column types of a Parquet file.

    Raises
    ------
    BadInputError
        When the file is not Parquet (or is cut short).
    """
    try:
        return dict(pl.read_parquet_schema(path))
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise BadInputError(f"{path}: not a readable Parquet file ({type(exc).__name__})") from exc


def parquet_header(path: Path) -> list[str]:
    """Return the column names of a Parquet file (see :func:`parquet_schema`)."""
    return list(parquet_schema(path))


def stage_parquet(path: Path, out: Path, keep: frozenset[str] = frozenset()) -> list[str]:
    """Write ``path``'s rows as text to ``out``; return the header.

    Raises
    ------
    BadInputError
        Unreadable file, or a column with no text form.
    """
    header = parquet_header(path)
    try:
        as_text(pl.scan_parquet(path), str(path), keep).sink_parquet(
            out, compression="lz4", row_group_size=STAGED_ROW_GROUP
        )
    except pl.exceptions.PolarsError as exc:
        raise BadInputError(f"{path}: cannot read its rows ({type(exc).__name__})") from exc
    return header


def stage_batches(
    batches: Iterable[pl.DataFrame], out_dir: Path, source: str, keep: frozenset[str] = frozenset()
) -> tuple[list[str], list[str]]:
    """Write record batches (text but ``keep``), one Parquet file each, in order.

    The next batch is read in a second thread while one is written, so the database's
    transfer and the conversion overlap. Returns the header (from the first batch, which
    may be empty) and the files, named so that their lexical order is the batches' order.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[str] = []
    header: list[str] | None = None
    for i, batch in enumerate(prefetched(batches)):
        if header is None:
            header = batch.columns
        if not batch.height:
            continue
        target = out_dir / f"batch{i:08d}.parquet"
        as_text(batch, source, keep).collect().write_parquet(target, compression="uncompressed")
        files.append(str(target))
    return header or [], files


_DONE: Final = object()


def prefetched(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Yield ``items``, produced by a second thread up to ``depth`` ahead.

    An error of the producer is raised here, where the item would have been.
    """
    queue: Queue[object] = Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                queue.put(item)
        except BaseException as exc:
            queue.put(_Failure(exc))
        else:
            queue.put(_DONE)

    thread = threading.Thread(target=produce, name="crmkit-prefetch", daemon=True)
    thread.start()
    try:
        while (item := queue.get()) is not _DONE:
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while thread.is_alive():
            with contextlib.suppress(Empty):
                queue.get(timeout=0.05)
        thread.join()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error
