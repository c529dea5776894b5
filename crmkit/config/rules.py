"""Ranges of the settings, checked in one place for files and command-line overrides."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from crmkit.errors import ConfigError

if TYPE_CHECKING:
    from crmkit.config.settings import Settings

_SEED_MAX: Final = 2**32 - 1


def _between(low: float, high: float, *, open_high: bool = False) -> tuple[Check, str]:
    def check(v: float) -> bool:
        return bool(low <= v < high if open_high else low <= v <= high)

    return check, f"between {low:g} and {high:g}" + (" (excluded)" if open_high else "")


def _at_least(low: float) -> tuple[Check, str]:
    return (lambda v: v >= low), f"at least {low:g}"


def _increasing_pair(v: tuple[float, ...]) -> bool:
    return len(v) == 0 or (len(v) == 2 and v[0] <= v[1])


def _attribute_names(v: tuple[str, ...]) -> bool:
    return len(set(v)) == len(v) and all(_ATTRIBUTE_NAME.fullmatch(name) for name in v)


_ATTRIBUTE_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}")


def _positive_increasing(v: tuple[int, ...]) -> bool:
    return len(v) > 0 and all(x > 0 for x in v) and list(v) == sorted(set(v))


def _finite_at_most(high: float) -> Callable[[Any], bool]:
    return lambda v: v is None or (math.isfinite(v) and 0 <= v <= high)


def _treatment_name(v: str) -> bool:
    return bool(_TREATMENT.fullmatch(v))


_TREATMENT: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
#: A date the check formats with ``date_format`` and reads back.
_PROBE: Final = dt.datetime(2024, 3, 5, 6, 7, 8, tzinfo=dt.UTC)


def _date_format(v: str | None) -> bool:
    """Whether ``v`` writes a date that polars reads back as that date (so ``%Q`` fails)."""
    if v is None:
        return True
    if "%" not in v:
        return False
    import polars as pl

    text = _PROBE.strftime(v)
    parsed = pl.Series([text]).str.strptime(
        pl.Datetime("us", "UTC") if "%z" in v else pl.Datetime("us"), v, strict=False
    )
    value = parsed.item()
    return value is not None and value.date() == _PROBE.date()


Check = Callable[[Any], bool]
#: Every range rule of the settings, checked in one place: (section, key, rule, meaning).
RULES: Final[tuple[tuple[str, str, Check, str], ...]] = (
    ("ingest", "max_future_days", *_between(0, 36500)),
    ("ingest", "max_abs_amount", (lambda v: 0 < v <= 1e15), "above 0 and at most 1e15"),
    (
        "ingest",
        "delimiter",
        (lambda v: v is None or (len(v) == 1 and v not in '"\r\n')),
        "a single character other than a quote or a line break",
    ),
    ("ingest", "date_format", _date_format, "a strftime format that writes a whole date"),
    ("store", "buckets", *_between(1, 4096)),
    ("store", "max_parts_per_bucket", *_between(1, 10_000)),
    ("features", "windows", _positive_increasing, "increasing positive day counts"),
    ("features", "value_period_days", *_between(1, 3650)),
    ("features", "value_discount_rate", *_between(0, 10)),
    ("features", "projection_horizon_days", *_between(1, 36500)),
    ("features", "annual_discount_rate", *_between(0, 10)),
    ("features", "season_window_days", *_between(1, 365)),
    ("features", "mix_window_days", *_between(1, 3650)),
    ("features", "top_categories", *_between(0, 50)),
    ("features", "top_channels", *_between(0, 20)),
    ("features", "attributes", _attribute_names, "distinct names of letters, digits and _"),
    ("segments", "cycle_edges", _increasing_pair, "empty or two increasing numbers"),
    ("segments", "spend_edges", _increasing_pair, "empty or two increasing numbers"),
    ("segments", "kmeans_features", (lambda v: len(v) > 0), "at least one feature"),
    ("segments", "max_k", *_between(2, 100)),
    ("segments", "seed", *_between(0, _SEED_MAX)),
    ("segments", "min_p_alive", *_between(0, 1)),
    ("model", "snapshots", *_between(1, 520)),
    ("model", "step_days", *_between(1, 3650)),
    ("model", "lookback_days", *_between(1, 36500)),
    ("model", "min_customers", *_at_least(1)),
    ("model", "min_class", *_at_least(1)),
    ("model", "seed", *_between(0, _SEED_MAX)),
    ("model", "threads", *_between(0, 1024)),
    ("model", "explain_rows", *_between(0, 10**8)),
    ("model", "max_training_rows", (lambda v: v == 0 or v >= 1000), "0 (no limit) or 1000+"),
    ("targeting", "min_churn_probability", *_between(0, 1)),
    ("targeting", "min_customer_value", _finite_at_most(1e15), "between 0 and 1e15"),
    ("targeting", "size", (lambda v: v is None or 0 <= v <= 10**9), "between 0 and 1e9"),
    ("targeting", "budget", _finite_at_most(1e15), "between 0 and 1e15"),
    ("targeting", "control_fraction", *_between(0, 1, open_high=True)),
    ("targeting", "holdout_fraction", *_between(0, 1, open_high=True)),
    ("targeting", "cooldown_days", *_between(0, 36500)),
    (
        "targeting",
        "costs",
        (lambda v: all(_treatment_name(k) and _finite_at_most(1e9)(c) for k, c in v.items())),
        "treatment names of letters, digits, _ . - with costs between 0 and 1e9",
    ),
    ("targeting", "default_cost", _finite_at_most(1e9), "between 0 and 1e9"),
    (
        "targeting",
        "treatments",
        (lambda v: all(_treatment_name(t) for t in v.values())),
        "treatment names of letters, digits, _ . - (at most 40)",
    ),
    ("targeting", "default_treatment", _treatment_name, "a name of letters, digits, _ . -"),
    ("targeting", "explore_fraction", *_between(0, 0.5)),
    (
        "targeting",
        "effects",
        (lambda v: all(_treatment_name(k) and 0 <= e <= 1 for k, e in v.items())),
        "treatment names with effects between 0 and 1",
    ),
    (
        "targeting",
        "segment_effects",
        (
            lambda v: all(
                _treatment_name(k) and 0 <= e <= 1 for t in v.values() for k, e in t.items()
            )
        ),
        "segment tables of treatment names with effects between 0 and 1",
    ),
    ("targeting", "win_back_rate", *_between(0, 1)),
    ("targeting", "contact_columns", _attribute_names, "distinct names of letters, digits and _"),
    (
        "targeting",
        "offer_codes",
        (lambda v: all(_treatment_name(k) and 0 < len(c) <= 64 for k, c in v.items())),
        "treatment names with codes of 1 to 64 characters",
    ),
    ("targeting", "uplift_caution", *_between(0, 5)),
    ("report", "currency", (lambda v: len(v) <= 8), "at most 8 characters"),
    ("evaluate", "sequential_tuning", *_between(100, 1e9)),
    ("compute", "workers", *_between(1, 1024)),
)


def validate(settings: Settings, where: str) -> None:
    """Check every setting against its range (:data:`RULES`) and patterns for validity.

    Raises
    ------
    ConfigError
        Naming the first key out of range, what it holds and what it must be (exit 2).
    """
    for section, key, check, meaning in RULES:
        value = getattr(getattr(settings, section), key)
        if not check(value):
            raise ConfigError(f"{where} [{section}] {key} = {value!r}: must be {meaning}")
    if not settings.ingest.exclude:
        return
    import polars as pl

    probe = pl.Series([""], dtype=pl.String)
    for column, pattern in settings.ingest.exclude.items():
        try:
            probe.str.contains(pattern)
        except pl.exceptions.PolarsError as exc:
            raise ConfigError(
                f"{where} [ingest.exclude] {column} = {pattern!r}: not a regular expression "
                f"({str(exc).strip().splitlines()[0] if str(exc).strip() else exc})"
            ) from exc
