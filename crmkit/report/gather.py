"""What the report shows, gathered from the store, the registry and the ledger."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import polars as pl

from crmkit.campaigns.estimates import analysis_of
from crmkit.campaigns.evaluation import Evaluation, evaluate_campaign
from crmkit.campaigns.ledger import arm, read_ledger
from crmkit.config.policy import TargetPolicy
from crmkit.config.settings import Settings
from crmkit.errors import UsageError
from crmkit.features.pipeline import store_features
from crmkit.models.registry import ModelRef, Registry, parse_ref
from crmkit.models.scoring import score_customers
from crmkit.progress import ProgressFn, Steps
from crmkit.segments.apply import with_segments
from crmkit.segments.summary import summarise
from crmkit.store.core import Store

TIER_ORDER: Final = ("platinum", "gold", "silver", "development", "adjust", "one_time")


@dataclass
class ReportData:
    """Everything the report shows, computed by the library."""

    as_of: dt.date
    store: str
    features: pl.DataFrame
    tiers: pl.DataFrame
    scores: pl.DataFrame | None = None
    card: Mapping[str, Any] | None = None
    evaluation: Evaluation | None = None
    notes: list[str] = field(default_factory=list)
    currency: str = ""
    campaign_cost: float | None = None
    comparison: Mapping[str, Any] | None = None
    lookback_days: int | None = None
    uplift_card: Mapping[str, Any] | None = None

    def money(self, value: float) -> str:
        """Format an amount with the configured currency, to the unit."""
        sign = "-" if value < 0 else ""
        return f"{sign}{self.currency}{abs(value):,.0f}"


def gather(
    store: Store,
    as_of: dt.date,
    settings: Settings,
    registry: Registry,
    model: ModelRef,
    campaign: str | None = None,
    window_days: int = 60,
    extra: Store | None = None,
    progress: ProgressFn | None = None,
) -> ReportData:
    """Compute the report's content.

    A missing model becomes a note; a model that fails its integrity check is an error.
    ``extra`` adds a store's purchases to the campaign's outcomes only (``--outcomes``);
    the campaign's saved ``policy compare`` result is shown when there is one.
    ``progress`` is told of each part as it is done.

    Raises
    ------
    CrmkitError
        No store, an empty store, or a model file that does not match its card.
    """
    store.require()
    steps = Steps(progress, 3 if campaign else 2)
    features = with_segments(store_features(store, as_of, settings.features), settings.segments)
    steps("features and segments")
    if features.height == 0:
        raise UsageError(f"no customer has a purchase before {as_of}: nothing to report")
    data = ReportData(as_of, str(store.root), features, summarise(features, "value_tier").table)
    data.currency = settings.report.currency
    if registry.versions(model.name):
        scored = score_customers(
            store, as_of, model, registry, settings.segments, settings.model.explain_rows
        )
        data.scores, data.card = scored.frame, scored.card
        data.lookback_days = int(scored.card["lookback_days"])
        steps("churn scores")
    else:
        data.notes.append(f"no model {model.name!r} in {registry.root}: churn charts left out")
    uplift_ref = parse_ref(settings.targeting.uplift_model)
    if registry.versions(uplift_ref.name):
        card = registry.card(uplift_ref)
        data.uplift_card = card if card.get("kind") == "uplift" else None
    if campaign:
        from crmkit.campaigns.policy_run import load_comparison

        data.evaluation = evaluate_campaign(
            store, campaign, window_days, extra=extra, analysis=analysis_of(settings.evaluate)
        )
        data.comparison = load_comparison(store, campaign)
        data.campaign_cost = campaign_cost(store, campaign, settings.targeting)
        steps(f"campaign {campaign}")
    return data


_MIX_MEANS: Final = ("distinct_products", "distinct_categories", "units_per_order")


def mix_by_tier(features: pl.DataFrame) -> pl.DataFrame | None:
    """Tabulate what each value tier buys: breadth, and spend shares by category and channel.

    Shares are weighted by gross spend: the tier's spend in a category over its spend.
    None when the store has no product, category, channel or quantity columns.
    """
    shares = [c for c in features.columns if c.startswith(("category_share_", "channel_share_"))]
    means = [
        c
        for c in _MIX_MEANS
        if c in features.columns and features[c].null_count() < features.height
    ]
    if not shares and not means:
        return None
    gross = pl.col("gross_spend")
    weighted = [
        ((pl.col(c) * gross).sum() / gross.filter(pl.col(c).is_not_null()).sum()).alias(c)
        for c in shares
    ]
    switch = [c for c in features.columns if c.startswith("channel_switch_")]
    table = features.group_by(pl.col("value_tier").alias("segment")).agg(
        pl.len().alias("customers"),
        *(pl.col(c).mean() for c in means),
        *weighted,
        *(pl.col(c).cast(pl.Float64).mean().alias(f"{c} share") for c in switch if shares),
    )
    order = {t: i for i, t in enumerate(TIER_ORDER)}
    return table.sort(pl.col("segment").replace_strict(order, default=len(order)))


def campaign_cost(store: Store, campaign: str, policy: TargetPolicy) -> float | None:
    """Return the cost of a campaign's treatment groups by ``[targeting.costs]``, or None."""
    rows = read_ledger(store).filter(
        (pl.col("campaign_id") == campaign) & (pl.col("group") == "treatment")
    )
    total = 0.0
    for name, count in rows.group_by(arm().alias("arm")).len().iter_rows():
        cost = policy.costs.get(name, policy.default_cost)
        if cost is None:
            return None
        total += cost * count
    return total
