"""The amount grammar: what numeric text crmkit reads as a number, and nothing else.

An amount (also a quantity or a unit price) is, after surrounding white space is stripped:

- an optional sign: ``-`` or ``+`` in front (``-12``, ``-£12``, ``£-12``), the minus sign
  U+2212 counting as ``-``, or a trailing ``-`` (``12.00-``), at most one sign;
- or accounting brackets around the number (``(12.00)``, ``(£12.00)``, ``£(12.00)``), which
  make it negative and allow no sign;
- at most one currency, in front of or after the number, with or without a space: a symbol
  (``£ $ € ¥ ₹ ₽ ₩ ₺ ₪ ₫ ฿ ₴ ₦ ₱ ¢ ₣ ₡ ₲ ₵ ₸ ₼ ₾``), a dollar with its country (``US$``,
  ``A$``, ``C$``, ``NZ$``, ``HK$``, ``S$``, ``R$``, ``MX$``), an upper-case ISO 4217 code
  (``GBP``, ``USD``, ``EUR``, ...) or one of ``kr``, ``zł``, ``Kč``, ``Ft``, ``Rs``, ``Rs.``;
- the number in the file's decimal convention: digits, optionally in thousands groups of
  three (``1,234,567`` in a ``.``-decimal file, ``1.234.567`` in a ``,``-decimal file; a
  space, a no-break space or an apostrophe as the group separator in either), then
  optionally the decimal separator and digits (``1,234.50``, ``1.234,50``, ``12.``,
  ``.5``); or scientific notation without groups (``1e3``, ``-2.5E-2``).

Anything else is not an amount: no character is ever dropped to make a number out of text,
so ``SKU123``, ``ca. 12``, ``12:30``, ``1/2``, ``3x4``, ``12kg``, ``12 %`` and ``1.2.3`` are
quarantined as ``unparseable_amount``. A value that is a number only in the other decimal
convention (``2,5`` in a ``.``-decimal file) is ``ambiguous_amount``.
"""

from __future__ import annotations

from typing import Final, Literal

import polars as pl

Decimal = Literal[".", ","]

#: Upper-case ISO 4217 codes of current currencies.
_CODES: Final = """
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD
BTN BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB
EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK
JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA
MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK
PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP
STN SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST
XAF XCD XOF XPF YER ZAR ZMW ZWL
"""
ISO_CODES: Final = tuple(_CODES.split())
#: Currency symbols, one character each.
SYMBOLS: Final = "£$€¥₹₽₩₺₪₫฿₴₦₱¢₣₡₲₵₸₼₾"
#: Dollars with their country, and local abbreviations written beside amounts.
WORDS: Final = (
    "US$",
    "A$",
    "C$",
    "NZ$",
    "HK$",
    "S$",
    "R$",
    "MX$",
    "kr",
    "zł",
    "Kč",
    "Ft",
    "Rs.",
    "Rs",
)
#: Thousands separators allowed in either convention besides the other decimal mark.
SPACE_GROUPS: Final = " \u00a0\u202f'"
MINUS: Final = "\u2212"


def _escape(text: str) -> str:
    return "".join("\\" + c if c in r"\.^$|?*+()[]{}" else c for c in text)


def _currency() -> str:
    words = sorted((*WORDS, *ISO_CODES), key=len, reverse=True)
    return "(?:[" + SYMBOLS + "]|" + "|".join(_escape(w) for w in words) + ")"


def _number(decimal: Decimal) -> str:
    group = "," if decimal == "." else r"\."
    mark = r"\." if decimal == "." else ","
    spaces = "[" + SPACE_GROUPS + "]"
    d = "[0-9]"
    whole = rf"(?:{d}{{1,3}}(?:{group}{d}{{3}})+|{d}{{1,3}}(?:{spaces}{d}{{3}})+|{d}+)"
    scientific = rf"{d}+(?:{mark}{d}+)?[eE][+-]?{d}+"
    return rf"(?:{scientific}|{whole}(?:{mark}{d}*)?|{mark}{d}+)"


def pattern(decimal: Decimal) -> str:
    """Return the regular expression of the amount grammar, with named parts.

    ``s1``/``s2``/``s3`` are signs, ``c1``..``c4`` currencies, ``o``/``x`` brackets and
    ``n`` the number; :func:`parse_amount` checks that the parts fit together.
    """
    cur = _currency()
    return (
        rf"^(?P<s1>[+-]?)\s*(?P<c1>{cur}?)\s*(?P<s2>[+-]?)\s*(?P<o>\(?)\s*(?P<c2>{cur}?)\s*"
        rf"(?P<n>{_number(decimal)})"
        rf"\s*(?P<c3>{cur}?)\s*(?P<x>\)?)\s*(?P<c4>{cur}?)\s*(?P<s3>-?)$"
    )


_PATTERNS: Final = {".": pattern("."), ",": pattern(",")}


def _parts(text: pl.Expr, decimal: Decimal) -> tuple[pl.Expr, pl.Expr]:
    """Return (the number's text, whether the value is negative); null text where no match."""
    parts = text.str.replace_all(MINUS, "-", literal=True).str.extract_groups(_PATTERNS[decimal])

    def part(name: str) -> pl.Expr:
        return parts.struct.field(name).fill_null("").str.len_bytes() > 0

    signs = part("s1").cast(pl.Int8) + part("s2").cast(pl.Int8) + part("s3").cast(pl.Int8)
    currencies = sum((part(f"c{i}").cast(pl.Int8) for i in range(1, 5)), pl.lit(0, pl.Int8))
    brackets = part("o")
    valid = (signs <= 1) & (currencies <= 1) & (brackets == part("x")) & ~(brackets & (signs > 0))
    minus = (
        (parts.struct.field("s1") == "-")
        | (parts.struct.field("s2") == "-")
        | (parts.struct.field("s3") == "-")
        | brackets
    )
    return pl.when(valid).then(parts.struct.field("n")), minus


def is_amount(expr: pl.Expr, decimal: Decimal) -> pl.Expr:
    """Tell whether text is an amount of the grammar in the ``decimal`` convention."""
    number, _ = _parts(expr.str.strip_chars(), decimal)
    return number.is_not_null()


def parse_amount(expr: pl.Expr, decimal: Decimal) -> pl.Expr:
    """Parse amount text by the grammar of this module; anything else becomes null."""
    number, minus = _parts(expr.str.strip_chars(), decimal)
    drop = "[" + SPACE_GROUPS + ("," if decimal == "." else ".") + "]"
    digits = number.str.replace_all(drop, "")
    if decimal == ",":
        digits = digits.str.replace(",", ".", literal=True)
    value = digits.cast(pl.Float64, strict=False)
    return pl.when(minus).then(-value).otherwise(value)


def contradicts(expr: pl.Expr, decimal: Decimal) -> pl.Expr:
    """Tell whether text is no amount in the ``decimal`` convention but one in the other.

    In a ``.``-decimal file ``1.234,56`` and ``2,5`` are written the other way (and in a
    ``,``-decimal file ``1,234.56``): such a value is quarantined as ``ambiguous_amount``
    instead of being read in the wrong convention. Null text gives false.
    """
    other: Decimal = "," if decimal == "." else "."
    text = expr.str.strip_chars()
    return ~is_amount(text, decimal) & is_amount(text, other)
