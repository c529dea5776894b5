"""``crmkit policy compare``: gather a campaign, estimate every policy, keep the result.

The estimates and their method are in :mod:`crmkit.campaigns.policy_compare`. The result
is saved as ``STORE/comparisons/<campaign>.json`` (atomically), where ``crmkit report``
finds it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import numpy as np
import polars as pl

from crmkit import schema
from crmkit.campaigns.names import check_campaign
from crmkit.campaigns.offpolicy import ROUNDS
from crmkit.campaigns.policy_compare import (
    Candidates,
    Logged,
    compare_policies,
    logged_actions,
    outcome_models,
    policies,
    uplift_profit,
)
from crmkit.config.policy import TargetPolicy
from crmkit.config.settings import Settings
from crmkit.errors import BadInputError, ConfigError, ModelError
from crmkit.models.registry import ModelRef, Registry
from crmkit.models.threads import threads
from crmkit.models.uplift_data import CampaignDesign, campaign_design, training_frame
from crmkit.models.uplift_learners import UpliftModel, customer_folds
from crmkit.progress import ProgressFn, Steps
from crmkit.store.core import Store
from crmkit.store.files import atomic_write_bytes

COMPARISONS: Final = "comparisons"


@dataclass(frozen=True)
class PolicyComparison:
    """Every policy's estimated result on one campaign at one budget."""

    campaign: str
    window_days: int
    budget: float
    customers: int
    actions: list[str]
    shared_control: bool
    uplift_source: str
    policies: list[dict[str, Any]]
    bootstrap_rounds: int
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Return the comparison as a JSON-ready mapping."""
        return asdict(self)


def arm_costs(actions: list[str], policy: TargetPolicy) -> np.ndarray:
    """Cost per contact of each action (the control costs nothing).

    Raises
    ------
    ConfigError
        An arm without a cost in ``[targeting.costs]`` and no ``default_cost``.
    """
    free = [a for a in actions[1:] if a not in policy.costs and policy.default_cost is None]
    if free:
        raise ConfigError(
            f"arm(s) {', '.join(free)} have no cost in [targeting.costs] and there is no "
            "[targeting] default_cost: a budget cannot be shared without them"
        )
    return np.array(
        [0.0, *(float(policy.costs.get(a, policy.default_cost or 0.0)) for a in actions[1:])]
    )


def _cross_fitted_worth(mu: dict[str, np.ndarray], value: np.ndarray, by: str) -> np.ndarray:
    if by == "revenue":
        out: np.ndarray = mu["revenue"] - mu["revenue"][:, :1]
    else:
        out = (mu["customers"] - mu["customers"][:, :1]) * value[:, None]
    return out


def _model_worth(
    store: Store,
    design: CampaignDesign,
    logged: Logged,
    settings: Settings,
    loaded: tuple[UpliftModel, Any, str],
    window: int,
    extra: Store | None,
) -> tuple[np.ndarray, list[str]]:
    """Return each arm's expected incremental value by a saved uplift model, and notes."""
    from crmkit.models.scoring import card_feature_config, card_vocabulary

    model, card, name = loaded
    campaign = str(design.rows["campaign_id"][0])
    if campaign in card.get("campaigns", []):
        raise BadInputError(
            f"uplift model {name} was trained on campaign {campaign}: compare it on a "
            "campaign it did not see, or leave out --model to cross-fit on this one"
        )
    frame, _ = training_frame(
        store, [campaign], window, card_feature_config(card), extra, card_vocabulary(card)
    )
    keys = [schema.CUSTOMER_ID, "as_of"]
    frame = design.rows.select(keys).join(frame, on=keys, how="left", maintain_order="left")
    from crmkit.models.design import design_matrix

    x = design_matrix(frame, model.features, model.categories)
    value = frame["customer_value"].fill_null(0.0).to_numpy()
    worth = np.zeros(logged.propensity.shape)
    notes = []
    policy = settings.targeting
    for k, arm in enumerate(logged.actions[1:], start=1):
        if arm not in model.arms:
            worth[:, k] = -np.inf
            notes.append(f"uplift model {name} has no arm {arm}: the uplift policy never uses it")
            continue
        if policy.uplift_value == "revenue":
            worth[:, k] = model.arms[arm].revenue(x)
            continue
        uplift, spread = model.arms[arm].uplift_and_spread(x)
        worth[:, k] = (uplift - policy.uplift_caution * spread) * value
    return worth, notes


def compare_campaign(
    store: Store,
    campaign: str,
    window: int,
    settings: Settings,
    *,
    budget: float,
    model: tuple[Registry, ModelRef] | None = None,
    extra: Store | None = None,
    seed: int = 0,
    rounds: int = ROUNDS,
    progress: ProgressFn | None = None,
) -> PolicyComparison:
    """Estimate every policy on ``campaign`` at ``budget`` (module text).

    ``progress`` is told of each stage; the models are fitted on the idle cores.

    Raises
    ------
    BadInputError
        A campaign without treated or control customers, windows not yet passed, or a
        model trained on this campaign.
    ConfigError
        Arms without a cost.
    """
    check_campaign(campaign)
    if budget <= 0:
        raise BadInputError("--budget must be positive")
    design = campaign_design(
        store, [campaign], window, settings.features, extra,
        all_attributes=settings.model.uplift_attributes == "all",
    )  # fmt: skip
    rows = design.rows
    steps = Steps(progress, 4)
    steps("features of the campaign's customers")
    with threads(0):
        logged, y, mu = _logged_outcomes(design, campaign, seed)
        steps("outcome models, cross-fitted")
        value = rows["customer_value"].fill_null(0.0).to_numpy()
        worth, source, notes = _worth(store, design, logged, mu, value, settings, model, window,
                                      extra)  # fmt: skip
    cost = arm_costs(list(logged.actions), settings.targeting)
    steps("what each customer is worth to each policy")
    candidates = Candidates(
        rows[schema.CUSTOMER_ID],
        value,
        1.0 - mu["customers"][:, 0],
        uplift_profit(worth, cost, logged.propensity > 0),
    )
    chosen = policies(candidates, logged, cost, budget, salt=f"policy-compare|{campaign}")
    estimates = compare_policies(y, logged, mu, chosen, cost, seed, rounds)
    steps(f"policies estimated, {rounds} bootstrap rounds")
    return PolicyComparison(
        campaign, window, budget, rows.height, list(logged.actions), logged.shared, source,
        estimates, rounds, notes,
    )  # fmt: skip


def _worth(
    store: Store,
    design: CampaignDesign,
    logged: Logged,
    mu: dict[str, np.ndarray],
    value: np.ndarray,
    settings: Settings,
    model: tuple[Registry, ModelRef] | None,
    window: int,
    extra: Store | None,
) -> tuple[np.ndarray, str, list[str]]:
    """Return what treating each customer with each arm is worth, its source, and notes."""
    if model is None:
        worth = _cross_fitted_worth(mu, value, settings.targeting.uplift_value)
        return worth, "cross-fitted T-learner on this campaign", []
    loaded = _load_uplift(*model)
    worth, notes = _model_worth(store, design, logged, settings, loaded, window, extra)
    return worth, f"uplift model {loaded[2]}", notes


def _logged_outcomes(
    design: CampaignDesign, campaign: str, seed: int
) -> tuple[Logged, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Return the campaign's logged actions, outcomes and cross-fitted outcome models.

    Raises
    ------
    BadInputError
        No treated or no control customers, or too few to cross-fit.
    """
    rows = design.rows
    try:
        logged = logged_actions(rows)
    except ValueError as exc:
        raise BadInputError(f"campaign {campaign}: {exc}") from None
    y = {
        "customers": rows["retained"].cast(pl.Float64).to_numpy(),
        "revenue": rows["revenue"].cast(pl.Float64).to_numpy(),
    }
    folds = customer_folds(rows[schema.CUSTOMER_ID].cast(pl.String))
    try:
        mu = outcome_models(design.matrix(), y, logged, folds, seed)
    except ValueError as exc:
        raise BadInputError(
            f"campaign {campaign}: too few customers to cross-fit ({exc})"
        ) from None
    return logged, y, mu


def _load_uplift(registry: Registry, ref: ModelRef) -> tuple[UpliftModel, Any, str]:
    loaded, card = registry.load(ref)
    name = f"{ref.name}{':' + str(ref.version) if ref.version else ''}"
    card.require("uplift")
    if not isinstance(loaded, UpliftModel):
        raise ModelError(f"model {name} is not an uplift model (crmkit uplift train)")
    return loaded, card, name


def save_comparison(store: Store, result: PolicyComparison) -> str:
    """Write the comparison to ``STORE/comparisons/<campaign>.json``; return the path."""
    path = store.root / COMPARISONS / f"{check_campaign(result.campaign)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result.to_json(), indent=2, sort_keys=True, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode("utf-8"))
    return str(path)


def load_comparison(store: Store, campaign: str) -> dict[str, Any] | None:
    """Return the saved comparison of ``campaign``, or None."""
    path = store.root / COMPARISONS / f"{check_campaign(campaign)}.json"
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
