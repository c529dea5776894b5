"""Shared CLI pieces: option types, error translation, consoles, progress, JSON output."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from crmkit.config.loading import load_settings, overlay
from crmkit.config.settings import Settings
from crmkit.errors import CrmkitError, UsageError, from_os_error

if TYPE_CHECKING:
    from crmkit.io.sql import Query
    from crmkit.io.uri import Database
    from crmkit.models.registry import Registry

err = Console(stderr=True, highlight=False)
_stdout = Console(highlight=False)


class _Results:
    """Where a command's human output goes: stdout, or stderr once ``--json`` took stdout.

    Tables and summaries are what ``crmkit evaluate > results.txt`` should write; progress,
    warnings and errors go to stderr (:data:`err`). With ``--json``, stdout holds only the
    JSON (:func:`emit_json`), and the human output moves to stderr.
    """

    json_mode = False

    def print(self, *objects: Any, **kwargs: Any) -> None:  # noqa: ANN401
        """Print like :meth:`rich.console.Console.print`."""
        (err if self.json_mode else _stdout).print(*objects, **kwargs)


human = _Results()

StoreOpt = Annotated[
    Path,
    typer.Option(
        "--store", metavar="DIR", envvar="CRMKIT_STORE", help="Store directory.", show_default=True
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        metavar="FILE",
        help="Settings file (default: ./crmkit.toml when present).",
        dir_okay=False,
    ),
]
OutcomesOpt = Annotated[
    Path | None,
    typer.Option(
        "--outcomes",
        metavar="FILE",
        help="Also count the purchases in FILE, without ingesting it (simulations).",
        dir_okay=False,
    ),
]
AsOfOpt = Annotated[
    str,
    typer.Option(
        "--as-of", metavar="DATE", help="As-of date YYYY-MM-DD: only earlier transactions count."
    ),
]
RegistryOpt = Annotated[
    Path | None,
    typer.Option(
        "--registry",
        metavar="DIR",
        envvar="CRMKIT_REGISTRY",
        help="Model registry (default: [model] registry).",
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")]
DEFAULT_STORE = Path("crm-store")


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn library and system errors into ``error: ...`` on stderr and an exit code.

    A library error carries its exit code; an operating-system error is classified by its
    errno (:func:`crmkit.errors.from_os_error`): a disk that is full or read-only is 6, a
    path of the wrong kind is 2.
    """
    try:
        yield
    except CrmkitError as exc:
        _fail(exc)
    except OSError as exc:
        _fail(from_os_error(exc))


def warn(message: str, *, quiet: bool, kind: str = "warning") -> None:
    """Print a warning (or note) on stderr, unless ``--quiet`` asked for errors only."""
    if not quiet:
        err.print(f"[yellow]{kind}:[/yellow] {escape(message)}")


def _fail(exc: CrmkitError) -> NoReturn:
    from crmkit.io.uri import mask

    err.print(f"[red]error:[/red] {escape(mask(str(exc)))}", soft_wrap=True)
    raise typer.Exit(exc.exit_code) from exc


class ExecutorKind(StrEnum):
    """Where the per-bucket work runs."""

    local = "local"
    dask = "dask"


ExecutorOpt = Annotated[
    ExecutorKind | None,
    typer.Option(
        "--executor",
        help="Where the per-bucket work runs: local (default) or dask ([compute] executor).",
    ),
]
SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        metavar="ADDRESS",
        envvar="CRMKIT_DASK_SCHEDULER",
        help="Dask scheduler, e.g. tcp://host:8786 (default: a local cluster).",
    ),
]


QueryOpt = Annotated[
    str | None,
    typer.Option("--query", metavar="SQL", help="Database source: the SELECT to read."),
]
SinceOpt = Annotated[
    str | None,
    typer.Option(
        "--since-column",
        metavar="COLUMN",
        help="Database source: read only rows at or above the highest value pulled before.",
    ),
]
ToOpt = Annotated[
    str | None,
    typer.Option(
        "--to",
        metavar="URI",
        help="Also write the contact list into this database ([targeting] destination); "
        "quote '${VAR}' to take a password from the environment.",
    ),
]
ToTableOpt = Annotated[
    str | None,
    typer.Option(
        "--table",
        metavar="NAME",
        help="Table of --to (default [targeting] destination_table).",
    ),
]


def destination(
    cfg: Settings, to: str | None, table_name: str | None
) -> tuple[Database, str] | None:
    """Return the database and table a contact list goes to: ``--to``/``--table`` or the config.

    Raises
    ------
    UsageError
        ``--table`` without a destination, or a bad URI or table name.
    """
    from crmkit.io.uri import database
    from crmkit.io.uri import table_name as check_table

    uri = to or cfg.targeting.destination
    if uri is None:
        if table_name is not None:
            raise UsageError("--table names the table of --to: give --to URI as well")
        return None
    where = "--to" if to else "[targeting] destination"
    name = table_name or cfg.targeting.destination_table
    check_table(name)
    return database(uri, where), name


def source_query(
    cfg: Settings,
    uri: str | None,
    query: str | None,
    table_name: str | None,
    since: str | None,
) -> Query | None:
    """Return the database source of ``run``: ``--from`` and its options, else ``[source]``."""
    from crmkit.io.sql import query_for
    from crmkit.io.uri import database

    given = uri is not None
    if not given and cfg.source.uri is None:
        if query or table_name or since:
            raise UsageError("--query, --from-table and --since-column need --from URI")
        return None
    if given:
        return query_for(database(uri or "", "--from"), query, table_name, since)
    source = cfg.source
    return query_for(
        database(source.uri or "", "[source] uri"),
        query or source.query,
        table_name or source.table,
        since or source.since_column,
    )


@contextlib.contextmanager
def computing(
    cfg: Settings, executor: ExecutorKind | None, scheduler: str | None
) -> Iterator[None]:
    """Run the enclosed per-bucket work where ``--executor``/``[compute]`` say."""
    from crmkit.store.executors import open_executor, using

    kind = executor.value if executor else None
    chosen = overlay(cfg, "compute", executor=kind, scheduler=scheduler).compute
    with open_executor(chosen.executor, chosen.scheduler, chosen.workers) as run, using(run):
        yield


def settings(config: Path | None) -> Settings:
    """Load settings from ``--config`` or ``./crmkit.toml`` when present."""
    if config is None and Path("crmkit.toml").is_file():
        config = Path("crmkit.toml")
    loaded = load_settings(config)
    key_file = os.environ.get("CRMKIT_MODEL_KEY_FILE")
    return overlay(loaded, "model", key_file=key_file) if key_file else loaded


def open_registry(cfg: Settings, registry: Path | None) -> Registry:
    """Open the model registry with the signing key of ``[model] key_file``, if any."""
    from crmkit.models import registry as models

    return models.open_registry(registry_path(cfg, registry), cfg.model.key_file)


def registry_path(cfg: Settings, registry: Path | None) -> Path:
    """Return the registry: ``--registry`` (or ``CRMKIT_REGISTRY``), else ``[model] registry``."""
    return registry or Path(cfg.model.registry)


def parse_date(text: str, option: str) -> dt.date:
    """Parse an ISO date given on the command line.

    Raises
    ------
    UsageError
        When the text is not ``YYYY-MM-DD``.
    """
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise UsageError(f"{option}: {text!r} is not a date in YYYY-MM-DD form") from exc


def utc_now() -> dt.datetime:
    """Return the current time as naive UTC (the library never reads the clock)."""
    fixed = os.environ.get("CRMKIT_NOW")
    if fixed:
        given = dt.datetime.fromisoformat(fixed)
        return given.astimezone(dt.UTC).replace(tzinfo=None) if given.tzinfo else given
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@contextlib.contextmanager
def outcomes_from(path: Path | None) -> Iterator[tuple[Any, str | None]]:
    """Yield a temporary store of ``--outcomes FILE`` and a note on it (None, None without)."""
    if path is None:
        yield None, None
        return
    from crmkit.campaigns.evaluation import outcome_store

    with outcome_store(path, utc_now()) as (sandbox, note):
        yield sandbox, note


def emit_json(payload: Any) -> None:  # noqa: ANN401
    """Print machine-readable output on stdout; human output goes to stderr from now on."""
    human.json_mode = True
    typer.echo(json.dumps(payload, indent=2, sort_keys=True, default=_json_default))


def _json_default(value: object) -> object:
    """Model cards and other read-only mappings as objects; anything else as text."""
    if isinstance(value, Mapping):
        return dict(value)
    return str(value)


@contextlib.contextmanager
def progress_bar(description: str, *, disabled: bool) -> Iterator[Callable[[int, int, str], None]]:
    """Yield a ``progress(done, total, text)`` callback for stderr.

    A bar on a terminal; plain lines with the elapsed time otherwise (cron mail, logs), so
    that a long step never looks hung.
    """
    if disabled:
        yield lambda done, total, text: None
        return
    if not err.is_terminal:
        start = time.monotonic()

        def log(done: int, total: int, text: str) -> None:
            count = f" ({done}/{total})" if total else ""
            err.print(
                f"{description}: {text}{count} {time.monotonic() - start:.1f} s", soft_wrap=True
            )

        yield log
        return
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(description, total=None)

        def advance(done: int, total: int, text: str) -> None:
            bar.update(task, completed=done, total=total, description=f"{description} {text}")

        yield advance
