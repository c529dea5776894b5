from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmkit.campaigns.optouts import read_optout_lines, read_optouts
from crmkit.errors import BadInputError
from tests.reference_amounts import WHITE

IDS = ["C0001", "C0002", "12346"]


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("quoted.csv", b'"customer_id"\n"C0001"\n"C0002"\n"12346"\n'),
        (
            "bom_semicolon.csv",
            b"\xef\xbb\xbfemail;CustomerID;since\nx@y;C0001;2024\n;C0002;\nz;12346;\n",
        ),
        ("tabs.tsv", b"customer_id\tname\nC0001\tAda\nC0002\tBob\n12346\tCy\n"),
        ("plain.txt", b"C0001\n\n  C0002  \n12346.0\n"),
        ("crlf_header.csv", b"customer_id\r\nC0001\r\nC0002\r\n12346\r\n"),
        (
            "quoted_all.csv",
            b'"Client ID","Reason"\r\n"C0001","asked, by phone"\r\n"C0002",""\r\n"12346","x"\r\n',
        ),
        ("utf16.csv", "customer_id,name\nC0001,Zoë\nC0002,Ana\n12346,Bo\n".encode("utf-16")),
        ("cp1252.csv", "customer_id;name\nC0001;Zoë\nC0002;Ana\n12346;Bo\n".encode("cp1252")),
    ],
)
def test_optout_files_as_tools_export_them(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    assert read_optouts(path).to_list() == sorted(IDS)


def test_optout_file_without_an_id_column_is_refused(tmp_path):
    path = tmp_path / "o.csv"
    path.write_text("email,reason\na@b,x\n")
    with pytest.raises(BadInputError, match=r"o\.csv line 1: no customer id column"):
        read_optouts(path)


def test_missing_or_empty_optout_file(tmp_path):
    with pytest.raises(BadInputError, match="cannot be read"):
        read_optouts(tmp_path / "none.csv")
    (tmp_path / "empty.csv").write_text("")
    assert read_optouts(tmp_path / "empty.csv").len() == 0


_id = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters='"\ufeff'
    ),
    min_size=1,
    max_size=12,
).filter(lambda s: s.strip() != "")


@given(
    st.lists(_id, min_size=1, max_size=20, unique=True),
    st.sampled_from([",", ";", "\t", "|"]),
    st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
    st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]),
)
def test_any_id_written_by_a_csv_writer_is_read_back(
    tmp_path_factory, ids, delimiter, quoting, enc
):
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, quoting=quoting, lineterminator="\n")
    writer.writerow(["customer_id", "note"])
    for value in ids:
        writer.writerow([value, "n"])
    path = tmp_path_factory.mktemp("o") / "optouts.csv"
    path.write_bytes(buffer.getvalue().encode(enc))
    expected = {reference_id(value) for value in ids} - {None, "note"}
    assert set(read_optouts(path).to_list()) == expected


INVISIBLE = {0xAD, 0x180E, *range(0x200B, 0x2010), *range(0x202A, 0x202F)}
INVISIBLE |= {*range(0x2060, 0x2065), *range(0x2066, 0x2070), 0xFEFF}


def reference_id(value: str) -> str | None:
    """An id as ingest and opt-outs clean it, in plain Python."""
    kept = "".join(c for c in value if ord(c) not in INVISIBLE and not _control(c))
    text = kept.strip(WHITE)
    head = text.rstrip("0")
    if head.endswith(".") and head[:-1].lstrip("+-").isdigit() and head[:-1].isascii():
        text = head[:-1]
    return text or None


def _control(c: str) -> bool:
    return (ord(c) < 0x20 and c not in "\t\n\r") or 0x7F <= ord(c) <= 0x9F


@pytest.mark.parametrize(
    "dirt",
    ["\x00", "\ufeff", "\x1a", "\u200b", "\u200d", "\u00a0", "\u2060", "\x1f", "\x85"],
)
@pytest.mark.parametrize("where", ["before", "after", "inside"])
def test_invisible_characters_never_hide_an_optout(tmp_path, dirt, where):
    if dirt == "\u00a0" and where == "inside":
        pytest.skip("a space inside an id is part of it, not an invisible character")
    ids = {"before": f"{dirt}C0002", "after": f"C0002{dirt}", "inside": f"C00{dirt}02"}
    path = tmp_path / "o.csv"
    path.write_text(f"customer_id\nC0001\n{ids[where]}\n12346.0{dirt}\n", encoding="utf-8")
    assert read_optouts(path).to_list() == sorted(IDS)


def test_two_exports_joined_with_cat(tmp_path):
    one = "customer_id\r\nC0001\r\n".encode("utf-8-sig")
    two = "customer_id\r\nC0002\r\n12346\r\n\x1a".encode("utf-8-sig")
    path = tmp_path / "o.csv"
    path.write_bytes(one + two)
    assert read_optouts(path).to_list() == sorted(IDS)
    assert read_optout_lines(path)["line"].to_list() == [2, 4, 5]


def test_lone_carriage_returns_and_line_numbers(tmp_path):
    path = tmp_path / "o.csv"
    path.write_bytes(b"customer_id\rC0001\r\rC0002\r12346")
    lines = read_optout_lines(path)
    assert lines.rows() == [(2, "C0001"), (4, "C0002"), (5, "12346")]


def test_second_export_joined_without_a_line_break(tmp_path):
    one = "customer_id\nC0001".encode("utf-8-sig")
    two = "customer_id\nC0002\n12346\n".encode("utf-8-sig")
    path = tmp_path / "o.csv"
    path.write_bytes(one + two)
    assert read_optouts(path).to_list() == sorted(IDS)
    assert read_optout_lines(path)["line"].to_list() == [2, 3, 4]
