"""One customer as the analyst sees them: history, features, segment, risk, reasons, campaigns."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import polars as pl

from crmkit import schema
from crmkit.campaigns.ledger import read_ledger
from crmkit.config.settings import Settings
from crmkit.errors import BadInputError
from crmkit.ingest.parse import clean_customer_id
from crmkit.models.reasons import reasons_expr
from crmkit.models.registry import ModelRef, Registry
from crmkit.models.scoring import score_customers
from crmkit.segments.apply import feature_table
from crmkit.store.core import Store

#: The features shown first, in this order; ``--json`` carries every feature.
SHOWN = (
    "rfm_segment",
    "value_tier",
    "first_purchase",
    "last_purchase",
    "recency_days",
    "purchase_days",
    "orders",
    "mean_cycle_days",
    "overdue_ratio",
    "gross_spend",
    "refunds",
    "net_spend",
    "mean_order_value",
    "customer_value",
)


@dataclass(frozen=True)
class CustomerView:
    """What the store knows about one customer as of a date."""

    customer_id: str
    as_of: dt.date
    features: dict[str, Any]
    churn_probability: float | None
    model: str | None
    reasons: list[str]
    campaigns: list[dict[str, Any]]
    notes: tuple[str, ...]

    def summary(self) -> dict[str, Any]:
        """Every field, JSON-ready."""
        return {
            "customer_id": self.customer_id,
            "as_of": str(self.as_of),
            "churn_probability": self.churn_probability,
            "model": self.model,
            "reasons": self.reasons,
            "features": self.features,
            "campaigns": self.campaigns,
            "notes": list(self.notes),
        }


def default_as_of(store: Store) -> dt.date:
    """Return the day after the store's last transaction: "now" for the data at hand.

    Raises
    ------
    BadInputError
        When the store holds no transactions.
    """
    last = store.transactions().select(pl.col(schema.TS).max()).collect().item()
    if not isinstance(last, dt.datetime):
        raise BadInputError(f"store {store.root} holds no transactions yet")
    return last.date() + dt.timedelta(days=1)


def customer_view(
    store: Store,
    customer_id: str,
    as_of: dt.date,
    settings: Settings,
    registry: Registry,
    ref: ModelRef,
) -> CustomerView:
    """Describe ``customer_id`` as of ``as_of``, with the churn model ``ref`` if it scores them.

    Segments and tiers are fitted on every customer as of the date, as everywhere else.
    Without a model, or for a customer the model does not score (no purchase within its
    lookback), the view has no probability and says why in ``notes``.

    Raises
    ------
    BadInputError
        When the customer has no purchase before ``as_of``.
    ModelError
        A model that exists but fails its checks (hash, signature, feature version).
    """
    store.require()
    # the id as ingest stores it: ``12346.0`` (a spreadsheet's float) is customer 12346
    cleaned = pl.select(clean_customer_id(pl.lit(customer_id, pl.String))).item()
    customer_id = cleaned if cleaned is not None else customer_id
    everyone = feature_table(store, as_of, settings)
    row = everyone.filter(pl.col(schema.CUSTOMER_ID) == customer_id)
    if row.height == 0:
        raise BadInputError(f"customer {customer_id!r} has no purchase before {as_of}")
    notes: list[str] = []
    probability, model, text = _probability(
        store, customer_id, as_of, settings, registry, ref, notes
    )
    if text is None:  # no model: the rules say what they can
        text = row.select(reasons_expr(settings.features.windows))["reasons"][0]
    campaigns = campaign_history(store, customer_id)
    features = {
        k: (str(v) if isinstance(v, dt.date) else v) for k, v in row.row(0, named=True).items()
    }
    history = [
        {k: str(v) if isinstance(v, dt.date) else v for k, v in c.items()}
        for c in campaigns.to_dicts()
    ]
    reasons = [r for r in (text or "").split("; ") if r]
    return CustomerView(
        customer_id, as_of, features, probability, model, reasons, history, tuple(notes)
    )


def campaign_history(store: Store, customer_id: str) -> pl.DataFrame:
    """Return the customer's ledger rows: campaign, day, group, planned and sent treatment."""
    planned = pl.coalesce(pl.col("planned_treatment"), pl.col("treatment"))
    sent = pl.when(pl.col("group") == "treatment").then(planned).otherwise(pl.lit("none"))
    return (
        read_ledger(store)
        .filter(pl.col(schema.CUSTOMER_ID) == customer_id)
        .sort("as_of", "campaign_id")
        .select(
            "campaign_id", "as_of", "group", planned.alias("planned_treatment"), sent.alias("sent")
        )
    )


def _probability(
    store: Store,
    customer_id: str,
    as_of: dt.date,
    settings: Settings,
    registry: Registry,
    ref: ModelRef,
    notes: list[str],
) -> tuple[float | None, str | None, str | None]:
    """Return the customer's churn probability, the model and its reasons, or None with a note."""
    if not registry.versions(ref.name):
        notes.append(f"no churn probability: no model named {ref.name!r} in {registry.root}")
        return None, None, None
    scores = score_customers(
        store, as_of, ref, registry, settings.segments, explain_rows=0, explain_ids=[customer_id]
    )
    model = f"{scores.card['name']}:{scores.card['version']}"
    scored = scores.frame.filter(pl.col(schema.CUSTOMER_ID) == customer_id)
    if scored.height:
        return float(scored["churn_probability"][0]), model, str(scored["reasons"][0])
    notes.append(
        f"not scored by {model}: no purchase in the {scores.card['lookback_days']} "
        "days before the date"
    )
    return None, model, None
