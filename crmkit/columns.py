"""Canonical transaction column names, without polars (the CLI imports them at start-up)."""

from __future__ import annotations

from typing import Final

CUSTOMER_ID: Final = "customer_id"
TS: Final = "ts"
AMOUNT: Final = "amount"
ORDER_ID: Final = "order_id"
QUANTITY: Final = "quantity"
UNIT_PRICE: Final = "unit_price"
PRODUCT: Final = "product"
CATEGORY: Final = "category"
CHANNEL: Final = "channel"
COUNTRY: Final = "country"
#: Every canonical transaction column, in storage order (``schema.TRANSACTION_SCHEMA``).
CANONICAL: Final = (
    CUSTOMER_ID,
    TS,
    AMOUNT,
    ORDER_ID,
    QUANTITY,
    UNIT_PRICE,
    PRODUCT,
    CATEGORY,
    CHANNEL,
    COUNTRY,
)
#: The channel of every simulated purchase, so that evaluation can tell them from real ones.
SIMULATED_CHANNEL: Final = "simulation"
