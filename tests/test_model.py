"""ChurnModel's cheap paths: the frozen feature spec, and the scores fit computes without
scikit-learn's input checks agree with scikit-learn's own."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from churnlens.modeling.linear import _roc_auc
from churnlens.modeling.model import ChurnModel, _pick_method


def test_freeze_gives_prepare_the_spec_without_fitting():
    train = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "cutoff": pd.to_datetime(["2024-01-01"] * 3),
            "churned": [True, False, True],
            "orders": [1, 2, 3],
            "plan": pd.Series(["pro", "basic", None], dtype="category"),
        }
    )
    model = ChurnModel().freeze(train)
    assert model.feature_names_ == ["orders", "plan"]
    assert model.categories_ == {"plan": ["basic", "pro"]}
    prepared = model.prepare(train.assign(plan=["gold", "pro", "basic"]))  # gold: unseen
    assert prepared["orders"].dtype == "float64"
    assert prepared["plan"].cat.codes.tolist() == [-1, 1, 0]


def test_blend_roc_auc_is_scikit_learns_with_ties():
    rng = np.random.default_rng(0)
    y = rng.random(2000) < 0.3
    score = np.round(rng.normal(size=2000) + y, 1)  # coarse: many tied scores across classes
    assert _roc_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert _roc_auc(y, -score) == pytest.approx(roc_auc_score(y, -score), abs=1e-12)


def test_calibration_choice_picks_the_shape_the_data_have():
    rng = np.random.default_rng(1)
    margin = rng.normal(size=3000)
    logistic = (rng.random(3000) < 1 / (1 + np.exp(-2 * margin))).astype(int)
    step = (rng.random(3000) < np.where(margin > 0.5, 0.8, 0.1)).astype(int)
    assert _pick_method(margin, logistic) == "sigmoid"
    assert _pick_method(margin, step) == "isotonic"  # a sigmoid cannot follow a step
