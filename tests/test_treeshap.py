"""TreeSHAP once per pattern of split sides (modeling.treeshap): LightGBM's values, fewer runs."""

from __future__ import annotations

import copy

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from churnlens.modeling.treeshap import TreeSHAP, _Columns, lightgbm_input


def _data(rows: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 5))
    x[:, 3] = rng.integers(0, 4, rows)  # a count: many exact zeros
    y = (x[:, 0] + x[:, 1] * x[:, 2] - x[:, 3] + rng.normal(size=rows) > 0).astype(int)
    x[rng.random(x.shape) < 0.1] = np.nan
    return x, y


def _booster(data, y, **params) -> lgb.Booster:
    params = {"objective": "binary", "verbosity": -1, "num_leaves": 15, "seed": 0, **params}
    return lgb.train(params, lgb.Dataset(data, y), num_boost_round=40)


@pytest.mark.parametrize(
    "params",
    [{}, {"zero_as_missing": True}, {"use_missing": False}],
    ids=["missing-nan", "missing-zero", "missing-none"],
)
def test_equal_to_lightgbm_under_each_missing_value_rule(params):
    x, y = _data()
    booster = _booster(x, y, **params)
    kinds = {n["missing_type"] for t in booster.dump_model()["tree_info"] for n in _splits(t)}
    assert kinds - {"None"} or params == {"use_missing": False}  # the rule is exercised
    assert _patterned(booster, x)
    np.testing.assert_allclose(
        TreeSHAP(booster)(x), booster.predict(x, pred_contrib=True), rtol=0, atol=1e-12
    )


def test_equal_to_lightgbm_on_categories_missing_or_in_another_order():
    x, y = _data()
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(x[:, :3], columns=["a", "b", "c"])
    levels = ["north", "south", "east", "west", "online"]
    frame["region"] = pd.Categorical(rng.choice(levels, len(frame)), categories=levels)
    y = y ^ (frame["region"].isin(["east", "online"]).to_numpy() & (rng.random(len(y)) < 0.5))
    booster = _booster(frame, y, min_data_per_group=20, cat_smooth=1)
    assert any(
        n["decision_type"] == "==" for t in booster.dump_model()["tree_info"] for n in _splits(t)
    )
    scored = frame.copy()
    scored.loc[::7, "region"] = np.nan  # missing categories go right
    scored["region"] = scored["region"].cat.reorder_categories(levels[::-1])  # LightGBM remaps
    assert _patterned(booster, scored)
    np.testing.assert_allclose(
        TreeSHAP(booster)(scored), booster.predict(scored, pred_contrib=True), atol=1e-12
    )
    codes = lightgbm_input(scored, booster)[:, 3]  # fractions and negatives, as LightGBM reads
    codes[1::5], codes[2::5] = codes[1::5] + 0.6, -0.5
    numeric = np.column_stack([scored[["a", "b", "c"]].to_numpy(), codes])
    assert _patterned(booster, numeric)
    np.testing.assert_allclose(
        TreeSHAP(booster)(numeric), booster.predict(numeric, pred_contrib=True), atol=1e-12
    )


def test_a_tree_that_never_split():
    """Too few rows to split: LightGBM keeps one leaf, dumped without a leaf index."""
    x, y = _data(rows=60)
    booster = _booster(x, y, min_data_in_leaf=50)
    assert booster.dump_model()["tree_info"][0]["tree_structure"].get("leaf_index") is None
    np.testing.assert_allclose(TreeSHAP(booster)(x), booster.predict(x, pred_contrib=True))


def test_rows_share_a_trees_contributions_by_pattern():
    """The point of the module: far fewer TreeSHAP runs than rows, each row its own values."""
    x, y = _data(rows=20_000)
    booster = _booster(x, y)
    shap = TreeSHAP(booster)
    values = lightgbm_input(x, booster)
    leaves = booster.predict(values, pred_leaf=True)
    first, inverse = shap.structure[0].patterns(_Columns(values), leaves[:, 0])
    assert len(first) < len(x) / 10
    assert (inverse[first] == np.arange(len(first))).all()  # each pattern's row has it


def test_only_the_trees_asked_for_are_read():
    x, y = _data()
    booster = _booster(x, y)
    np.testing.assert_allclose(
        TreeSHAP(booster, trees=10)(x),
        booster.predict(x, pred_contrib=True, num_iteration=10),
        atol=1e-12,
    )


def test_a_split_rule_read_wrong_falls_back_to_lightgbm_row_by_row():
    """Sides that disagree with LightGBM's leaves are never used: that tree runs per row."""
    x, y = _data()
    booster = _booster(x, y)
    shap = TreeSHAP(booster)
    split = shap.structure[0].splits[0]
    split["threshold"] += 1.0  # as if a rule of LightGBM's predictor had changed
    values = lightgbm_input(x, booster)
    leaves = booster.predict(values, pred_leaf=True)
    assert shap.structure[0].patterns(_Columns(values), leaves[:, 0]) == (None, None)
    np.testing.assert_allclose(shap(x), booster.predict(x, pred_contrib=True), atol=1e-12)


def test_the_churn_model_gives_lightgbms_treeshap(trained_shop):
    """Frozen category levels, the best iteration, the prepared frame as LightGBM reads it."""
    model = copy.deepcopy(trained_shop[2].model)
    rows = model.prepare(trained_shop[2].split.part(trained_shop[2].scored, "test").head(800))
    best = model.booster_.best_iteration or None
    expected = model.booster_.predict(rows, pred_contrib=True, num_iteration=best)
    assert _patterned(model.booster_, rows, best)
    np.testing.assert_allclose(model._treeshap(rows), expected, atol=1e-12)


def _patterned(booster: lgb.Booster, data, trees: int | None = None) -> bool:
    """Whether every tree's sides were read right (none left to LightGBM row by row)."""
    shap = TreeSHAP(booster, trees)
    values = lightgbm_input(data, booster)
    leaves = booster.predict(values, pred_leaf=True, num_iteration=shap.trees)
    columns = _Columns(values)
    return all(
        tree.patterns(columns, leaves[:, i])[0] is not None for i, tree in enumerate(shap.structure)
    )


def _splits(tree: dict) -> list[dict]:
    found, stack = [], [tree["tree_structure"]]
    while stack:
        node = stack.pop()
        if "split_feature" in node:
            found.append(node)
            stack += [node["left_child"], node["right_child"]]
    return found
