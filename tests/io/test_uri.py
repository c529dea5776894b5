from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmkit.errors import ConfigError, UsageError
from crmkit.io.uri import MASK, database, expand_env, is_uri, mask, table_name

# passwords as people write them, percent-encoded in the URI
PASSWORDS = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1
)


@given(password=PASSWORDS, user=st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True))
def test_mask_hides_any_password(password, user):
    quoted = urllib.parse.quote(password, safe="")
    uri = f"postgresql://{user}:{quoted}@db.example:5432/shop?sslmode=require"
    masked = mask(uri)
    assert masked == f"postgresql://{user}:{MASK}@db.example:5432/shop?sslmode=require"
    db = database(uri, "test")
    assert db.label == masked
    # a driver message quoting the password, raw or encoded, loses it
    scrubbed = db.scrub(f"FATAL: login {password!s} via {uri} ({quoted})")
    assert quoted not in scrubbed.replace(MASK, "")
    if len(password) >= 4:
        assert password not in scrubbed.replace(MASK, "")


def test_mask_query_parameter_and_text():
    assert mask("host=db password=hunter2 user=x") == f"host=db password={MASK} user=x"
    assert mask("postgresql://u:p@h/db and sqlite:///x.db") == (
        f"postgresql://u:{MASK}@h/db and sqlite:///x.db"
    )
    assert mask("postgresql://u@h/db") == "postgresql://u@h/db"


def test_expand_env(monkeypatch):
    monkeypatch.setenv("CRMKIT_TEST_PW", "pw")
    assert expand_env("postgresql://u:${CRMKIT_TEST_PW}@h/db", "x") == "postgresql://u:pw@h/db"
    monkeypatch.delenv("CRMKIT_TEST_PW")
    with pytest.raises(ConfigError, match="CRMKIT_TEST_PW is not set"):
        expand_env("postgresql://u:${CRMKIT_TEST_PW}@h/db", "[source] uri")


def test_database_paths_and_engines():
    assert database("sqlite:///rel/x.db", "t").path == Path("rel/x.db")
    assert database("sqlite:////abs/x.db", "t").path == Path("/abs/x.db")
    assert database("duckdb:///x.duckdb", "t").engine == "duckdb"
    assert database("postgres://u@h/db", "t").engine == "postgresql"
    assert is_uri("postgresql://h/db")
    assert not is_uri("exports/x.csv")
    with pytest.raises(UsageError, match="not a database URI"):
        database("mysql://u:secret@h/db", "--from")
    with pytest.raises(UsageError) as excinfo:
        database("mysql://u:secret@h/db", "--from")
    assert "secret" not in str(excinfo.value)
    with pytest.raises(UsageError, match="names no database file"):
        database("sqlite:///", "t")


@pytest.mark.parametrize("bad", ["x; DROP TABLE y", 'a"b', "1abc", "a.b.c", "", "a-b"])
def test_table_name_refuses_anything_but_identifiers(bad):
    with pytest.raises(UsageError):
        table_name(bad)


def test_table_name_quotes():
    assert table_name("crm.contacts") == '"crm"."contacts"'
