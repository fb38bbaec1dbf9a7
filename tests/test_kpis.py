"""Retention KPIs equal hand-computed values on tiny literal shops (docs/kpis.md)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from churnlens.config import ChurnConfig
from churnlens.errors import ChurnlensError
from churnlens.modeling.bgnbd import BGNBD
from churnlens.modeling.gammagamma import GammaGamma
from churnlens.reporting import kpis
from shops import make_tables, refunded

WINDOW_30 = ChurnConfig(type="non_contractual", active_window_days=30)
CONTRACTUAL = ChurnConfig(type="contractual")


def test_the_formulas_on_the_issue_examples():
    assert kpis.retention_rate(at_start=1000, at_end=1100, new=200) == pytest.approx(90.0)
    assert kpis.churn_rate(lost=100, at_start=1000) == pytest.approx(10.0)
    scores = pd.Series([10] * 5 + [8] * 3 + [6, 0], dtype="float64")  # 50 % / 20 %
    assert kpis.nps(scores) == pytest.approx(30.0)
    assert kpis.csat(pd.Series([5.0, 4.0, 3.0, 1.0]), scale=5) == pytest.approx(50.0)
    assert kpis.csat(pd.Series([7.0, 6.0, 5.0]), scale=7) == pytest.approx(200 / 3)
    assert kpis.ces(pd.Series([2.0, 4.0, 6.0])) == pytest.approx(4.0)
    assert kpis.repeat_purchase_rate(repeat_buyers=1, buyers=4) == pytest.approx(25.0)
    assert kpis.purchase_frequency(orders=6, buyers=4) == pytest.approx(1.5)
    assert kpis.average_order_value(revenue=90.0, orders=6) == pytest.approx(15.0)
    assert kpis.average_lifespan(churn_rate_percent=25.0) == pytest.approx(4.0)
    assert kpis.historical_clv(15.0, 1.5, 4.0) == pytest.approx(90.0)
    assert kpis.per_thousand_orders(3, 600) == pytest.approx(5.0)
    assert kpis.top_share(pd.Series([50.0, 10, 10, 10, 10, 5, 5])) == pytest.approx(60.0)
    assert math.isnan(kpis.churn_rate(lost=0, at_start=0))
    assert math.isnan(kpis.nps(pd.Series([], dtype="float64")))


def shop():
    """Jan–Feb 2024: a, b buy in January; a again, c, d are new in February; b lapses."""
    return make_tables(
        customers={"customer_id": ["a", "b", "c", "d"], "signup_at": ["2024-01-01"] * 4},
        purchases={
            "order_id": ["o1", "o2", "o3", "o4", "o5", "o6", "o7"],
            "customer_id": ["a", "a", "b", "a", "c", "c", "d"],
            "ordered_at": [
                "2024-01-05",
                "2024-01-20",
                "2024-01-15",
                "2024-02-10",
                "2024-02-03",
                "2024-02-04",
                "2024-02-29",
            ],
            "amount": [10.0, 20.0, 40.0, 30.0, 50.0, 5.0, 60.0],
            "status": ["completed"] * 5 + ["refunded", "completed"],
        },
        tickets={
            "ticket_id": ["t1", "t2", "t3"],
            "customer_id": ["a", "b", "a"],
            "opened_at": ["2024-01-10 09:00", "2024-01-31 10:00", "2024-02-05 08:00"],
            "first_response_at": ["2024-01-10 11:00", "2024-02-01 10:00", None],
            "resolved_at": ["2024-01-11 09:00", None, "2024-02-06 08:00"],
        },
        surveys={
            "response_id": [f"s{i}" for i in range(17)],
            "customer_id": ["a"] * 17,
            "answered_at": ["2024-01-25"] * 17,
            "kind": ["nps"] * 10 + ["csat"] * 4 + ["ces"] * 3,
            "score": [10, 9, 9, 10, 9, 8, 7, 7, 6, 0] + [5, 4, 3, 2] + [2, 4, 6],
        },
    )


def test_period_kpis_non_contractual_by_hand():
    table = kpis.period_kpis(shop(), WINDOW_30, "month", csat_scale=5).set_index("period")
    assert list(table.index) == ["2024-01", "2024-02"]
    jan, feb = table.loc["2024-01"], table.loc["2024-02"]
    # active = a completed purchase in the 30 days before: 1 Feb {a, b}; 1 Mar {a, c, d}
    assert (jan.customers_start, jan.customers_end, jan.new, jan.lost) == (0, 2, 2, 0)
    assert (feb.customers_start, feb.customers_end, feb.new, feb.lost) == (2, 3, 2, 1)
    assert math.isnan(jan.retention_rate)
    assert feb.retention_rate == pytest.approx(50.0)  # (3 - 2) / 2
    assert feb.churn_rate == pytest.approx(50.0)  # b lost of {a, b}
    assert feb.average_lifespan == pytest.approx(2.0)
    assert (jan.orders, jan.revenue, feb.orders, feb.revenue) == (3, 70.0, 3, 140.0)
    assert jan.repeat_purchase_rate == pytest.approx(50.0)  # a twice, b once
    assert feb.repeat_purchase_rate == pytest.approx(0.0)  # c's second order was refunded
    assert jan.purchase_frequency == pytest.approx(1.5)
    assert feb.average_order_value == pytest.approx(140 / 3)
    assert feb.clv == pytest.approx(140 / 3 * 1.0 * 2.0)
    assert jan.returns_per_1000_orders == 0 and feb.returns_per_1000_orders == pytest.approx(250)
    assert jan.nps == pytest.approx(30.0) and jan.csat == pytest.approx(50.0)
    assert jan.ces == pytest.approx(4.0) and math.isnan(feb.nps)
    assert jan.first_response_hours == pytest.approx(13.0)  # (2 + 24) / 2
    assert jan.resolution_hours == pytest.approx(24.0)  # t2 not resolved
    assert math.isnan(feb.first_response_hours) and feb.resolution_hours == pytest.approx(24.0)
    assert jan.backlog == 1 and feb.backlog == 1  # t2 open at 1 Feb and at 1 Mar
    assert jan.tickets_per_1000_orders == pytest.approx(2000 / 3)
    assert feb.tickets_per_1000_orders == pytest.approx(250.0)  # 1 ticket, 4 orders placed


def _refunded_o6(at):
    """shop() with c's refunded order o6 (2024-02-04, 5.0) refunded at `at`."""
    return refunded(shop(), 5, at)


def test_a_refund_after_the_period_end_leaves_its_kpis_as_they_were():
    late = _refunded_o6("2024-03-01")  # at February's end: still an order in February
    feb = kpis.period_kpis(late, WINDOW_30, "month").set_index("period").loc["2024-02"]
    assert (feb.orders, feb.revenue, feb.returns_per_1000_orders) == (4, 145.0, 0.0)
    assert feb.repeat_purchase_rate == pytest.approx(100 / 3)  # c bought twice
    assert (feb.customers_end, feb.new) == (3, 2)
    view = kpis.pareto_view(late, "2024-01-01", "2024-03-01").set_index("view")["share"]
    assert view.iloc[0] == pytest.approx(60 / 215 * 100)
    customers, _ = kpis.rfm_segments(late, "2024-03-01")
    assert customers.set_index("customer_id").loc["c", "frequency"] == 2
    early = _refunded_o6("2024-02-29 23:59:59")  # seen at February's end: as without a time
    expected = kpis.period_kpis(shop(), WINDOW_30, "month")
    pd.testing.assert_frame_equal(kpis.period_kpis(early, WINDOW_30, "month"), expected)


def subscriptions():
    return make_tables(
        customers={
            "customer_id": ["k1", "k2", "k3", "k4"],
            "signup_at": ["2024-01-10", "2024-01-20", "2024-02-05", "2024-02-10"],
            "cancelled_at": ["2024-02-15", None, None, None],
        },
        purchases={
            "order_id": ["o1", "o2"],
            "customer_id": ["k2", "k2"],
            "ordered_at": ["2024-01-20", "2024-02-29"],
            "amount": [9.0, 9.0],
        },
    )


def test_period_kpis_contractual_use_signup_and_cancellation():
    table = kpis.period_kpis(subscriptions(), CONTRACTUAL, "month").set_index("period")
    feb = table.loc["2024-02"]
    assert (feb.customers_start, feb.customers_end, feb.new, feb.lost) == (2, 3, 2, 1)
    assert feb.retention_rate == pytest.approx(50.0) and feb.churn_rate == pytest.approx(50.0)
    assert math.isnan(feb.nps) and math.isnan(feb.backlog)  # no surveys, no tickets


def test_quarters_whole_periods_only_and_a_bad_period():
    tables = shop()
    with pytest.raises(ChurnlensError, match="the data cover no whole quarter"):
        kpis.period_kpis(tables, WINDOW_30, "quarter")
    late = tables.purchases.iloc[[-1]].assign(order_id="o8", ordered_at=pd.Timestamp("2024-03-31"))
    tables.purchases = pd.concat([tables.purchases, late], ignore_index=True)
    q1 = kpis.period_kpis(tables, WINDOW_30, "quarter").set_index("period").loc["2024Q1"]
    assert (q1.customers_start, q1.customers_end, q1.new, q1.lost, q1.orders) == (0, 1, 4, 0, 7)
    with pytest.raises(ChurnlensError, match="period must be one of month, quarter"):
        kpis.period_kpis(tables, WINDOW_30, "week")


def test_pareto_view_by_hand():
    view = kpis.pareto_view(shop(), "2024-01-01", "2024-03-01").set_index("view")["share"]
    assert view.iloc[0] == pytest.approx(60 / 210 * 100)  # top 1 of 4 buyers: a or d, 60 each
    assert view.iloc[1] == pytest.approx(2 / 3 * 100)  # a raised 2 of 3 tickets


def test_cohort_retention_by_hand():
    matrix = kpis.cohort_retention(shop(), WINDOW_30)
    assert list(matrix.index) == ["2024-01", "2024-02"]
    assert matrix.loc["2024-01", 0] == 100.0 and matrix.loc["2024-01", 1] == pytest.approx(50.0)
    assert matrix.loc["2024-02", 0] == 100.0 and math.isnan(matrix.loc["2024-02", 1])
    contractual = kpis.cohort_retention(subscriptions(), CONTRACTUAL)
    assert contractual.loc["2024-01"].tolist() == [100.0, 50.0]  # k1 cancelled in February
    assert contractual.loc["2024-02", 0] == 100.0 and math.isnan(contractual.loc["2024-02", 1])


def test_segment_rules_cover_every_cell():
    assert kpis.segment_of(5, 4) == "champions" and kpis.segment_of(3, 5) == "loyal"
    assert kpis.segment_of(4, 2) == "needs attention" and kpis.segment_of(2, 3) == "at risk"
    assert kpis.segment_of(2, 1) == "hibernating" and kpis.segment_of(1, 2) == "lost"
    assert {kpis.segment_of(r, f) for r in range(1, 6) for f in range(1, 6)} == set(kpis.SEGMENTS)


def test_rfm_segments_by_hand():
    # (days since last order at 1 March, orders): ranks give r and f scores 1..5 directly
    plan = {"v1": (1, 5), "v2": (10, 3), "v3": (20, 1), "v4": (30, 4), "v5": (40, 2)}
    rows = [
        (c, pd.Timestamp("2024-03-01") - pd.Timedelta(days=days + 2 * k))
        for c, (days, n) in plan.items()
        for k in range(n)
    ]
    tables = make_tables(
        customers={"customer_id": list(plan), "signup_at": ["2023-01-01"] * 5},
        purchases={
            "order_id": [f"o{i}" for i in range(len(rows))],
            "customer_id": [c for c, _ in rows],
            "ordered_at": [str(t) for _, t in rows],
            "amount": [10.0] * len(rows),
        },
    )
    risk = pd.DataFrame({"customer_id": ["v1", "v4", "v5"], "churn_probability": [0.1, 0.8, 0.9]})
    customers, summary = kpis.rfm_segments(tables, "2024-03-01", risk)
    segment = customers.set_index("customer_id")["segment"].to_dict()
    assert segment == {
        "v1": "champions",
        "v2": "loyal",
        "v3": "needs attention",
        "v4": "at risk",
        "v5": "lost",
    }
    summary = summary.set_index("segment")
    assert list(summary.index) == list(kpis.SEGMENTS)
    assert summary.loc["at risk", "customers"] == 1 and summary.loc["hibernating", "customers"] == 0
    assert summary.loc["champions", "revenue"] == 50.0
    assert summary.loc["lost", "mean_churn_probability"] == pytest.approx(0.9)
    assert math.isnan(summary.loc["loyal", "mean_churn_probability"])  # v2 not scored


def test_bgnbd_clv_is_expected_purchases_times_order_value():
    model = BGNBD()
    model.params_ = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # published CDNOW fit
    clv = kpis.bgnbd_clv(shop(), "2024-03-01", horizon_days=70, model=model)
    a = clv.set_index("customer_id").loc["a"]
    # a: purchase days 5 Jan, 20 Jan, 10 Feb -> x = 2, t_x = 36 days, T = 55 days (to 29 Feb)
    expected = float(model.expected_purchases(10.0, 2.0, 36 / 7, 55 / 7))
    assert a.average_order_value == pytest.approx(20.0)
    assert a.expected_purchases == pytest.approx(expected)
    assert a.clv == pytest.approx(20.0 * expected)
    assert clv.set_index("customer_id").loc["b", "p_alive"] == 1.0  # no repeat purchase yet


def test_gamma_gamma_clv_is_expected_purchases_times_the_shrunk_spend():
    # enough customers for an interior optimum: on five, the likelihood rises along a ridge
    # (p -> inf) and whether L-BFGS calls that converged differed between two machines
    rng = np.random.default_rng(2)
    days, spend = {}, {}
    for i in range(200):
        n, customer = int(rng.integers(1, 7)), f"c{i:03d}"
        days[customer] = sorted(rng.choice(np.arange(1, 60), n, replace=False).tolist())
        spend[customer] = np.round(rng.gamma(4.0, rng.gamma(3.0, 20.0) / 4.0, n), 2).tolist()
    rows = [(c, d, a) for c in days for d, a in zip(days[c], spend[c], strict=True)]
    tables = make_tables(
        customers={"customer_id": list(days), "signup_at": ["2024-01-01"] * len(days)},
        purchases={
            "order_id": [f"o{i}" for i in range(len(rows))],
            "customer_id": [c for c, _, _ in rows],
            "ordered_at": [
                f"2024-01-{d:02d}" if d <= 31 else f"2024-02-{d - 31:02d}" for _, d, _ in rows
            ],
            "amount": [float(a) for _, _, a in rows],
        },
    )
    model = BGNBD()
    model.params_ = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    clv = kpis.bgnbd_clv(tables, "2024-03-01", horizon_days=70, model=model).set_index(
        "customer_id"
    )
    # repeats: every purchase day after the first; their mean spend
    x = np.array([len(spend[c]) - 1 for c in clv.index], dtype=float)
    m = np.array([np.mean(spend[c][1:]) if len(spend[c]) > 1 else 0.0 for c in clv.index])
    expected = GammaGamma().fit(x, m).expected_spend(x, m)
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(clv["expected_spend"], expected, rtol=1e-9)
    np.testing.assert_allclose(clv["gamma_gamma_clv"], clv["expected_purchases"] * expected)
