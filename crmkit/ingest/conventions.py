"""The date convention a file source keeps from one file to the next.

A daily export's days are often all 12 or less: on its own such a file cannot tell
``05/03/2024`` (5 March) from 3 May. The store remembers, per file source, the day/month
order its files were read in once it was seen (a day above 12), told (``--dayfirst`` /
``--monthfirst``) or ruled (dotted dates are day-first), in the manifest's ``sources``
beside the database sources' high-water marks, committed with the rows. A source is its
directory and its file name with digits masked (``exports/sales_####-##-##.csv``), so the
files of one daily export share it.

For each new file: an order given on the command line or in the settings wins (and is
remembered); a file whose own dates show the other order than the remembered one is
refused; an ambiguous file takes the remembered order; an ambiguous file of a source with
no memory is refused when the store already holds day-first sources (it would be read
month-first), and read month-first otherwise.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from crmkit.errors import BadInputError
from crmkit.ingest.parse import DateDetection

KIND: Final = "file"
_DIGITS: Final = re.compile(r"\d")


def source_key(path: Path) -> str:
    """Return the key of the file source of ``path``: its directory and name pattern."""
    resolved = path.resolve()
    return f"{KIND}:{resolved.parent}/{_DIGITS.sub('#', resolved.name)}"


def _order(dayfirst: bool) -> str:
    return "day-first" if dayfirst else "month-first"


@dataclass(frozen=True)
class Memory:
    """The conventions a store remembers: per source key, and across the store."""

    sources: Mapping[str, Mapping[str, Any]]

    def of(self, key: str) -> bool | None:
        """Return the remembered day-first flag of a source, if any."""
        value = self.sources.get(key, {}).get("dayfirst")
        return value if isinstance(value, bool) else None

    def any_dayfirst(self) -> bool:
        """Whether any file source of the store is read day-first."""
        return any(
            v.get("kind") == KIND and v.get("dayfirst") is True for v in self.sources.values()
        )

    def decide(self, source: Path, free: DateDetection) -> bool | None:
        """Return the order to read ``source`` in, from its own dates and the memory.

        ``free`` is the detection without a given order. Returns ``None`` to keep it.

        Raises
        ------
        BadInputError
            When the file's dates contradict the source's remembered order, or when the
            file is ambiguous, its source has no memory and the store holds day-first data.
        """
        remembered = self.of(source_key(source))
        if free.decided == "evidence" and remembered is not None:
            if free.dayfirst != remembered:
                raise BadInputError(
                    f"{source}: its dates read {_order(bool(free.dayfirst))}, but earlier files "
                    f"of this source were read {_order(remembered)}; pass --dayfirst or "
                    "--monthfirst to say which this file is"
                )
            return None
        if free.decided != "default":
            return None
        if remembered is not None:
            return remembered
        if self.any_dayfirst():
            raise BadInputError(
                f"{source}: no day in its dates is above 12, so 01/02 could be 1 February or "
                "2 January, and this store already holds day-first sources; pass --dayfirst "
                "or --monthfirst"
            )
        return None

    def entry(self, source: Path, dayfirst: bool, now: dt.datetime) -> dict[str, Any]:
        """Return the manifest entry that remembers ``dayfirst`` for the source of ``source``."""
        return {
            "kind": KIND,
            "source": source_key(source).removeprefix(f"{KIND}:"),
            "dayfirst": dayfirst,
            "updated_at": now.isoformat(),
        }
