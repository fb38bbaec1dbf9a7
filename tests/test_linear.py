"""The logistic part blended into the churn model: weight choice, exact contributions, saving."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from churnlens.modeling.linear import LinearPart, _nanmedians, _signed_log, sample_rows
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


def _rhythm_frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Counts, days and signed amounts with gaps: ties, negatives and missing values."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(
        {
            "orders": rng.poisson(3, n).astype(float),
            "days": rng.exponential(40, n),
            "spend": rng.lognormal(3, 1, n),
            "refunds": -rng.poisson(0.5, n).astype(float),
            "trend": rng.normal(0, 5, n),
            "gap": rng.gamma(2, 15, n),
        }
    )
    for column in ("days", "gap", "trend"):
        x.loc[rng.random(n) < 0.2, column] = np.nan
    logit = (
        0.8 * np.log1p(x["days"].fillna(40))
        - 0.5 * np.log1p(x["orders"])
        + 0.1 * np.sign(x["trend"].fillna(0)) * np.log1p(np.abs(x["trend"].fillna(0)))
        - 2.0
    )
    return x, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)


def test_the_fit_reaches_the_solution_of_a_plain_newton_fit_from_zero():
    """Before issue 14 the logistic part was fitted from zero on `log1p`-transformed,
    `np.nanmedian`-imputed columns; the warm start, `log` of 1 + |x| and the sorted medians
    reach the same solution within the solver's tolerance: here coefficients to 5e-4 and the
    margin to 2e-3 on every row (they differ by 3e-5 and 1e-4; one Newton step from the warm
    start would be 2e-3 off). On the 20k shop's 77 columns the two differ by up to 2e-3, as
    the fit from zero stops 1.3e-3 from the exact optimum."""
    x, y = _rhythm_frame(40_000, 5)
    columns = list(x.columns)
    part = LinearPart().fit(x, y, columns)
    raw = x.to_numpy(np.float32)
    z = np.copysign(np.log1p(np.abs(raw)), raw)
    medians = np.nanmedian(z, axis=0)
    z = np.where(np.isnan(z), medians, z)
    means, scales = z.mean(axis=0), z.std(axis=0)
    cold = LogisticRegression(solver="newton-cholesky", max_iter=100).fit((z - means) / scales, y)
    np.testing.assert_allclose(part.state["medians"], medians, atol=1e-6)  # log, not log1p
    np.testing.assert_allclose(part.state["means"], means, atol=1e-6)
    np.testing.assert_allclose(part.state["scales"], scales, rtol=1e-5)
    np.testing.assert_allclose(part.state["coef"], cold.coef_[0], atol=5e-4)
    assert part.state["intercept"] == pytest.approx(cold.intercept_[0], abs=5e-4)
    cold_margin = ((z - means) / scales) @ cold.coef_[0] + cold.intercept_[0]
    np.testing.assert_allclose(part.margin(x), cold_margin, atol=2e-3)


def test_medians_from_one_sort_are_numpys_nanmedian():
    rng = np.random.default_rng(6)
    x = np.round(rng.normal(size=(1001, 5)), 1).astype(np.float32)  # ties
    x[0, 1] = np.nan  # an even count of values: the mean of the middle two
    x[rng.random(1001) < 0.3, 2] = np.nan
    x[:, 3] = np.nan  # a column without values
    x[1:, 4] = np.nan  # a column with one value
    with pytest.warns(RuntimeWarning, match="All-NaN"):
        expected = np.nanmedian(x, axis=0)
    np.testing.assert_array_equal(_nanmedians(x), expected)


def test_signed_log_is_log1p_of_the_magnitude_with_the_sign():
    x = np.array([-1e6, -3.5, -1e-3, 0.0, 1e-9, 0.5, 7.0, 1e30, np.nan], dtype=np.float32)
    expected = np.copysign(np.log1p(np.abs(x.astype(float))), x)
    np.testing.assert_allclose(_signed_log(x), expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(_signed_log(x.astype(float)), expected, rtol=1e-12, atol=1e-15)
