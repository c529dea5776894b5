"""Reading source files: their content hash, and polars' CSV chunk size while reading."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

#: Bytes polars' CSV reader takes from a file at a time. Its default, 32 MiB, with a few
#: chunks prefetched and decoded at once, holds about 250 MB of a large file in memory;
#: 4 MiB chunks parse as fast and hold about 60 MB. Set through polars' environment
#: setting ``POLARS_CSV_CHUNK_SIZE`` while a file is read, unless the environment sets it.
CSV_CHUNK_BYTES: Final = 4 * 1024 * 1024
_CSV_CHUNK_SETTING: Final = "POLARS_CSV_CHUNK_SIZE"


def file_sha256(path: Path) -> str:
    """Return the sha256 of a file's bytes, read in chunks into one reused buffer."""
    digest = hashlib.sha256()
    buffer = bytearray(1024 * 1024)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as fh:
        while n := fh.readinto(buffer):
            digest.update(view[:n])
    return digest.hexdigest()


@contextlib.contextmanager
def csv_chunks(size: int = CSV_CHUNK_BYTES) -> Iterator[None]:
    """Within the block, polars reads CSV files ``size`` bytes at a time.

    Leaves a chunk size the environment already sets alone, and restores the
    environment afterwards.
    """
    if _CSV_CHUNK_SETTING in os.environ:
        yield
        return
    os.environ[_CSV_CHUNK_SETTING] = str(size)
    try:
        yield
    finally:
        os.environ.pop(_CSV_CHUNK_SETTING, None)
