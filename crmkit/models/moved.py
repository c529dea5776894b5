"""Where the classes of models saved by earlier releases live now.

joblib pickles name each class by its module path. Releases up to 0.1.0 kept every module
directly under ``crmkit`` (``crmkit.estimators.BlendClassifier``); they now live in
subpackages, some split in two. While a registry file is unpickled, each old path is a
module holding the names of the modules it became, so saved models keep loading without
shim modules in the package.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import types
from collections.abc import Iterator
from typing import Final

#: Old module path -> the modules its objects live in now (the first that has a name wins).
MOVED: Final[dict[str, tuple[str, ...]]] = {
    "crmkit.calibration": ("crmkit.models.calibration",),
    "crmkit.clv": ("crmkit.models.clv", "crmkit.models.clv_models"),
    "crmkit.design": ("crmkit.models.design",),
    "crmkit.estimators": ("crmkit.models.estimators",),
    "crmkit.model": ("crmkit.models.churn", "crmkit.models.validation", "crmkit.models.design"),
    "crmkit.uplift": ("crmkit.models.uplift", "crmkit.models.uplift_learners"),
    "crmkit.uplift_metrics": ("crmkit.models.uplift_metrics",),
    "crmkit.mix": ("crmkit.features.mix", "crmkit.features.vocabulary"),
}
# ``crmkit.features`` and ``crmkit.config`` are packages now; no saved model pickles an
# object of theirs (``tests/models/test_registry_compat.py`` loads every kind of model).


@contextlib.contextmanager
def old_module_paths() -> Iterator[None]:
    """Make the old module paths importable for the duration of an unpickling."""
    added = []
    for old, new in MOVED.items():
        if old in sys.modules:
            continue
        alias = types.ModuleType(old)
        for name in reversed(new):
            alias.__dict__.update(vars(importlib.import_module(name)))
        sys.modules[old] = alias
        added.append(old)
    try:
        yield
    finally:
        for old in added:
            sys.modules.pop(old, None)
