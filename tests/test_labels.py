"""Churn labels: window boundaries exactly at t and t + horizon, populations, and cutoffs."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from churnlens.config import ChurnConfig, CutoffConfig
from churnlens.errors import ChurnlensError
from churnlens.labels import labels, population, training_cutoffs
from shops import make_tables

T = pd.Timestamp("2024-06-01")
NON_CONTRACTUAL = ChurnConfig(type="non_contractual", horizon_days=30, active_window_days=60)
CONTRACTUAL = ChurnConfig(type="contractual", horizon_days=30)


def shop(orders: dict[str, list[str]], statuses: dict[str, str] | None = None):
    """One customer per key, with completed purchases at the given times."""
    rows = [(c, at) for c, times in orders.items() for at in times]
    statuses = statuses or {}
    return make_tables(
        customers={"customer_id": list(orders), "signup_at": ["2024-01-01"] * len(orders)},
        purchases={
            "order_id": [f"o{i}" for i in range(len(rows))],
            "customer_id": [c for c, _ in rows],
            "ordered_at": [at for _, at in rows],
            "amount": [10.0] * len(rows),
            "status": [statuses.get(c, "completed") for c, _ in rows],
        },
    )


def as_dict(frame: pd.DataFrame) -> dict[str, bool]:
    return dict(zip(frame["customer_id"], frame["churned"], strict=True))


def test_non_contractual_boundaries():
    tables = shop(
        {
            "buys_at_t": ["2024-05-20", "2024-06-01"],  # a purchase exactly at t counts as retained
            "buys_just_before_end": ["2024-05-20", "2024-06-30 23:59:59"],
            "buys_at_t_plus_h": ["2024-05-20", "2024-07-01"],  # t + horizon is outside the window
            "active_at_window_start": ["2024-04-02"],  # exactly t - 60 days: in the population
            "inactive": ["2024-04-01 23:59:59"],  # just before t - 60 days: not in the population
            "first_buys_at_t": ["2024-06-01"],  # nothing before t: not in the population
        }
    )
    result = as_dict(labels(tables, [T], NON_CONTRACTUAL))
    assert result == {
        "buys_at_t": False,
        "buys_just_before_end": False,
        "buys_at_t_plus_h": True,
        "active_at_window_start": True,
    }


def test_only_completed_purchases_count():
    tables = shop({"refunds": ["2024-05-20", "2024-06-10"]}, statuses={"refunds": "refunded"})
    assert labels(tables, [T], NON_CONTRACTUAL).empty


def test_contractual_boundaries():
    tables = make_tables(
        customers={
            "customer_id": [
                "cancels_at_t",
                "cancels_at_end",
                "cancelled_before",
                "signs_up_at_t",
                "stays",
            ],
            "signup_at": ["2024-01-01", "2024-01-01", "2024-01-01", "2024-06-01", "2024-01-01"],
            "cancelled_at": ["2024-06-01", "2024-07-01", "2024-05-31", None, None],
        },
        purchases={
            "order_id": ["o1"],
            "customer_id": ["stays"],
            "ordered_at": ["2024-02-01"],
            "amount": [1.0],
        },
    )
    assert as_dict(labels(tables, [T], CONTRACTUAL)) == {
        "cancels_at_t": True,
        "cancels_at_end": False,
        "stays": False,
    }


def test_contractual_needs_cancelled_at():
    with pytest.raises(ChurnlensError, match="cancelled_at is required"):
        labels(shop({"a": ["2024-05-01"]}), [T], CONTRACTUAL)


def test_population_has_no_label_and_is_sorted():
    tables = shop({"b": ["2024-05-01"], "a": ["2024-05-02"]})
    frame = population(tables, [T, T - pd.Timedelta(days=10)], NON_CONTRACTUAL)
    assert list(frame.columns) == ["customer_id", "cutoff"]
    assert list(frame.itertuples(index=False, name=None)) == [
        ("a", T - pd.Timedelta(days=10)),
        ("b", T - pd.Timedelta(days=10)),
        ("a", T),
        ("b", T),
    ]


def test_cutoff_schedule_keeps_label_windows_inside_the_data():
    tables = shop({"a": ["2024-01-01", "2024-12-31 10:00"]})
    churn = ChurnConfig(horizon_days=90)
    cutoffs = training_cutoffs(tables, CutoffConfig(start="2024-03-01", step_days=30), churn)
    assert pd.Timestamp("2024-03-01") <= cutoffs[0] < pd.Timestamp("2024-03-31")
    assert cutoffs[-1] == pd.Timestamp("2024-12-31") - pd.Timedelta(days=90)
    assert all(b - a == pd.Timedelta(days=30) for a, b in itertools.pairwise(cutoffs))


def test_explicit_cutoff_too_late_is_refused_with_the_last_usable_date():
    tables = shop({"a": ["2024-01-01", "2024-12-31"]})
    config = CutoffConfig(dates=["2024-06-01", "2024-11-01"])
    with pytest.raises(ChurnlensError, match="2024-11-01.*last usable cutoff is 2024-10-02"):
        training_cutoffs(tables, config, ChurnConfig(horizon_days=90))


day = st.integers(0, 200)


@settings(max_examples=30, deadline=None)
@given(
    history=st.lists(st.tuples(st.sampled_from("abcd"), day), min_size=1, max_size=30),
    outside=st.lists(st.tuples(st.sampled_from("abcd"), st.integers(0, 400)), max_size=10),
    cutoff_day=st.integers(61, 170),
)
def test_labels_depend_only_on_the_label_window(history, outside, cutoff_day):
    """Rows after t + horizon never change labels; rows before t only decide membership."""
    base = pd.Timestamp("2024-01-01")
    cutoff = base + pd.Timedelta(days=cutoff_day)

    def tables(rows):
        return shop({c: [base + pd.Timedelta(days=d) for c2, d in rows if c2 == c] for c in "abcd"})

    before = labels(tables(history), [cutoff], NON_CONTRACTUAL)
    late = [(c, cutoff_day + 30 + d) for c, d in outside]  # at or after t + horizon
    early_for_members = [
        (c, cutoff_day - 1 - d % 60) for c, d in outside if c in set(before["customer_id"])
    ]  # inside [t - 60, t)
    after = labels(tables(history + late + early_for_members), [cutoff], NON_CONTRACTUAL)
    pd.testing.assert_frame_equal(before, after)


def test_a_refund_counts_from_its_time():
    """A purchase refunded after the cutoff keeps its buyer in the population; one in the label
    window counts unless refunded before the window ends (t + horizon = 2024-07-01)."""
    orders = {
        "refunded_after_t": ["2024-05-20"],  # in the population, then no purchase: churned
        "refunded_at_t": ["2024-05-20"],  # a refund at t is not seen at t: in the population
        "refunded_before_t": ["2024-05-20"],  # not in the population
        "kept_in_window": ["2024-05-20", "2024-06-10"],  # refunded at t + h: retained
        "refunded_in_window": ["2024-05-20", "2024-06-10"],  # refunded before t + h: churned
    }
    refunds = {
        "refunded_after_t": ["2024-06-02", None],
        "refunded_at_t": ["2024-06-01", None],
        "refunded_before_t": ["2024-05-31 23:59:59", None],
        "kept_in_window": [None, "2024-07-01"],
        "refunded_in_window": [None, "2024-06-30 23:59:59"],
    }
    rows = [(c, at, r) for c in orders for at, r in zip(orders[c], refunds[c], strict=False)]
    tables = make_tables(
        customers={"customer_id": list(orders), "signup_at": ["2024-01-01"] * len(orders)},
        purchases={
            "order_id": [f"o{i}" for i in range(len(rows))],
            "customer_id": [c for c, _, _ in rows],
            "ordered_at": [at for _, at, _ in rows],
            "amount": [10.0] * len(rows),
            "status": ["refunded" if r else "completed" for _, _, r in rows],
            "refunded_at": [r for _, _, r in rows],
        },
    )
    expected = {
        "refunded_after_t": True,
        "refunded_at_t": True,
        "kept_in_window": False,
        "refunded_in_window": True,
    }
    assert as_dict(labels(tables, [T], NON_CONTRACTUAL)) == expected
    assert population(tables, [T], NON_CONTRACTUAL)["customer_id"].tolist() == sorted(expected)
    without_times = tables.purchases.drop(columns="refunded_at")  # status as of the export
    tables.purchases = without_times
    assert as_dict(labels(tables, [T], NON_CONTRACTUAL)) == {
        "kept_in_window": True,
        "refunded_in_window": True,
    }
