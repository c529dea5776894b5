"""Names of customer attributes: how a file's header becomes one, and which are refused.

An attribute joins the feature table under its own name, so a name crmkit computes
(``recency_days``, ``value_tier``, ``churn_probability``...) would silently replace or be
replaced by the computed column: such names are refused, never renamed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from crmkit.errors import ConfigError


def attribute_name(header: str) -> str:
    """Return the stored name of a source column: lower case, letters, digits and ``_``."""
    name = re.sub(r"[^a-z0-9]+", "_", header.lower()).strip("_")[:60]
    if not name:
        return "column"
    return name if name[0].isalpha() else f"a_{name}"


#: Columns crmkit computes after the feature table (segments, scores, lists, labels).
DOWNSTREAM: Final = frozenset(
    {
        "as_of", "campaign_id", "churn_probability", "churned", "customer_share",
        "customers", "cycle_class", "expected_profit", "expected_uplift",
        "expected_value_at_risk", "f_score", "group", "m_score", "planned_treatment",
        "policy", "rank", "reasons", "rfm_score", "rfm_segment", "r_score", "risk_decile",
        "segment", "spend_class", "treatment", "uplift_model", "value", "value_share",
        "value_tier", "cluster", "label", "outcome", "predicted_clv", "p_alive",
        "value_if_active", "alive_value", "lifecycle", "top_driver", "rule_reasons",
        "offer_code", "top_reason", "return_per_pound", "sent",
    }
)  # fmt: skip
#: Feature columns whose names depend on settings or on the store's vocabulary.
COMPUTED_PATTERN: Final = re.compile(
    r"^(?:(?:days|spend)(?:_prev|_change|_trend)?|distinct_(?:products|categories)(?:_change)?"
    r"|top_category_share_change|channel_switch)_\d+$"
    r"|^(?:category_share|channel_share|channel_days_share)_"
)


def refuse_computed_names(columns: Sequence[str], taken: Sequence[str] = ()) -> None:
    """Refuse attribute columns named like a column crmkit computes (never rename them).

    Raises
    ------
    ConfigError
        Naming every such attribute.
    """
    from crmkit.features.customer import FEATURE_SCHEMA

    reserved = set(FEATURE_SCHEMA) | DOWNSTREAM | set(taken)
    clash = [c for c in columns if c in reserved or COMPUTED_PATTERN.match(c)]
    if clash:
        raise ConfigError(
            f"[features] attributes: {', '.join(clash)} would replace a column crmkit "
            "computes; rename the column in the customer file (for example "
            f"customer_{clash[0]}) and load it again with `crmkit ingest --kind customers`"
        )
