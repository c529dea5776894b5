"""Typed settings, loaded once from ``crmkit.toml`` and command-line overrides.

Every section is a frozen dataclass; unknown keys are an error that names the key, so a
typo in the configuration never passes silently.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from crmkit.config.policy import TargetPolicy

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
    min_p_alive
        Customers whose probability of still being active is below this are probably
        gone: lifecycle ``win_back``, left out of retention lists (see
        :mod:`crmkit.models.alive`). On Online Retail II as of 2011-09-01, 0.5 gave the
        retention list whose customers most often bought in the next 90 days (57% of the
        top 500, against 50% without P(alive)).
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
    min_p_alive: float = 0.5


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
        OpenMP threads of gradient boosting, fitting and predicting, at most; 0 (the
        default) uses the idle cores, measured each time a fit or a batch of predictions
        starts (the cores other processes leave idle, at least one), since threads beyond
        them spin. The logistic regression always runs on one BLAS thread, its fastest
        (see :mod:`crmkit.models.threads`).
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
    uplift_attributes
        ``"all"``: uplift models (and ``policy compare``) learn from every customer
        attribute loaded with ``crmkit ingest --kind customers``, besides ``[features]
        attributes``; ``"listed"``: from ``[features] attributes`` only.
    explain_rows
        Customers whose reasons ``score`` works out from the model (exact Shapley values
        by driver, 32 predictions per customer), highest value at risk first; the others
        get the rules' reasons in the score file. A day's list always gives every listed
        customer the model's reasons (see :mod:`crmkit.models.explainer`).
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
    uplift_attributes: Literal["all", "listed"] = "all"
    explain_rows: int = 500


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
class EvaluateConfig:
    """Which estimates ``evaluate`` and the report add to the plain ones.

    Attributes
    ----------
    adjust
        Add estimates adjusted by each customer's purchases before the assignment (CUPED):
        the same effect with a narrower interval.
    sequential
        Add always-valid intervals (a confidence sequence): valid however often the
        campaign is evaluated, e.g. every day from cron. ``evaluate --sequential`` too.
    sequential_tuning
        Customers per comparison at which the always-valid interval is narrowest.
    """

    adjust: bool = True
    sequential: bool = False
    sequential_tuning: int = 5000


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
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    source: SourceConfig = field(default_factory=SourceConfig)
