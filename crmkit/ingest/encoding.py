"""Text encodings of source files: byte-order marks, UTF-8 validation, transcoding.

Detection never depends on a parser's error message: a byte-order mark decides UTF-8,
UTF-16 or UTF-32; a file without one is checked as UTF-8 by decoding it, and only a file
that fails that check falls back to a single-byte encoding (``auto``) or is refused with
the byte offset of its first bad byte (an explicit ``utf-8``).
"""

from __future__ import annotations

import codecs
import gzip
import io
import zlib
from pathlib import Path
from typing import Final

from crmkit.errors import BadInputError

_CHUNK: Final = 16 * 1024 * 1024
#: Byte-order marks, longest first (the UTF-32 LE mark begins with the UTF-16 LE one).
BOMS: Final = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
#: Encodings a file may be declared in (``[ingest] encoding``) besides ``auto``.
SINGLE_BYTE: Final = ("cp1252", "latin-1")


def bom_encoding(head: bytes) -> str | None:
    """Return the encoding a byte-order mark at the start of ``head`` announces, if any."""
    for bom, name in BOMS:
        if head.startswith(bom):
            return name
    return None


def unmarked_utf16(head: bytes) -> str | None:
    """Recognise UTF-16 text without a byte-order mark from its zero bytes.

    Delimited text is mostly ASCII, so in UTF-16 every other byte is zero: ``utf-16-le``
    when the odd bytes are, ``utf-16-be`` when the even ones are. Needs 64 bytes or more.
    """
    sample = head[: 4096 - 4096 % 2]
    if len(sample) < 64:
        return None
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) >= 0.9 * len(odd) and even.count(0) <= 0.1 * len(even):
        return "utf-16-le"
    if even.count(0) >= 0.9 * len(even) and odd.count(0) <= 0.1 * len(odd):
        return "utf-16-be"
    return None


def first_invalid_utf8(raw: io.BufferedIOBase) -> int | None:
    """Return the byte offset of the first byte that is not valid UTF-8, or None.

    Streams ``raw`` in chunks; a multi-byte character cut by a chunk boundary is carried
    over to the next chunk.
    """
    offset = 0
    carry = b""
    while chunk := raw.read(_CHUNK):
        data = carry + chunk
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(data) - 3:
                return offset + exc.start
            carry = data[exc.start :]
            offset += exc.start
            continue
        offset += len(data)
        carry = b""
    return offset if carry else None


def transcode(raw: io.BufferedIOBase, out: io.BufferedWriter, encoding: str, source: Path) -> None:
    """Write the text of ``raw`` (in ``encoding``) to ``out`` as UTF-8.

    Raises
    ------
    BadInputError
        At the first byte sequence that ``encoding`` does not define, with its offset.
    """
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    offset = 0
    while True:
        chunk = raw.read(_CHUNK)
        try:
            text = decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            pending = len(decoder.getstate()[0]) if hasattr(decoder, "getstate") else 0
            raise BadInputError(
                f"{source}: byte offset {max(0, offset - pending + exc.start)} is not valid "
                f"{encoding} text ({exc.reason}); set [ingest] encoding to the file's encoding"
            ) from exc
        out.write(text.encode("utf-8"))
        offset += len(chunk)
        if not chunk:
            return


def read_text(path: Path, what: str) -> str:
    """Read a small text file (opt-out lists and the like), gzip or not, in any encoding.

    A byte-order mark picks UTF-8, UTF-16 or UTF-32; otherwise the text must be UTF-8, or
    is read as cp1252 when it is not.

    Raises
    ------
    BadInputError
        When the file cannot be read or decoded; the message names ``what`` and the offset.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadInputError(f"{what} {path}: cannot be read ({exc.strerror or exc})") from exc
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise BadInputError(f"{what} {path}: cannot be read as gzip ({exc})") from exc
    encoding = bom_encoding(data[:4]) or unmarked_utf16(data[:4096])
    if encoding is None:
        bad = first_invalid_utf8(io.BytesIO(data))
        encoding = "utf-8" if bad is None else "cp1252"
    if encoding == "utf-8":
        encoding = "utf-8-sig"
    unit = 4 if encoding.startswith("utf-32") else 2 if encoding.startswith("utf-16") else 1
    if unit > 1 and len(data) % unit == 1 and data.endswith(b"\x1a"):
        data = data[:-1]  # a DOS end-of-file mark is one byte, whatever the text's encoding
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise BadInputError(
            f"{what} {path}: byte offset {exc.start} is not valid {encoding} text"
        ) from exc
