"""Where the classes of models saved by earlier releases live now.

joblib pickles name each class by its module path. Releases up to 0.1.0 kept every module
directly under ``crmkit`` (``crmkit.estimators.BlendClassifier``); they now live in
subpackages. While a registry file is unpickled, each old path is an alias of its new
module, so saved models keep loading without shim modules in the package.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator
from typing import Final

#: Old module path -> new module path, for every module whose objects a model may pickle.
MOVED: Final = {
    "crmkit.calibration": "crmkit.models.calibration",
    "crmkit.clv": "crmkit.models.clv",
    "crmkit.design": "crmkit.models.design",
    "crmkit.estimators": "crmkit.models.estimators",
    "crmkit.model": "crmkit.models.churn",
    "crmkit.uplift": "crmkit.models.uplift",
    "crmkit.uplift_metrics": "crmkit.models.uplift_metrics",
    "crmkit.mix": "crmkit.features.mix",
}
# ``crmkit.features`` and ``crmkit.config`` are packages now; no saved model pickles an
# object of theirs (``tests/models/test_registry_compat.py`` loads every kind of model).


@contextlib.contextmanager
def old_module_paths() -> Iterator[None]:
    """Make the old module paths importable for the duration of an unpickling."""
    added = []
    for old, new in MOVED.items():
        if old not in sys.modules:
            sys.modules[old] = importlib.import_module(new)
            added.append(old)
    try:
        yield
    finally:
        for old in added:
            sys.modules.pop(old, None)
