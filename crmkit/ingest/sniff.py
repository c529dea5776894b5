"""File-level detection: compression, encoding, delimiter, and the column mapping."""

from __future__ import annotations

import contextlib
import csv
import glob
import gzip
import io
import re
import shutil
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from crmkit import schema
from crmkit.errors import BadInputError
from crmkit.ingest import encoding

if TYPE_CHECKING:
    import polars as pl

SUFFIXES: Final = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz", ".parquet")
DELIMITERS: Final = (",", ";", "\t", "|")
_CHUNK: Final = 16 * 1024 * 1024
_GZIP_MAGIC: Final = b"\x1f\x8b"


def expand_inputs(patterns: Iterable[str | Path]) -> list[Path]:
    """Expand files, directories and glob patterns into a sorted, de-duplicated file list.

    Raises
    ------
    BadInputError
        When a pattern matches nothing or names a file that does not exist.
    """
    found: list[Path] = []
    for pattern in patterns:
        text = str(pattern)
        path = Path(text)
        if path.is_dir():
            matches, _ = directory_files(path)
            if not matches:
                raise BadInputError(f"{path}: directory holds no {', '.join(SUFFIXES)} file")
        elif any(ch in text for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(text) if Path(m).is_file())  # noqa: PTH207
            if not matches:
                raise BadInputError(f"{text}: pattern matches no file")
        elif path.is_file():
            matches = [path]
        else:
            raise BadInputError(f"{path}: no such file")
        found.extend(m for m in matches if m not in found)
    return found


def _is_data(path: Path) -> bool:
    return path.name.lower().endswith(SUFFIXES)


def directory_files(directory: Path) -> tuple[list[Path], list[str]]:
    """Return the data files directly in ``directory``, and what was passed over and why.

    A symbolic link is followed only when its target lies inside ``directory``: a link out
    of it is passed over, so that dropping a link into an inbox cannot make crmkit read
    files elsewhere. Subdirectories and files of other types are passed over too.
    """
    inside = directory.resolve()
    files: list[Path] = []
    skipped: list[str] = []
    for path in sorted(directory.iterdir()):
        if path.is_symlink() and inside not in path.resolve().parents:
            skipped.append(f"{path.name}: a link to a file outside {directory}")
        elif path.is_dir():
            if path.name != "processed":
                skipped.append(f"{path.name}: a directory (only files directly inside are read)")
        elif not _is_data(path):
            skipped.append(f"{path.name}: not a {', '.join(SUFFIXES)} file")
        elif path.is_file():
            files.append(path)
    return files, skipped


@dataclass(frozen=True)
class Prepared:
    """A source made readable by polars: plain UTF-8 text on disk."""

    path: Path
    encoding: str
    compressed: bool


def _open_raw(source: Path) -> io.BufferedIOBase:
    with source.open("rb") as fh:
        magic = fh.read(2)
    if magic == _GZIP_MAGIC:
        return gzip.open(source, "rb")
    return source.open("rb")


@contextlib.contextmanager
def _gzip_errors(source: Path) -> Iterator[None]:
    """Report a corrupt or truncated gzip stream as bad input naming the file."""
    try:
        yield
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise BadInputError(f"{source}: cannot be read as gzip ({exc})") from exc


def is_compressed(source: Path) -> bool:
    """Return whether a file is gzip-compressed (by content, not name)."""
    with source.open("rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


def choose_encoding(source: Path, configured: str) -> str:
    """Return the encoding to read ``source`` in before any UTF-8 check.

    A byte-order mark wins (UTF-8, UTF-16, UTF-32); then an explicit ``configured``
    encoding; then UTF-16 recognised by its zero bytes; else ``utf-8``, which the caller
    verifies when the parser refuses the text (:func:`encoding.first_invalid_utf8`).
    """
    with _gzip_errors(source), _open_raw(source) as raw:
        head = raw.read(4096)
    marked = encoding.bom_encoding(head)
    if marked is not None:
        return marked
    if configured != "auto":
        return configured
    return encoding.unmarked_utf16(head) or "utf-8"


def invalid_utf8_offset(source: Path) -> int | None:
    """Byte offset of the first invalid UTF-8 byte of ``source`` (decompressed), or None."""
    with _gzip_errors(source), _open_raw(source) as raw:
        return encoding.first_invalid_utf8(raw)


#: Header names a message lists at most, and characters shown of each: a file that is not
#: delimited as expected has its content in its "header", which no message may quote.
_NAMES_SHOWN: Final = 20
_NAME_CHARS: Final = 40


def header_names(header: Sequence[str]) -> str:
    """List header names for a message, each cut short, at most :data:`_NAMES_SHOWN`."""
    shown = [
        repr(h if len(h) <= _NAME_CHARS else h[: _NAME_CHARS - 3] + "...")
        for h in header[:_NAMES_SHOWN]
    ]
    more = len(header) - _NAMES_SHOWN
    return ", ".join(shown) + (f" and {more:,} more" if more > 0 else "")


def prepare(source: Path, workdir: Path, text_encoding: str) -> Prepared:
    """Return a plain UTF-8 copy of ``source`` if it needs one, else ``source`` itself.

    gzip input is decompressed and non-UTF-8 text is transcoded, streaming in chunks so that
    memory stays bounded whatever the file size. ``text_encoding`` is ``"utf-8"`` (as is,
    BOM allowed), a UTF-16/32 codec name, ``"cp1252"`` or ``"latin-1"``.

    Raises
    ------
    BadInputError
        When the gzip stream is corrupt, or a byte is not valid in ``text_encoding``.
    """
    compressed = is_compressed(source)
    if not compressed and text_encoding == "utf-8":
        return _line_feeds(Prepared(source, text_encoding, compressed), workdir)
    target = workdir / "input.csv"
    workdir.mkdir(parents=True, exist_ok=True)
    with _gzip_errors(source), _open_raw(source) as raw, target.open("wb") as out:
        if text_encoding == "utf-8":
            shutil.copyfileobj(raw, out, _CHUNK)
        else:
            encoding.transcode(raw, out, text_encoding, source)
    return _line_feeds(Prepared(target, text_encoding, compressed), workdir)


#: Bytes of a file's head that tell whether its lines end in a lone carriage return.
_LINE_END_PROBE: Final = 64 * 1024


def _line_feeds(prepared: Prepared, workdir: Path) -> Prepared:
    """Give a file whose lines end in a lone CR (classic Mac exports) line feeds instead.

    Each CR becomes one LF, so lines keep their numbers; a file with any LF in its head is
    left as it is.
    """
    with prepared.path.open("rb") as fh:
        head = fh.read(_LINE_END_PROBE)
    if b"\r" not in head or b"\n" in head:
        return prepared
    target = workdir / "input-lf.csv"
    workdir.mkdir(parents=True, exist_ok=True)
    with prepared.path.open("rb") as raw, target.open("wb") as out:
        while chunk := raw.read(_CHUNK):
            out.write(chunk.replace(b"\r", b"\n"))
    return Prepared(target, prepared.encoding, prepared.compressed)


def fallback_encoding(source: Path) -> str:
    """Pick the single-byte encoding for a file that is not UTF-8: cp1252, else latin-1.

    cp1252 (Windows exports) leaves five byte values undefined; a file using them is read as
    latin-1, which defines every byte.
    """
    with _gzip_errors(source), _open_raw(source) as raw:
        while chunk := raw.read(_CHUNK):
            try:
                chunk.decode("cp1252")
            except UnicodeDecodeError:
                return "latin-1"
    return "cp1252"


def head_text(path: Path, size: int = 256 * 1024) -> str:
    """Return the first ``size`` bytes of a plain file as text (lossy, BOM dropped)."""
    with path.open("rb") as fh:
        data = fh.read(size)
    return data.decode("utf-8", errors="replace").removeprefix("\ufeff")


def detect_delimiter(text: str, name: str) -> str:
    """Detect the field delimiter from the first lines of a file.

    The candidate that splits the header into the most fields, consistently over the first
    lines, wins; ``.tsv`` files are tab-separated unless that gives one field.
    """
    lines = [ln for ln in text.splitlines()[:50] if ln.strip()]
    if len(lines) > 1 and not text.endswith(("\n", "\r")):
        lines = lines[:-1]  # the last line may be cut mid-record
    if not lines:
        return ","
    best, best_score = ",", (0, 0)
    for delim in DELIMITERS:
        try:
            counts = [len(row) for row in csv.reader(lines, delimiter=delim)]
        except csv.Error:  # a field longer than the csv module's limit
            continue
        header = counts[0]
        if header < 2:
            continue
        consistent = sum(1 for c in counts if c == header)
        score = (consistent, header)
        if score > best_score:
            best, best_score = delim, score
    if name.lower().removesuffix(".gz").endswith(".tsv") and len(lines[0].split("\t")) > 1:
        return "\t"
    return best


def norm_name(name: str) -> str:
    """Normalise a column name for matching: lower case, letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _match_aliases(by_norm: Mapping[str, list[str]], result: dict[str, str], source: Path) -> None:
    """Add to ``result`` the canonical columns that one header name matches by alias.

    Raises
    ------
    BadInputError
        When two header names match one canonical column.
    """
    taken = set(result.values())
    for canonical, aliases in schema.ALIASES.items():
        if canonical in result:
            continue
        for alias in (canonical.replace("_", ""), *aliases):
            names = [n for n in by_norm.get(alias, []) if n not in taken]
            if len(names) > 1:
                raise BadInputError(
                    f"{source}: columns {names} could all be {canonical}; choose one with "
                    f"--map {canonical}=NAME"
                )
            if names:
                result[canonical] = names[0]
                taken.add(names[0])
                break


def resolve_columns(
    header: Sequence[str], explicit: Mapping[str, str], source: Path
) -> dict[str, str]:
    """Map canonical columns to the source's header names.

    Explicit mappings win (a file with crmkit's own required column names may lack the mapped
    ones); other canonical columns are matched by the aliases in
    :data:`crmkit.schema.ALIASES` (case, spaces and punctuation ignored).

    Returns
    -------
    dict
        canonical name -> source column name.

    Raises
    ------
    BadInputError
        When a mapped source column is absent, a required column cannot be found, or two
        source columns match one canonical column; the message lists the columns found.
    """
    found = header_names(header)
    by_norm: dict[str, list[str]] = {}
    for name in header:
        by_norm.setdefault(norm_name(name), []).append(name)
    result: dict[str, str] = {}
    own_format = set(schema.REQUIRED_COLUMNS) <= set(header)
    for canonical, wanted in explicit.items():
        if wanted in header:
            result[canonical] = wanted
        elif len(by_norm.get(norm_name(wanted), [])) == 1:
            result[canonical] = by_norm[norm_name(wanted)][0]
        elif own_format:
            continue  # a file in crmkit's own columns (a simulated response, an export)
        else:
            raise BadInputError(
                f"{source}: mapped column {wanted!r} (for {canonical}) is not in the file; "
                f"columns found: {found}"
            )
    _match_aliases(by_norm, result, source)
    missing = [c for c in (schema.CUSTOMER_ID, schema.TS) if c not in result]
    has_amount = schema.AMOUNT in result or {schema.QUANTITY, schema.UNIT_PRICE} <= set(result)
    if not has_amount:
        missing.append("amount (or quantity and unit_price)")
    if missing:
        raise BadInputError(
            f"{source}: required column(s) {', '.join(missing)} not found; columns found: "
            f"{found}. Map them with --map canonical=source (e.g. --map customer_id=ClientRef) "
            "or [ingest.columns] in crmkit.toml"
        )
    return result


def first_ragged_line(path: Path, delimiter: str) -> tuple[int, int, int] | None:
    """Find the first record with more fields than the header: (line, fields, header)."""
    with path.open(encoding="utf-8", errors="replace", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            header = next(reader, [])
            for row in reader:
                if len(row) > len(header):
                    return reader.line_num, len(row), len(header)
        except csv.Error:  # a field longer than the csv module's limit
            return None
    return None


def read_small_table(path: Path, what: str) -> pl.DataFrame:
    """Read a small delimited file (any Unicode encoding, detected delimiter) as text columns.

    For side files read whole: assignment files, customer attribute tables. A ``.parquet``
    file's columns are written as text the way ingest writes a typed source's.

    Raises
    ------
    BadInputError
        When the file cannot be read or parsed as delimited text.
    """
    import polars as pl

    from crmkit.ingest.encoding import read_text

    if path.name.lower().endswith(".parquet"):
        from crmkit.ingest.tables import as_text, parquet_header

        parquet_header(path)  # a clear error for a file that is not Parquet
        try:
            return as_text(pl.scan_parquet(path), f"{what} {path}").collect()
        except pl.exceptions.PolarsError as exc:
            raise BadInputError(f"{path}: cannot read its rows ({type(exc).__name__})") from exc
    text = read_text(path, what)
    delimiter = detect_delimiter(text[: 256 * 1024], path.name)
    try:
        return pl.read_csv(
            text.encode("utf-8"), separator=delimiter, infer_schema=False, raise_if_empty=True
        )
    except pl.exceptions.PolarsError as exc:
        raise BadInputError(
            f"{path}: cannot be read as delimited text ({type(exc).__name__})"
        ) from exc
