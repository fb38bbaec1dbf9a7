"""Churn labels and populations at cutoffs (see docs/concepts.md, Labels).

A cutoff `t` splits past from future: who is in the population depends only on rows before
`t`, whether they churned only on rows in `[t, t + horizon)`. A label window that runs past
the end of the data would make customers look retained, so training cutoffs stop at
`end of data − horizon` and an explicit cutoff beyond that is refused. A cutoff at or before
the first row of data has no one to label, so it is refused too.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd

from churnlens.config import ChurnConfig, CutoffConfig
from churnlens.data.contract import SCHEMAS, Tables
from churnlens.errors import ChurnlensError

SPINE_COLUMNS = ["customer_id", "cutoff"]


def data_end(tables: Tables) -> pd.Timestamp:
    """The latest timestamp in any input table: the data are observed up to here."""
    ends = [frame[SCHEMAS[name].time_column].max() for name, frame in tables.present().items()]
    if "cancelled_at" in tables.customers.columns:
        ends.append(tables.customers["cancelled_at"].max())
    return max(end for end in ends if pd.notna(end))


def data_start(tables: Tables) -> pd.Timestamp:
    """The earliest timestamp in any input table: nothing is known before it."""
    starts = [frame[SCHEMAS[name].time_column].min() for name, frame in tables.present().items()]
    return min(start for start in starts if pd.notna(start))


def _refuse_before_data(tables: Tables, dates: list[pd.Timestamp]) -> list[pd.Timestamp]:
    start = data_start(tables)
    early = [d.date().isoformat() for d in dates if d <= start]
    if early:
        shown = ", ".join(early[:5]) + (f" and {len(early) - 5} more" if len(early) > 5 else "")
        raise ChurnlensError(
            f"config cutoffs: {shown} at or before the start of the data ({start:%Y-%m-%d}): "
            "no customer has any history there; move the cutoffs into the data"
        )
    return dates


def training_cutoffs(
    tables: Tables, cutoffs: CutoffConfig, churn: ChurnConfig
) -> list[pd.Timestamp]:
    """The configured cutoffs whose whole label window lies inside the data."""
    last_allowed = data_end(tables).normalize() - pd.Timedelta(days=churn.horizon_days)
    if cutoffs.dates:
        dates = [pd.Timestamp(day) for day in sorted(set(cutoffs.dates))]
        late = [d.date().isoformat() for d in dates if d > last_allowed]
        if late:
            raise ChurnlensError(
                f"config cutoffs.dates: {', '.join(late)} leave(s) less than the "
                f"{churn.horizon_days}-day label window before the data end "
                f"({data_end(tables):%Y-%m-%d}); the last usable cutoff is {last_allowed:%Y-%m-%d}"
            )
        return _refuse_before_data(tables, dates)
    first_purchase = tables.purchases["ordered_at"].min().normalize()
    start = (
        pd.Timestamp(cutoffs.start)
        if cutoffs.start
        else first_purchase + pd.Timedelta(days=churn.active_window_days)
    )
    end = min(pd.Timestamp(cutoffs.end), last_allowed) if cutoffs.end else last_allowed
    dates = list(pd.date_range(start, end, freq=f"{cutoffs.step_days}D")) if start <= end else []
    if not dates:
        raise ChurnlensError(
            f"config cutoffs: no cutoff between {start:%Y-%m-%d} and {end:%Y-%m-%d} "
            f"(data end {data_end(tables):%Y-%m-%d} minus the {churn.horizon_days}-day horizon)"
        )
    return _refuse_before_data(tables, dates)


def _completed_purchases(con: duckdb.DuckDBPyConnection, tables: Tables) -> None:
    status = "status = 'completed'" if "status" in tables.purchases.columns else "TRUE"
    con.register(
        "purchases_in",
        tables.purchases[["customer_id", "ordered_at"] + (["status"] if status != "TRUE" else [])],
    )
    con.execute(
        f"CREATE TEMP VIEW completed AS SELECT customer_id, ordered_at FROM purchases_in "
        f"WHERE {status}"
    )


def _cutoff_table(con: duckdb.DuckDBPyConnection, cutoffs: list[pd.Timestamp]) -> None:
    frame = pd.DataFrame({"cutoff": pd.to_datetime(cutoffs).astype("datetime64[us]")})
    con.register("cutoffs_in", frame)


def population(
    tables: Tables, cutoffs: list[pd.Timestamp | dt.date | str], churn: ChurnConfig
) -> pd.DataFrame:
    """Customers who can churn at each cutoff (customer_id, cutoff), sorted."""
    return _query(tables, cutoffs, churn, with_labels=False)


def labels(
    tables: Tables, cutoffs: list[pd.Timestamp | dt.date | str], churn: ChurnConfig
) -> pd.DataFrame:
    """The population at each cutoff with `churned` (bool) from `[t, t + horizon)` only."""
    return _query(tables, cutoffs, churn, with_labels=True)


def _query(tables, cutoffs, churn: ChurnConfig, with_labels: bool) -> pd.DataFrame:
    cutoffs = [pd.Timestamp(cutoff) for cutoff in cutoffs]
    con = duckdb.connect()
    _cutoff_table(con, cutoffs)
    horizon = f"INTERVAL {churn.horizon_days} DAY"
    if churn.type == "non_contractual":
        _completed_purchases(con, tables)
        active = f"INTERVAL {churn.active_window_days} DAY"
        sql = f"""
            WITH pop AS (
                SELECT DISTINCT p.customer_id, c.cutoff FROM completed p JOIN cutoffs_in c
                ON p.ordered_at >= c.cutoff - {active} AND p.ordered_at < c.cutoff),
            bought AS (
                SELECT DISTINCT p.customer_id, c.cutoff FROM completed p JOIN cutoffs_in c
                ON p.ordered_at >= c.cutoff AND p.ordered_at < c.cutoff + {horizon})
            SELECT pop.customer_id, pop.cutoff, bought.customer_id IS NULL AS churned
            FROM pop LEFT JOIN bought USING (customer_id, cutoff)"""
    else:
        if "cancelled_at" not in tables.customers.columns:
            raise ChurnlensError(
                "table customers: column cancelled_at is required for contractual churn "
                "(config churn.type: contractual)"
            )
        con.register("customers_in", tables.customers[["customer_id", "signup_at", "cancelled_at"]])
        sql = f"""
            SELECT k.customer_id, c.cutoff,
                   coalesce(k.cancelled_at < c.cutoff + {horizon}, FALSE) AS churned
            FROM customers_in k JOIN cutoffs_in c
            ON k.signup_at < c.cutoff AND (k.cancelled_at IS NULL OR k.cancelled_at >= c.cutoff)"""
    columns = ", ".join(SPINE_COLUMNS + (["churned"] if with_labels else []))
    frame = con.sql(f"SELECT {columns} FROM ({sql}) ORDER BY cutoff, customer_id").df()
    frame["customer_id"] = frame["customer_id"].astype("str")
    frame["cutoff"] = frame["cutoff"].astype("datetime64[us]")
    return frame
