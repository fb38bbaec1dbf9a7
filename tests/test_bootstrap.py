"""Paired bootstrap: weighted metrics equal scikit-learn's, intervals cover, pairs narrow."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from churnlens.errors import ChurnlensError
from churnlens.modeling.evaluate import (
    _weighted_metrics,
    expected_calibration_error,
    paired_bootstrap,
)


def test_weighted_metrics_equal_scikit_learn_with_sample_weights():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    p = np.round(np.clip(0.3 * y + 0.7 * rng.random(400), 0, 1), 2)  # many ties
    weights = np.vstack([np.ones(400), rng.integers(0, 4, 400)]).astype(float)
    got = _weighted_metrics(y, p, weights)
    for row, w in enumerate(weights):
        assert got["roc_auc"][row] == pytest.approx(roc_auc_score(y, p, sample_weight=w))
        assert got["pr_auc"][row] == pytest.approx(average_precision_score(y, p, sample_weight=w))
        assert got["brier"][row] == pytest.approx(brier_score_loss(y, p, sample_weight=w))
    assert got["ece"][0] == pytest.approx(expected_calibration_error(y, p))


def test_hand_computed_auc_on_four_rows():
    y, p = np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.3, 0.1])
    # unit weights: positives beat 2 of 2 and 1 of 2 negatives -> 3/4
    assert _weighted_metrics(y, p, np.ones((1, 4)))["roc_auc"][0] == pytest.approx(0.75)
    # the second positive counted twice: (2 + 2 * 1) / (3 * 2)
    w = np.array([[1.0, 1.0, 2.0, 1.0]])
    assert _weighted_metrics(y, p, w)["roc_auc"][0] == pytest.approx(4 / 6)


def test_paired_interval_of_a_difference_is_narrow_and_excludes_zero_for_a_real_gain():
    rng = np.random.default_rng(0)
    n = 3000
    y = rng.integers(0, 2, n)
    noise = rng.normal(size=n)
    base = 1 / (1 + np.exp(-(1.0 * (y - 0.5) + noise)))
    better = 1 / (1 + np.exp(-(1.2 * (y - 0.5) + noise)))  # same noise: a paired gain
    table = paired_bootstrap(y, {"better": better, "base": base}, "base", n_boot=300)
    row = table.set_index(["model", "metric"]).loc[("better", "roc_auc")]
    assert row["low"] <= row["value"] <= row["high"]
    assert 0 < row["diff_low"] <= row["diff"] <= row["diff_high"]
    # pairing: the difference's interval is far narrower than either model's own interval
    assert row["diff_high"] - row["diff_low"] < 0.5 * (row["high"] - row["low"])
    reference = table.set_index(["model", "metric"]).loc[("base", "roc_auc")]
    assert np.isnan(reference["diff"])


def test_same_seed_same_intervals_and_unknown_reference_refused():
    y = np.array([0, 1] * 50)
    p = np.linspace(0.01, 0.99, 100)
    first = paired_bootstrap(y, {"a": p}, n_boot=50, seed=4)
    assert first.equals(paired_bootstrap(y, {"a": p}, n_boot=50, seed=4))
    with pytest.raises(ChurnlensError, match="reference model 'b'"):
        paired_bootstrap(y, {"a": p}, "b")
