"""Canonical column names and dtypes shared by every module."""

from __future__ import annotations

from typing import Final

import polars as pl

from crmkit.columns import (
    AMOUNT,
    CATEGORY,
    CHANNEL,
    COUNTRY,
    CUSTOMER_ID,
    ORDER_ID,
    PRODUCT,
    QUANTITY,
    TS,
    UNIT_PRICE,
)

__all__ = [
    "ALIASES",
    "AMOUNT",
    "CATEGORY",
    "CHANNEL",
    "COUNTRY",
    "CUSTOMER_ID",
    "NUMERIC_COLUMNS",
    "ORDER_ID",
    "PRODUCT",
    "QUANTITY",
    "QUARANTINE_SCHEMA",
    "REQUIRED_COLUMNS",
    "TEXT_COLUMNS",
    "TRANSACTION_SCHEMA",
    "TS",
    "UNIT_PRICE",
]

#: The canonical transaction schema, in storage order.
TRANSACTION_SCHEMA: Final[dict[str, pl.DataType]] = {
    CUSTOMER_ID: pl.String(),
    TS: pl.Datetime("us"),
    AMOUNT: pl.Float64(),
    ORDER_ID: pl.String(),
    QUANTITY: pl.Float64(),
    UNIT_PRICE: pl.Float64(),
    PRODUCT: pl.String(),
    CATEGORY: pl.String(),
    CHANNEL: pl.String(),
    COUNTRY: pl.String(),
}

REQUIRED_COLUMNS: Final = (CUSTOMER_ID, TS, AMOUNT)
TEXT_COLUMNS: Final = (ORDER_ID, PRODUCT, CATEGORY, CHANNEL, COUNTRY)
NUMERIC_COLUMNS: Final = (AMOUNT, QUANTITY, UNIT_PRICE)

#: Rejected rows: where they came from, why, and the original fields as JSON.
QUARANTINE_SCHEMA: Final[dict[str, pl.DataType]] = {
    "source_file": pl.String(),
    "line": pl.Int64(),
    "reason": pl.String(),
    "raw": pl.String(),
}

#: Source column names recognised without a mapping, after normalisation
#: (lower case, only letters and digits kept).
ALIASES: Final[dict[str, tuple[str, ...]]] = {
    CUSTOMER_ID: (
        "customerid",
        "customer",
        "custid",
        "customerno",
        "customernumber",
        "customercode",
        "clientid",
        "client",
        "clientno",
        "userid",
        "memberid",
        "accountid",
        "buyerid",
    ),
    TS: (
        "ts",
        "timestamp",
        "datetime",
        "date",
        "invoicedate",
        "orderdate",
        "transactiondate",
        "purchasedate",
        "saledate",
        "createdat",
        "orderdatetime",
        "transactiontime",
        "time",
    ),
    AMOUNT: (
        "amount",
        "total",
        "totalamount",
        "revenue",
        "sales",
        "salesamount",
        "value",
        "linetotal",
        "totalprice",
        "ordervalue",
        "netamount",
        "grossamount",
    ),
    ORDER_ID: (
        "orderid",
        "order",
        "orderno",
        "ordernumber",
        "invoice",
        "invoiceno",
        "invoiceid",
        "invoicenumber",
        "transactionid",
        "receiptid",
        "receipt",
        "basketid",
    ),
    QUANTITY: ("quantity", "qty", "units", "quantityordered"),
    UNIT_PRICE: ("unitprice", "price", "priceeach", "itemprice"),
    PRODUCT: ("product", "productid", "sku", "stockcode", "itemid", "item", "productcode"),
    CATEGORY: ("category", "productcategory", "department"),
    CHANNEL: ("channel", "saleschannel", "source"),
    COUNTRY: ("country", "countrycode", "region"),
}
