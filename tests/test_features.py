"""Point-in-time features: hand-computed values per family, missing sources, and no leakage."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from churnlens.config import FeatureConfig
from churnlens.data.contract import with_ticket_times
from churnlens.errors import ChurnlensError
from churnlens.features.btyd import BTYD_FEATURES
from churnlens.features.engine import active_features, build_features, write_features
from shops import make_tables, refunded

CUTOFF = pd.Timestamp("2024-04-01")
CONFIG = FeatureConfig(windows_days=[30, 90], btyd=False)


def literal_shop(**drop):
    tables = dict(
        customers={
            "customer_id": ["a", "b", "z"],
            "signup_at": ["2024-01-01", "2024-02-01", "2024-03-01"],
            "region": ["north", "south", "north"],
        },
        purchases={
            "order_id": ["o1", "o2", "o3", "o4", "o5", "o6"],
            "customer_id": ["a", "a", "a", "a", "a", "b"],
            "ordered_at": [
                "2024-01-01",
                "2024-01-31",
                "2024-03-01",
                "2024-03-15",
                "2024-04-01",
                "2024-03-21",
            ],
            "amount": [10, 20, 30, 40, 999, 50],
            "status": ["completed", "completed", "completed", "refunded", "completed", "completed"],
            "discount": [0, 5, 0, 0, 0, 0],
            "category": ["books", "music", "books", "toys", "games", "books"],
            "channel": ["web", "app", "app", "web", "store", "web"],
        },
        tickets={
            "ticket_id": ["t1", "t2", "t3"],
            "customer_id": ["a", "a", "a"],
            "opened_at": ["2024-03-10", "2024-03-25", "2024-03-30"],
            "first_response_at": ["2024-03-10 10:00", "2024-03-25 04:00", "2024-04-01"],
            "resolved_at": ["2024-03-12", "2024-04-02", None],
            "reopened": [1, 0, 0],
        },
        surveys={
            "response_id": ["s1", "s2", "s3", "s4", "s5", "s6"],
            "customer_id": ["a"] * 6,
            "answered_at": [
                "2024-02-01",
                "2024-03-20",
                "2024-03-21",
                "2024-03-22",
                "2024-03-23",
                "2024-04-05",
            ],
            "kind": ["nps", "nps", "csat", "csat", "ces", "nps"],
            "score": [8, 4, 2, 4, 6, 10],
        },
        events={
            "customer_id": ["a", "a", "a", "a"],
            "at": ["2024-03-20", "2024-01-15", "2024-03-28", "2024-04-02"],
            "kind": ["login", "login", "cart_abandoned", "newsletter_unsubscribe"],
        },
    )
    for name in drop:
        tables[name] = None
    return make_tables(**tables)


def spine(customers=("a", "b", "z"), cutoff=CUTOFF):
    return pd.DataFrame({"customer_id": list(customers), "cutoff": [cutoff] * len(customers)})


@pytest.fixture(scope="module")
def features():
    """The features at CUTOFF, built with a second, earlier cutoff: over several cutoffs the
    purchase features come from running totals, at one from the SQL statement (engine._frame);
    tests that build at CUTOFF alone compare the two."""
    both = pd.concat([spine(), spine(cutoff=CUTOFF - pd.Timedelta(days=20))], ignore_index=True)
    out = build_features(literal_shop(), both, CONFIG)
    return out[out["cutoff"] == CUTOFF].set_index("customer_id")


EXPECTED_A = {
    # purchases: o5 at the cutoff and the refunded o4 never count as orders
    "tenure_days": 91,
    "recency_days": 31,
    "days_since_first_purchase": 91,
    "orders_total": 3,
    "spend_total": 60,
    "orders_30d": 0,
    "spend_30d": 0,
    "orders_90d": 2,
    "spend_90d": 50,
    "orders_trend_30d": -1,
    "spend_trend_30d": -30,
    "gap_mean_days": 30,
    "gap_std_days": 0,
    "last_gap_days": 30,
    "discount_share": 1 / 3,
    "refund_rate": 1 / 4,
    "categories_bought": 2,
    "channels_used": 2,
    "last_channel": "app",
    "overdue_ratio": 31 / 30,
    "overdue_last_gap": 31 / 30,
    "avg_order_value": 20,
    # support: t2 is resolved only after the cutoff and t3 answered at it
    "tickets_total": 3,
    "tickets_30d": 3,
    "open_tickets": 2,
    "awaiting_first_response": 1,
    "first_response_hours_mean": 7,
    "resolution_hours_mean": 48,
    "reopen_rate": 1 / 3,
    "days_since_last_ticket": 2,
    "tickets_per_order": 1,
    # t2 (opened 03-25) and t3 (03-30) are open at the cutoff; t3 has no reply before it
    "oldest_open_ticket_days": 7,
    "first_reply_wait_hours": 48,
    "slow_replies_30d": 1,  # t3 has waited 48 h > 24 h; t1 was answered in 10 h, t2 in 4 h
    "slow_replies_90d": 1,
    "days_since_slow_reply": 2,  # t3, opened 03-30
    "reopened_tickets_90d": 1,
    # surveys: the NPS 10 after the cutoff is unseen
    "last_nps": 4,
    "nps_category": "detractor",
    "nps_change": -4,
    "csat_mean": 3,
    "last_ces": 6,
    "high_effort": 1,
    "high_effort_90d": 1,  # CES 6 on 03-23; high effort is 5+ on the 7-point scale
    "days_since_detractor": 12,  # the NPS 4 on 03-20
    "last_csat": 4,
    "csat_change": 2,
    "days_since_last_answer": 9,
    "survey_answers": 5,
    # events: the unsubscribe after the cutoff is unseen
    "login_30d": 1,
    "login_90d": 2,
    "days_since_login": 12,
    "cart_abandoned_30d": 1,
    "days_since_cart_abandoned": 4,
    "newsletter_unsubscribe_90d": 0,
    "days_since_newsletter_unsubscribe": math.nan,
    "region": "north",
}


@pytest.mark.parametrize("name", sorted(EXPECTED_A))
def test_hand_computed_values(features, name):
    actual, expected = features.loc["a", name], EXPECTED_A[name]
    if isinstance(expected, str):
        assert actual == expected
    elif math.isnan(expected):
        assert pd.isna(actual)
    else:
        assert actual == pytest.approx(expected)


def test_customer_without_tickets_or_surveys_gets_zero_counts_and_nan_measures(features):
    b = features.loc["b"]
    assert (b["tickets_total"], b["open_tickets"], b["survey_answers"], b["login_30d"]) == (
        0,
        0,
        0,
        0,
    )
    for name in (
        "first_response_hours_mean",
        "last_nps",
        "days_since_last_ticket",
        "nps_category",
        "gap_mean_days",
        "overdue_ratio",
    ):
        assert pd.isna(b[name]), name
    assert b["tickets_per_order"] == 0 and b["tenure_days"] == 60


def test_customer_without_tickets_has_no_open_ticket_age_and_no_slow_reply(features):
    b = features.loc["b"]
    assert (b["slow_replies_30d"], b["slow_replies_90d"], b["reopened_tickets_90d"]) == (0, 0, 0)
    assert np.isnan(b["days_since_slow_reply"])
    assert pd.isna(b["oldest_open_ticket_days"]) and pd.isna(b["first_reply_wait_hours"])
    assert pd.isna(b["days_since_detractor"]) and b["high_effort_90d"] == 0


def test_slow_reply_threshold_comes_from_the_config():
    config = FeatureConfig(windows_days=[30, 90], slow_reply_hours=8, btyd=False)
    frame = build_features(literal_shop(), spine(("a",)), config).set_index("customer_id")
    assert frame.loc["a", "slow_replies_30d"] == 2  # now t1's 10-hour reply is slow too


def test_every_feature_has_a_role_and_family_and_declared_ones_win():
    tables = literal_shop()
    tables.events.loc[0, "kind"] = "delivery_late"
    config = FeatureConfig(
        windows_days=[30, 90],
        event_roles={"delivery_late": "driver"},
        attribute_roles={"region": "driver"},
        attribute_families={"region": "market"},
    )
    registry = {f.name: f for f in active_features(tables, config)}
    assert all(f.role in ("driver", "sign", "context") and f.family for f in registry.values())
    assert (registry["delivery_late_30d"].role, registry["delivery_late_30d"].family) == (
        "driver",
        "delivery_late",
    )
    assert (registry["region"].role, registry["region"].family) == ("driver", "market")
    assert registry["login_30d"].role == "sign" and registry["recency_days"].role == "sign"
    assert registry["open_tickets"].role == "driver" and registry["last_nps"].role == "driver"
    assert registry["tenure_days"].role == "context"
    default = {f.name: f for f in active_features(tables, CONFIG)}
    assert default["region"].role == "context" and default["region"].family == "region"


def test_customer_without_purchases_has_nan_ratios(features):
    z = features.loc["z"]
    assert z["orders_total"] == 0 and z["spend_total"] == 0
    assert pd.isna(z["recency_days"]) and pd.isna(z["avg_order_value"])
    assert pd.isna(z["tickets_per_order"])


def test_fixed_dtypes_and_column_order(features):
    assert features["orders_total"].dtype == "int64"
    assert features["recency_days"].dtype == "float64"
    assert isinstance(features["nps_category"].dtype, pd.CategoricalDtype)
    assert isinstance(features["region"].dtype, pd.CategoricalDtype)
    names = [f.name for f in active_features(literal_shop(), CONFIG)]
    assert list(features.columns) == ["cutoff", *names]


def test_optional_tables_absent_means_their_features_absent():
    tables = literal_shop(tickets=True, surveys=True, events=True)
    frame = build_features(tables, spine(), CONFIG)
    for name in ("tickets_total", "last_nps", "login_30d", "tickets_per_order", "high_effort"):
        assert name not in frame.columns
    assert frame.set_index("customer_id").loc["a", "orders_total"] == 3


def test_an_empty_spine_gives_no_rows_and_every_column():
    """No cutoff at all (a spine filtered down to nothing) is not an error: the statement
    and the BTYD summary each get an empty relation of cutoffs."""
    empty = spine(())
    empty["cutoff"] = empty["cutoff"].astype("datetime64[us]")
    config = FeatureConfig(windows_days=[30, 90])
    out = build_features(literal_shop(), empty, config, horizon_days=90)
    names = [f.name for f in active_features(literal_shop(), config)]
    assert out.empty
    assert list(out.columns) == ["customer_id", "cutoff", *names, *BTYD_FEATURES]


def test_a_spine_in_a_time_zone_is_refused_with_the_way_out():
    """The tables' times carry no time zone; a cutoff in one failed deep in pandas."""
    frame = spine(("a",), CUTOFF)
    frame["cutoff"] = frame["cutoff"].dt.tz_localize("Europe/Berlin")
    with pytest.raises(
        ChurnlensError,
        match=r"spine: cutoff is in time zone Europe/Berlin.*"
        r"tz_localize\(None\)",
    ):
        build_features(literal_shop(), frame, CONFIG)


@pytest.mark.parametrize(
    ("cutoffs", "message"),
    [
        (["2024-06-01"], r"spine: cutoff must hold times, not string values \(e.g. '2024-06-01'\)"),
        (
            [pd.Timestamp("2024-06-01", tz="UTC"), pd.Timestamp("2024-06-01", tz="Asia/Tokyo")],
            r"spine: cutoff is in time zone Asia/Tokyo, UTC.*tz_localize\(None\)",
        ),
    ],
    ids=["text", "time zones on the values"],
)
def test_a_spine_whose_cutoffs_are_not_plain_times_is_refused(cutoffs, message):
    """Text failed deep in DuckDB (a binder error on epoch(VARCHAR)), and a column of times
    in several time zones (an object column) passed the dtype's check and failed in a
    conversion."""
    frame = pd.DataFrame({"customer_id": ["a"] * len(cutoffs), "cutoff": cutoffs})
    with pytest.raises(ChurnlensError, match=message):
        build_features(literal_shop(), frame, CONFIG)


def test_a_spine_of_dates_gives_the_features_of_midnight_cutoffs():
    """Date objects are midnights: the object-column check lets them through."""
    dates = spine(("a",), CUTOFF).assign(cutoff=[CUTOFF.date()])
    expected = build_features(literal_shop(), spine(("a",), CUTOFF), CONFIG)
    pd.testing.assert_frame_equal(build_features(literal_shop(), dates, CONFIG), expected)


def test_extra_spine_columns_ride_along_and_rows_are_sorted():
    frame = spine(("z", "a"), CUTOFF)
    frame = pd.concat([frame, spine(("a",), pd.Timestamp("2024-03-01"))], ignore_index=True)
    frame["churned"] = [True, False, True]
    out = build_features(literal_shop(), frame, CONFIG)
    assert list(out[["customer_id", "churned"]].itertuples(index=False, name=None)) == [
        ("a", True),
        ("a", False),
        ("z", True),
    ]
    assert out.columns[-1] == "churned"
    assert out["orders_total"].tolist() == [2, 3, 0]  # o3 is on 2024-03-01 itself


def test_a_customer_attribute_named_cid_is_not_taken_for_the_engines_customer_key():
    tables = literal_shop()
    tables.customers["cid"] = ["c1", "c2", "c3"]
    tables.attributes.append("cid")
    out = build_features(tables, spine(("a", "z")), CONFIG)
    assert out["orders_total"].tolist() == [3, 0]
    assert out["cid"].astype(str).tolist() == ["c1", "c3"]


@pytest.mark.parametrize("name", ["cutoff", "churned", "orders_90d", "bgnbd_p_alive"])
def test_an_attribute_named_as_a_column_the_engine_adds_is_refused(name):
    tables = literal_shop()
    tables.customers[name] = ["x", "y", "x"]
    tables.attributes.append(name)
    with pytest.raises(ChurnlensError, match=f"attribute column.s. {name} have the name"):
        build_features(tables, spine(), CONFIG)


@pytest.mark.parametrize("kinds", [["orders"], ["log in", "log_in"]])
def test_event_kinds_whose_feature_names_are_taken_are_refused(kinds):
    tables = literal_shop()
    tables.events["kind"] = (kinds * 4)[:4]
    with pytest.raises(ChurnlensError, match=f"kind.s. {kinds[-1]!r} give feature names"):
        build_features(tables, spine(), CONFIG)


def test_a_configured_kind_counts_the_data_kind_of_the_same_name_and_too_many_are_refused():
    tables = literal_shop()
    tables.events["kind"] = ["page view", "login", "page view", "page view"]
    config = CONFIG.model_copy(update={"event_kinds": ["page_view", "unsubscribe"]})
    out = build_features(tables, spine(("a",)), config)
    assert out["page_view_90d"].tolist() == [2]  # the view of 2024-04-02 is after the cutoff
    assert out["unsubscribe_90d"].tolist() == [0] and "login_90d" not in out.columns
    tables.events = pd.concat([tables.events] * 8, ignore_index=True)
    tables.events["kind"] = [f"page {i}" for i in range(len(tables.events))]
    with pytest.raises(ChurnlensError, match=r"32 kinds \(at most 30 .*features.event_kinds"):
        build_features(tables, spine(), CONFIG)


# o4 (a's toys order of 2024-03-15, 40, via web) is refunded; with refunded_at it was a
# completed purchase until then. At the cutoff 2024-04-01 a refund at or after it is unseen.
AT_CUTOFF_WITH_O4 = {
    "orders_total": 4,
    "spend_total": 100,
    "recency_days": 17,
    "orders_30d": 1,
    "spend_30d": 40,
    "gap_mean_days": 74 / 3,  # 30, 30, 14
    "last_gap_days": 14,
    "refund_rate": 0,
    "discount_share": 1 / 4,
    "categories_bought": 3,
    "last_channel": "web",
    "avg_order_value": 25,
}
# At 2024-05-01 the refund of 2024-04-10 is seen: o1, o2, o3 and o5 (999 via store) count.
A_MONTH_LATER = {
    "orders_total": 4,
    "spend_total": 1059,
    "recency_days": 30,
    "gap_mean_days": 91 / 3,  # 30, 30, 31
    "last_gap_days": 31,
    "refund_rate": 1 / 5,
    "last_channel": "store",
}


def _refunded_o4(at):
    return refunded(literal_shop(), 3, at)


def _values(frame, customer, cutoff, names):
    row = frame[(frame["customer_id"] == customer) & (frame["cutoff"] == cutoff)].iloc[0]
    return {name: row[name] for name in names}


@pytest.mark.parametrize("refunded_at", ["2024-04-01", "2024-04-10"])
def test_a_purchase_refunded_after_the_cutoff_is_completed_at_it(refunded_at):
    later = pd.Timestamp("2024-05-01")
    frame = pd.concat([spine(("a", "b")), spine(("a",), later)], ignore_index=True)
    out = build_features(_refunded_o4(refunded_at), frame, CONFIG)
    assert _values(out, "a", CUTOFF, AT_CUTOFF_WITH_O4) == pytest.approx(AT_CUTOFF_WITH_O4)
    assert _values(out, "b", CUTOFF, ["orders_total"]) == {"orders_total": 1}
    if refunded_at == "2024-04-10":
        assert _values(out, "a", later, A_MONTH_LATER) == pytest.approx(A_MONTH_LATER)


def test_a_purchase_refunded_before_the_cutoff_is_a_refund_at_it(features):
    out = build_features(_refunded_o4("2024-03-31 23:59:59"), spine(), CONFIG)
    # as EXPECTED_A; at one cutoff from the SQL statement, the fixture's from running totals (the
    # category levels are those each frame has)
    levels = {name: "object" for name in out.select_dtypes("category")}
    pd.testing.assert_frame_equal(
        out.set_index("customer_id").astype(levels), features.astype(levels), check_exact=True
    )


# --- property: nothing at or after the cutoff reaches that cutoff's features -----------------

DAYS = 120
CUSTOMERS = ["c0", "c1", "c2", "c3"]
BASE = pd.Timestamp("2024-01-01")


def _day(offset_hours: int) -> pd.Timestamp:
    return BASE + pd.Timedelta(hours=offset_hours)


hours = st.integers(0, DAYS * 24)
purchase = st.tuples(
    st.sampled_from(CUSTOMERS),
    hours,
    st.floats(0, 500),
    st.sampled_from(["completed", "completed", "refunded", "returned"]),
    st.sampled_from([0.0, 5.0]),
    st.sampled_from(["x", "y", "z"]),
    st.sampled_from(["web", "app"]),
    st.one_of(st.none(), st.integers(0, 60 * 24)),  # a refund's time, hours after the order
)
ticket = st.tuples(
    st.sampled_from(CUSTOMERS),
    hours,
    st.one_of(st.none(), st.integers(0, 200)),
    st.one_of(st.none(), st.integers(0, 400)),
    st.integers(0, 2),
)
survey = st.tuples(
    st.sampled_from(CUSTOMERS), hours, st.sampled_from(["nps", "csat", "ces"]), st.integers(1, 5)
)
event = st.tuples(st.sampled_from(CUSTOMERS), hours, st.sampled_from(["login", "cart_abandoned"]))


def _tables(purchases, tickets, surveys, events):
    return make_tables(
        customers={"customer_id": CUSTOMERS, "signup_at": [BASE] * len(CUSTOMERS)},
        purchases={
            "order_id": [f"o{i}" for i in range(len(purchases))],
            "customer_id": [p[0] for p in purchases],
            "ordered_at": [_day(p[1]) for p in purchases],
            "amount": [p[2] for p in purchases],
            "status": [p[3] for p in purchases],
            "discount": [p[4] for p in purchases],
            "category": [p[5] for p in purchases],
            "channel": [p[6] for p in purchases],
            "refunded_at": [
                _day(p[1] + p[7]) if p[3] != "completed" and p[7] is not None else None
                for p in purchases
            ],
        },
        tickets={
            "ticket_id": [f"t{i}" for i in range(len(tickets))],
            "customer_id": [t[0] for t in tickets],
            "opened_at": [_day(t[1]) for t in tickets],
            "first_response_at": [None if t[2] is None else _day(t[1] + t[2]) for t in tickets],
            "resolved_at": [None if t[3] is None else _day(t[1] + t[3]) for t in tickets],
            "reopened": [t[4] for t in tickets],
        },
        surveys={
            "response_id": [f"s{i}" for i in range(len(surveys))],
            "customer_id": [s[0] for s in surveys],
            "answered_at": [_day(s[1]) for s in surveys],
            "kind": [s[2] for s in surveys],
            "score": [s[3] for s in surveys],
        },
        events={
            "customer_id": [e[0] for e in events],
            "at": [_day(e[1]) for e in events],
            "kind": [e[2] for e in events],
        },
    )


def _after(rows, cutoff_hours, keep, new_rows, shift):
    """Rows before the cutoff stay; later ones are dropped, moved or added."""
    before = [r for r in rows if r[1] < cutoff_hours]
    later = [r for i, r in enumerate(rows) if r[1] >= cutoff_hours and keep[i % len(keep)]]
    later = [(r[0], r[1] + shift) + tuple(r[2:]) for r in later]
    moved = [(r[0], cutoff_hours + r[1] % 500) + tuple(r[2:]) for r in new_rows]
    return before + later + moved


def changed_after_cutoff(sources, cutoff_hours, keep, new, shift):
    """The tables of `sources` (purchases, tickets, surveys, events) with every row at or after
    the cutoff dropped, moved or added (`_after`), later ticket replies and resolutions moved
    too, and refunds at or after the cutoff moved, or undone where `keep` says: nothing a
    cutoff's features may see has changed."""
    changed = _tables(
        *(_after(rows, cutoff_hours, keep, new[i], shift) for i, rows in enumerate(sources))
    )
    for column in ("first_response_at", "resolved_at"):
        late = changed.tickets[column] >= _day(cutoff_hours)
        changed.tickets.loc[late, column] += pd.Timedelta(hours=shift)
    purchases = changed.purchases
    late = (purchases["refunded_at"] >= _day(cutoff_hours)).to_numpy()
    undone = late & ~np.resize(keep, len(purchases))
    purchases.loc[late, "refunded_at"] += pd.Timedelta(hours=shift)
    purchases.loc[undone, ["status", "refunded_at"]] = ["completed", pd.NaT]
    changed.tickets = with_ticket_times(changed.tickets)
    return changed


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(  # c0's refund at 100 h is undone, c1's at 55 h moved; c2's at 30 h is seen at 48 h
    purchases=[
        ("c0", 0, 10.0, "refunded", 0.0, "x", "web", 100),
        ("c1", 5, 20.0, "returned", 5.0, "y", "app", 50),
        ("c2", 10, 30.0, "refunded", 0.0, "z", "web", 20),
        ("c0", 30, 40.0, "completed", 0.0, "y", "app", None),
    ],
    tickets=[],
    surveys=[],
    events=[],
    new=([], [], [], []),
    cutoff_day=2,
    keep=[False, True],
    shift=7,
)
@given(
    purchases=st.lists(purchase, min_size=1, max_size=25),
    tickets=st.lists(ticket, max_size=10),
    surveys=st.lists(survey, max_size=10),
    events=st.lists(event, max_size=10),
    new=st.tuples(
        st.lists(purchase, max_size=5),
        st.lists(ticket, max_size=3),
        st.lists(survey, max_size=3),
        st.lists(event, max_size=3),
    ),
    cutoff_day=st.integers(1, DAYS),
    keep=st.lists(st.booleans(), min_size=1, max_size=4),
    shift=st.integers(0, 300),
)
def test_rows_at_or_after_the_cutoff_never_change_its_features(
    purchases, tickets, surveys, events, new, cutoff_day, keep, shift
):
    cutoff_hours = cutoff_day * 24
    config = FeatureConfig(windows_days=[7, 30], event_kinds=["login", "cart_abandoned"])
    # two cutoffs, so that the purchase features come from running totals (engine._frame)
    frame = pd.concat(
        [spine(CUSTOMERS, _day(cutoff_hours - 72)), spine(CUSTOMERS, _day(cutoff_hours))]
    )
    original = build_features(_tables(purchases, tickets, surveys, events), frame, config, None, 30)
    changed = changed_after_cutoff(
        (purchases, tickets, surveys, events), cutoff_hours, keep, new, shift
    )
    pd.testing.assert_frame_equal(original, build_features(changed, frame, config, None, 30))


def test_btyd_features_without_the_horizon_are_refused_not_left_out(tmp_path):
    """A model trained with BTYD features must find them at scoring: no silent omission."""
    config = FeatureConfig(windows_days=[30, 90])
    for build in (
        lambda: build_features(literal_shop(), spine(), config),
        lambda: write_features(literal_shop(), spine(), config, tmp_path / "f.parquet"),
    ):
        with pytest.raises(ChurnlensError, match="features.btyd.*horizon"):
            build()
    assert not (tmp_path / "f.parquet").exists()
    with_horizon = build_features(literal_shop(), spine(), config, None, 30)
    assert {"bgnbd_p_alive", "bgnbd_expected_purchases"} <= set(with_horizon.columns)


def test_a_declared_attribute_the_customers_table_lacks_is_refused():
    """A misspelt `plann: driver` left the real plan column context in silence."""
    config = CONFIG.model_copy(update={"attribute_roles": {"regoin": "driver"}})
    with pytest.raises(ChurnlensError, match=r"attribute\(s\) regoin are no column.*region"):
        build_features(literal_shop(), spine(), config)


def test_a_named_event_kind_absent_from_the_data_is_warned_about(caplog):
    config = CONFIG.model_copy(update={"event_kinds": ["login", "logn"]})
    out = build_features(literal_shop(), spine(), config)
    assert (out["logn_30d"] == 0).all()
    assert "event kind(s) logn named in the config do not occur" in caplog.text


def test_the_feature_list_a_caller_has_is_built_and_not_made_again(caplog):
    """Scoring hands over the list it explains with: built as given, warnings said once."""
    config = CONFIG.model_copy(update={"event_kinds": ["login", "logn"]})
    tables = literal_shop()
    chosen = [f for f in active_features(tables, config) if f.source != "events"]
    assert caplog.text.count("logn named in the config") == 1
    out = build_features(tables, spine(), config, features=chosen)
    assert caplog.text.count("logn named in the config") == 1
    assert [c for c in out.columns if c not in ("customer_id", "cutoff")] == [
        f.name for f in chosen
    ]
