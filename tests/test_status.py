"""Customer status from the customer's own rhythm, and what it does to actions and targets."""

from __future__ import annotations

import pandas as pd
import pytest

from churnlens.config import StatusConfig
from churnlens.economics import select_targets
from churnlens.scoring.playbook import Action, Playbook, recommend
from churnlens.scoring.status import customer_status


def test_status_follows_each_customers_own_gap():
    # lapsed: recency > max(2 x gap, 30 days); at_risk: recency > 1.5 x gap
    features = pd.DataFrame(
        {
            "recency_days": [10, 12, 31, 50, 61, 8, 31, float("nan")],
            "gap_mean_days": [7, 7, 7, 30, 30, None, None, None],
        }
    )
    assert list(customer_status(features, StatusConfig())) == [
        "active",  # 10 <= 1.5 x 7
        "at_risk",  # 12 > 10.5
        "lapsed",  # 31 > max(14, 30)
        "at_risk",  # 50 > 45, not > 60
        "lapsed",  # 61 > 60
        "active",  # one order: the median gap of the others (7 days) stands in
        "lapsed",
        "lapsed",  # no purchase on record
    ]


def test_the_floor_keeps_frequent_buyers_from_lapsing_too_early():
    features = pd.DataFrame({"recency_days": [25.0, 31.0], "gap_mean_days": [3.0, 3.0]})
    assert list(customer_status(features, StatusConfig())) == ["at_risk", "lapsed"]
    strict = StatusConfig(lapsed_gap_multiple=3.0, lapsed_floor_days=0.0)
    assert list(customer_status(features, strict)) == ["lapsed", "lapsed"]


def test_the_multiples_must_be_ordered():
    with pytest.raises(ValueError, match="at_risk_gap_multiple must be below"):
        StatusConfig(lapsed_gap_multiple=2.0, at_risk_gap_multiple=2.5)


PLAYBOOK = Playbook(
    families={"support": ["open_tickets"]},
    actions={
        "support": Action(action="service recovery", cost=8, save_rate=0.3),
        "default": Action(action="email", cost=0.3, save_rate=0.05),
    },
    win_back=Action(action="win-back message", cost=0.2, save_rate=0.03),
)


def test_a_lapsed_customer_gets_the_win_back_action_whatever_the_reason():
    family = pd.Series(["support", "support", None])
    status = pd.Series(["active", "lapsed", "lapsed"])
    value = pd.Series([100.0, 100.0, 100.0])
    actions = recommend(PLAYBOOK, family, pd.DataFrame(index=family.index), value, status)
    assert actions["recommended_action"].tolist() == [
        "service recovery",
        "win-back message",
        "win-back message",
    ]
    assert actions["save_rate"].tolist() == [0.3, 0.03, 0.03]


def test_targets_never_include_ineligible_customers():
    gain = [50.0, 40.0, 30.0, -1.0]
    cost = [1.0, 1.0, 1.0, 1.0]
    eligible = [True, False, True, True]
    assert select_targets(gain, cost, eligible=eligible).tolist() == [True, False, True, False]
    assert select_targets(gain, cost, contacts=1, eligible=eligible).tolist() == [
        True,
        False,
        False,
        False,
    ]
