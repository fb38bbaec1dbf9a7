"""Customer status from the customer's own rhythm, and what it does to actions and targets."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pandas as pd
import pytest

from churnlens.config import Config, StatusConfig
from churnlens.economics import expected_gain, saveable, select_targets
from churnlens.errors import ChurnlensError
from churnlens.scoring.playbook import (
    Action,
    Playbook,
    best_gain,
    load_playbook,
    recommend,
    value_cuts,
)
from churnlens.scoring.status import customer_status, gone_probability


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


def test_signs_of_life_beyond_purchases_set_the_return_window():
    # usual gap between signs of life = 1 / (1 / purchase gap + (tickets + events) per day over
    # the longest window, 365 days or the tenure if shorter)
    features = pd.DataFrame(
        {
            "recency_days": [50.0, 50.0, 50.0, 50.0, float("nan")],
            "gap_mean_days": [30.0, 30.0, 30.0, 30.0, None],
            "tenure_days": [400.0, 400.0, 400.0, 400.0, 100.0],
            "orders_365d": [10, 10, 10, 10, 0],
            "tickets_365d": [0, 0, 0, 1, 0],
            "days_since_last_ticket": [None, None, None, 2.0, None],
            "login_365d": [0, 73, 73, 0, 10],
            "days_since_login": [None, 3.0, 35.0, None, 5.0],
            "page_view_365d": [0, 0, 0, 0, 0],
            "days_since_page_view": [None, None, None, None, 1.0],
        }
    )
    assert list(customer_status(features, StatusConfig())) == [
        "at_risk",  # purchases only: 50 > 1.5 x 30, not > 60
        "active",  # logs in every 5 days (gap 1 / (1/30 + 1/5) = 4.3): seen 3 days ago
        "lapsed",  # the same customer silent for 35 days: > max(2 x 4.3, 30)
        "active",  # opened a ticket 2 days ago
        "active",  # no purchase yet, but logged in 5 days ago (gap 100 / 10 = 10 days)
    ]
    # an event kind counts only when listed; with none listed, purchases and tickets remain
    logins_only = StatusConfig(life_events=["login", "page_view"])
    assert customer_status(features, logins_only)[4] == "active"  # the page view, 1 day ago
    purchases_only = StatusConfig(life_events=[])
    assert list(customer_status(features, purchases_only))[:3] == ["at_risk"] * 3


def test_a_silence_means_gone_by_its_length_the_usual_gap_and_the_risk():
    # P(gone) = 1 - 1 / (1 + d / (l + d) (e^((l + d) s) - 1)); l = 1 / usual gap, s = silence,
    # d = -ln(1 - p) / horizon: the customer's daily hazard read off their churn probability
    features = pd.DataFrame(
        {
            "recency_days": [0.0, 20.0, 20.0, 20.0, 60.0, float("nan")],
            "gap_mean_days": [10.0, 10.0, 40.0, 10.0, 10.0, None],
        }
    )
    p = np.array([0.5, 0.5, 0.5, 0.1, 0.5, 0.5])
    gone = gone_probability(features, p, StatusConfig(), horizon_days=90)
    d = -np.log(0.5) / 90
    by_hand = 1 - 1 / (1 + d / (0.1 + d) * np.expm1((0.1 + d) * 20))  # row 1, about 0.37
    assert gone[0] == 0.0  # seen today
    assert gone[1] == pytest.approx(by_hand)
    assert gone[2] < gone[1]  # the same silence from a rare buyer says less
    assert gone[3] < gone[1]  # and from a customer at lower risk
    assert gone[4] > 0.95  # six usual gaps of silence
    assert gone[5] == 1.0  # no sign of life on record
    # only the churn still to come can be saved; never below 0
    assert saveable(p, gone).tolist() == pytest.approx(np.clip(p - gone, 0, None).tolist())
    assert saveable([0.2], [0.9]).tolist() == [0.0]


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


def test_a_family_named_like_a_rule_keeps_its_own_action():
    """An event kind may be called win_back: as a reason family it is a retention cause."""
    own = Action(action="win-back campaign review", cost=1, save_rate=0.5)
    playbook = PLAYBOOK.model_copy(update={"actions": PLAYBOOK.actions | {"win_back": own}})
    family = pd.Series(["win_back", "win_back"])
    status = pd.Series(["active", "lapsed"])
    value = pd.Series([100.0, 100.0])
    share = pd.Series([0.5, 0.5])
    frame = pd.DataFrame(index=family.index)
    actions = recommend(playbook, family, frame, value, status, share)
    assert actions["recommended_action"].tolist() == [own.action, "win-back message"]
    assert actions["save_rate"].tolist() == [0.25, 0.03]  # the driver share holds for causes


def test_the_save_rate_follows_the_status_and_the_drivers_share():
    playbook = PLAYBOOK.model_copy(update={"status_save_factor": {"at_risk": 0.5}})
    family = pd.Series(["support", "support", "support"])
    status = pd.Series(["active", "at_risk", "lapsed"])
    value = pd.Series([100.0, 100.0, 100.0])
    actions = recommend(playbook, family, pd.DataFrame(index=family.index), value, status)
    assert actions["save_rate"].tolist() == [0.3, 0.15, 0.03]  # a missing status: factor 1
    # only the part of the risk from drivers can be saved; a win-back is not about causes
    share = pd.Series([0.5, 0.5, 0.5])
    actions = recommend(playbook, family, pd.DataFrame(index=family.index), value, status, share)
    assert actions["save_rate"].tolist() == [0.15, 0.075, 0.03]
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        Playbook.model_validate(PLAYBOOK.model_dump() | {"status_save_factor": {"active": 2}})


def test_the_gain_bound_holds_for_every_reason_and_is_reached_by_one():
    """Scoring explains only customers whose best_gain is positive: it must bound the gain of
    whatever family and driver share their reasons turn out to have, and be tight."""
    playbook = load_playbook(Config().playbook.path)
    cases = list(itertools.product([5.0, 60.0, 400.0], [0.0, 0.6], ["active", "at_risk", "lapsed"]))
    value = pd.Series([v for v, _, _ in cases] + [1.0, 1000.0])  # cuts spread the values
    features = pd.DataFrame({"discount_share": [d for _, d, _ in cases] + [0.0, 0.0]})
    status = pd.Series([s for _, _, s in cases] + ["active", "active"])
    p = np.full(len(value), 0.5)
    cuts = value_cuts(playbook, value)
    bound = best_gain(playbook, p, features, value, status, cuts)
    gains = []
    for family, share in itertools.product([*playbook.actions, "unknown", None], [0, 0.4, 1]):
        actions = recommend(
            playbook,
            pd.Series([family] * len(value), dtype="object"),
            features,
            value,
            status,
            pd.Series(np.full(len(value), float(share))),
            cuts,
        )
        gains.append(expected_gain(p, value, actions["save_rate"], actions["contact_cost"]))
    gains = np.array(gains)
    assert (gains <= bound + 1e-12).all()
    assert np.allclose(gains.max(axis=0), bound)
    assert len(np.unique(np.round(bound, 6))) > 5  # rules and families both in play


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


def test_a_gap_under_a_day_counts_as_a_day():
    # two orders at the same time: gap 0; read as a daily buyer (at_risk past 1.5 days)
    features = pd.DataFrame({"recency_days": [1.0, 3.0], "gap_mean_days": [0.0, 0.0]})
    strict = StatusConfig(lapsed_floor_days=0.0)
    assert list(customer_status(features, strict)) == ["active", "lapsed"]
    assert list(customer_status(features, StatusConfig())) == ["active", "at_risk"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "empty or not a mapping; it needs `actions:` with a 'default' entry"),
        ("- default\n", "empty or not a mapping"),
        ("actions: {}\n", "actions need a 'default' entry"),
        ("actions: {default: 2025-13-01}\n", "actions.default: Input should be"),  # was exit 4
    ],
)
def test_a_playbook_without_actions_says_what_it_needs(tmp_path, text, expected):
    path = tmp_path / "playbook.yaml"
    path.write_text(text)
    with pytest.raises(ChurnlensError, match=re.escape(expected)):
        load_playbook(path)
