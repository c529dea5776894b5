"""The store: Parquet parts by customer bucket, a manifest, locks and executors."""

from crmkit.store.core import Store as Store
from crmkit.store.info import store_info as store_info
from crmkit.store.writer import StoreWriter as StoreWriter
