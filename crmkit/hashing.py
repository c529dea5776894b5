"""A stable 64-bit string hash, computed with vectorised polars expressions.

polars' own ``Expr.hash`` may change between polars versions, which would move customers
between store buckets or flip their campaign group after an upgrade. This hash is defined
here, once, and has a plain-Python reference (:func:`stable_hash_py`) that the tests hold the
polars version to, so its values never change.

Algorithm: the UTF-8 bytes are read as big-endian 6-byte words (the first sixteen words and the
last word), folded FNV-style into a 64-bit state seeded with the byte length, then mixed with
the splitmix64 finaliser. All arithmetic is modulo 2**64.
"""

from __future__ import annotations

from typing import Final

import polars as pl

_PRIME: Final = 1099511628211
_MIX1: Final = 0xBF58476D1CE4E5B9
_MIX2: Final = 0x94D049BB133111EB
_WORDS: Final = 16
_HEX_PER_WORD: Final = 12
_MASK: Final = (1 << 64) - 1


def _u64(value: int) -> pl.Expr:
    return pl.lit(value, dtype=pl.UInt64)


def _shr(x: pl.Expr, bits: int) -> pl.Expr:
    return x // _u64(1 << bits)


def add_stable_hash(
    frame: pl.LazyFrame, column: str, out: str, *, salt: str | None = None
) -> pl.LazyFrame:
    """Add ``out``, the UInt64 stable hash of the String column ``column``.

    Each step is its own column so that polars evaluates every intermediate value once (a
    single nested expression would repeat the fold inside the finaliser many times).

    Parameters
    ----------
    frame
        The frame to extend.
    column
        A String column; nulls hash like the empty string.
    out
        Name of the new column.
    salt
        Text prepended (with a unit separator) before hashing, for independent hashes.

    Returns
    -------
    pl.LazyFrame
        ``frame`` with the ``out`` column.
    """
    text = pl.col(column).fill_null("")
    if salt is not None:
        text = pl.lit(salt + "\x1f") + text
    hexed = text.cast(pl.Binary).bin.encode("hex")
    words = [hexed.str.slice(i * _HEX_PER_WORD, _HEX_PER_WORD) for i in range(_WORDS)]
    words.append(hexed.str.tail(_HEX_PER_WORD))
    tmp = [f"__crmkit_hash_{out}_{i}" for i in range(len(words))]
    frame = frame.with_columns(
        *(
            w.str.to_integer(base=16, strict=False).fill_null(0).cast(pl.UInt64).alias(name)
            for w, name in zip(words, tmp, strict=True)
        ),
        text.str.len_bytes().cast(pl.UInt64).alias(out),
    )
    state = pl.col(out)
    for name in tmp:
        state = (state * _u64(_PRIME)) ^ pl.col(name)
    x = pl.col(out)
    return (
        frame.with_columns(state.alias(out))
        .drop(tmp)
        .with_columns((x ^ _shr(x, 30)).alias(out))
        .with_columns((x * _u64(_MIX1)).alias(out))
        .with_columns((x ^ _shr(x, 27)).alias(out))
        .with_columns((x * _u64(_MIX2)).alias(out))
        .with_columns((x ^ _shr(x, 31)).alias(out))
    )


def bucket_expr(hash_column: str, buckets: int) -> pl.Expr:
    """Return the store bucket (0 .. buckets-1) from a stable-hash column."""
    return (pl.col(hash_column) % _u64(buckets)).cast(pl.UInt16)


def unit_interval_expr(hash_column: str) -> pl.Expr:
    """Map a stable-hash column to a uniform Float64 in [0, 1) (its top 53 bits)."""
    return _shr(pl.col(hash_column), 11).cast(pl.Float64) / float(1 << 53)


def stable_hash_values(values: pl.Series, salt: str | None = None) -> pl.Series:
    """Return the stable hash of every value of a String series (convenience for tests)."""
    frame = values.rename("v").to_frame().lazy()
    return add_stable_hash(frame, "v", "h", salt=salt).collect()["h"]


def stable_hash_py(text: str, salt: str | None = None) -> int:
    """Plain-Python reference of :func:`add_stable_hash` for one string."""
    if salt is not None:
        text = salt + "\x1f" + text
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
