"""A contact file a sending system takes as it is: addresses, offer and reason per customer.

``[targeting] contact_columns`` names customer attributes (loaded with ``crmkit ingest
--kind customers``: email, phone, name, preferred channel...) that the contact file and
the destination table carry, as known at the start of the list's day. Each row also gets
``offer_code`` (``[targeting.offer_codes]``, per treatment) and ``top_reason`` (the first
of the customer's reasons).

``[targeting.channel_columns]`` says which column a treatment needs (``call = "phone"``):
a customer without a value there is no option for that treatment, before the budget is
allocated, so the money goes to someone who can be reached (or to another treatment);
the customers who are left with no reachable treatment are counted as
``no_contact_details``. The ledger never holds these columns: they are joined when the
file is written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import polars as pl

from crmkit import schema
from crmkit.config.policy import TargetPolicy
from crmkit.errors import ConfigError
from crmkit.features.attributes import attributes_as_of, stored_types
from crmkit.store.core import Store


def check_contact_settings(policy: TargetPolicy) -> None:
    """Check that every channel column is one of the contact columns.

    Raises
    ------
    ConfigError
        When ``channel_columns`` names a column ``contact_columns`` does not list.
    """
    missing = sorted(set(policy.channel_columns.values()) - set(policy.contact_columns))
    if missing:
        raise ConfigError(
            f"[targeting.channel_columns]: {', '.join(missing)} not in [targeting] "
            "contact_columns; list them there too"
        )


def contact_details(store: Store, as_of: dt.date, policy: TargetPolicy) -> pl.DataFrame | None:
    """Return per customer the contact columns known by the start of ``as_of``, as text.

    Raises
    ------
    ConfigError
        A contact column that is not a loaded text attribute.
    """
    check_contact_settings(policy)
    names = list(policy.contact_columns)
    if not names:
        return None
    types = stored_types(store) if store.exists() else {}
    wrong = [n for n in names if types.get(n) not in ("text", "number")]
    if wrong:
        known = ", ".join(sorted(types)) or "none loaded"
        raise ConfigError(
            f"[targeting] contact_columns: {', '.join(wrong)} not among the customer "
            f"attributes ({known}), or a date; load them with `crmkit ingest --kind customers`"
        )
    known_now = attributes_as_of(store, as_of, names)
    return known_now.select(schema.CUSTOMER_ID, *(_as_text(n, types[n]) for n in names))


def _as_text(name: str, kind: str) -> pl.Expr:
    """Return a contact column as text: digits read as a number (a phone) stay whole."""
    column = pl.col(name)
    if kind == "number":
        whole = column.round(0) == column
        column = (
            pl.when(whole)
            .then(column.cast(pl.Int64).cast(pl.String))
            .otherwise(column.cast(pl.String))
        )
    return column.cast(pl.String).str.strip_chars().replace("", None).alias(name)


def reachable(frame: pl.DataFrame, treatments: Sequence[str], policy: TargetPolicy) -> np.ndarray:
    """Return whether each customer has what each treatment needs (rows x treatments)."""
    out = np.ones((frame.height, len(treatments)), dtype=bool)
    for j, treatment in enumerate(treatments):
        column = policy.channel_columns.get(treatment)
        if column is not None:
            if column not in frame.columns:
                out[:, j] = False
            else:
                out[:, j] = frame[column].is_not_null().to_numpy()
    return out


def reach(
    frame: pl.DataFrame, gain: np.ndarray, treatments: Sequence[str], policy: TargetPolicy
) -> tuple[np.ndarray, int]:
    """Remove the treatments a customer cannot be reached by; count who is left with none."""
    can = reachable(frame, treatments, policy)
    had = ~np.isnan(gain)
    masked = np.where(can, gain, np.nan)
    return masked, int((had.any(axis=1) & ~(had & can).any(axis=1)).sum())


def with_contact_columns(
    contacts: pl.DataFrame, details: pl.DataFrame | None, policy: TargetPolicy
) -> pl.DataFrame:
    """Return the contact file: its columns, the contact columns, offer code, top reason.

    ``contacts`` holds ``reasons`` when there are contact details or offer codes.
    """
    base = contacts.drop("reasons", strict=False)
    if details is None and not policy.offer_codes:
        return base
    out = base
    if details is not None:
        out = out.join(details, on=schema.CUSTOMER_ID, how="left", maintain_order="left")
    offer = pl.col("treatment").replace_strict(
        dict(policy.offer_codes), default=None, return_dtype=pl.String
    )
    top = contacts["reasons"].str.split("; ").list.first()
    return out.with_columns(offer.alias("offer_code"), top.alias("top_reason"))
