from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmkit.errors import BadInputError
from crmkit.optouts import read_optouts

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
    expected = set()
    for value in ids:
        text = value.strip()
        head = text.rstrip("0")
        if head.endswith(".") and head[:-1].lstrip("+-").isdigit() and head[:-1].isascii():
            text = head[:-1]
        expected.add(text)
    assert set(read_optouts(path).to_list()) == expected
