"""crmkit: customer segmentation and churn retention.

The package imports nothing heavy at import time so that the command line starts fast;
import the submodules (``crmkit.ingest``, ``crmkit.store.core``, ...) for the functionality.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
