"""The contact file a sending system takes as it is."""

from __future__ import annotations

import csv

import numpy as np
import polars as pl
import pytest

from crmkit.campaigns.contacts import check_contact_settings, reach, with_contact_columns
from crmkit.config.policy import TargetPolicy
from crmkit.errors import ConfigError
from crmkit.io.export import write_table

POLICY = TargetPolicy(
    contact_columns=("email", "phone", "name"),
    channel_columns={"call": "phone", "email": "email"},
    offer_codes={"voucher": "SAVE10", "email": '=HYPERLINK("x")'},
)


def test_a_treatment_needs_its_column_and_the_unreachable_are_counted():
    frame = pl.DataFrame({"email": ["a@x.org", None, None], "phone": [None, "+44 7700", None]})
    gain = np.array([[5.0, 9.0], [5.0, 9.0], [5.0, np.nan]])
    masked, unreachable = reach(frame, gain, ["email", "call"], POLICY)
    assert np.isnan(masked).tolist() == [[False, True], [True, False], [True, True]]
    assert unreachable == 1
    assert not np.isnan(gain[0, 1])


def test_the_contact_file_reads_back_with_its_columns_and_no_formula(tmp_path):
    contacts = pl.DataFrame(
        {
            "customer_id": ["C1", "C2"],
            "treatment": ["email", "voucher"],
            "rank": [1, 2],
            "reasons": [
                "92 days since last purchase; usually every 30 days",
                "one purchase so far",
            ],
        }
    )
    details = pl.DataFrame(
        {"customer_id": ["C2", "C1"], "email": ["b@x.org", "a@x.org"],
         "phone": [None, "0770"], "name": ["=cmd|' /C calc'!A0", "Ann"]}
    )  # fmt: skip
    out = with_contact_columns(contacts, details, POLICY)
    path = write_table(out, tmp_path / "contacts.csv")
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["customer_id", "treatment", "rank", "email", "phone", "name",
                             "offer_code", "top_reason"]  # fmt: skip
    assert rows[0]["email"] == "a@x.org"
    assert rows[0]["top_reason"] == "92 days since last purchase"
    assert rows[1]["offer_code"] == "SAVE10"
    for row in rows:
        assert not any(v.startswith(("=", "+", "-", "@")) for v in row.values())


def test_a_channel_column_must_be_a_contact_column():
    with pytest.raises(ConfigError, match="phone not in"):
        check_contact_settings(TargetPolicy(channel_columns={"call": "phone"}))
