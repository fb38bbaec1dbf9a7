"""Reasons: drivers only, the strongest worrying sign apart, sentences, shares, accuracy."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from churnlens.config import Config, FeatureConfig, load_config
from churnlens.data.contract import load_tables
from churnlens.drift import reference_profile
from churnlens.errors import ChurnlensError
from churnlens.features.btyd import BTYD_FEATURES
from churnlens.features.engine import active_features, build_features
from churnlens.features.registry import attribute_feature, feature_registry
from churnlens.labels import data_end, population
from churnlens.scoring.playbook import load_playbook, warn_misspelt_families
from churnlens.scoring.reasons import (
    TOP_K,
    _sentences,
    _strongest_per_family,
    feature_settings,
    reason_accuracy,
    sentence,
    top_reasons,
)

HORIZON = 90
FLOOR_FIRST, FLOOR_ANY = 0.43, 0.66  # measured 0.442 and 0.672 (335 customers, with BTYD features)


@pytest.fixture(scope="module")
def explained(trained_shop):
    """Reasons for everyone in the trained shop's population 90 days before its data end."""
    root, path, result, _ = trained_shop
    config = load_config(path)
    tables = load_tables(config.data)
    as_of = data_end(tables).normalize() - pd.Timedelta(days=HORIZON)
    spine = population(tables, [as_of], config.churn)
    features = build_features(
        tables, spine, config.features, config.data, config.churn.horizon_days
    )
    registry = active_features(tables, config.features, config.data.ces_scale)
    playbook = load_playbook(config.playbook.path)
    reasons = top_reasons(result.model, features, registry, playbook.family_of)
    truth = pd.read_parquet(root / "data" / "ground_truth.parquet")
    risk = pd.concat([features[["customer_id"]], reasons], axis=1)
    risk["as_of"] = as_of
    return result.model, features, registry, reasons, risk, truth


def test_scoring_builds_btyd_features_when_the_model_has_them_whatever_the_config(explained):
    model = explained[0]
    assert set(BTYD_FEATURES) <= set(model.feature_names_)
    assert feature_settings(model, Config(features=FeatureConfig(btyd=False))).btyd


def test_reason_slots_hold_only_risk_raising_drivers_and_sign_only_signs(explained):
    model, _, registry, reasons, _, _ = explained
    role = {f.name: f.role for f in registry}
    for i in range(1, TOP_K + 1):
        named = reasons[f"reason_{i}_feature"].dropna()
        assert named.map(role).eq("driver").all()
        assert (reasons[f"reason_{i}_contribution"].dropna() > 0).all()
    signs = reasons["sign_feature"].dropna()
    assert len(signs) > 0.5 * len(reasons) and signs.map(role).eq("sign").all()
    no_sign = reasons["sign_feature"].isna()
    assert no_sign.any()  # no worrying sign: empty sign columns
    assert reasons.loc[no_sign, ["sign_contribution", "sign"]].isna().all(axis=None)
    assert reasons["reason_1_feature"].notna().mean() > 0.9
    first, second = reasons["reason_1_contribution"], reasons["reason_2_contribution"]
    assert (first >= second).where(second.notna(), True).all()
    # one reason per family: three sentences on one cause would hide the other causes
    slots = reasons[[f"reason_{i}_family" for i in range(1, TOP_K + 1)]]
    told = slots.notna().sum(axis=1)
    assert (slots.nunique(axis=1) == told).all() and (told == TOP_K).any()
    # a value that reports nothing (no ticket open, no answer, flag 0) is never a reason
    features = explained[1]
    by_name = {f.name: f for f in registry}
    for slot in [f"reason_{i}_feature" for i in range(1, TOP_K + 1)] + ["sign_feature"]:
        for name, rows in reasons.groupby(slot).groups.items():
            told = features.loc[rows, name]
            assert not by_name[name].says_nothing(told, model.reference_).any(), name
    assert by_name["open_tickets"].says_nothing(pd.Series([0, 2, 1])).tolist() == [
        True,
        False,
        False,
    ]
    assert by_name["high_effort"].says_nothing(pd.Series([0.0, 1.0, np.nan])).tolist() == [
        True,
        False,
        True,
    ]
    assert not by_name["last_nps"].says_nothing(pd.Series([0.0])).any()  # NPS 0 is an answer
    category = pd.Series(pd.Categorical(["promoter", "passive", "detractor", None]))
    assert by_name["nps_category"].says_nothing(category).tolist() == [True, True, False, True]
    family = {f.name: f.family for f in registry}
    first_family = reasons["reason_1_feature"].dropna().map(family)
    assert (reasons["reason_1_family"].dropna() == first_family).all()
    assert set(reasons["reason_family"].dropna()) <= {f.family for f in registry}


def test_contributions_are_shares_of_the_customer_risk(explained):
    model, features, _, reasons, _, _ = explained
    rows = features.head(50)
    contributions = model.contributions(rows)[:, :-1]
    pushing = np.clip(contributions, 0, None).sum(axis=1)
    column = list(model.feature_names_).index
    for i in range(len(rows)):
        name = reasons["reason_1_feature"].iloc[i]
        if isinstance(name, str):
            share = contributions[i, column(name)] / pushing[i]
            assert reasons["reason_1_contribution"].iloc[i] == pytest.approx(share)
    total = reasons[[f"reason_{i}_contribution" for i in (1, 2, 3)] + ["sign_contribution"]]
    assert (total.sum(axis=1) <= 1 + 1e-9).all()
    # driver_share: every told driver's share, the three reasons' and maybe more, never a sign's
    told = reasons[[f"reason_{i}_contribution" for i in (1, 2, 3)]].sum(axis=1)
    share = reasons["driver_share"]
    assert (share >= told - 1e-9).all()
    assert (share + reasons["sign_contribution"].fillna(0) <= 1 + 1e-9).all()
    assert (share[reasons["reason_1_feature"].isna()] == 0).all()
    assert (share > told + 0.01).any()  # some customers have more than three drivers at work


def test_sentences_read_as_a_retention_team_speaks():
    plan = attribute_feature("plan", "category", FeatureConfig())
    assert sentence(plan, "plan", {"plan": "premium"}) == "On the premium plan"
    tier = attribute_feature("loyalty_tier", "category", FeatureConfig())
    assert sentence(tier, "loyalty_tier", {"loyalty_tier": "gold"}) == "Their loyalty tier is gold"
    named = FeatureConfig(attribute_sentences={"loyalty_tier": "A {loyalty_tier} member"})
    tier = attribute_feature("loyalty_tier", "category", named)
    assert sentence(tier, "loyalty_tier", {"loyalty_tier": "gold"}) == "A gold member"
    known = {f.name: f for f in feature_registry(FeatureConfig(), ["login"])}
    open_tickets = known["open_tickets"]
    row = {"open_tickets": 2, "oldest_open_ticket_days": 9.4}
    assert sentence(open_tickets, "open_tickets", row) == (
        "2 support tickets open, the oldest for 9 days"
    )
    overdue = known["overdue_ratio"]
    row = {"overdue_ratio": 18.0, "recency_days": 126.2, "gap_mean_days": 7.0}
    assert sentence(overdue, "overdue_ratio", row) == (
        "No purchase for 126 days; usually every 7 days"
    )


def test_reasons_name_the_true_cause_of_leaving(explained):
    """On the simulated shop (4,000 customers, seed 7, as-of 90 days before the data end)."""
    _, _, _, _, risk, truth = explained
    accuracy = reason_accuracy(risk, truth, HORIZON)
    print(accuracy)
    assert accuracy["customers"] >= 50
    assert accuracy["first"] >= FLOOR_FIRST
    assert accuracy["any"] >= FLOOR_ANY


def test_a_protective_value_is_never_a_reason():
    known = {f.name: f for f in feature_registry(FeatureConfig(), [], ces_scale=7, csat_scale=5)}
    cases = {  # feature: (values, which say nothing to worry about)
        "last_nps": ([9, 7, 6, 0], [True, True, False, False]),
        "csat_mean": ([5.0, 4.0, 3.5, 1.0], [True, True, False, False]),
        "last_csat": ([4, 3], [True, False]),
        "nps_change": ([3, 0, -2], [True, True, False]),
        "csat_change": ([1, -1], [True, False]),
        "refund_rate": ([0.0, 0.25], [True, False]),
        "discount_share": ([0.0, 0.5], [True, False]),
        "first_response_hours_mean": ([3.0, 24.0, 30.0], [True, True, False]),
        "last_ces": ([2, 4, 5, 7], [True, True, False, False]),
    }
    for name, (values, silent) in cases.items():
        got = known[name].says_nothing(pd.Series(values, dtype="float64")).tolist()
        assert got == silent, name


def test_sentences_read_right_for_one():
    known = {f.name: f for f in feature_registry(FeatureConfig(), ["login"])}
    cases = {
        ("orders_total", 1): "1 order in total",
        ("orders_total", 24): "24 orders in total",
        ("orders_90d", 1): "1 order in the last 90 days",
        (
            "orders_trend_30d",
            -1,
        ): "Orders changed by -1 in the last 30 days against the 30 days before",
        (
            "orders_trend_30d",
            3,
        ): "Orders changed by +3 in the last 30 days against the 30 days before",
        ("categories_bought", 1): "Bought from 1 category",
        ("categories_bought", 2): "Bought from 2 categories",
        ("recency_days", 1.2): "No purchase for 1 day",
        ("login_30d", 1): "1 login event in the last 30 days",
        ("days_since_login", 0.4): "Last login less than 1 day ago",
        ("oldest_open_ticket_days", 0.3): "A support ticket has been open for less than 1 day",
        ("awaiting_first_response", 1): (
            "1 ticket waiting for a first reply, the oldest for 1 hour"
        ),
    }
    row = {"first_reply_wait_hours": 1.0}
    for (name, value), expected in cases.items():
        assert sentence(known[name], name, {**row, name: value}) == expected


def test_every_sign_says_on_which_side_a_value_worries():
    kinds = ["login", "newsletter_unsubscribe", "cart_abandoned", "visit"]
    signs = [f for f in feature_registry(FeatureConfig(), kinds) if f.role == "sign"]
    assert len(signs) > 20
    assert [f.name for f in signs if f.concern is None] == []


def test_shop_dependent_signs_are_judged_against_the_training_median():
    known = {f.name: f for f in feature_registry(FeatureConfig(), ["login", "cart_abandoned"])}
    training = pd.DataFrame(  # medians: 50 days of silence, 10 orders, 1 order in 30 days
        {
            "recency_days": np.arange(1.0, 101.0),
            "orders_total": np.repeat([2, 5, 10, 20, 40], 20),
            "orders_30d": np.repeat([0, 1, 1, 2, 3], 20),
            "days_since_login": np.arange(1.0, 101.0),
            "cart_abandoned_30d": np.repeat([0, 0, 0, 0, 2], 20),
            "tickets_per_order": np.repeat([0.0, 0.0, 0.0, 0.1, 1.0], 20),
        }
    )
    reference = reference_profile(training, dict.fromkeys(training.columns, "float64"))
    cases = {  # feature: (values, which say nothing to worry about)
        "recency_days": ([0.0, 12.0, 50.0, 51.0, 400.0, np.nan], [1, 1, 1, 0, 0, 1]),
        "orders_total": ([1, 5, 10, 24, 300], [0, 0, 1, 1, 1]),
        "orders_30d": ([0, 1, 4], [0, 1, 1]),  # none in 30 days worries where most bought
        "days_since_login": ([3.0, 90.0], [1, 0]),
        "cart_abandoned_30d": ([0, 1], [1, 0]),  # any abandoned cart: most have none
        "tickets_per_order": ([0.0, 0.04, 0.5], [1, 0, 0]),  # any ticket: most have none
    }
    for name, (values, silent) in cases.items():
        series = pd.Series(values, dtype="float64")
        got = known[name].says_nothing(series, reference)
        assert got.tolist() == [bool(s) for s in silent], name
        # alone or in a batch, a row gets the same answer (Spark partitions, scoring chunks)
        alone = [known[name].says_nothing(series[[i]], reference)[0] for i in series.index]
        assert alone == got.tolist(), name
    fixed = {"orders_trend_30d": ([3, 0, -1], [1, 1, 0]), "overdue_ratio": ([0.8, 2.5], [1, 0])}
    for name, (values, silent) in fixed.items():
        got = known[name].says_nothing(pd.Series(values, dtype="float64"))
        assert got.tolist() == [bool(s) for s in silent], name
    with pytest.raises(ChurnlensError, match="recency_days.*reference"):
        known["recency_days"].says_nothing(pd.Series([10.0]))


def _unjudged(registry):
    """The registry with no side for any sign: every sign told, as before signs were judged."""
    return [dataclasses.replace(f, concern=None) if f.role == "sign" else f for f in registry]


def test_a_sign_is_told_only_when_its_value_worries(explained):
    model, features, registry, _, _, _ = explained
    family_of = lambda name, family: family  # noqa: E731
    signs = [f.name for f in registry if f.role == "sign" and f.name in model.feature_names_]
    calm = features.head(40).copy()
    calm[signs] = np.nan  # nothing on record but what each row sets
    calm["recency_days"] = 0.0  # bought today
    calm["orders_total"] = 500  # many orders
    calm["orders_trend_30d"] = 3  # rising
    calm["overdue_ratio"] = 0.0
    reasons = top_reasons(model, calm, registry, family_of)
    assert reasons[["sign_feature", "sign_contribution", "sign"]].isna().all(axis=None)
    unjudged = _unjudged(registry)
    told = top_reasons(model, calm, unjudged, family_of)["sign_feature"]
    assert told.notna().all()  # unjudged, these values push the risk up and would be told
    silent = calm.assign(recency_days=400.0)  # a long silence
    reasons = top_reasons(model, silent, registry, family_of)
    assert (reasons["sign_feature"] == "recency_days").all()
    assert (reasons["sign"] == "No purchase for 400 days").all()


def test_judging_signs_leaves_the_drivers_and_their_share_alone(explained, trained_shop):
    model, features, registry, reasons, _, _ = explained
    unjudged = _unjudged(registry)
    playbook = load_playbook(load_config(trained_shop[1]).playbook.path)
    before = top_reasons(model, features, unjudged, playbook.family_of)
    drivers = [c for c in reasons.columns if not c.startswith("sign")]
    pd.testing.assert_frame_equal(before[drivers], reasons[drivers])
    told = reasons["sign_feature"].notna()
    assert (before["sign_feature"].notna() & ~told).any()  # some signs said nothing worrying


def test_a_bare_purchase_log_still_gets_a_target_list():
    """CDNOW has no driver at all (purchases with id, day and amount): its risk cannot be
    split into causes and signs, so the whole of it is priced and the list is not empty."""
    import churnlens as cl
    from churnlens.config import CutoffConfig
    from churnlens.datasets import load_cdnow
    from churnlens.features.engine import training_set

    tables = cl.validate(load_cdnow("sample"))
    config = Config(  # as configs/cdnow.yaml
        churn={"active_window_days": 365},
        cutoffs=CutoffConfig(test="1998-04-01", step_days=30, min_history_days=90),
        model={"num_boost_round": 40},
    )
    model = cl.fit(training_set(tables, config), config).model
    risk = cl.score(model, tables, "1998-04-01", config, explain="all").risk_list
    assert (risk["driver_share"] == 1.0).all()
    assert risk["reason_1"].isna().all() and risk["sign"].notna().any()  # no cause to tell
    assert risk["target"].sum() > 0
    kept = risk[risk["status"] != "lapsed"]
    assert kept["recommended_action"].notna().all() and kept["expected_net_gain"].notna().all()


def test_reasons_are_the_strongest_driver_of_each_family_in_order():
    values = np.array([[0.5, 0.4, 0.3, 0.2], [0.1, 0.6, 0.0, 0.2]])
    allowed = np.array([[True] * 4, [True, True, False, True]])  # row 2: its survey is silent
    families = np.array(["support", "support", "survey", "pricing"], dtype=object)
    picked, value = _strongest_per_family(values, allowed, families, 3)
    assert picked[0].tolist() == [0, 2, 3] and value[0].tolist() == [0.5, 0.3, 0.2]
    assert picked[1, :2].tolist() == [1, 3] and value[1, 2] == -np.inf  # the slot stays empty
    two = _strongest_per_family(values[:, [0, 3]], allowed[:, [0, 3]], families[[0, 3]], 3)
    assert two[0].shape == (2, 3) and np.isneginf(two[1][:, 2]).all()


def test_sentences_rendered_once_per_value_read_as_row_by_row():
    """Each feature's sentence is rendered per distinct value: the same strings as `sentence`
    row by row, -0.0 apart from 0.0, missing values and a feature the registry lacks."""
    known = {f.name: f for f in feature_registry(FeatureConfig(), ["login"])}
    frame = pd.DataFrame(
        {
            "orders_trend_30d": [0.0, -0.0, np.nan, 2.0, 2.0, -0.0],
            "tickets_total": [1.0, 1.0, 3.0, np.nan, 1.0, 0.0],
            "orders_total": [2.0, 2.0, 1.0, 4.0, 2.0, 0.0],
            "tickets_per_order": [0.5, 0.5, 3.0, np.nan, 0.5, 0.0],
            "mystery": ["a", "a", None, "b", "a", "b"],
        }
    )
    picked = np.array(
        [
            ["orders_trend_30d", "tickets_per_order", None],
            ["orders_trend_30d", "tickets_per_order", "mystery"],
            ["tickets_per_order", "orders_trend_30d", "mystery"],
            ["orders_trend_30d", "tickets_per_order", "mystery"],
            [None, None, "mystery"],
            ["orders_trend_30d", "absent", "tickets_per_order"],
        ],
        dtype=object,
    )
    records = frame.to_dict("records")
    expected = [
        [None if n is None else sentence(known.get(n), n, row) for n in names]
        for names, row in zip(picked, records, strict=True)
    ]
    got = _sentences(frame, picked, known)
    assert got.tolist() == expected
    assert got[0, 0].startswith("Orders changed by +0") and got[1, 0].startswith(
        "Orders changed by -0"
    )
    assert got[1, 1] == "1 support ticket for 2 orders" and got[2, 2] == "No mystery on record"
    assert got[5, 1] == "No absent on record"


def test_an_action_for_a_misspelt_family_is_warned_with_the_family_meant(explained, tmp_path):
    registry = explained[2]
    path = tmp_path / "playbook.yaml"
    path.write_text(
        "actions:\n"
        "  pricng: {action: price-lock offer, cost: 10.0, save_rate: 0.25}\n"
        "  billing: {action: payment fix-up call, cost: 3.0, save_rate: 0.35}\n"
        "  default: {action: retention email, cost: 0.3, save_rate: 0.05}\n"
    )
    found = warn_misspelt_families(load_playbook(path), registry)
    assert len(found) == 1  # billing: a family this shop lacks, near none it has
    assert "'pricng'" in found[0] and "did you mean 'pricing'?" in found[0]
    assert warn_misspelt_families(load_playbook(Config().playbook.path), registry) == []
