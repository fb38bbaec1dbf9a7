"""Plausible but doubtful data: warnings that `validate` prints, and how tickets end."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from churnlens.cli import app
from churnlens.config import FeatureConfig, load_config
from churnlens.data.contract import load_tables
from churnlens.features.engine import active_features, build_features

runner = CliRunner()


def test_validate_prints_warnings_and_still_passes(shop):
    shop.tables["events"]["source"] = ["web", "app"]
    shop.tables["events"].loc[0, "at"] = "2023-12-30"  # c1 signed up on 2024-01-01
    shop.tables["surveys"].loc[1, "answered_at"] = "2024-01-02"  # c2 signed up on 2024-01-05
    result = runner.invoke(app, ["validate", "-c", str(shop.write())])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert lines == [
        "warning: purchases.status: refunded or returned with no refunded_at: counted at no "
        "cutoff, even before the refund (the status is as of the data export) — 1 row(s) "
        "break it: row 3 (order_id o3)",
        "warning: tickets.resolved_at: ticket never ends (no resolved_at or closed_at): open at "
        "every later cutoff — 1 row(s) break it: row 2 (ticket_id t2)",
        "warning: events.source: not a column of events, ignored (known: customer_id, at, kind; "
        "map yours in data.events.columns)",
        "warning: surveys.answered_at: before the customer's signup day (customers.signup_at) — "
        "1 row(s) break it: row 2 (response_id s2)",
        "warning: events.at: before the customer's signup day (customers.signup_at) — "
        "1 row(s) break it: row 1",
        "warning: customers.region: attributes are taken as of the data export: a value changed "
        "later reaches every past cutoff",
        "warning: surveys: 1 row(s) after the data end 2024-02-15 (the last completed purchase, "
        "or cancellation for contractual churn): no label reaches them",
        "warning: config cutoffs.dates: 2024-02-01 leave(s) less than the 90-day label window "
        "before the data end (2024-02-15, the last purchase); the last usable cutoff is "
        "2023-11-17",
    ]


def test_warning_counts_per_table_in_the_summary(shop):
    shop.tables["purchases"]["coupon"] = ["a", "b", "c", "d"]
    summary = runner.invoke(app, ["validate", "-c", str(shop.write())])
    assert summary.exit_code == 0
    tables = load_tables(load_config(shop.root / "config.yaml").data)
    counts = {w.table: 0 for w in tables.warnings}
    for warning in tables.warnings:
        counts[warning.table] += 1
    assert counts == {"customers": 1, "purchases": 2, "tickets": 1}  # coupon; refund time
    assert "coupon" not in tables.purchases.columns


def test_event_kinds_are_one_family_whatever_their_case(shop):
    shop.tables["events"] = pd.DataFrame(
        {
            "customer_id": ["c1", "c1", "c2", "c3"],
            "at": ["2024-01-12", "2024-01-13", "2024-01-22", "2024-02-10"],
            "kind": ["login", "LOGIN", " Login ", "Cart_Abandoned"],
        }
    )
    tables = load_tables(load_config(shop.write()).data)
    assert tables.events["kind"].tolist() == ["login", "login", "login", "cart_abandoned"]
    names = {f.name for f in active_features(tables, FeatureConfig(windows_days=[30], btyd=False))}
    assert {"login_30d", "cart_abandoned_30d"} <= names
    assert not any("LOGIN" in name or "Login" in name for name in names)
    spine = pd.DataFrame({"customer_id": ["c1"], "cutoff": [pd.Timestamp("2024-02-01")]})
    features = build_features(tables, spine, FeatureConfig(windows_days=[30], btyd=False))
    assert features["login_30d"].tolist() == [2]


def _open_tickets(shop, closed_at):
    shop.tables["tickets"]["closed_at"] = closed_at
    tables = load_tables(load_config(shop.write()).data)
    spine = pd.DataFrame({"customer_id": ["c1", "c2"], "cutoff": [pd.Timestamp("2024-02-01")] * 2})
    features = build_features(tables, spine, FeatureConfig(windows_days=[30], btyd=False))
    return features["open_tickets"].tolist(), tables.warnings


def test_closed_at_ends_a_ticket_like_resolved_at(shop):
    # t1 (c1) resolved 2024-01-12; t2 (c2) has no resolution
    assert _open_tickets(shop, ["", ""])[0] == [0, 1]
    counts, warnings = _open_tickets(shop, ["", "2024-01-25"])
    assert counts == [0, 0]  # closed before the cutoff: no longer open
    assert not any("never ends" in str(w) for w in warnings)
    assert _open_tickets(shop, ["", "2024-02-05"])[0] == [0, 1]  # closed after the cutoff


def test_a_ticket_closed_without_resolved_at_column(shop):
    shop.tables["tickets"] = shop.tables["tickets"].drop(columns="resolved_at")
    assert _open_tickets(shop, ["2024-01-12", ""])[0] == [0, 1]


def test_tickets_without_any_end_column_are_reported(shop):
    shop.tables["tickets"] = shop.tables["tickets"].drop(columns="resolved_at")
    tables = load_tables(load_config(shop.write()).data)
    assert any(
        w.table == "tickets" and "no resolved_at or closed_at column" in str(w)
        for w in tables.warnings
    )
    assert "open_tickets" not in {f.name for f in active_features(tables, FeatureConfig())}


def _reopen_rate(shop, reopened_at):
    if reopened_at is not None:
        shop.tables["tickets"]["reopened_at"] = ["", reopened_at]
    tables = load_tables(load_config(shop.write()).data)
    spine = pd.DataFrame({"customer_id": ["c2"], "cutoff": [pd.Timestamp("2024-02-01")]})
    features = build_features(tables, spine, FeatureConfig(windows_days=[30], btyd=False))
    return features["reopen_rate"].iat[0]


def test_a_reopening_after_the_cutoff_does_not_reach_it(shop):
    # t2 (c2, opened 2024-01-21) was reopened once
    assert _reopen_rate(shop, None) == 1.0  # no time given: counted at every cutoff, as before
    assert _reopen_rate(shop, "2024-01-25") == 1.0
    assert _reopen_rate(shop, "2024-02-10") == 0.0  # reopened after the cutoff


def test_a_refund_time_is_read_and_only_untimed_refunds_are_warned_about(shop):
    shop.tables["purchases"]["status"] = ["completed", "returned", "Refunded", "completed"]
    shop.tables["purchases"]["refunded_at"] = ["", "2024-02-20", "", ""]
    tables = load_tables(load_config(shop.write()).data)
    assert tables.purchases["refunded_at"].dtype == "datetime64[us]"
    assert tables.purchases["refunded_at"].notna().tolist() == [False, True, False, False]
    untimed = [str(w) for w in tables.warnings if "no refunded_at" in str(w)]
    assert len(untimed) == 1 and "1 row(s) break it: row 3 (order_id o3)" in untimed[0]
