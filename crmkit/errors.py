"""Typed errors: each carries a user-facing message and the exit code the CLI uses."""

from __future__ import annotations

from typing import ClassVar


class CrmkitError(Exception):
    """Base class of every error crmkit reports to a user (exit code 1)."""

    exit_code: ClassVar[int] = 1


class UsageError(CrmkitError):
    """Invalid options or configuration (exit code 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """A problem in ``crmkit.toml`` or a command-line override (exit code 2)."""


class BadInputError(CrmkitError):
    """Input data that cannot be used: wrong columns, unreadable file, rejected rows (exit 3)."""

    exit_code = 3


class StoreLockedError(CrmkitError):
    """Another process holds the store's lock (exit code 4)."""

    exit_code = 4


class StoreCorruptError(CrmkitError):
    """The store is missing files or its manifest cannot be read (exit code 4)."""

    exit_code = 4


class ModelError(CrmkitError):
    """A model is missing, incompatible or fails its integrity check (exit code 5)."""

    exit_code = 5
