"""The crmkit command-line interface (Typer).

polars allocates through jemalloc and configures it, on import, to hand freed pages back
to the system after half a second (``dirty_decay_ms:500``), followed by whatever
``_RJEM_MALLOC_CONF`` holds (later options win). A batch command that builds and drops
large frames, such as ``features``, then spends a good part of its time in page faults:
keeping freed pages for ten seconds makes it about 5% faster for about 200 MB more peak
memory. ``ingest`` streams a file through buffers of the same sizes, which reuse their
pages anyway, so it gains no speed from that and keeps polars' setting and a lower peak.
The choice is made here, before polars is loaded, and only when ``_RJEM_MALLOC_CONF`` is
not set already, so an environment can choose otherwise (jemalloc's option syntax).
"""

from __future__ import annotations

import os
import sys

_KEEP_FREED_PAGES = "dirty_decay_ms:10000,muzzy_decay_ms:10000"
_STREAMING_COMMANDS = frozenset({"ingest"})

if not (len(sys.argv) > 1 and sys.argv[1] in _STREAMING_COMMANDS):
    os.environ.setdefault("_RJEM_MALLOC_CONF", _KEEP_FREED_PAGES)
