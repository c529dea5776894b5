"""Exit codes: one enum, and each error class on the code a cron wrapper acts on."""

from __future__ import annotations

import errno

import pytest

from crmkit import errors
from crmkit.errors import ExitCode


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.UsageError, ExitCode.USAGE),
        (errors.ConfigError, ExitCode.USAGE),
        (errors.BadInputError, ExitCode.BAD_INPUT),
        (errors.StoreLockedError, ExitCode.RETRY_LATER),
        (errors.UnavailableError, ExitCode.RETRY_LATER),
        (errors.ModelError, ExitCode.MODEL),
        (errors.StoreCorruptError, ExitCode.NEEDS_PERSON),
        (errors.StoreWriteError, ExitCode.NEEDS_PERSON),
    ],
)
def test_each_error_has_its_code(error, code):
    assert error.exit_code == code
    assert error("x").exit_code == int(code)


def test_codes_are_distinct_and_documented():
    from pathlib import Path

    assert sorted(int(c) for c in ExitCode) == list(range(7))
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for code in ExitCode:
        assert f"| {int(code)} | `{code.name}` |" in readme


@pytest.mark.parametrize(
    ("number", "code"),
    [
        (errno.ENOSPC, ExitCode.NEEDS_PERSON),
        (errno.EROFS, ExitCode.NEEDS_PERSON),
        (errno.EACCES, ExitCode.NEEDS_PERSON),
        (errno.ENOENT, ExitCode.BAD_INPUT),
        (errno.ENOTDIR, ExitCode.USAGE),
    ],
)
def test_operating_system_errors_are_classified(number, code):
    error = errors.from_os_error(OSError(number, "reason", "/some/file"))
    assert error.exit_code == code
    assert "/some/file" in str(error)
