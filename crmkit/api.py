"""The Python face of crmkit: the commands' work as functions taking and returning polars.

Every function here does what the command of the same name does, with the same settings
(``crmkit.toml``, or defaults) and the same checks; errors are the typed errors of
:mod:`crmkit.errors`, each with the exit code the command would give. Dates are
``datetime.date`` or ``"YYYY-MM-DD"``; stores and registries are paths or opened objects.
``now`` (the time recorded for an ingest or a trained model) is the current UTC time
unless given: the functions below read the clock, the modules under them never do.

>>> import crmkit
>>> store = crmkit.open_store("crm-store")
>>> crmkit.ingest_files(store, "export.csv")                # doctest: +SKIP
>>> features = crmkit.feature_table(store, "2025-01-01")    # doctest: +SKIP

The names differ from the subpackages' (``crmkit.ingest``, ``crmkit.features``): a
subpackage, once imported, is an attribute of ``crmkit`` and would hide a function.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from crmkit.campaigns.daily import RunOptions, targets_for
from crmkit.campaigns.evaluation import Evaluation, evaluate_campaign, outcome_store
from crmkit.campaigns.lists import TargetResult
from crmkit.campaigns.names import check_campaign
from crmkit.campaigns.planning import Plan
from crmkit.config.loading import load_settings
from crmkit.config.settings import Settings
from crmkit.errors import UsageError
from crmkit.ingest import ingest_files as _ingest_files
from crmkit.ingest.report import IngestReport
from crmkit.models.churn import TrainResult, train_and_save
from crmkit.models.registry import Registry, open_registry, parse_ref
from crmkit.models.scoring import score_customers
from crmkit.models.uplift import score_uplift as _score_uplift
from crmkit.models.uplift import train_uplift as _train_uplift
from crmkit.segments.apply import feature_table as _feature_table
from crmkit.store.core import Store

StoreLike = Store | str | Path
RegistryLike = Registry | str | Path
SettingsLike = Settings | str | Path | None
DateLike = dt.date | str


def open_store(path: StoreLike) -> Store:
    """Open the store at ``path`` (it need not exist until the first ingest)."""
    return path if isinstance(path, Store) else Store(Path(path))


def settings(path: SettingsLike = None) -> Settings:
    """Load ``crmkit.toml`` settings from ``path`` (defaults without one)."""
    if isinstance(path, Settings):
        return path
    return load_settings(None if path is None else Path(path))


def _date(value: DateLike, name: str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise UsageError(f"{name} {value!r}: use YYYY-MM-DD") from exc


def _now(now: dt.datetime | None) -> dt.datetime:
    """Return ``now`` (or the clock) as naive UTC, the store's times."""
    if now is None:
        return dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return now.astimezone(dt.UTC).replace(tzinfo=None) if now.tzinfo else now


def _registry(registry: RegistryLike, cfg: Settings) -> Registry:
    if isinstance(registry, Registry):
        return registry
    return open_registry(Path(registry), cfg.model.key_file)


def ingest_files(
    store: StoreLike,
    *sources: str | Path,
    config: SettingsLike = None,
    now: dt.datetime | None = None,
    strict: bool = False,
) -> IngestReport:
    """Ingest transaction files, directories or glob patterns, as ``crmkit ingest``."""
    cfg = settings(config)
    return _ingest_files(
        sources, open_store(store), cfg.ingest, now=_now(now), strict=strict, store_config=cfg.store
    )


def feature_table(
    store: StoreLike, as_of: DateLike, *, config: SettingsLike = None
) -> pl.DataFrame:
    """One row per customer as of the start of ``as_of``, with RFM and value tiers."""
    return _feature_table(open_store(store), _date(as_of, "as_of"), settings(config))


def train(
    store: StoreLike,
    as_of: DateLike,
    *,
    horizon: int = 90,
    registry: RegistryLike = "models",
    config: SettingsLike = None,
    now: dt.datetime | None = None,
) -> TrainResult:
    """Train the churn model ``[model] name`` and save its next version, as ``crmkit train``."""
    cfg = settings(config)
    return train_and_save(
        open_store(store), _date(as_of, "as_of"), horizon, cfg, _registry(registry, cfg),
        created=_now(now),
    )  # fmt: skip


def score(
    store: StoreLike,
    as_of: DateLike,
    *,
    registry: RegistryLike = "models",
    model: str | None = None,
    config: SettingsLike = None,
) -> pl.DataFrame:
    """Churn probability, risk decile and value at risk per eligible customer."""
    cfg = settings(config)
    ref = parse_ref(model or cfg.model.name)
    result = score_customers(
        open_store(store),
        _date(as_of, "as_of"),
        ref,
        _registry(registry, cfg),
        cfg.segments,
        cfg.model.explain_rows,
    )
    return result.frame


def targets(
    store: StoreLike,
    as_of: DateLike,
    campaign: str,
    *,
    out: str | Path = "out",
    registry: str | Path = "models",
    model: str | None = None,
    config: SettingsLike = None,
    dry_run: bool = False,
    replace: bool = False,
) -> TargetResult:
    """Build the day's list, record it in the ledger and write its files, as ``crmkit targets``.

    ``dry_run`` gives the list a real run would give and writes nothing.
    """
    options = RunOptions(
        _date(as_of, "as_of"), check_campaign(campaign), None, Path(out), Path(registry), model,
        replace=replace, dry_run=dry_run,
    )  # fmt: skip
    return targets_for(open_store(store), options, settings(config))


def evaluate(
    store: StoreLike,
    campaign: str,
    *,
    window: int = 60,
    sequential: bool | None = None,
    adjust: bool | None = None,
    config: SettingsLike = None,
) -> Evaluation:
    """Treatment against control for a recorded campaign, with intervals, as ``evaluate``.

    ``adjust`` and ``sequential`` add the adjusted estimates and the always-valid
    intervals (default: the ``[evaluate]`` settings: adjusted, not sequential).
    """
    from crmkit.campaigns.estimates import analysis_of

    analysis = analysis_of(settings(config).evaluate, adjust, sequential)
    return evaluate_campaign(open_store(store), check_campaign(campaign), window, analysis=analysis)


def plan(
    store: StoreLike,
    as_of: DateLike,
    campaign_size: int,
    *,
    effect: float | None = None,
    metric: str = "retention",
    power: float = 0.8,
    control_fraction: float | None = None,
    window: int = 60,
    config: SettingsLike = None,
) -> Plan:
    """``crmkit plan``: the control group a campaign needs, plain and adjusted.

    ``effect`` is absolute (0.02 for +2 retention points, or revenue per customer);
    without it, the plan holds the minimum detectable effect at ``control_fraction``.
    """
    from crmkit.campaigns.planning import plan_campaign, store_baseline

    cfg = settings(config)
    baseline = store_baseline(
        open_store(store), _date(as_of, "as_of"), window, cfg.model.lookback_days
    )
    return plan_campaign(
        baseline, campaign_size, metric=metric, effect=effect,
        control_share=control_fraction, target=power,
    )  # fmt: skip


def train_uplift(
    store: StoreLike,
    campaigns: Sequence[str],
    *,
    window: int = 60,
    registry: RegistryLike = "models",
    name: str = "uplift",
    learner: str = "auto",
    outcomes: str | Path | None = None,
    config: SettingsLike = None,
    now: dt.datetime | None = None,
) -> str:
    """Learn per-arm uplift from randomised campaigns and save it; return ``NAME:VERSION``.

    ``outcomes`` counts a file's purchases as outcomes without ingesting it.
    """
    cfg = settings(config)
    for campaign in campaigns:
        check_campaign(campaign)
    with contextlib.ExitStack() as stack:
        extra = None
        if outcomes is not None:
            extra, _ = stack.enter_context(outcome_store(Path(outcomes), _now(now)))
        result = _train_uplift(
            open_store(store), campaigns, window, cfg.features, created=_now(now),
            learner=learner, extra=extra, all_attributes=cfg.model.uplift_attributes == "all",
        )  # fmt: skip
    version, _ = _registry(registry, cfg).save(parse_ref(name).name, result.model, result.card)
    return f"{parse_ref(name).name}:{version}"


def score_uplift(
    store: StoreLike,
    as_of: DateLike,
    *,
    registry: RegistryLike = "models",
    model: str = "uplift",
    config: SettingsLike = None,
) -> pl.DataFrame:
    """Predict the uplift of each treatment per customer as of ``as_of``, as ``uplift score``."""
    cfg = settings(config)
    frame, _ = _score_uplift(
        open_store(store), _date(as_of, "as_of"), _registry(registry, cfg), parse_ref(model),
        outside=cfg.targeting.uplift_outside,
    )  # fmt: skip
    return frame


def compare_policies(
    store: StoreLike,
    campaign: str,
    *,
    budget: float,
    window: int = 60,
    registry: RegistryLike = "models",
    model: str | None = None,
    outcomes: str | Path | None = None,
    config: SettingsLike = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Replay every targeting policy on a past campaign at ``budget``, as ``policy compare``.

    ``model`` is an uplift model trained on other campaigns (default: cross-fitted on this
    one); ``outcomes`` counts a file's purchases as outcomes without ingesting it. Returns
    the comparison (also saved in the store for ``crmkit report``).
    """
    from crmkit.campaigns.policy_run import compare_campaign, save_comparison

    cfg = settings(config)
    opened = open_store(store)
    chosen = None if model is None else (_registry(registry, cfg), parse_ref(model))
    with contextlib.ExitStack() as stack:
        extra = None
        if outcomes is not None:
            extra, _ = stack.enter_context(outcome_store(Path(outcomes), _now(now)))
        result = compare_campaign(
            opened, check_campaign(campaign), window, cfg, budget=budget, model=chosen,
            extra=extra,
        )  # fmt: skip
    save_comparison(opened, result)
    return result.to_json()
