"""The split on short histories: pinned test date, default schedule, grouped validation."""

from __future__ import annotations

import re

import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from churnlens.cli import app
from churnlens.config import ChurnConfig, CutoffConfig
from churnlens.data.io import write_parquet
from churnlens.data.tables import Tables
from churnlens.datasets import load_cdnow
from churnlens.errors import ChurnlensError
from churnlens.labels import data_end, training_cutoffs
from churnlens.modeling.split import time_split
from shops import make_tables


@pytest.fixture(scope="module")
def cdnow() -> Tables:
    tables = load_cdnow()
    return Tables(customers=tables["customers"], purchases=tables["purchases"])


@settings(max_examples=80, deadline=None)
@given(
    days=st.sets(st.integers(0, 1000), min_size=2, max_size=30),
    horizon=st.integers(1, 200),
    validation=st.sampled_from(["auto", "out_of_time", "grouped"]),
    min_train=st.integers(1, 5),
)
def test_no_training_or_validation_label_window_reaches_past_the_test_cutoff(
    days, horizon, validation, min_train
):
    cutoffs = [pd.Timestamp("2024-01-01") + pd.Timedelta(days=d) for d in days]
    try:
        split = time_split(cutoffs, horizon, validation=validation, min_train_cutoffs=min_train)
    except ChurnlensError:
        return  # no cutoff far enough before the test: refused, which is allowed
    window = pd.Timedelta(days=horizon)
    assert split.test == max(cutoffs)
    assert split.train and all(c + window <= split.test for c in split.train + split.valid)
    if split.validation == "out_of_time":
        (valid,) = split.valid
        assert all(c + window <= valid for c in split.train)
        assert valid == max(c for c in cutoffs if c + window <= split.test)
    else:
        assert split.valid == split.train
    if validation != "auto":
        assert split.validation == validation


def test_grouped_validation_holds_out_whole_customers():
    frame = pd.DataFrame(
        {
            "customer_id": [str(i) for i in range(1000)] * 3,
            "cutoff": pd.to_datetime(
                ["2024-01-01"] * 1000 + ["2024-02-01"] * 1000 + ["2024-09-01"] * 1000
            ),
        }
    )
    split = time_split(frame["cutoff"], 90, validation="grouped", holdout_share=0.2)
    train, valid = split.part(frame, "train"), split.part(frame, "valid")
    assert not set(train["customer_id"]) & set(valid["customer_id"])
    assert len(train) + len(valid) == 2000
    assert 0.15 < valid["customer_id"].nunique() / 1000 < 0.25
    assert set(split.part(frame, "test")["cutoff"]) == {pd.Timestamp("2024-09-01")}


def test_a_pinned_test_date_is_the_last_cutoff_whatever_the_step(cdnow):
    for step in (7, 30, 45):
        config = CutoffConfig(test="1998-01-01", step_days=step)
        cutoffs = training_cutoffs(cdnow, config, ChurnConfig(horizon_days=180))
        assert cutoffs[-1] == pd.Timestamp("1998-01-01")
        assert cutoffs[0] >= pd.Timestamp("1997-01-01") + pd.Timedelta(days=90)
        assert cutoffs[0] - pd.Timedelta(days=step) < pd.Timestamp("1997-04-01")


def test_a_test_date_too_late_for_its_label_window_is_refused(cdnow):
    with pytest.raises(ChurnlensError, match="cutoffs.test: 1998-03-01.*1998-01-01"):
        training_cutoffs(cdnow, CutoffConfig(test="1998-03-01"), ChurnConfig(horizon_days=180))


def test_cdnow_at_180_days_trains_on_cutoffs_with_months_of_history(cdnow):
    cutoffs = training_cutoffs(
        cdnow, CutoffConfig(test="1998-01-01"), ChurnConfig(horizon_days=180)
    )
    split = time_split(cutoffs, 180)
    assert split.validation == "grouped"
    assert "fewer than cutoffs.min_train_cutoffs" in split.reason
    assert len(split.train) >= 3
    first_purchase = cdnow.purchases["ordered_at"].min()
    assert all(c - first_purchase >= pd.Timedelta(days=90) for c in split.train)
    assert all(c + pd.Timedelta(days=180) <= split.test for c in split.train)


def test_cdnow_at_90_days_validates_out_of_time(cdnow):
    cutoffs = training_cutoffs(cdnow, CutoffConfig(test="1998-04-01"), ChurnConfig(horizon_days=90))
    split = time_split(cutoffs, 90)
    assert split.validation == "out_of_time"
    assert len(split.train) >= 3


def test_data_end_comes_from_purchases_not_a_later_survey():
    tables = make_tables(
        customers={"customer_id": ["a"], "signup_at": ["2024-01-01"]},
        purchases={
            "order_id": ["o1", "o2", "o3"],
            "customer_id": ["a", "a", "a"],
            "ordered_at": ["2024-01-05", "2024-06-30", "2024-07-20"],
            "amount": [1.0, 1.0, 1.0],
            "status": ["completed", "completed", "cancelled"],
        },
        surveys={
            "response_id": ["s1"],
            "customer_id": ["a"],
            "answered_at": ["2024-08-15"],
            "kind": ["nps"],
            "score": [9.0],
        },
    )
    assert data_end(tables) == pd.Timestamp("2024-06-30")


def test_twelve_months_of_history_train_with_the_default_config(tmp_path):
    tables = load_cdnow("sample")
    purchases = tables["purchases"]
    purchases = purchases[purchases["ordered_at"] < "1998-01-01"]
    write_parquet(tables["customers"], tmp_path / "data" / "customers.parquet")
    write_parquet(purchases, tmp_path / "data" / "purchases.parquet")
    config = {
        "data": {
            "dir": "data",
            "customers": {"path": "customers.parquet"},
            "purchases": {"path": "purchases.parquet"},
        },
        "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    out = CliRunner().invoke(app, ["train", "-c", str(path)], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "split: validation on 20% of customers held out" in out.output
    assert "95 % paired bootstrap intervals" in out.output
    for model in ("lightgbm", "recency_rule", "rfm_logistic", "bgnbd"):
        assert re.search(rf"{model} +0\.\d{{4}} \[0\.\d{{4}}, 0\.\d{{4}}\]", out.output), model
    # the test cutoff: the last purchase day minus the horizon, back from which the schedule runs
    assert "test cutoff 1997-10-02" in out.output
