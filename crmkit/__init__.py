"""crmkit: customer segmentation and churn retention.

The functions an analyst uses in a notebook are here, loaded on first use so that the
command line starts fast (see :mod:`crmkit.api` and ``docs/python-api.md``)::

    import crmkit
    store = crmkit.open_store("crm-store")
    crmkit.ingest_files(store, "exports/*.csv")
    scores = crmkit.score(store, "2025-01-01", registry="models")
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: The public functions of :mod:`crmkit.api`, imported when first used.
API = (
    "open_store",
    "settings",
    "ingest_files",
    "feature_table",
    "train",
    "score",
    "targets",
    "evaluate",
    "plan",
    "train_uplift",
    "score_uplift",
    "compare_policies",
)

__all__ = ["__version__", *API]


def __getattr__(name: str) -> Any:  # noqa: ANN401
    if name in API:
        return getattr(importlib.import_module("crmkit.api"), name)
    raise AttributeError(f"module 'crmkit' has no attribute {name!r}")
