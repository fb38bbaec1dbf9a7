"""Population stability (PSI) per feature against the training reference."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from churnlens.config import Config
from churnlens.drift import (
    EPSILON,
    population_stability_index,
    psi_table,
    reference_profile,
)
from churnlens.errors import ChurnlensError
from churnlens.scoring.score import DriftError, check_drift


def _psi(table: pd.DataFrame, feature: str) -> float:
    return float(table.set_index("feature").loc[feature, "psi"])


def _training(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "spend": rng.normal(100.0, 20.0, n),
            "orders": rng.poisson(2.0, n).astype("float64"),
            "channel": rng.choice(["web", "app", "store"], n, p=[0.5, 0.3, 0.2]),
        }
    )


DTYPES = {"spend": "float64", "orders": "float64", "channel": "category"}


# --- the PSI itself --------------------------------------------------------------------------


def test_identical_distributions_give_psi_near_zero():
    reference = reference_profile(_training(100_000, seed=1), DTYPES)
    table = psi_table(reference, _training(100_000, seed=2))  # fresh sample, same law
    assert (table["psi"] < 0.01).all(), table
    assert (table["psi"] >= 0).all()
    # the training frame itself gives exactly zero
    assert (psi_table(reference, _training(100_000, seed=1))["psi"] == 0).all()


def test_shifted_normal_is_a_large_shift():
    train = _training(100_000, seed=1)
    reference = reference_profile(train, DTYPES)
    scoring = _training(100_000, seed=2)
    scoring["spend"] += 20.0  # mean + 1 sd
    table = psi_table(reference, scoring)
    assert _psi(table, "spend") > 0.25
    assert table.loc[0, "feature"] == "spend"  # largest first
    assert _psi(table, "orders") < 0.01
    # more mass above the top training decile is what moved most
    top = table.iloc[0]
    assert top["top_bin"].endswith(", inf)")
    assert top["top_expected"] == pytest.approx(0.1, abs=0.005)
    assert top["top_actual"] == pytest.approx(0.389, abs=0.01)  # P(Z > 1.2816 - 1)


def test_hand_computed_two_buckets():
    train = pd.DataFrame({"x": [0.0, 0.0, 1.0, 1.0]})
    reference = reference_profile(train, {"x": "float64"}, bins=2)
    profile = reference["features"]["x"]
    # median 0 is the only edge: buckets (-inf, 0] and (0, inf), half the rows each
    assert profile["edges"] == [0.0]
    assert profile["shares"] == [0.5, 0.5]
    assert profile["missing"] == 0.0

    table = psi_table(reference, pd.DataFrame({"x": [0.0, 1.0, 1.0, 1.0]}))
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5) = 0.25 ln 3
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert expected == pytest.approx(0.25 * math.log(3))
    assert _psi(table, "x") == pytest.approx(expected, rel=1e-12)
    assert table.loc[0, "top_bin"] == "(-inf, 0]"  # 0.25 ln 2 beats 0.25 ln 1.5
    assert population_stability_index([0.5, 0.5], [0.25, 0.75]) == pytest.approx(expected)


def test_epsilon_floor_keeps_empty_buckets_finite():
    # actual share 0 in a bucket with expected 0.5: floored at EPSILON, not infinite
    value = population_stability_index([0.5, 0.5], [0.0, 1.0])
    floor = (EPSILON - 0.5) * math.log(EPSILON / 0.5) + 0.5 * math.log(2.0)
    assert value == pytest.approx(floor)
    assert population_stability_index([0.0, 1.0], [0.0, 1.0]) == 0.0


def test_bucket_edges_are_right_closed():
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]})
    reference = reference_profile(train, {"x": "float64"}, bins=2)
    assert reference["features"]["x"]["edges"] == [2.0]
    # a value equal to the edge belongs to the lower bucket, exactly as in training
    same = psi_table(reference, pd.DataFrame({"x": [2.0, 2.0, 4.0, 4.0]}))
    assert _psi(same, "x") == 0.0
    moved = psi_table(reference, pd.DataFrame({"x": [2.0, 2.5, 2.5, 2.5]}))
    assert _psi(moved, "x") == pytest.approx(0.25 * math.log(3))


# --- categories and missing values -----------------------------------------------------------


def test_unseen_level_goes_to_other_and_raises_psi():
    train = pd.DataFrame({"plan": ["basic"] * 60 + ["pro"] * 40})
    reference = reference_profile(train, {"plan": "category"})
    profile = reference["features"]["plan"]
    assert profile["levels"] == ["basic", "pro"]
    assert profile["shares"] == [0.6, 0.4]
    assert profile["other"] == 0.0

    scoring = pd.DataFrame({"plan": ["basic"] * 50 + ["pro"] * 30 + ["enterprise"] * 20})
    table = psi_table(reference, scoring)
    row = table.iloc[0]
    assert row["top_bin"] == "<other>"
    assert row["top_expected"] == 0.0 and row["top_actual"] == pytest.approx(0.2)
    expected = population_stability_index([0.6, 0.4, 0.0, 0.0], [0.5, 0.3, 0.2, 0.0])
    assert row["psi"] == pytest.approx(expected) and row["psi"] > 0.25
    # levels are the ones seen in training, not every category the dtype declares
    declared = pd.Categorical(train["plan"], categories=["gold", "pro", "basic"])
    assert reference_profile(pd.DataFrame({"plan": declared}), {"plan": "category"}) == reference
    # same levels, same shares: nothing moved, even as a pandas Categorical in another order
    same = pd.Categorical(["pro"] * 40 + ["basic"] * 60, categories=["pro", "basic", "gold"])
    assert _psi(psi_table(reference, pd.DataFrame({"plan": same})), "plan") == 0.0


def test_real_level_called_other_is_not_the_other_bucket():
    train = pd.DataFrame({"source": ["other"] * 50 + ["ads"] * 50})
    reference = reference_profile(train, {"source": "category"})
    scoring = pd.DataFrame({"source": ["other"] * 50 + ["ads"] * 50})
    assert _psi(psi_table(reference, scoring), "source") == 0.0


def test_missing_share_change_is_detected():
    rng = np.random.default_rng(3)
    train = pd.DataFrame(
        {
            "days": np.where(rng.random(10_000) < 0.05, np.nan, rng.exponential(30.0, 10_000)),
            "nps": pd.Series(
                rng.choice(["promoter", "passive", None], 10_000, p=[0.5, 0.45, 0.05])
            ),
        }
    )
    reference = reference_profile(train, {"days": "float64", "nps": "category"})
    assert reference["features"]["days"]["missing"] == pytest.approx(0.05, abs=0.01)
    assert reference["features"]["nps"]["missing"] == pytest.approx(0.05, abs=0.01)

    scoring = train.copy()
    scoring.loc[:3_999, "days"] = np.nan  # about 40 % missing instead of 5 %
    scoring.loc[:3_999, "nps"] = None
    table = psi_table(reference, scoring)
    for feature in ("days", "nps"):
        row = table.set_index("feature").loc[feature]
        assert row["psi"] > 0.25
        assert row["top_bin"] == "<missing>"
        assert row["top_actual"] == pytest.approx(0.4 + 0.6 * 0.05, abs=0.01)
    # nullable dtypes: pd.NA counts as missing like NaN
    nullable = train.astype({"days": "Float64"})
    assert (psi_table(reference, nullable)["psi"] == 0).all()


# --- storage and robustness ------------------------------------------------------------------


def test_reference_is_plain_json_and_round_trips():
    train = _training(5_000, seed=4)
    train.loc[::7, "spend"] = np.nan
    train["flag"] = pd.Categorical(np.where(np.arange(5_000) % 3 == 0, "y", "n"))
    dtypes = {**DTYPES, "flag": "category"}
    reference = reference_profile(train, dtypes)
    text = json.dumps(reference, allow_nan=False)  # no NaN/inf, no numpy types
    loaded = json.loads(text)
    assert loaded == reference

    scoring = _training(3_000, seed=5)
    scoring["spend"] *= 1.1
    scoring["flag"] = np.where(np.arange(3_000) % 2 == 0, "y", "maybe")
    pd.testing.assert_frame_equal(psi_table(loaded, scoring), psi_table(reference, scoring))


def _types(value):
    if isinstance(value, dict):
        return set().union(*(_types(v) for v in value.values())) | {type(k) for k in value}
    if isinstance(value, list):
        return set().union(set(), *(_types(v) for v in value))
    return {type(value)}


def test_reference_holds_only_builtin_types():
    train = _training(2_000, seed=6)
    assert _types(reference_profile(train, DTYPES)) <= {str, float, int, list}


def test_constant_and_all_missing_features_do_not_crash():
    train = pd.DataFrame({"const": np.full(1_000, 7.0), "empty": np.full(1_000, np.nan)})
    reference = reference_profile(train, {"const": "float64", "empty": "float64"})
    assert reference["features"]["const"]["edges"] == []
    assert reference["features"]["const"]["shares"] == [1.0]
    assert reference["features"]["empty"]["missing"] == 1.0

    table = psi_table(reference, train)
    assert (table["psi"] == 0).all()
    assert table["feature"].tolist() == ["const", "empty"]
    shifted = pd.DataFrame({"const": np.full(500, 9.0), "empty": np.full(500, 1.0)})
    table = psi_table(reference, shifted)
    # a constant has one bucket, so a new constant value is not a shift in PSI terms
    assert _psi(table, "const") == 0.0
    assert _psi(table, "empty") > 1.0  # all missing -> all present


def test_few_distinct_values_get_fewer_buckets():
    rng = np.random.default_rng(7)
    train = pd.DataFrame({"active": (rng.random(10_000) < 0.3).astype("float64")})
    profile = reference_profile(train, {"active": "float64"})["features"]["active"]
    assert profile["edges"] == [0.0]  # buckets (-inf, 0] and (0, inf), both populated
    assert profile["shares"][0] == pytest.approx(0.7, abs=0.02)
    assert all(s > 0 for s in profile["shares"])


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(
        st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False)), min_size=1, max_size=60
    ),
    bins=st.integers(1, 12),
)
def test_profile_invariants(values, bins):
    frame = pd.DataFrame({"x": pd.Series(values, dtype="float64")})
    profile = reference_profile(frame, {"x": "float64"}, bins=bins)["features"]["x"]
    edges = profile["edges"]
    assert len(edges) <= bins - 1
    assert edges == sorted(set(edges))
    assert len(profile["shares"]) == len(edges) + 1
    assert sum(profile["shares"]) + profile["missing"] == pytest.approx(1.0)
    if profile["missing"] < 1.0:  # every value bucket holds training rows
        assert all(s > 0 for s in profile["shares"])
    assert _psi(psi_table({"version": 1, "features": {"x": profile}}, frame), "x") == 0.0


# --- errors and order ------------------------------------------------------------------------


def test_missing_features_raise_naming_them():
    reference = reference_profile(_training(1_000, seed=8), DTYPES)
    scoring = _training(500, seed=9).drop(columns=["spend", "channel"])
    with pytest.raises(ChurnlensError, match="spend") as caught:
        psi_table(reference, scoring)
    assert "channel" in str(caught.value)
    assert "orders" not in str(caught.value)
    with pytest.raises(ChurnlensError, match="tenure"):
        reference_profile(_training(100, seed=8), {"tenure": "float64"})


def test_bad_inputs_raise_churnlens_errors():
    train = _training(100, seed=10)
    with pytest.raises(ChurnlensError, match="bins"):
        reference_profile(train, DTYPES, bins=0)
    with pytest.raises(ChurnlensError, match="datetime"):
        reference_profile(train, {"spend": "datetime"})
    with pytest.raises(ChurnlensError, match="empty"):
        reference_profile(train.iloc[:0], DTYPES)
    reference = reference_profile(train, DTYPES)
    with pytest.raises(ChurnlensError, match="numeric"):
        psi_table(reference, train.assign(spend="lots"))
    with pytest.raises(ChurnlensError, match="empty"):
        psi_table(reference, train.iloc[:0])
    with pytest.raises(ChurnlensError, match="version"):
        psi_table({**reference, "version": 99}, train)
    with pytest.raises(ChurnlensError, match="malformed"):
        broken = json.loads(json.dumps(reference))
        broken["features"]["spend"]["shares"].pop()
        psi_table(broken, train)


def test_order_is_psi_descending_then_name_and_deterministic():
    rng = np.random.default_rng(11)
    n = 20_000
    train = pd.DataFrame({name: rng.normal(size=n) for name in ["d", "b", "a", "c", "e"]})
    dtypes = dict.fromkeys(train.columns, "float64")
    reference = reference_profile(train, dtypes)
    scoring = train.copy()
    scoring["e"] += 2.0
    scoring["d"] += 0.5
    table = psi_table(reference, scoring.iloc[:, ::-1])  # column order does not matter
    assert list(table.columns[:3]) == ["feature", "kind", "psi"]
    assert table["feature"].tolist() == ["e", "d", "a", "b", "c"]  # ties (0.0) by name
    assert table["psi"].is_monotonic_decreasing
    assert table.index.tolist() == list(range(5))
    pd.testing.assert_frame_equal(table, psi_table(reference, scoring))


def test_drift_warns_in_one_line_news_first_and_a_stop_says_how_to_exempt():
    """Shifts of features that grow with time (the default drift_exempt) are told apart from
    news in one warning; a stop names the key, and the list it suggests works as written."""
    drift = pd.DataFrame(
        {"feature": ["tenure_days", "slow_replies_30d", "orders_total"], "psi": [0.28, 0.12, 0.01]}
    )
    records, handler, logger = [], logging.Handler(), logging.getLogger("churnlens")
    handler.emit = records.append  # the package's logger, whatever the CLI set on it
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        worst, warned = check_drift(drift, Config())
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert worst == 0.12 and warned == ["tenure_days", "slow_replies_30d"]
    assert [r.getMessage() for r in records] == [
        "drift: features shifted against training (PSI above 0.1): slow_replies_30d 0.120; "
        "expected to move with time (scoring.drift_exempt): tenure_days 0.280 "
        "(drift.csv has every feature)"
    ]
    ageing = pd.DataFrame({"feature": ["bgnbd_expected_purchases", "x"], "psi": [0.38, 0.05]})
    with pytest.raises(DriftError, match="bgnbd_expected_purchases has PSI 0.380") as stop:
        check_drift(ageing, Config())
    suggested = str(stop.value).split("e.g. ")[1].split("; else")[0]
    assert suggested.startswith("drift_exempt: [tenure_days, ")
    config = Config(scoring=yaml.safe_load(suggested))
    assert check_drift(ageing, config) == (0.05, ["bgnbd_expected_purchases"])
