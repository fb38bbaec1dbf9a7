"""The simulated shop: schema, determinism, integrity, and that the planted drivers show."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnlens.data.simulate import simulate

START, END = pd.Timestamp("2024-01-01"), pd.Timestamp("2025-12-31")
DAY = pd.Timedelta(days=1)
STR, TS, F64, I64, BOOL = "str", "datetime64[us]", "float64", "int64", "bool"
SCHEMA = {
    "customers": {
        "customer_id": STR,
        "signup_at": TS,
        "region": STR,
        "acquisition_channel": STR,
        "segment": STR,
        "plan": STR,
    },
    "purchases": {
        "order_id": STR,
        "customer_id": STR,
        "ordered_at": TS,
        "amount": F64,
        "status": STR,
        "discount": F64,
        "category": STR,
        "channel": STR,
    },
    "tickets": {
        "ticket_id": STR,
        "customer_id": STR,
        "opened_at": TS,
        "first_response_at": TS,
        "resolved_at": TS,
        "channel": STR,
        "priority": STR,
        "reopened": I64,
        "topic": STR,
    },
    "surveys": {
        "response_id": STR,
        "customer_id": STR,
        "answered_at": TS,
        "kind": STR,
        "score": I64,
        "comment": STR,
    },
    "events": {"customer_id": STR, "at": TS, "kind": STR},
    "ground_truth": {
        "customer_id": STR,
        "churned_at": TS,
        "driver_support": BOOL,
        "driver_detractor": BOOL,
        "driver_disengaged": BOOL,
        "driver_pricing": BOOL,
        "driver_market": BOOL,
        "churn_driver": STR,
        "discount_hunter": BOOL,
        "support_heavy": BOOL,
        "usual_gap_days": F64,
    },
}
TIME = {
    "customers": "signup_at",
    "purchases": "ordered_at",
    "tickets": "opened_at",
    "surveys": "answered_at",
    "events": "at",
}
ID = {"purchases": "order_id", "tickets": "ticket_id", "surveys": "response_id"}
LEVELS = {
    ("customers", "region"): {"north", "south", "east", "west"},
    ("customers", "acquisition_channel"): {"organic", "paid_search", "social", "referral"},
    ("customers", "segment"): {"consumer", "smb"},
    ("customers", "plan"): {"basic", "standard", "premium"},
    ("ground_truth", "churn_driver"): {"support", "detractor", "pricing", "market"},
    ("purchases", "status"): {"completed", "cancelled", "refunded", "returned"},
    ("purchases", "channel"): {"web", "app", "store"},
    ("tickets", "channel"): {"email", "chat", "phone"},
    ("tickets", "priority"): {"low", "normal", "high"},
    ("tickets", "topic"): {"delivery", "billing", "product", "account", "returns"},
    ("surveys", "kind"): {"nps", "csat", "ces"},
    ("events", "kind"): {"login", "newsletter_unsubscribe", "cart_abandoned"},
}
SCORE_RANGE = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}


@pytest.fixture(scope="module")
def shop() -> dict[str, pd.DataFrame]:
    return simulate(5000, seed=11)


def churn_of(shop, frame: pd.DataFrame) -> pd.Series:
    """Each row's customer's churned_at (NaT when still alive)."""
    churned = shop["ground_truth"].set_index("customer_id")["churned_at"]
    return frame["customer_id"].map(churned)


def bad_ticket(tickets: pd.DataFrame) -> pd.Series:
    """Slow or missing first response, unresolved, or reopened."""
    response = tickets["first_response_at"] - tickets["opened_at"]
    return (
        tickets["first_response_at"].isna()
        | (response > pd.Timedelta(hours=24))
        | tickets["resolved_at"].isna()
        | (tickets["reopened"] > 0)
    )


def in_backlog(tickets: pd.DataFrame) -> pd.Series:
    """Opened during the support backlog (80-88 % of the period)."""
    return tickets["opened_at"].between(
        START + (END - START) * 0.8, START + (END - START) * 0.88, inclusive="left"
    )


def detractor(surveys: pd.DataFrame) -> pd.Series:
    kind, score = surveys["kind"], surveys["score"]
    return (
        ((kind == "nps") & (score <= 6))
        | ((kind == "csat") & (score <= 2))
        | ((kind == "ces") & (score >= 6))
    )


def assert_invariants(tables: dict[str, pd.DataFrame], start: pd.Timestamp, end: pd.Timestamp):
    """Schema, unique ids, referential integrity, time bounds, sort order, value ranges."""
    assert set(tables) == set(SCHEMA)
    for name, columns in SCHEMA.items():
        frame = tables[name]
        assert list(frame.columns) == list(columns), name
        assert {c: str(frame[c].dtype) for c in columns} == columns, name
    customers = tables["customers"]
    assert customers["customer_id"].is_unique
    assert customers["signup_at"].between(start, end - 60 * DAY).all()
    signup = customers.set_index("customer_id")["signup_at"]
    truth = tables["ground_truth"]
    assert truth["customer_id"].tolist() == customers["customer_id"].tolist()
    churned = truth.set_index("customer_id")["churned_at"]
    assert (churned.dropna() >= signup[churned.notna()]).all()
    assert (churned.dropna() <= end).all()
    for name, time in TIME.items():
        frame = tables[name]
        if name in ID:
            assert frame[ID[name]].is_unique, name
        if name != "customers":
            assert frame["customer_id"].isin(customers["customer_id"]).all(), name
            assert (frame[time] >= frame["customer_id"].map(signup)).all(), name
            # Nothing the customer does happens after they churned.
            assert not (frame[time] > frame["customer_id"].map(churned)).any(), name
        assert frame[time].notna().all() and frame[time].between(start, end).all(), name
        order = [time, ID.get(name, "customer_id")]
        assert frame[order].equals(frame[order].sort_values(order, ignore_index=True)), name
        assert (frame[time] == frame[time].dt.floor("s")).all(), name
    for (name, column), levels in LEVELS.items():
        assert set(tables[name][column].dropna().unique()) <= levels, (name, column)
    purchases = tables["purchases"]
    assert (purchases["amount"] >= 0).all()
    assert ((purchases["discount"] >= 0) & (purchases["discount"] <= purchases["amount"])).all()
    assert np.allclose(purchases["amount"], purchases["amount"].round(2))
    tickets = tables["tickets"]
    assert not (tickets["first_response_at"] < tickets["opened_at"]).any()
    assert not (tickets["resolved_at"] < tickets["opened_at"]).any()
    assert not (tickets["resolved_at"] < tickets["first_response_at"]).any()
    assert not (tickets[["first_response_at", "resolved_at"]] > end).any().any()
    assert (tickets["reopened"] >= 0).all()
    surveys = tables["surveys"]
    for kind, (low, high) in SCORE_RANGE.items():
        assert surveys.loc[surveys["kind"] == kind, "score"].between(low, high).all(), kind


def test_schema_and_invariants(shop):
    assert_invariants(shop, START, END)
    assert shop["customers"]["customer_id"].iloc[0] == "C0000001"
    assert shop["purchases"]["order_id"].iloc[0] == "O00000001"


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 60),
    seed=st.integers(0, 2**32),
    start=st.dates(pd.Timestamp("2020-01-01").date(), pd.Timestamp("2030-01-01").date()),
    days=st.integers(61, 500),
)
def test_invariants_hold_for_any_small_shop(n, seed, start, days):
    start = pd.Timestamp(start)
    end = start + days * DAY
    tables = simulate(n, seed, start=str(start.date()), end=str(end.date()))
    assert len(tables["customers"]) == n
    assert_invariants(tables, start, end)


def test_same_seed_same_tables_other_seed_differs(shop):
    again = simulate(5000, seed=11)
    for name in SCHEMA:
        pd.testing.assert_frame_equal(again[name], shop[name])
    other = simulate(5000, seed=12)
    assert not other["purchases"].equals(shop["purchases"])
    assert not other["ground_truth"].equals(shop["ground_truth"])


def test_the_true_hazard_at_a_date_is_the_generators(shop):
    # asked for, the truth holds each customer's weekly hazard then and nothing else changes
    at = START + 400 * DAY
    told = simulate(5000, seed=11, hazard_at=str(at.date()))
    for name in SCHEMA:
        same = told[name].drop(columns="hazard_at", errors="ignore")
        pd.testing.assert_frame_equal(same, shop[name])
    truth = told["ground_truth"].merge(told["customers"][["customer_id", "signup_at", "plan"]])
    hazard = truth["hazard_at"]
    week_start = START + (400 // 7 * 7) * DAY
    there = (truth["signup_at"] < week_start) & ~(truth["churned_at"] < week_start)
    assert hazard[there].notna().all() and hazard[~there].isna().all()
    # the generator's baseline times the factors of the active drivers: within its spread
    assert hazard[there].min() >= 0.0023 * 0.8 * 0.8 * np.exp(-1.5)
    # the standard plan's price rise (from half-way, before the date) triples the hazard
    standard = truth["plan"] == "standard"
    assert hazard[there & standard].median() > 2.5 * hazard[there & ~standard].median()
    # and the hazard tells who leaves: leavers in the following 90 days had a higher one
    leaves = truth["churned_at"] < at + 90 * DAY
    assert hazard[there & leaves].mean() > 1.5 * hazard[there & ~leaves].mean()


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="hazard_at"):
        simulate(10, seed=1, hazard_at="2030-01-01")
    with pytest.raises(ValueError, match="n_customers"):
        simulate(0, seed=1)
    with pytest.raises(ValueError, match="period"):
        simulate(10, seed=1, start="2024-01-01", end="2024-02-01")


def test_volumes_and_mix_are_realistic(shop):
    n = len(shop["customers"])
    assert 10 < len(shop["purchases"]) / n < 30
    assert 1 < len(shop["events"]) / n < 60
    assert 0.05 <= (shop["purchases"]["status"] != "completed").mean() <= 0.10
    assert shop["surveys"]["comment"].isna().mean() > 0.5
    assert shop["tickets"]["first_response_at"].isna().any()
    assert shop["ground_truth"]["discount_hunter"].mean() == pytest.approx(0.10, abs=0.02)
    assert 0.05 <= shop["ground_truth"]["support_heavy"].mean() <= 0.10
    # Signups lean towards the first half, so most customers have a long history.
    signup = shop["customers"]["signup_at"]
    assert (signup < START + (END - START) / 2).mean() > 0.6


def test_churn_rate_is_realistic(shop):
    truth = shop["ground_truth"].merge(shop["customers"][["customer_id", "signup_at"]])
    veterans = truth[truth["signup_at"] <= END - 365 * DAY]
    within_year = (veterans["churned_at"] - veterans["signup_at"]) <= 365 * DAY
    assert 0.2 <= within_year.mean() <= 0.4


def test_purchases_are_regular_around_the_usual_gap(shop):
    purchases = shop["purchases"]
    gaps = purchases.groupby("customer_id")["ordered_at"].diff().dt.total_seconds() / 86400
    median_gap = gaps.groupby(purchases["customer_id"]).median().dropna()
    usual = shop["ground_truth"].set_index("customer_id")["usual_gap_days"]
    frequent = purchases["customer_id"].value_counts()
    frequent = frequent[frequent >= 6].index
    ratio = median_gap[frequent] / usual[frequent]
    assert 0.8 <= ratio.median() <= 1.2
    assert np.corrcoef(median_gap[frequent], usual[frequent])[0, 1] > 0.8


def test_traits_show_in_behaviour(shop):
    truth = shop["ground_truth"].set_index("customer_id")
    purchases = shop["purchases"]
    hunter = purchases["customer_id"].map(truth["discount_hunter"])
    discounted = purchases["discount"] > 0
    assert discounted[hunter].mean() > 0.6 > 0.2 > discounted[~hunter].mean()
    tickets = shop["tickets"]["customer_id"].value_counts().reindex(truth.index, fill_value=0)
    heavy = truth["support_heavy"]
    assert tickets[heavy].mean() > 3 * tickets[~heavy].mean()


def test_churned_customers_stop_at_churn(shop):
    purchases, events = shop["purchases"], shop["events"]
    churned = churn_of(shop, purchases)
    assert churned.notna().mean() > 0.1
    completed = purchases["status"] == "completed"
    assert not (completed & (purchases["ordered_at"] > churned)).any()
    logins = events[events["kind"] == "login"]
    assert not (logins["at"] > churn_of(shop, logins)).any()
    # Churners bought regularly until shortly before they left.
    last = purchases.groupby("customer_id")["ordered_at"].max()
    truth = shop["ground_truth"].set_index("customer_id")
    gone = truth.index[truth["churned_at"].notna()].intersection(last.index)
    quiet = (truth.loc[gone, "churned_at"] - last[gone]) / DAY / truth.loc[gone, "usual_gap_days"]
    assert quiet.median() < 1.5


def test_churners_had_slower_support(shop):
    tickets = shop["tickets"]
    hours = (tickets["first_response_at"] - tickets["opened_at"]).dt.total_seconds() / 3600
    per_customer = hours.groupby(tickets["customer_id"]).median()
    gone = shop["ground_truth"].set_index("customer_id")["churned_at"].notna()[per_customer.index]
    assert per_customer[gone].median() > 1.2 * per_customer[~gone].median()
    # outside the backlog, which slows everyone's replies, churners' tickets went bad more often
    tickets = tickets[~in_backlog(tickets)]
    churned = churn_of(shop, tickets).notna()
    assert bad_ticket(tickets)[churned].mean() > 1.3 * bad_ticket(tickets)[~churned].mean()


def test_churners_were_more_often_detractors(shop):
    surveys = shop["surveys"]
    nps = surveys[surveys["kind"] == "nps"]
    churned = churn_of(shop, nps).notna()
    detractors = nps["score"] <= 6
    assert detractors[churned].mean() > 1.3 * detractors[~churned].mean()


def test_flagged_drivers_are_backed_by_raw_data(shop):
    """A driver flag means the matching signal happened shortly before the churn (or end)."""
    truth = shop["ground_truth"]
    moment = truth.set_index("customer_id")["churned_at"].fillna(END)
    tickets, surveys, events = shop["tickets"], shop["surveys"], shop["events"]
    signals = {
        "driver_support": (tickets[bad_ticket(tickets)], "opened_at", 56),
        "driver_detractor": (surveys[detractor(surveys)], "answered_at", 84),
        "driver_disengaged": (events[events["kind"] != "login"], "at", 56),
    }
    for flag, (rows, time, window) in signals.items():
        # Drivers are read at the start of the churn week, up to seven days before churned_at.
        before = moment.reindex(rows["customer_id"]).to_numpy()
        recent = (rows[time].to_numpy() <= before) & (
            rows[time].to_numpy() > before - (window + 7) * DAY
        )
        backed = set(rows["customer_id"][recent])
        flagged = truth.loc[truth[flag], "customer_id"]
        assert len(flagged) > 50, flag
        assert flagged.isin(backed).all(), flag


def test_raw_signals_predict_future_churn(shop):
    """At a cutoff, customers with a recent driver signal churn more in the next 90 days."""
    cutoff = pd.Timestamp("2025-01-01")
    truth = shop["ground_truth"].merge(shop["customers"][["customer_id", "signup_at"]])
    alive = truth[(truth["signup_at"] < cutoff) & ~(truth["churned_at"] < cutoff)]
    churns = (alive["churned_at"] < cutoff + 90 * DAY).to_numpy()

    def recent(rows: pd.DataFrame, time: str, days: int) -> np.ndarray:
        window = rows[(rows[time] < cutoff) & (rows[time] >= cutoff - days * DAY)]
        return alive["customer_id"].isin(window["customer_id"]).to_numpy()

    tickets, surveys, events = shop["tickets"], shop["surveys"], shop["events"]
    # Only what was visible at the cutoff: a ticket still open then counts as unresolved.
    seen = tickets.assign(
        first_response_at=tickets["first_response_at"].where(tickets["first_response_at"] < cutoff),
        resolved_at=tickets["resolved_at"].where(tickets["resolved_at"] < cutoff),
    )
    signals = {
        "support": recent(seen[bad_ticket(seen)], "opened_at", 56),
        "detractor": recent(surveys[detractor(surveys)], "answered_at", 84),
        "disengaged": recent(events[events["kind"] != "login"], "at", 56),
    }
    for name, flag in signals.items():
        assert flag.sum() > 50, name
        assert churns[flag].mean() > 1.5 * churns[~flag].mean(), name


def test_churn_driver_names_an_active_cause_of_each_churner(shop):
    truth = shop["ground_truth"]
    churned = truth["churned_at"].notna()
    assert truth.loc[~churned, "churn_driver"].isna().all()
    named = truth["churn_driver"].notna()
    for family in ("support", "detractor", "pricing", "market"):
        rows = truth["churn_driver"] == family
        assert rows.sum() > 30, family
        assert truth.loc[rows, f"driver_{family}"].all(), family
    causes = truth[[f"driver_{f}" for f in ("support", "detractor", "pricing", "market")]]
    assert (named == (churned & causes.any(axis=1))).all()


def churn_rate_per_year(shop, rows: pd.Series, start: pd.Timestamp, end: pd.Timestamp) -> float:
    """Churns per customer-year at risk in [start, end) among customers where `rows` holds."""
    truth = shop["ground_truth"].merge(shop["customers"], on="customer_id")[rows.to_numpy()]
    enter = truth["signup_at"].clip(lower=start)
    leave = truth["churned_at"].fillna(end).clip(upper=end)
    exposure = ((leave - enter).clip(lower=pd.Timedelta(0)) / DAY).sum() / 365
    churns = truth["churned_at"].between(start, end, inclusive="left").sum()
    return churns / exposure


def test_price_rise_and_competitor_raise_churn_from_their_dates(shop):
    customers = shop["customers"]
    price_rise, competitor = START + (END - START) * 0.5, START + (END - START) * 0.6
    standard, south = customers["plan"] == "standard", customers["region"] == "south"
    for rows, moment in ((standard, price_rise), (south, competitor)):
        before = churn_rate_per_year(shop, rows, START, moment)
        after = churn_rate_per_year(shop, rows, moment, END)
        others_after = churn_rate_per_year(shop, ~rows, moment, END)
        assert after > 2 * before and after > 2 * others_after


def test_support_backlog_makes_first_replies_slow_for_some_weeks(shop):
    tickets = shop["tickets"]
    hours = (tickets["first_response_at"] - tickets["opened_at"]).dt.total_seconds() / 3600
    backlog = in_backlog(tickets)
    slow = hours > 24
    assert slow[backlog].mean() > 0.5 > 0.3 > slow[~backlog].mean()
