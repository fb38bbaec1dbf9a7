"""Evaluation metrics: hand-computed examples, limiting cases and the per-cutoff table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from churnlens.errors import ChurnlensError
from churnlens.modeling.evaluate import (
    evaluate,
    evaluate_by_cutoff,
    expected_calibration_error,
    expected_profit,
    lift_at,
)

METRICS = [
    "roc_auc",
    "pr_auc",
    "brier",
    "log_loss",
    "ece",
    "lift_top_decile",
    "capture_top_decile",
    "n",
    "positives",
    "base_rate",
]


# --- expected calibration error ---------------------------------------------------------------


def test_ece_hand_computed_quantile_bins():
    # Median 0.25 splits {0.1, 0.2} (rate 0, mean 0.15) from {0.3, 0.4} (rate 1, mean 0.35):
    # 0.5 * 0.15 + 0.5 * 0.65 = 0.4.
    y = [0, 0, 1, 1]
    p = [0.1, 0.2, 0.3, 0.4]
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx(0.4)


def test_ece_hand_computed_uniform_bins():
    # Bins [0, 0.5) and [0.5, 1]: {0.1, 0.2, 0.3} rate 1/3 mean 0.2 -> |0.1333| * 3/4;
    # {0.9} rate 1 mean 0.9 -> 0.1 * 1/4. Total 0.1 + 0.025.
    y = [0, 0, 1, 1]
    p = [0.1, 0.2, 0.3, 0.9]
    expected = 0.75 * abs(1 / 3 - 0.2) + 0.25 * 0.1
    assert expected_calibration_error(y, p, n_bins=2, strategy="uniform") == pytest.approx(expected)


def test_ece_is_zero_when_each_bin_matches_its_rate():
    y = [0, 1, 0, 1, 1, 1, 1, 1]
    p = [0.5] * 4 + [1.0] * 4
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx(0.0)


def test_ece_tied_scores_share_a_bin():
    # All scores equal: one bin whatever n_bins says, ECE = |rate - p|.
    y = [1, 0, 0, 0]
    assert expected_calibration_error(y, [0.5] * 4, n_bins=10) == pytest.approx(0.25)


def test_ece_calibrated_vs_miscalibrated_on_large_sample():
    rng = np.random.default_rng(0)
    p = rng.beta(1, 6, size=200_000)  # skewed toward 0, like churn scores
    y = (rng.random(p.size) < p).astype(int)
    calibrated = expected_calibration_error(y, p)
    squared = expected_calibration_error(y, p**2)
    assert calibrated < 0.02
    assert squared > 0.05
    assert squared > 3 * calibrated
    assert expected_calibration_error(y, p, strategy="uniform") < 0.02


def test_ece_rejects_bad_arguments():
    with pytest.raises(ChurnlensError, match="strategy"):
        expected_calibration_error([0, 1], [0.1, 0.9], strategy="kmeans")
    with pytest.raises(ChurnlensError, match="n_bins"):
        expected_calibration_error([0, 1], [0.1, 0.9], n_bins=0)


# --- lift and capture -------------------------------------------------------------------------


def test_lift_and_capture_hand_computed():
    # 10 rows, 4 churners; top 30 % = rows scored 0.9, 0.8, 0.7 -> 2 churners.
    y = [1, 0, 1, 0, 0, 1, 0, 0, 1, 0]
    p = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05]
    lift, capture = lift_at(y, p, fraction=0.3)
    assert lift == pytest.approx((2 / 3) / 0.4)
    assert capture == pytest.approx(0.5)


def test_lift_top_set_size_rounds_up_and_survives_float_noise():
    y = [1] + [0] * 29
    p = np.linspace(1, 0, 30)
    # 0.1 * 30 == 3.0000000000000004 must still mean 3 rows: lift = (1/3) / (1/30) = 10.
    assert lift_at(y, p, 0.1)[0] == pytest.approx(10.0)
    # 0.05 * 30 = 1.5 -> 2 rows: lift = (1/2) / (1/30) = 15.
    assert lift_at(y, p, 0.05)[0] == pytest.approx(15.0)


def test_lift_ties_are_broken_by_input_order():
    # All scores tied: the top 2 of 4 are the first two rows.
    assert lift_at([1, 1, 0, 0], [0.5] * 4, 0.5) == (2.0, 1.0)
    assert lift_at([0, 0, 1, 1], [0.5] * 4, 0.5) == (0.0, 0.0)


def test_lift_is_nan_without_churners():
    lift, capture = lift_at([0, 0, 0], [0.1, 0.2, 0.3])
    assert math.isnan(lift) and math.isnan(capture)


@pytest.mark.parametrize("positives", [30, 100, 400])
def test_perfect_predictor(positives):
    n = 1000
    rng = np.random.default_rng(positives)
    y = np.zeros(n, dtype=int)
    y[rng.choice(n, positives, replace=False)] = 1
    p = np.where(y == 1, 0.9, 0.1)
    metrics = evaluate(y, p)
    assert metrics["roc_auc"] == 1.0
    assert metrics["pr_auc"] == 1.0
    capture = min(1.0, 0.1 * n / positives)
    assert metrics["capture_top_decile"] == pytest.approx(capture)
    assert metrics["lift_top_decile"] == pytest.approx(capture / 0.1)


def test_random_predictor_has_auc_near_half():
    rng = np.random.default_rng(1)
    y = (rng.random(100_000) < 0.1).astype(int)
    p = rng.random(y.size)
    metrics = evaluate(y, p)
    assert metrics["roc_auc"] == pytest.approx(0.5, abs=0.01)
    assert metrics["pr_auc"] == pytest.approx(0.1, abs=0.01)
    assert metrics["lift_top_decile"] == pytest.approx(1.0, abs=0.1)


# --- expected profit --------------------------------------------------------------------------


def test_expected_profit_hand_computed_top_k():
    # value 100, save 0.2, cost 5: expected gain = 20 p - 5 > 0 iff p > 0.25.
    y = [1, 0, 1, 0, 1]
    p = [0.9, 0.8, 0.6, 0.3, 0.2]
    # k=2: rows 0, 1 -> (20 - 5) + (0 - 5) = 10.
    assert expected_profit(y, p, 100, contact_cost=5, save_rate=0.2, k=2) == pytest.approx(10)
    # no cap: rows 0-3 (row 4 has gain 20*0.2-5 < 0) -> 15 - 5 + 15 - 5 = 20.
    assert expected_profit(y, p, 100, contact_cost=5, save_rate=0.2) == pytest.approx(20)
    assert expected_profit(y, p, 100, contact_cost=5, save_rate=0.2, k=0) == 0.0


def test_expected_profit_ranks_by_expected_gain_with_per_customer_value():
    # Gains: 0.9*10*0.5-1 = 3.5, 0.5*100*0.5-1 = 24 -> row 1 first.
    y = [1, 0]
    p = [0.9, 0.5]
    value = [10, 100]
    assert expected_profit(y, p, value, contact_cost=1, save_rate=0.5, k=1) == pytest.approx(-1)
    assert expected_profit(y, p, value, contact_cost=1, save_rate=0.5, k=2) == pytest.approx(3)


def test_expected_profit_contacts_nobody_when_cost_exceeds_gain():
    assert expected_profit([1, 1], [0.9, 0.8], 10, contact_cost=50, save_rate=1.0) == 0.0


def test_expected_profit_rejects_bad_arguments():
    with pytest.raises(ChurnlensError, match="value"):
        expected_profit([0, 1], [0.1, 0.9], [1, 2, 3], contact_cost=1, save_rate=0.5)
    with pytest.raises(ChurnlensError, match="save_rate"):
        expected_profit([0, 1], [0.1, 0.9], 10, contact_cost=1, save_rate=1.5)
    with pytest.raises(ChurnlensError, match="k must"):
        expected_profit([0, 1], [0.1, 0.9], 10, contact_cost=1, save_rate=0.5, k=-1)


# --- evaluate ---------------------------------------------------------------------------------


def test_evaluate_keys_and_counts():
    y = [0, 1, 0, 0, 1]
    p = [0.2, 0.7, 0.1, 0.4, 0.6]
    metrics = evaluate(y, p)
    assert list(metrics) == METRICS
    assert metrics["n"] == 5 and metrics["positives"] == 2
    assert metrics["base_rate"] == pytest.approx(0.4)
    assert metrics["brier"] == pytest.approx(np.mean((np.array(p) - np.array(y)) ** 2))
    with_value = evaluate(y, p, value=50.0, contact_cost=1.0, save_rate=0.2, k=1)
    assert "profit_top_k" in with_value
    assert with_value["profit_top_k"] == pytest.approx(50 * 0.2 - 1)


def test_log_loss_is_finite_for_hard_zero_and_one():
    metrics = evaluate([1, 0], [0.0, 1.0])
    assert math.isfinite(metrics["log_loss"])
    # Clipped to [1e-15, 1 - 1e-15]; 1 - (1 - 1e-15) is 1.11e-15 in floating point.
    expected = -(math.log(1e-15) + math.log(1 - (1 - 1e-15))) / 2
    assert metrics["log_loss"] == pytest.approx(expected)


@pytest.mark.parametrize("label", [0, 1])
def test_single_class_gives_nan_ranking_metrics(label):
    metrics = evaluate([label] * 4, [0.1, 0.2, 0.3, 0.4])
    assert math.isnan(metrics["roc_auc"]) and math.isnan(metrics["pr_auc"])
    assert math.isfinite(metrics["brier"]) and math.isfinite(metrics["log_loss"])
    assert metrics["positives"] == 4 * label


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([], [], "empty"),
        (np.array([], dtype=int), np.array([]), "empty"),
        ([0, 1, 0], [0.1, 0.2], "3 rows but p has 2"),
        ([0, 2], [0.1, 0.2], "only 0 and 1"),
        ([0, np.nan], [0.1, 0.2], "missing"),
        ([0, 1], [0.1, 1.2], r"\[0, 1\]"),
        ([0, 1], [0.1, np.nan], "NaN"),
    ],
)
def test_bad_input_raises_churnlens_error(y, p, message):
    for function in (evaluate, expected_calibration_error, lift_at):
        with pytest.raises(ChurnlensError, match=message):
            function(y, p)


# --- evaluate_by_cutoff -----------------------------------------------------------------------


def _scored_frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    cutoffs = pd.to_datetime(["2024-03-01", "2024-01-01", "2024-02-01"])
    n = 300
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "cutoff": np.repeat(cutoffs, n // 3),  # deliberately not in date order
            "churned": (rng.random(n) < 0.3).astype(int),
        }
    )
    frame["good"] = np.clip(0.6 * frame["churned"] + 0.4 * rng.random(n), 0, 1)
    frame["noise"] = rng.random(n)
    return frame


def test_evaluate_by_cutoff_rows_and_order():
    frame = _scored_frame()
    table = evaluate_by_cutoff(frame, ["noise", "good"])
    assert list(table.columns) == ["model", "cutoff", *METRICS]
    assert table["model"].tolist() == ["noise"] * 4 + ["good"] * 4
    expected_cutoffs = [*pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"]), "overall"]
    assert table["cutoff"].tolist() == expected_cutoffs * 2
    assert table["n"].tolist() == [100, 100, 100, 300] * 2
    # Each row equals evaluate on its slice.
    january = frame[frame["cutoff"] == pd.Timestamp("2024-01-01")]
    row = table.iloc[4]
    assert row["roc_auc"] == pytest.approx(evaluate(january["churned"], january["good"])["roc_auc"])
    overall = table.iloc[7]
    assert overall["ece"] == pytest.approx(evaluate(frame["churned"], frame["good"])["ece"])
    assert (table.loc[table["model"] == "good", "roc_auc"] > 0.9).all()


def test_evaluate_by_cutoff_profit_with_value_column():
    frame = _scored_frame()
    frame["value"] = np.arange(len(frame), dtype=float)
    table = evaluate_by_cutoff(frame, ["good"], value="value", contact_cost=2.0, save_rate=0.3, k=5)
    march = frame[frame["cutoff"] == pd.Timestamp("2024-03-01")]
    expected = expected_profit(
        march["churned"], march["good"], march["value"], contact_cost=2.0, save_rate=0.3, k=5
    )
    assert table.loc[2, "profit_top_k"] == pytest.approx(expected)
    # An aligned array works the same as the column name.
    same = evaluate_by_cutoff(
        frame, ["good"], value=frame["value"].to_numpy(), contact_cost=2.0, save_rate=0.3, k=5
    )
    pd.testing.assert_series_equal(same["profit_top_k"], table["profit_top_k"])


def test_evaluate_by_cutoff_single_class_cutoff_is_nan_not_error():
    frame = _scored_frame()
    frame.loc[frame["cutoff"] == pd.Timestamp("2024-02-01"), "churned"] = 0
    table = evaluate_by_cutoff(frame, ["good"])
    assert math.isnan(table.loc[1, "roc_auc"])
    assert table.loc[[0, 2, 3], "roc_auc"].notna().all()


def test_evaluate_by_cutoff_errors():
    frame = _scored_frame()
    with pytest.raises(ChurnlensError, match="empty"):
        evaluate_by_cutoff(frame.iloc[:0], ["good"])
    with pytest.raises(ChurnlensError, match="missing_model"):
        evaluate_by_cutoff(frame, ["missing_model"])
    frame.loc[0, "good"] = np.nan
    with pytest.raises(ChurnlensError, match="model 'good'.*NaN"):
        evaluate_by_cutoff(frame, ["good"])
