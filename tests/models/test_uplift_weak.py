"""A weak signal carried by two customer attributes: the chosen learner against a plain
T-learner on the attributes alone, on held-out customers of an export-shaped campaign."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from crmkit.campaigns.evaluation import arm_rows, outcome_store
from crmkit.campaigns.ledger_import import import_assignments
from crmkit.config.settings import FeatureConfig, IngestConfig
from crmkit.features.attributes import load_attributes
from crmkit.ingest import ingest_files
from crmkit.models.design import design_matrix
from crmkit.models.uplift import train_uplift
from crmkit.models.uplift_data import campaign_design
from crmkit.models.uplift_metrics import qini_coefficient
from crmkit.store.core import Store
from tests.conftest import NOW
from tests.realistic import ARMS, WINDOW, write_export

ATTRIBUTES = ("region", "loyalty_member", "age_band")


def _reference_uplift(train: pl.DataFrame, test: pl.DataFrame) -> np.ndarray:
    """A plain T-learner: one logistic regression per group on the one-hot attributes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder

    encoder = OneHotEncoder(handle_unknown="ignore").fit(train.select(ATTRIBUTES).to_numpy())
    x, x_test = (encoder.transform(f.select(ATTRIBUTES).to_numpy()) for f in (train, test))
    y, t = train["retained"].to_numpy(), (train["group"] == "treatment").to_numpy()
    p = [LogisticRegression(max_iter=1000).fit(x[g], y[g]) for g in (t, ~t)]
    out: np.ndarray = p[0].predict_proba(x_test)[:, 1] - p[1].predict_proba(x_test)[:, 1]
    return out


@pytest.mark.parametrize("seed", [6])  # seed 5 too, when measuring: 0.379 against 0.375
def test_chosen_learner_holds_up_against_a_t_learner_on_the_attributes(tmp_path, seed):
    export = write_export(tmp_path / "export", customers=20000, seed=seed, split=0.3)
    store = Store(tmp_path / "store")
    ingest_files([export.orders], store, IngestConfig(dayfirst=True), now=NOW)
    load_attributes(store, export.customers, now=NOW, known_from=NOW.date().replace(year=2022))
    import_assignments(store, export.assignments, "spring", dayfirst=True)
    import_assignments(store, export.assignments.with_name("assignments-test.csv"), "held",
                       dayfirst=True)  # fmt: skip
    with outcome_store(export.responses, NOW) as (extra, _):
        result = train_uplift(
            store, ["spring"], WINDOW, FeatureConfig(), created=NOW, extra=extra,
            bootstrap_rounds=50,
        )  # fmt: skip
        train = campaign_design(store, ["spring"], WINDOW, FeatureConfig(), extra).rows
        held = campaign_design(store, ["held"], WINDOW, FeatureConfig(), extra).rows
    model = result.model
    arm = ARMS[0]  # the discount: the arm with real heterogeneity
    rows = arm_rows(held, arm)
    y, t = rows["retained"].cast(pl.Float64).to_numpy(), (rows["group"] == "treatment").to_numpy()
    chosen = model.arms[arm].uplift(design_matrix(rows, model.features, model.categories))
    reference = _reference_uplift(arm_rows(train, arm), rows)
    ours, theirs = qini_coefficient(y, t, chosen), qini_coefficient(y, t, reference)
    learner = result.card["arms"][arm]["learner"]
    assert ours >= theirs, (learner, ours, theirs)
    assert ours > 0.1, (learner, ours)
