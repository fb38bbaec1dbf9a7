"""ChurnModel's cheap paths: the frozen feature spec, and the scores fit computes without
scikit-learn's input checks agree with scikit-learn's own."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from churnlens.modeling.linear import _roc_auc
from churnlens.modeling.model import ChurnModel, _BestValidMargin, _pick_method


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


def _lightgbm_frames(n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(
        {
            "days": rng.exponential(30, n),
            "orders": rng.poisson(3, n).astype(float),
            "plan": pd.Categorical(rng.choice(["basic", "pro", "gold"], n)),
        }
    )
    x.loc[rng.random(n) < 0.1, "days"] = np.nan
    logit = np.log1p(x["days"].fillna(30)) - 3 + (x["plan"] == "gold")
    return x, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)


def _train_recording(params: dict, rounds: int = 200, stopping: bool = True):
    x, y = _lightgbm_frames(4000, 7)
    dtrain = lgb.Dataset(x[:3000], y[:3000])
    recorded = _BestValidMargin()
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "seed": 0, "num_threads": 1, **params},
        dtrain,
        num_boost_round=rounds,
        valid_sets=[lgb.Dataset(x[3000:], y[3000:], reference=dtrain)],
        feval=recorded.metric,
        callbacks=[lgb.early_stopping(20, verbose=False)] * stopping + [recorded],
    )
    return recorded, booster, x[3000:]


@pytest.mark.parametrize("rounds", [200, 15])
def test_the_margin_recorded_in_training_is_the_best_iterations_prediction(rounds):
    recorded, booster, x_valid = _train_recording({"learning_rate": 0.1}, rounds=rounds)
    if rounds == 200:  # stopped early
        assert 1 < booster.best_iteration < 180
    else:  # the best is the last round, where early stopping ends training
        assert booster.best_iteration == 15
    expected = booster.predict(x_valid, raw_score=True, num_iteration=booster.best_iteration)
    np.testing.assert_allclose(recorded.margin(booster), expected, rtol=0, atol=1e-9)


def test_the_recorded_margin_is_refused_when_it_is_not_the_best_or_not_exact():
    recorded, booster, _ = _train_recording({"learning_rate": 0.1})
    assert recorded.margin(booster) is not None
    booster.best_iteration -= 1  # as if another metric had stopped training
    assert recorded.margin(booster) is None
    booster.best_iteration += 1
    recorded.best[0] = 1 - 1e-10  # as if a margin were above 23: log(p / (1 - p)) is inexact
    assert recorded.margin(booster) is None
    recorded, booster, _ = _train_recording({"metric": "None"}, rounds=5, stopping=False)
    assert booster.best_iteration == 0 and recorded.margin(booster) is None  # nothing recorded
