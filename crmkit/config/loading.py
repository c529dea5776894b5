"""Reading settings: ``crmkit.toml`` into typed sections, overrides and option values.

Unknown keys and values of the wrong type are errors that name the key, so a typo in
the configuration never passes silently.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import tomllib
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from crmkit import columns
from crmkit.config.rules import validate
from crmkit.config.settings import Settings
from crmkit.errors import ConfigError

T = TypeVar("T")


def overlay(settings: Settings, section: str, **values: Any) -> Settings:  # noqa: ANN401
    """Return ``settings`` with the keys of one section replaced by the non-None ``values``.

    Command-line options override the configuration this way: an option left unset is
    None and keeps the configured value. The result is validated like a loaded file.

    Raises
    ------
    ConfigError
        When a value is out of range (see :func:`validate`).
    """
    given = {k: v for k, v in values.items() if v is not None}
    if not given:
        return settings
    part = dataclasses.replace(getattr(settings, section), **given)
    out = dataclasses.replace(settings, **{section: part})
    validate(out, "command line")
    return out


def ingest_overrides(
    settings: Settings,
    column_map: str | None = None,
    date_format: str | None = None,
    dayfirst: bool | None = None,
) -> Settings:
    """Apply ``crmkit ingest``'s options: ``--map`` pairs join the configured mapping.

    Raises
    ------
    ConfigError
        On a ``--map`` pair that names no canonical column.
    """
    columns = {**settings.ingest.columns, **(parse_column_map(column_map) if column_map else {})}
    return overlay(settings, "ingest", columns=columns, date_format=date_format, dayfirst=dayfirst)


def _convert(value: Any, hint: Any, where: str) -> Any:  # noqa: ANN401
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _convert(value, options[0], where)
    if origin is Literal:
        if value not in get_args(hint):
            allowed = ", ".join(repr(a) for a in get_args(hint))
            raise ConfigError(f"{where}: {value!r} is not one of {allowed}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(_convert(v, get_args(hint)[0], where) for v in value)
    if origin is Mapping or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        value_type = get_args(hint)[1]
        return {str(k): _convert(v, value_type, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return build(hint, value, where)
    if hint is dt.date:
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError as exc:
            raise ConfigError(f"{where}: {value!r} is not an ISO date (YYYY-MM-DD)") from exc
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is bool and isinstance(value, bool):
        return value
    if hint is str and isinstance(value, str):
        return value
    raise ConfigError(f"{where}: {value!r} is not a valid {getattr(hint, '__name__', hint)}")


def build(cls: type[T], table: Mapping[str, Any], where: str) -> T:
    """Build the dataclass ``cls`` from a TOML table, rejecting unknown keys.

    Parameters
    ----------
    cls
        A dataclass type.
    table
        Parsed TOML table.
    where
        Location used in error messages, e.g. ``"crmkit.toml [ingest]"``.

    Returns
    -------
    T
        The instance.

    Raises
    ------
    ConfigError
        On an unknown key or a value of the wrong type.
    """
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(table) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {sorted(names)}")
    kwargs = {k: _convert(v, hints[k], f"{where} {k}") for k, v in table.items()}
    return cls(**kwargs)


def load_settings(path: Path | None) -> Settings:
    """Load settings from a TOML file, or defaults when ``path`` is None.

    Raises
    ------
    ConfigError
        When the file is missing, is not valid TOML, or holds unknown keys or bad values.
    """
    if path is None:
        return Settings()
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read ({exc.strerror or exc})") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    settings = build(Settings, table, str(path))
    validate(settings, str(path))
    _check_columns(settings.ingest.columns, f"{path} [ingest.columns]")
    _check_columns(settings.ingest.exclude, f"{path} [ingest.exclude]")
    return settings


def _check_columns(mapping: Mapping[str, str], where: str) -> None:
    unknown = sorted(set(mapping) - set(columns.CANONICAL))
    if unknown:
        raise ConfigError(
            f"{where}: {', '.join(unknown)} is not a canonical column; "
            f"canonical columns are {', '.join(columns.CANONICAL)}"
        )


def split_pairs(text: str, option: str, form: str) -> list[tuple[str, str]]:
    """Split ``a=b,c=d`` into stripped (left, right) pairs; empty items are skipped.

    Raises
    ------
    ConfigError
        When an item has no ``=`` or an empty side; the message names ``option``.
    """
    pairs = []
    for raw in text.split(","):
        pair = raw.strip()
        if not pair:
            continue
        left, sep, right = (part.strip() for part in pair.partition("="))
        if not sep or not left or not right:
            raise ConfigError(f"{option}: {pair!r} is not of the form {form}")
        pairs.append((left, right))
    return pairs


def parse_column_map(text: str) -> dict[str, str]:
    """Parse ``--map`` text into canonical -> source pairs.

    Each comma-separated pair may be written either way round, ``customer_id=CustomerID``
    or ``CustomerID=customer_id``: the side that is a canonical column name is taken as the
    canonical one (the left side when both are).

    Raises
    ------
    ConfigError
        When a pair has no ``=`` or neither side is a canonical column.
    """
    canonical = set(columns.CANONICAL)
    result: dict[str, str] = {}
    for left, right in split_pairs(text, "--map", "canonical=source"):
        pair = f"{left}={right}"
        if left in canonical:
            result[left] = right
        elif right in canonical:
            result[right] = left
        else:
            raise ConfigError(
                f"--map: neither side of {pair!r} is a canonical column "
                f"({', '.join(columns.CANONICAL)})"
            )
    return result
