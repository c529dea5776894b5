"""Campaign ids: safe names, since a campaign becomes a directory of list files."""

from __future__ import annotations

import re
from typing import Final

from crmkit.errors import UsageError

_CAMPAIGN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: The groups of a list: contacted, kept as control, and the universal holdout.
GROUPS: Final = ("treatment", "control", "holdout")


def check_campaign(campaign: str) -> str:
    """Return ``campaign`` if it is a safe id (it becomes a directory name).

    Raises
    ------
    UsageError
        When it has characters other than letters, digits, ``_ . -``.
    """
    if not _CAMPAIGN.match(campaign):
        raise UsageError(
            f"campaign id {campaign!r} must be 1-64 letters, digits, '_', '.' or '-' and "
            "start with a letter or digit"
        )
    return campaign
