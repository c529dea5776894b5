"""A stable 64-bit string hash, computed with vectorised polars expressions.

polars' own ``Expr.hash`` may change between polars versions, which would move customers
between store buckets or flip their campaign group after an upgrade. This hash is defined
here, once, and has a plain-Python reference (:func:`stable_hash_py`) that the tests hold the
expression to, so its values never change.

Algorithm: the UTF-8 bytes are read as big-endian 6-byte words (the first eight words and the
last word), folded FNV-style into a 64-bit state seeded with the byte length, then mixed with
the splitmix64 finaliser. All arithmetic is modulo 2**64.
"""

from __future__ import annotations

from typing import Final

import polars as pl

_PRIME: Final = 1099511628211
_MIX1: Final = 0xBF58476D1CE4E5B9
_MIX2: Final = 0x94D049BB133111EB
_WORDS: Final = 8
_HEX_PER_WORD: Final = 12
_MASK: Final = (1 << 64) - 1


def _u64(value: int) -> pl.Expr:
    return pl.lit(value, dtype=pl.UInt64)


def _shr(x: pl.Expr, bits: int) -> pl.Expr:
    return x // _u64(1 << bits)


def _finalise(x: pl.Expr) -> pl.Expr:
    x = x ^ _shr(x, 30)
    x = x * _u64(_MIX1)
    x = x ^ _shr(x, 27)
    x = x * _u64(_MIX2)
    return x ^ _shr(x, 31)


def stable_hash(expr: pl.Expr) -> pl.Expr:
    """Return a UInt64 hash of a String expression that never changes across versions.

    Parameters
    ----------
    expr
        A String expression; nulls hash like the empty string.

    Returns
    -------
    pl.Expr
        UInt64 expression.
    """
    text = expr.fill_null("")
    hexed = text.cast(pl.Binary).bin.encode("hex")
    state = text.str.len_bytes().cast(pl.UInt64)
    words = [hexed.str.slice(i * _HEX_PER_WORD, _HEX_PER_WORD) for i in range(_WORDS)]
    words.append(hexed.str.tail(_HEX_PER_WORD))
    for word in words:
        value = word.str.to_integer(base=16, strict=False).fill_null(0).cast(pl.UInt64)
        state = (state * _u64(_PRIME)) ^ value
    return _finalise(state)


def stable_hash_py(text: str) -> int:
    """Plain-Python reference of :func:`stable_hash` for one string."""
    hexed = text.encode("utf-8").hex()
    state = len(text.encode("utf-8"))
    words = [hexed[i * _HEX_PER_WORD : (i + 1) * _HEX_PER_WORD] for i in range(_WORDS)]
    words.append(hexed[-_HEX_PER_WORD:])
    for word in words:
        state = ((state * _PRIME) & _MASK) ^ (int(word, 16) if word else 0)
    x = state
    x ^= x >> 30
    x = (x * _MIX1) & _MASK
    x ^= x >> 27
    x = (x * _MIX2) & _MASK
    return x ^ (x >> 31)


def bucket_of(expr: pl.Expr, buckets: int) -> pl.Expr:
    """Return the store bucket (0 .. buckets-1) of a customer id expression."""
    return (stable_hash(expr) % _u64(buckets)).cast(pl.UInt16)


def unit_interval(expr: pl.Expr, salt: str) -> pl.Expr:
    """Map a String expression to a uniform number in [0, 1) that depends on ``salt``.

    Used for group assignment: the value is a pure function of (salt, text).
    """
    salted = pl.lit(salt + "\x1f") + expr.fill_null("")
    return (_shr(stable_hash(salted), 11).cast(pl.Float64)) / float(1 << 53)
