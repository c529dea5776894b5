"""A plain-Python reading of the amount grammar (no regular expressions), and its generator.

``reference_amount`` walks the text left to right: sign, currency, bracket, number,
currency, bracket, trailing minus; ``amount_texts`` draws real-world spellings of known
values and near-misses (text around digits, times, fractions, units).
"""

from __future__ import annotations

from hypothesis import strategies as st

from crmkit.ingest.amounts import ISO_CODES, SYMBOLS, WORDS

#: Unicode white space as polars strips it (Rust's ``char::is_whitespace``).
WHITE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + ("\u2028\u2029\u202f\u205f\u3000")
)
SPACE_GROUPS = " \u00a0\u202f'"
CURRENCIES = sorted([*SYMBOLS, *WORDS, *ISO_CODES], key=len, reverse=True)
DIGITS = "0123456789"


class _Reader:
    def __init__(self, text: str) -> None:
        self.text, self.i = text, 0

    def skip_space(self) -> None:
        while self.i < len(self.text) and self.text[self.i] in WHITE:
            self.i += 1

    def take(self, options: list[str] | str) -> str:
        for option in options:
            if self.text.startswith(option, self.i):
                self.i += len(option)
                return option
        return ""

    def number(self, decimal: str) -> str:
        start = self.i
        allowed = DIGITS + ".," + SPACE_GROUPS
        while self.i < len(self.text) and self.text[self.i] in allowed:
            self.i += 1
        if self.i < len(self.text) and self.text[self.i] in "eE":
            j = self.i + 1
            if j < len(self.text) and self.text[j] in "+-":
                j += 1
            k = j
            while k < len(self.text) and self.text[k] in DIGITS:
                k += 1
            if k > j:
                self.i = k
        raw = self.text[start : self.i]
        kept = raw.rstrip(SPACE_GROUPS.replace("'", ""))  # trailing spaces are not the number
        self.i = start + len(kept)
        return kept


def _groups_ok(whole: str, group: str) -> bool:
    if whole.isdigit() and whole.isascii():
        return True
    for separators in (group, SPACE_GROUPS):
        pieces, current = [], ""
        for c in whole:
            if c in separators:
                pieces.append(current)
                current = ""
            else:
                current += c
        pieces.append(current)
        if len(pieces) < 2:
            continue
        if not all(p.isdigit() and p.isascii() for p in pieces):
            continue
        if 1 <= len(pieces[0]) <= 3 and all(len(p) == 3 for p in pieces[1:]):
            return True
    return False


def _number_value(number: str, decimal: str) -> float | None:
    group = "," if decimal == "." else "."
    mantissa, exponent = number, None
    for e in "eE":
        if e in number:
            mantissa, exponent = number.split(e, 1)
    if exponent is not None:
        whole, _, frac = mantissa.partition(decimal)
        exp_digits = exponent.lstrip("+-")
        if len(exponent) - len(exp_digits) > 1 or not (
            exp_digits.isdigit() and exp_digits.isascii()
        ):
            return None
        if not (whole.isdigit() and whole.isascii()) or (
            decimal in mantissa and not frac.isdigit()
        ):
            return None
        return float(f"{whole}.{frac or '0'}e{exponent}")
    if number.count(decimal) > 1:
        return None
    whole, mark, frac = number.partition(decimal)
    if frac and not (frac.isdigit() and frac.isascii()):
        return None
    if not whole:
        if not (mark and frac):
            return None
    elif not _groups_ok(whole, group):
        return None
    digits = "".join(c for c in whole if c in DIGITS)
    return float(f"{digits or '0'}.{frac or '0'}")


def reference_amount(text: str | None, decimal: str) -> float | None:
    """Read ``text`` by the documented grammar; ``None`` when it is no amount."""
    if text is None:
        return None
    r = _Reader(text.strip(WHITE).replace("\u2212", "-"))
    signs, currencies = [], 0
    r.skip_space()
    signs.append(r.take("+-"))
    r.skip_space()
    currencies += bool(r.take(CURRENCIES))
    r.skip_space()
    signs.append(r.take("+-"))
    r.skip_space()
    opened = bool(r.take("("))
    r.skip_space()
    currencies += bool(r.take(CURRENCIES))
    r.skip_space()
    value = _number_value(r.number(decimal), decimal)
    r.skip_space()
    currencies += bool(r.take(CURRENCIES))
    r.skip_space()
    closed = bool(r.take(")"))
    r.skip_space()
    currencies += bool(r.take(CURRENCIES))
    r.skip_space()
    signs.append(r.take("-"))
    r.skip_space()
    given = [s for s in signs if s]
    if r.i != len(r.text) or value is None or currencies > 1 or len(given) > 1:
        return None
    if opened != closed or (opened and given):
        return None
    return -value if opened or given == ["-"] else value


def _grouped(digits: str, sep: str) -> str:
    head = len(digits) % 3 or 3
    return sep.join([digits[:head]] + [digits[i : i + 3] for i in range(head, len(digits), 3)])


@st.composite
def amount_spelling(draw: st.DrawFn, decimal: str) -> tuple[str, float]:
    """A real-world spelling of a known value in the ``decimal`` convention."""
    cents = draw(st.integers(min_value=0, max_value=10**11))
    whole, frac = divmod(cents, 100)
    group = draw(st.sampled_from(["", "," if decimal == "." else ".", " ", "\u00a0", "'"]))
    text = _grouped(str(whole), group) if group else str(whole)
    if draw(st.booleans()):
        text += decimal + f"{frac:02d}"
        value = cents / 100
    else:
        value = float(whole)
    currency = draw(st.sampled_from(["", "", "£", "$", "€", "USD", "EUR", "kr", "US$"]))
    space = draw(st.sampled_from(["", " "]))
    after = draw(st.booleans())
    if currency:
        text = f"{text}{space}{currency}" if after else f"{currency}{space}{text}"
    negative = draw(st.sampled_from(["", "", "-", "(", "trail", "\u2212"]))
    if negative == "(":
        text = f"({text})"
    elif negative == "trail":
        text += "-"
    elif negative:
        text = negative + text
    padding = draw(st.sampled_from(["", " ", "\t"]))
    return padding + text + padding, (-value if negative and value else value)


NEAR_MISS_PARTS = [
    "SKU",
    "ca. ",
    "~",
    ":30",
    "/2",
    "x4",
    "kg",
    " pcs",
    "%",
    ".5.1",
    "#",
    "h",
    "abc",
    "--",
    "((",
    ")",
    "+-",
    "1/",
    " 1",
    "E",
    "e",
    "_",
    "..",
    ",,",
    "€€",
]


@st.composite
def near_miss(draw: st.DrawFn, decimal: str) -> str:
    """A spelling with something that is not part of the grammar, or a random shuffle."""
    text, _ = draw(amount_spelling(decimal))
    part = draw(st.sampled_from(NEAR_MISS_PARTS))
    at = draw(st.integers(min_value=0, max_value=len(text)))
    return text[:at] + part + text[at:]


def amount_texts(decimal: str) -> st.SearchStrategy[str]:
    """Spellings, near-misses and arbitrary short text over the grammar's alphabet."""
    alphabet = DIGITS + ".,'()-+ £$€eEkgSKU:/x%\u00a0\u2212"
    return st.one_of(
        amount_spelling(decimal).map(lambda pair: pair[0]),
        near_miss(decimal),
        st.text(alphabet=alphabet, max_size=14),
    )
