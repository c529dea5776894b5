"""Scalar helpers: polars aggregates typed as the plain numbers they are."""

from __future__ import annotations


def as_float(value: object, default: float = 0.0) -> float:
    """Return a polars scalar aggregate (``mean()``, ``var()``, ``item()``) as a float.

    ``None`` (the aggregate of nothing) becomes ``default``.

    Raises
    ------
    TypeError
        When the value is not a number.
    """
    if value is None:
        return default
    if isinstance(value, int | float):
        return float(value)
    raise TypeError(f"expected a number, got {type(value).__name__}")
