"""Baselines: P(no purchase) by hand, maps that keep each ranking, a failure that is reported."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from churnlens.config import load_config
from churnlens.data.contract import load_tables
from churnlens.features.engine import training_set as build_training_set
from churnlens.modeling.baselines import baselines
from churnlens.modeling.bgnbd import BGNBD
from churnlens.modeling.train import fit


def _fitted(r, alpha, a, b) -> BGNBD:
    model = BGNBD()
    model.params_ = {"r": r, "alpha": alpha, "a": a, "b": b}
    return model


def test_p_no_purchase_matches_a_hand_computation():
    model = _fitted(0.5, 2.0, 1.0, 3.0)
    # x = 2, t_x = 4, T = 6: P(alive) = 1 / (1 + 1/(3+2-1) * (8/6)^2.5)
    alive = 1 / (1 + 0.25 * (8 / 6) ** 2.5)
    assert alive == pytest.approx(0.660851, abs=1e-6)
    expected = (1 - alive) + alive * (8 / 11) ** 2.5  # t = 3
    assert model.p_no_purchase(3.0, 2, 4.0, 6.0) == pytest.approx(expected, rel=1e-12)
    assert float(model.p_no_purchase(3.0, 2, 4.0, 6.0)) == pytest.approx(0.637239, abs=1e-6)
    # one order: certainly alive, so only the gamma-Poisson zero: (8/11)^0.5
    assert model.p_no_purchase(3.0, 0, 0.0, 6.0) == pytest.approx(0.852803, abs=1e-6)
    # no time ahead: no purchase for sure
    assert model.p_no_purchase(0.0, 2, 4.0, 6.0) == pytest.approx(1.0)


def test_p_no_purchase_falls_with_the_horizon_and_ranks_one_order_customers():
    model = _fitted(0.243, 4.414, 0.793, 2.426)
    path = model.p_no_purchase(np.array([1.0, 4.0, 13.0, 26.0]), 0, 0.0, 30.0)
    assert np.all(np.diff(path) < 0)
    # one-order customers are not all tied at "alive": older ones are likelier to stay quiet
    young, old = model.p_no_purchase(13.0, 0, 0.0, np.array([2.0, 60.0]))
    assert old > young


@pytest.fixture(scope="module")
def shop_parts(trained_shop):
    _, _, result, _ = trained_shop
    valid = result.split.part(result.scored, "valid")
    test = result.split.part(result.scored, "test")
    return valid, test


def test_every_baseline_keeps_its_ranking_when_mapped_to_probabilities(shop_parts):
    valid, test = shop_parts
    # validate on recent buyers only, so many test scores fall outside the fitted range: an
    # isotonic map would clip and tie them there
    recent = valid[valid["recency_days"] < valid["recency_days"].median()]
    y = test["churned"].to_numpy(int)
    for baseline in baselines(90):
        baseline.fit(valid, recent)
        raw = roc_auc_score(y, baseline._score(test))
        mapped = baseline.predict_proba(test)
        assert np.all((mapped > 0) & (mapped < 1)), baseline.name
        assert roc_auc_score(y, mapped) == pytest.approx(raw, abs=1e-12), baseline.name
        assert raw > 0.6, baseline.name


def test_a_failing_baseline_is_reported_and_training_goes_on(trained_shop):
    _, path, _, _ = trained_shop
    config = load_config(path)
    training_set = build_training_set(load_tables(config.data), config)
    # nobody has a repeat purchase at the last training cutoff: BG/NBD cannot be fitted there
    last = max(trained_shop[2].split.train)
    training_set.loc[training_set["cutoff"] == last, "orders_total"] = 1
    result = fit(training_set, config)
    assert "repeat purchases" in result.failed["bgnbd"]
    test = result.test_metrics()
    assert set(test.index) == {"lightgbm", "recency_rule", "rfm_logistic"}
    assert test.loc["lightgbm", "roc_auc"] > 0.7
