"""The logistic part blended into the churn model: weight choice, exact contributions, saving."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from churnlens.modeling.linear import LinearPart, sample_rows
from churnlens.modeling.model import ChurnModel


def _frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"a": rng.exponential(30, n), "b": rng.normal(0, 1, n)})
    x.loc[rng.random(n) < 0.1, "a"] = np.nan
    logit = np.log1p(x["a"].fillna(30)) - 3.0 + 0.5 * x["b"]
    return x, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)


def test_weight_goes_to_the_margin_that_ranks_better_ties_to_lightgbm():
    x, y = _frame(2000, 0)
    part = LinearPart().fit(x, y, ["a", "b"])
    noise = np.random.default_rng(1).normal(size=len(y))
    scores = part.choose_weight(noise, part.margin(x), y)
    assert part.weight == 0.0 and scores[0.0] > scores[1.0]
    part.choose_weight(part.margin(x), part.margin(x), y)  # the same ranking at every weight
    assert part.weight == 1.0


def test_missing_values_take_the_training_median():
    x, y = _frame(2000, 2)
    part = LinearPart().fit(x, y, ["a", "b"])
    filled = x.assign(a=x["a"].fillna(np.expm1(part.state["medians"][0])))
    np.testing.assert_allclose(part.margin(x), part.margin(filled))


@pytest.mark.filterwarnings("error")  # numpy's "All-NaN slice encountered" included
def test_a_column_without_values_is_fitted_quietly_and_changes_nothing_else():
    x, y = _frame(2000, 4)
    part = LinearPart().fit(x.assign(empty=np.nan), y, ["a", "empty", "b"])
    alone = LinearPart().fit(x, y, ["a", "b"])
    assert part.state["medians"][1] == 0.0 and part.state["coef"][1] == 0.0
    for key in ("medians", "means", "scales", "coef"):
        np.testing.assert_allclose(np.delete(part.state[key], 1), alone.state[key], rtol=1e-5)
    np.testing.assert_allclose(part.margin(x.assign(empty=np.nan)), alone.margin(x), rtol=1e-5)


def test_the_logistic_part_fits_a_fixed_sample_of_at_most_max_rows():
    x, y = _frame(3000, 3)
    part = LinearPart().fit(x, y, ["a", "b"], seed=0, max_rows=1000)
    assert part.state == LinearPart().fit(x, y, ["a", "b"], seed=0, max_rows=1000).state
    assert part.state != LinearPart().fit(x, y, ["a", "b"], seed=1, max_rows=1000).state
    rows = sample_rows(3000, 1000, seed=0)
    assert len(rows) == 1000 and (np.diff(rows) > 0).all() and rows[-1] < 3000
    on_sample = LinearPart().fit(x.iloc[rows], y[rows], ["a", "b"])  # fewer rows: no sampling
    np.testing.assert_allclose(on_sample.state["coef"], part.state["coef"], rtol=1e-5)
    np.testing.assert_allclose(on_sample.state["means"], part.state["means"], rtol=1e-5)


@pytest.fixture(scope="module")
def blended(trained_shop):
    """The shop's model with its logistic part at half the margin (whatever was chosen)."""
    _, _, result, _ = trained_shop
    model = copy.deepcopy(result.model)
    model.linear_.state["weight"] = 0.5
    return model, result.split.part(result.scored, "test").head(300)


def test_the_shop_model_has_a_logistic_part_chosen_on_validation(trained_shop):
    model = trained_shop[2].model
    assert model.linear_ is not None
    assert set(model.blend_scores_) == {i / 10 for i in range(11)}
    assert model.linear_.weight == max(model.blend_scores_, key=model.blend_scores_.get)


def test_blended_contributions_add_up_to_the_margin(blended):
    model, rows = blended
    contributions = model.contributions(rows)
    np.testing.assert_allclose(contributions.sum(axis=1), model.predict_margin(rows), atol=1e-9)
    tree_only = copy.deepcopy(model)
    tree_only.linear_ = None
    assert not np.allclose(contributions, tree_only.contributions(rows))


def test_the_logistic_part_is_saved_as_json_and_loaded(blended, tmp_path):
    model, rows = blended
    loaded = ChurnModel.load(model.save(tmp_path / "m"))
    assert loaded.linear_.state == model.linear_.state
    np.testing.assert_allclose(loaded.predict_proba(rows), model.predict_proba(rows), atol=1e-12)
