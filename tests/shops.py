"""Tiny in-memory shops for feature and label tests, with contract dtypes."""

from __future__ import annotations

import pandas as pd

from churnlens.data.contract import with_ticket_times
from churnlens.data.tables import Tables


def ts(values) -> pd.Series:
    return pd.Series(pd.to_datetime(values, format="ISO8601"), dtype="datetime64[us]")


def refunded(tables: Tables, row: int, at) -> Tables:
    """`tables` with purchase `row` (a position) refunded at `at`, no other refund time."""
    times = pd.Series(pd.NaT, index=tables.purchases.index, dtype="datetime64[us]")
    times.iloc[row] = pd.Timestamp(at)
    tables.purchases["refunded_at"] = times
    return tables


def make_tables(customers, purchases, tickets=None, surveys=None, events=None) -> Tables:
    """Tables from plain dicts of lists, converted to the dtypes load_tables produces."""
    times = (
        "signup_at",
        "cancelled_at",
        "ordered_at",
        "opened_at",
        "first_response_at",
        "resolved_at",
        "closed_at",
        "reopened_at",
        "refunded_at",
        "answered_at",
        "at",
    )
    frames = {}
    for name, raw in dict(
        customers=customers, purchases=purchases, tickets=tickets, surveys=surveys, events=events
    ).items():
        if raw is None:
            continue
        frame = pd.DataFrame(raw)
        for column in frame.columns:
            if column in times:
                frame[column] = ts(frame[column])
            elif column in ("amount", "discount", "score"):
                frame[column] = frame[column].astype("float64")
            elif column == "reopened":
                frame[column] = frame[column].astype("Int64")
            else:
                frame[column] = frame[column].astype("str")
        frames[name] = with_ticket_times(frame) if name == "tickets" else frame
    known = {"customer_id", "signup_at", "cancelled_at"}
    attributes = [c for c in frames["customers"].columns if c not in known]
    return Tables(**frames, attributes=attributes)
