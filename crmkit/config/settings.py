"""Typed settings, loaded once from ``crmkit.toml`` and command-line overrides.

Every section is a frozen dataclass; unknown keys are an error that names the key, so a
typo in the configuration never passes silently.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import tomllib
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from crmkit import columns
from crmkit.config.rules import validate
from crmkit.errors import ConfigError

T = TypeVar("T")

Decimal = Literal["auto", ".", ","]
Encoding = Literal["auto", "utf-8", "utf-16", "utf-32", "cp1252", "latin-1"]


@dataclass(frozen=True)
class CancellationRule:
    """How a source marks cancellations; matching rows get a negative amount and quantity.

    Attributes
    ----------
    order_id_prefix
        Order ids starting with this text are cancellations (``"C"`` in Online Retail).
    status_column
        A source column holding an order status.
    status_values
        Values of ``status_column`` (case-insensitive) that mean cancelled or refunded.
    """

    order_id_prefix: str | None = None
    status_column: str | None = None
    status_values: tuple[str, ...] = ()


@dataclass(frozen=True)
class IngestConfig:
    """How source files are read and validated.

    Attributes
    ----------
    columns
        Canonical column name -> source column name, for columns not recognised by alias.
    date_format
        An explicit ``strftime`` format for the date column; otherwise formats are detected.
    dayfirst
        Read ``01/02/2024`` as 1 February; ``None`` detects it from the file.
    decimal
        Decimal separator of numbers, ``"auto"`` to detect it per file.
    encoding
        Text encoding, ``"auto"`` tries UTF-8 and falls back to cp1252/latin-1.
    delimiter
        Field delimiter, detected when unset.
    min_date
        Transactions before this date are implausible and quarantined.
    max_future_days
        Transactions more than this many days after the ingest time are quarantined.
    max_abs_amount
        Amounts larger than this in absolute value are quarantined as implausible.
    cancellations
        The rule that turns cancelled lines into negative amounts.
    exclude
        Canonical column -> regular expression; matching rows are quarantined as
        ``excluded_by_rule`` (e.g. postage or fee lines that are not purchases).
    dedupe
        Drop rows identical (on every canonical column) to a row already stored.
    """

    columns: Mapping[str, str] = field(default_factory=dict)
    date_format: str | None = None
    dayfirst: bool | None = None
    decimal: Decimal = "auto"
    encoding: Encoding = "auto"
    delimiter: str | None = None
    min_date: dt.date = dt.date(1990, 1, 1)
    max_future_days: int = 1
    max_abs_amount: float = 1e9
    cancellations: CancellationRule = field(default_factory=CancellationRule)
    exclude: Mapping[str, str] = field(default_factory=dict)
    dedupe: bool = True


@dataclass(frozen=True)
class StoreConfig:
    """Layout of a new store.

    Attributes
    ----------
    buckets
        Number of customer hash buckets the transactions are partitioned into.
    max_parts_per_bucket
        A bucket with more Parquet parts than this is compacted into one at commit.
    """

    buckets: int = 16
    max_parts_per_bucket: int = 8


@dataclass(frozen=True)
class FeatureConfig:
    """Parameters of the feature pipeline.

    Attributes
    ----------
    windows
        Trailing window lengths in days; each is compared with the window before it.
    value_period_days
        Period length of the discounted historical value.
    value_discount_rate
        Discount rate per period of the historical value: spend ``i`` periods ago is
        divided by ``(1 + rate) ** i``.
    projection_horizon_days
        Horizon of the projected value (and so of ``customer_value``).
    annual_discount_rate
        Annual rate discounting the projected value to the middle of its horizon.
    season_window_days
        Length of the "same season last year" window ``[T - 365, T - 365 + W)``: what the
        customer did in the period ahead, one year earlier.
    mix
        Compute the mix features (products, categories, channels, units); when false they
        are null, no vocabulary is learned, and the pipeline costs what version 2 did.
    mix_window_days
        Window of the mix changes: distinct products and categories, top-category share
        and dominant channel in ``[T - W, T)`` against ``[T - 2W, T - W)``.
    top_categories
        How many of the store's most frequent categories get a spend-share column each.
    top_channels
        How many of the store's most frequent channels get spend- and day-share columns.
    attributes
        Customer attributes (``crmkit ingest --kind customers``) joined to the feature
        table: text and yes/no values as categories, numbers as they are, dates as ages
        in days (``<name>_age_days``).
    """

    windows: tuple[int, ...] = (30, 90, 365)
    value_period_days: int = 90
    value_discount_rate: float = 0.05
    projection_horizon_days: int = 365
    annual_discount_rate: float = 0.10
    season_window_days: int = 90
    mix: bool = True
    mix_window_days: int = 90
    top_categories: int = 5
    top_channels: int = 3
    attributes: tuple[str, ...] = ()


@dataclass(frozen=True)
class SegmentConfig:
    """Segmentation settings.

    Attributes
    ----------
    cycle_edges
        Explicit (short/medium, medium/long) mean-cycle thresholds in days; tertiles if empty.
    spend_edges
        Explicit (small/medium, medium/large) spend-per-purchase thresholds; tertiles if empty.
    one_time_buyers
        ``"long"`` places customers with a single purchase day in the long-cycle column of
        the value grid; ``"separate"`` gives them their own tier ``one_time``.
    kmeans_features
        Feature columns clustered by k-means (log-scaled, then standardised).
    max_k
        Largest k tried by ``--k auto``.
    seed
        Random seed of k-means and of the silhouette sample.
    """

    cycle_edges: tuple[float, ...] = ()
    spend_edges: tuple[float, ...] = ()
    one_time_buyers: Literal["long", "separate"] = "long"
    kmeans_features: tuple[str, ...] = (
        "recency_days",
        "purchase_days",
        "gross_spend",
        "mean_spend_per_day",
        "tenure_days",
        "spend_trend_365",
    )
    max_k: int = 8
    seed: int = 0


@dataclass(frozen=True)
class ModelConfig:
    """Churn model training settings.

    Attributes
    ----------
    registry
        Directory of the model registry.
    name
        Model name used by ``train``, ``score`` and ``run`` when none is given.
    snapshots
        Number of training cutoffs ``T_k = as_of - horizon - k * step``.
    step_days
        Days between cutoffs (30: a year of monthly cutoffs covers every season).
    lookback_days
        A customer is eligible at a cutoff when their last purchase is at most this many
        days before it.
    kind
        ``"blend"`` (the mean log-odds of both, :mod:`crmkit.models.estimators`), ``"hgb"``
        (histogram gradient boosting) or ``"logreg"``.
    calibration
        ``"auto"`` (the map with the lower out-of-time log loss), ``"isotonic"`` (bounded
        away from 0 and 1) or ``"sigmoid"``, fitted on out-of-fold predictions.
    min_customers, min_class
        Training is refused below these numbers of rows / churners / non-churners.
    seed
        Random seed.
    threads
        OpenMP threads of gradient boosting, fitting and predicting; 0 (the default) uses
        every core. The logistic regression always runs on one BLAS thread, its fastest
        (see :func:`crmkit.models.churn.threads`).
    max_training_rows
        Most rows of stacked snapshots a model learns from (0: no limit). Above it, each
        snapshot keeps an equal share, drawn by customer with the seed and stratified by
        label; features are computed only for the store buckets that supply it.
    clv_features
        Add BG/NBD and Gamma-Gamma predictions, fitted point in time at every cutoff, as
        model features.
    customer_value
        ``"projected"`` (the pipeline's projected value) or ``"clv"`` (discounted CLV from
        BG/NBD and Gamma-Gamma fitted as of the scoring date) as the value of a customer.
    key_file
        File holding a secret key (16 bytes or more) kept outside the registry: models are
        signed with it when trained and refused when loaded unsigned or mis-signed.
    """

    registry: str = "models"
    name: str = "churn"
    snapshots: int = 16
    step_days: int = 30
    lookback_days: int = 365
    kind: Literal["blend", "hgb", "logreg"] = "blend"
    calibration: Literal["auto", "isotonic", "sigmoid"] = "auto"
    min_customers: int = 200
    min_class: int = 30
    seed: int = 0
    threads: int = 0
    max_training_rows: int = 500_000
    clv_features: bool = False
    customer_value: Literal["projected", "clv"] = "projected"
    key_file: str | None = None


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
    destination: str | None = None
    destination_table: str = "crmkit_contacts"


@dataclass(frozen=True)
class ReportConfig:
    """How the HTML report shows money.

    Attributes
    ----------
    currency
        Symbol or code written before every amount (``"£"``, ``"EUR "``); none by default.
    """

    currency: str = ""


@dataclass(frozen=True)
class ComputeConfig:
    """Where the per-bucket work runs (:mod:`crmkit.store.executors`).

    Attributes
    ----------
    executor
        ``"local"`` (this process) or ``"dask"`` (one task per store bucket).
    scheduler
        Address of a running Dask scheduler (``tcp://host:8786``); when empty, ``dask``
        starts a ``LocalCluster`` of ``workers`` processes on this machine.
    workers
        Worker processes of that LocalCluster.
    """

    executor: Literal["local", "dask"] = "local"
    scheduler: str | None = None
    workers: int = 2


@dataclass(frozen=True)
class SourceConfig:
    """A database that ``crmkit run`` pulls new transactions from (see :mod:`crmkit.io.sql`).

    ``uri`` (``${VAR}`` read from the environment when used) with ``query`` or ``table``;
    ``since_column`` grows with new rows (a timestamp or an id): each pull reads only the
    rows at or above the highest value pulled before, which the store keeps per source.
    """

    uri: str | None = None
    query: str | None = None
    table: str | None = None
    since_column: str | None = None


@dataclass(frozen=True)
class Settings:
    """All settings of one crmkit invocation."""

    ingest: IngestConfig = field(default_factory=IngestConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    segments: SegmentConfig = field(default_factory=SegmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    targeting: TargetPolicy = field(default_factory=TargetPolicy)
    report: ReportConfig = field(default_factory=ReportConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    source: SourceConfig = field(default_factory=SourceConfig)


def overlay(settings: Settings, section: str, **values: Any) -> Settings:  # noqa: ANN401
    """Return ``settings`` with the keys of one section replaced by the non-None ``values``.

    Command-line options override the configuration this way: an option left unset is
    None and keeps the configured value. The result is validated like a loaded file.

    Raises
    ------
    ConfigError
        When a value is out of range (see :func:`validate`).
    """
    given = {k: v for k, v in values.items() if v is not None}
    if not given:
        return settings
    part = dataclasses.replace(getattr(settings, section), **given)
    out = dataclasses.replace(settings, **{section: part})
    validate(out, "command line")
    return out


def ingest_overrides(
    settings: Settings,
    column_map: str | None = None,
    date_format: str | None = None,
    dayfirst: bool | None = None,
) -> Settings:
    """Apply ``crmkit ingest``'s options: ``--map`` pairs join the configured mapping.

    Raises
    ------
    ConfigError
        On a ``--map`` pair that names no canonical column.
    """
    columns = {**settings.ingest.columns, **(parse_column_map(column_map) if column_map else {})}
    return overlay(settings, "ingest", columns=columns, date_format=date_format, dayfirst=dayfirst)


def _convert(value: Any, hint: Any, where: str) -> Any:  # noqa: ANN401
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _convert(value, options[0], where)
    if origin is Literal:
        if value not in get_args(hint):
            allowed = ", ".join(repr(a) for a in get_args(hint))
            raise ConfigError(f"{where}: {value!r} is not one of {allowed}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(_convert(v, get_args(hint)[0], where) for v in value)
    if origin is Mapping or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        value_type = get_args(hint)[1]
        return {str(k): _convert(v, value_type, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return build(hint, value, where)
    if hint is dt.date:
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError as exc:
            raise ConfigError(f"{where}: {value!r} is not an ISO date (YYYY-MM-DD)") from exc
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is bool and isinstance(value, bool):
        return value
    if hint is str and isinstance(value, str):
        return value
    raise ConfigError(f"{where}: {value!r} is not a valid {getattr(hint, '__name__', hint)}")


def build(cls: type[T], table: Mapping[str, Any], where: str) -> T:
    """Build the dataclass ``cls`` from a TOML table, rejecting unknown keys.

    Parameters
    ----------
    cls
        A dataclass type.
    table
        Parsed TOML table.
    where
        Location used in error messages, e.g. ``"crmkit.toml [ingest]"``.

    Returns
    -------
    T
        The instance.

    Raises
    ------
    ConfigError
        On an unknown key or a value of the wrong type.
    """
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(table) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {sorted(names)}")
    kwargs = {k: _convert(v, hints[k], f"{where} {k}") for k, v in table.items()}
    return cls(**kwargs)


def load_settings(path: Path | None) -> Settings:
    """Load settings from a TOML file, or defaults when ``path`` is None.

    Raises
    ------
    ConfigError
        When the file is missing, is not valid TOML, or holds unknown keys or bad values.
    """
    if path is None:
        return Settings()
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read ({exc.strerror or exc})") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    settings = build(Settings, table, str(path))
    validate(settings, str(path))
    _check_columns(settings.ingest.columns, f"{path} [ingest.columns]")
    _check_columns(settings.ingest.exclude, f"{path} [ingest.exclude]")
    return settings


def _check_columns(mapping: Mapping[str, str], where: str) -> None:
    unknown = sorted(set(mapping) - set(columns.CANONICAL))
    if unknown:
        raise ConfigError(
            f"{where}: {', '.join(unknown)} is not a canonical column; "
            f"canonical columns are {', '.join(columns.CANONICAL)}"
        )


def split_pairs(text: str, option: str, form: str) -> list[tuple[str, str]]:
    """Split ``a=b,c=d`` into stripped (left, right) pairs; empty items are skipped.

    Raises
    ------
    ConfigError
        When an item has no ``=`` or an empty side; the message names ``option``.
    """
    pairs = []
    for raw in text.split(","):
        pair = raw.strip()
        if not pair:
            continue
        left, sep, right = (part.strip() for part in pair.partition("="))
        if not sep or not left or not right:
            raise ConfigError(f"{option}: {pair!r} is not of the form {form}")
        pairs.append((left, right))
    return pairs


def parse_column_map(text: str) -> dict[str, str]:
    """Parse ``--map`` text into canonical -> source pairs.

    Each comma-separated pair may be written either way round, ``customer_id=CustomerID``
    or ``CustomerID=customer_id``: the side that is a canonical column name is taken as the
    canonical one (the left side when both are).

    Raises
    ------
    ConfigError
        When a pair has no ``=`` or neither side is a canonical column.
    """
    canonical = set(columns.CANONICAL)
    result: dict[str, str] = {}
    for left, right in split_pairs(text, "--map", "canonical=source"):
        pair = f"{left}={right}"
        if left in canonical:
            result[left] = right
        elif right in canonical:
            result[right] = left
        else:
            raise ConfigError(
                f"--map: neither side of {pair!r} is a canonical column "
                f"({', '.join(columns.CANONICAL)})"
            )
    return result
