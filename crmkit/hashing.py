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

from functools import partial
from typing import Final

import polars as pl

_PRIME: Final = 1099511628211
_MIX1: Final = 0xBF58476D1CE4E5B9
_MIX2: Final = 0x94D049BB133111EB
_WORDS: Final = 16
_BYTES_PER_WORD: Final = 6
_HEX_PER_WORD: Final = 2 * _BYTES_PER_WORD
_PAD: Final = 8
_MASK: Final = (1 << 64) - 1
_PADDED: Final = "__crmkit_hash_bytes"
_TMP: Final = "__crmkit_hash_w"


def _u64(value: int) -> pl.Expr:
    return pl.lit(value, dtype=pl.UInt64)


def _shr(x: pl.Expr, bits: int) -> pl.Expr:
    return x // _u64(1 << bits)


def add_stable_hash(
    frame: pl.LazyFrame, column: str, out: str, *, salt: str | None = None
) -> pl.LazyFrame:
    """Add ``out``, the UInt64 stable hash of the String column ``column``.

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
    return frame.with_columns(
        pl.col(column)
        .map_batches(partial(_hash_batch, salt=salt), return_dtype=pl.UInt64, is_elementwise=True)
        .alias(out)
    )


def max_bytes(words: int) -> int | None:
    """Return the longest value (UTF-8 bytes) :func:`add_short_hash` hashes with ``words``.

    None when there is no limit: the hash reads at most sixteen words and the last one.
    """
    return None if words >= _WORDS else words * _BYTES_PER_WORD


def words_for(length: int) -> int:
    """Return the fewest words that cover values of ``length`` bytes (at most all)."""
    return min(_WORDS, -(-length // _BYTES_PER_WORD))


def add_short_hash(
    frame: pl.LazyFrame, column: str, out: str, words: int, *, salt: str | None = None
) -> pl.LazyFrame:
    """Add ``out``, the stable hash of ``column``, for values of at most ``words`` words.

    Pure polars expressions, so the streaming engine runs it in parallel without calling
    back into Python; :func:`add_stable_hash` is the same hash for values of any length.
    Words past the end of a value are 0, and folding ``k`` zero words is a multiplication
    by ``PRIME ** k``, so reading only ``words`` words gives the full hash of every value
    that fits in them.
    The caller must see to it that no value (after the salt) is longer than
    :func:`max_bytes` of ``words``: a longer one gets a wrong hash.

    Raises
    ------
    ValueError
        When ``words`` is not between 0 and 16.
    """
    if not 0 <= words <= _WORDS:
        raise ValueError(f"words must be between 0 and {_WORDS}, not {words}")
    return _short_hash(frame, column, out, words, salt)


def _short_hash(
    frame: pl.LazyFrame, column: str, out: str, words: int, salt: str | None
) -> pl.LazyFrame:
    # Each word is read as the 8 bytes from its start, big-endian, from the value padded
    # with 8 zero bytes on both sides: its top 6 bytes are the word when the value fills
    # it; a word the value fills with k < 6 bytes is the top k bytes. The last word is
    # the low 6 bytes of the 8 that end the value (zeros before its start).
    text = pl.col(column).fill_null("")
    if salt is not None:
        text = pl.lit(salt + "\x1f") + text
    padded, x = pl.col(_PADDED), pl.col(out)
    length = x.cast(pl.Int64)

    def window(offset: int | pl.Expr) -> pl.Expr:
        raw = padded.bin.slice(offset, _PAD).bin.reinterpret(dtype=pl.UInt64, endianness="big")
        return raw.fill_null(0)

    def word(i: int) -> pl.Expr:
        filled = (length - i * _BYTES_PER_WORD).clip(0, _BYTES_PER_WORD)
        unread = pl.lit(256, dtype=pl.UInt64).pow(_BYTES_PER_WORD - filled).cast(pl.UInt64)
        return _shr(window(_PAD + i * _BYTES_PER_WORD), 8 * (_PAD - _BYTES_PER_WORD)) // unread

    names = [f"{_TMP}{i}" for i in range(words + 1)]
    word_exprs = [word(i) for i in range(words)]
    word_exprs.append(window(length) % _u64(1 << (8 * _BYTES_PER_WORD)))
    state = x
    for name in names[:-1]:
        state = (state * _u64(_PRIME)) ^ pl.col(name)
    skipped = pow(_PRIME, _WORDS - words, 1 << 64)
    state = (state * _u64(skipped) * _u64(_PRIME)) ^ pl.col(names[-1])
    zeros = pl.lit("\x00" * _PAD)
    return (
        frame.with_columns(
            (zeros + text + zeros).cast(pl.Binary).alias(_PADDED),
            text.str.len_bytes().cast(pl.UInt64).alias(out),
        )
        .with_columns(w.alias(name) for w, name in zip(word_exprs, names, strict=True))
        .with_columns(state.alias(out))
        .with_columns((x ^ _shr(x, 30)).alias(out))
        .with_columns((x * _u64(_MIX1)).alias(out))
        .with_columns((x ^ _shr(x, 27)).alias(out))
        .with_columns((x * _u64(_MIX2)).alias(out))
        .with_columns((x ^ _shr(x, 31)).alias(out))
        .drop(_PADDED, *names)
    )


def _hash_batch(values: pl.Series, salt: str | None) -> pl.Series:
    """Hash one batch of strings (the streaming engine calls this per chunk).

    Only the words that some value of the batch reaches are read (:func:`add_short_hash`).
    """
    frame = values.cast(pl.String).rename("v").to_frame()
    salted = 0 if salt is None else len((salt + "\x1f").encode())
    longest = int(frame.select(pl.col("v").str.len_bytes().max().fill_null(0)).item())
    words = words_for(longest + salted)
    return (
        add_short_hash(frame.lazy(), "v", "h", words, salt=salt)
        .collect(engine="in-memory")
        .to_series(1)
        .rename(values.name)
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
