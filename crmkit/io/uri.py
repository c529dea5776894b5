"""Database locations: which engine a URI names, credentials from the environment, masking.

A database is named by a URI: ``postgresql://user:password@host:port/db``,
``sqlite:///path/to/file.db`` or ``duckdb:///path/to/file.duckdb``. A value may name
environment variables as ``${VAR}`` (in ``crmkit.toml`` or on the command line, quoted so
the shell leaves it alone), so a password need not be written in a file or a crontab.

A password never leaves this module unmasked: :func:`mask` turns it into ``***`` for every
message, log line, manifest entry and quarantine row, and :func:`scrub` removes it from
text that a database driver wrote (an error message may quote the URI).
"""

from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from crmkit.errors import ConfigError, UsageError

Engine = Literal["postgresql", "sqlite", "duckdb"]
SCHEMES: Final[dict[str, Engine]] = {
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "sqlite": "sqlite",
    "duckdb": "duckdb",
}
MASK: Final = "***"
_VARIABLE: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_USERINFO: Final = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@\s]*@")
_PASSWORD_PARAM: Final = re.compile(r"(?i)(?P<key>\bpassword=)[^&\s]*")
#: A table, or a schema-qualified table, named as plain SQL identifiers.
TABLE_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")
COLUMN_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_ ]{0,62}$")


def expand_env(value: str, where: str) -> str:
    """Replace each ``${VAR}`` in ``value`` with the environment variable's value.

    Raises
    ------
    ConfigError
        When a named variable is not set (the message names the variable, never a value).
    """

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(f"{where}: environment variable {name} is not set")
        return os.environ[name]

    return _VARIABLE.sub(one, value)


def mask(text: str) -> str:
    """Return ``text`` with the password of every URI in it, and ``password=`` values, masked."""
    masked = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return _PASSWORD_PARAM.sub(lambda m: f"{m['key']}{MASK}", masked)


def is_uri(text: str) -> bool:
    """Tell whether ``text`` names a database by one of the :data:`SCHEMES`."""
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.lower() in SCHEMES


@dataclass(frozen=True)
class Database:
    """A database named by a URI (credentials included); ``label`` is safe to show."""

    uri: str
    engine: Engine
    path: Path | None = None

    @property
    def label(self) -> str:
        """The URI with its password masked."""
        return mask(self.uri)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The password, as written and percent-decoded, for :func:`scrub`."""
        parsed = urllib.parse.urlsplit(self.uri)
        found = [p for p in (parsed.password,) if p]
        query = urllib.parse.parse_qs(parsed.query)
        found += [v for k, vs in query.items() if k.lower() == "password" for v in vs if v]
        return tuple(sorted({*found, *(urllib.parse.unquote(p) for p in found)}, key=len))[::-1]

    def scrub(self, text: str) -> str:
        """Remove this database's password from text a driver wrote."""
        out = mask(text)
        for secret in self.secrets:
            out = out.replace(secret, MASK)
        return out


def database(value: str, where: str) -> Database:
    """Parse a database URI after ``${VAR}`` expansion.

    Raises
    ------
    UsageError
        An unknown scheme, or a SQLite/DuckDB URI without a file path.
    ConfigError
        A ``${VAR}`` that is not set.
    """
    uri = expand_env(value.strip(), where)
    scheme, sep, rest = uri.partition("://")
    engine = SCHEMES.get(scheme.lower()) if sep else None
    if engine is None:
        raise UsageError(
            f"{where}: {mask(uri)!r} is not a database URI (postgresql://user@host/db, "
            "sqlite:///file.db or duckdb:///file.duckdb)"
        )
    if engine == "postgresql":
        return Database(uri, engine)
    # sqlite:///relative.db and sqlite:////absolute.db, as SQLAlchemy spells them
    path_text = urllib.parse.unquote(rest[1:] if rest.startswith("/") else rest)
    path_text = path_text.split("?", 1)[0]
    if not path_text:
        raise UsageError(f"{where}: {mask(uri)!r} names no database file")
    return Database(uri, engine, Path(path_text))


def table_name(value: str, option: str = "--table") -> str:
    """Return ``value`` quoted as a SQL table name after checking it is a plain identifier.

    Raises
    ------
    UsageError
        Anything but ``name`` or ``schema.name`` of letters, digits and underscores.
    """
    if not TABLE_NAME.match(value):
        raise UsageError(
            f"{option} {value!r}: use a plain table name (letters, digits, underscores), "
            "optionally schema-qualified"
        )
    return ".".join(f'"{part}"' for part in value.split("."))


def column_name(value: str, option: str) -> str:
    """Return ``value`` quoted as a SQL column name after checking it is a plain identifier.

    Raises
    ------
    UsageError
        Anything but letters, digits, underscores and spaces.
    """
    if not COLUMN_NAME.match(value):
        raise UsageError(f"{option} {value!r}: use a plain column name")
    return f'"{value}"'
