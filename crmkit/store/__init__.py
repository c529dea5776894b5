"""The store: Parquet parts by customer bucket, a manifest, locks and executors."""

from crmkit.store.core import Store as Store
from crmkit.store.core import StoreWriter as StoreWriter
from crmkit.store.core import store_info as store_info
