"""The targeting policy: whom a daily list takes, with which treatment, within what budget."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class TargetPolicy:
    """Who gets on a retention list, with which treatment, in which group.

    Attributes
    ----------
    min_customer_value
        Customers worth less than this are let go (not targeted).
    exclude_tiers
        Value tiers let go whatever their risk (``adjust``: small spend, long cycle).
    min_churn_probability
        Customers less likely to churn than this are left alone (``value_at_risk`` policy
        only: the ``uplift`` policy contacts whom the treatment changes, whatever the risk).
    size
        At most this many customers on the list (all groups), highest value at risk first.
    budget
        At most this much spent on contacts (treatment group only, by ``costs``).
    control_fraction
        Share of the list kept as a control group (never contacted).
    holdout_fraction
        Share of all customers in the universal holdout, excluded from every campaign.
    holdout_salt
        Salt of the universal holdout hash (change it only to start a new holdout).
    cooldown_days
        Customers put in any group of any campaign within this many days are skipped.
    optouts
        File of customer ids (one per line, or a CSV with ``customer_id``) never targeted.
    treatment_by
        ``"value_tier"`` or ``"rfm_segment"``: the column that selects the treatment.
    treatments
        Segment or tier name -> treatment.
    default_treatment
        Treatment of segments not in ``treatments``.
    costs
        Treatment -> cost per contact, for ``budget`` and the spend report.
    default_cost
        Cost per contact of treatments without an entry in ``costs``. A budget with a
        treatment that has neither is refused: it would count that treatment as free.
    policy
        ``"value_at_risk"``: rank by churn probability times customer value and take the
        treatment of the customer's segment. ``"uplift"``: for each customer, the treatment
        of the uplift model (``uplift_model``) with the highest expected incremental profit,
        contacted only when that profit is positive (see :mod:`crmkit.campaigns.uplift_policy`).
    uplift_model
        Registry name (``NAME`` or ``NAME:VERSION``) of the uplift model of the ``uplift``
        policy.
    uplift_value
        What a change in purchase probability is worth: ``"customer_value"`` (the uplift
        times the customer's value) or ``"revenue"`` (the model's predicted incremental
        revenue in its window).
    explore_fraction
        Under the ``uplift`` policy, the share of the list chosen at random among eligible
        customers, with a random treatment, so later models see customers this one skips.
    uplift_caution
        Under the ``uplift`` policy, the number of spreads (standard deviations over the
        uplift model's five member models) taken off each predicted uplift before its
        profit is weighed; 0 uses the prediction as it is.
    uplift_evidence
        Under the ``uplift`` policy, what to do with the arms whose cross-fitted Qini's 95%
        interval does not clear zero (no evidence of ranking better than random): they
        are left out, and with no arm left ``"refuse"`` stops the list (exit 5),
        ``"value_at_risk"`` ranks that day's list by value at risk; ``"off"`` uses every
        arm (see :mod:`crmkit.models.uplift_evidence`). Each case is said in a warning.
    uplift_outside
        What the uplift model predicts for customers outside an arm's training support
        (value, tenure, orders, recency or net spend beyond the range of the campaign's
        customers): ``"shrink"`` to the arm's average effect, ``"exclude"`` them from the
        arm, or ``"off"`` (predict anyway). Counted in a warning (see
        :mod:`crmkit.models.uplift_support`).
    effects
        Treatment -> the share of a customer's churn probability it removes (0.1 turns a
        60% risk into 54%), for the ``value_at_risk`` policy's budget allocation: every
        treatment with an effect is an option, and the budget goes where each pound
        returns most (see :mod:`crmkit.campaigns.budget`). Empty: the segment's treatment,
        by value at risk per pound.
    segment_effects
        Segment (the ``treatment_by`` column) -> treatment -> effect, overriding
        ``effects`` for that segment.
    lifecycle
        ``"retain"``: customers probably still active (P(alive) at least ``[segments]
        min_p_alive``), the retention list. ``"win_back"``: the probably gone, a campaign
        of its own, valued by ``win_back_rate``.
    win_back_rate
        Share of probably-gone customers expected to come back when contacted: a win-back
        contact is worth this times their value if active.
    contact_columns
        Customer attributes the contact file and the destination table carry (email,
        phone, name...), as known at the start of the list's day; with them, each row
        also gets ``offer_code`` and ``top_reason`` (see :mod:`crmkit.campaigns.contacts`).
    channel_columns
        Treatment -> the contact column it needs (``call = "phone"``); customers without
        a value there are no option for that treatment, and are counted.
    offer_codes
        Treatment -> the offer code the contact file gives its customers.
    destination
        A database URI (``${VAR}`` expanded) that ``targets`` and ``run`` also write the
        contact list into, table ``destination_table`` (see :mod:`crmkit.io.destination`).
    destination_table
        The table of ``destination``.
    """

    min_customer_value: float = 0.0
    exclude_tiers: tuple[str, ...] = ("adjust",)
    min_churn_probability: float = 0.2
    size: int | None = None
    budget: float | None = None
    control_fraction: float = 0.2
    holdout_fraction: float = 0.05
    holdout_salt: str = "crmkit-universal-holdout"
    cooldown_days: int = 30
    optouts: str | None = None
    treatment_by: Literal["value_tier", "rfm_segment"] = "value_tier"
    treatments: Mapping[str, str] = field(default_factory=dict)
    default_treatment: str = "email"
    costs: Mapping[str, float] = field(default_factory=dict)
    default_cost: float | None = None
    policy: Literal["value_at_risk", "uplift"] = "value_at_risk"
    uplift_model: str = "uplift"
    uplift_value: Literal["customer_value", "revenue"] = "customer_value"
    explore_fraction: float = 0.1
    uplift_caution: float = 1.0
    uplift_evidence: Literal["refuse", "value_at_risk", "off"] = "refuse"
    uplift_outside: Literal["shrink", "exclude", "off"] = "shrink"
    effects: Mapping[str, float] = field(default_factory=dict)
    segment_effects: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    lifecycle: Literal["retain", "win_back"] = "retain"
    win_back_rate: float = 0.05
    contact_columns: tuple[str, ...] = ()
    channel_columns: Mapping[str, str] = field(default_factory=dict)
    offer_codes: Mapping[str, str] = field(default_factory=dict)
    destination: str | None = None
    destination_table: str = "crmkit_contacts"
