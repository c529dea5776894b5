"""The daily run's files: its JSON-lines log in the store, and the inbox it ingests."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from crmkit.errors import BadInputError, UnavailableError
from crmkit.ingest.sniff import directory_files
from crmkit.store.core import Store

LOG_FILE = "run.jsonl"


class RunLog:
    """Appends JSON lines to the store's run log."""

    def __init__(self, store: Store, now: Callable[[], dt.datetime]) -> None:
        self.path = store.root / "logs" / LOG_FILE
        self.now = now

    def write(self, event: str, **fields: Any) -> None:  # noqa: ANN401
        """Append one event."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = {"ts": self.now().isoformat(), "event": event, **fields}
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True, default=str) + "\n")

    @contextmanager
    def step(self, name: str, counts: dict[str, Any]) -> Iterator[None]:
        """Log a step with its duration and the counts the block fills in."""
        start = time.monotonic()
        yield
        self.write("step", step=name, seconds=round(time.monotonic() - start, 3), **counts)


def inbox_files(inbox: Path) -> tuple[list[Path], list[str]]:
    """Return the data files directly in ``inbox`` by name, and what was passed over and why.

    ``processed/`` is where done files go; other subdirectories, other file types and links
    to files outside the inbox are passed over with a warning.

    Raises
    ------
    UnavailableError
        When ``inbox`` does not exist (an unmounted share or a typo): a list built without
        the day's export would be built from stale data, so the run stops (exit 4).
    BadInputError
        When ``inbox`` is a file, not a directory (exit 3).
    """
    if not inbox.exists():
        raise UnavailableError(
            f"--inbox {inbox}: no such directory (an unmounted share or a typo?); nothing "
            "was ingested, scored or listed"
        )
    if not inbox.is_dir():
        raise BadInputError(f"--inbox {inbox}: a file, not a directory; nothing was run")
    return directory_files(inbox)


def move_processed(files: list[Path], inbox: Path, stamp: str) -> None:
    """Move ingested ``files`` into ``inbox/processed/`` (a name taken gets ``stamp``)."""
    done = inbox / "processed"
    done.mkdir(exist_ok=True)
    for path in files:
        target = done / path.name
        if target.exists():
            target = done / f"{path.stem}.{stamp}{path.suffix}"
        shutil.move(str(path), target)
