"""Path attributions (modeling.paths): equal to TreeSHAP where they must be, always additive."""

from __future__ import annotations

import copy

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from churnlens.modeling import paths as paths_module
from churnlens.modeling.paths import PathAttributions


def _data(rows: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4))
    y = (x[:, 0] + x[:, 1] * x[:, 2] + rng.normal(size=rows) > 0).astype(int)
    x[rng.random(x.shape) < 0.1] = np.nan  # missing values take LightGBM's default side
    return x, y


def _booster(x, y, leaves: int) -> lgb.Booster:
    params = {"objective": "binary", "verbosity": -1, "num_leaves": leaves, "seed": 0}
    return lgb.train(params, lgb.Dataset(x, y), num_boost_round=40)


def test_on_stumps_path_attributions_are_treeshap():
    """One split per tree: the only fair split of a stump's output is its path step."""
    x, y = _data()
    booster = _booster(x, y, leaves=2)
    np.testing.assert_allclose(
        PathAttributions(booster)(x), booster.predict(x, pred_contrib=True), atol=1e-9
    )


def test_deeper_trees_add_up_to_the_margin_and_stay_close_to_treeshap():
    x, y = _data()
    booster = _booster(x, y, leaves=8)
    paths = PathAttributions(booster)(x)
    exact = booster.predict(x, pred_contrib=True)
    np.testing.assert_allclose(paths.sum(axis=1), booster.predict(x, raw_score=True), atol=1e-9)
    np.testing.assert_allclose(paths[:, -1], exact[:, -1], atol=1e-9)  # the same base value
    assert not np.allclose(paths, exact)  # interactions are split differently ...
    for j in range(x.shape[1]):  # ... yet each feature's attributions tell the same story
        assert np.corrcoef(paths[:, j], exact[:, j])[0, 1] > 0.75  # x1 * x2's least: 0.82


def test_only_the_trees_asked_for_are_read():
    x, y = _data()
    booster = _booster(x, y, leaves=8)
    paths = PathAttributions(booster, trees=10)(x)
    margin = booster.predict(x, raw_score=True, num_iteration=10)
    np.testing.assert_allclose(paths.sum(axis=1), margin, atol=1e-9)


def test_the_churn_model_blends_path_attributions_like_treeshap(trained_shop):
    """Categorical splits, the best iteration and the logistic part: the margin still adds up."""
    model = copy.deepcopy(trained_shop[2].model)
    model.linear_.state["weight"] = 0.5
    rows = trained_shop[2].split.part(trained_shop[2].scored, "test").head(500)
    paths = model.path_contributions(rows)
    np.testing.assert_allclose(paths.sum(axis=1), model.predict_margin(rows), atol=1e-9)
    exact = model.contributions(rows)
    assert paths.shape == exact.shape
    assert np.corrcoef(paths[:, :-1].ravel(), exact[:, :-1].ravel())[0, 1] > 0.9


@pytest.mark.parametrize("leaves", [2, 8])
def test_a_feature_off_every_path_gets_nothing(leaves):
    x, y = _data()
    x = np.column_stack([x, np.zeros(len(x))])  # a constant column: LightGBM never splits it
    booster = _booster(x, y, leaves)
    assert (PathAttributions(booster)(pd.DataFrame(x))[:, 4] == 0).all()


def test_rows_are_attributed_in_chunks_with_the_same_bits(monkeypatch):
    """LEAF_ROWS rows at a time (a frame by position, whatever its index): the same values."""
    x, y = _data()
    booster = _booster(x, y, leaves=8)
    whole = PathAttributions(booster)(x)
    monkeypatch.setattr(paths_module, "LEAF_ROWS", 700)
    frame = pd.DataFrame(x, index=np.arange(len(x))[::-1] * 3)
    assert np.array_equal(PathAttributions(booster)(frame), whole)
    assert np.array_equal(PathAttributions(booster)(x[:1]), whole[:1])
