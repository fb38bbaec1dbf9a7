"""Churn labels and populations at cutoffs (see docs/concepts.md, Labels).

A cutoff `t` splits past from future: who is in the population depends only on rows before
`t`, whether they churned only on rows in `[t, t + horizon)`. A label window that runs past
the end of the data would make customers look retained, so training cutoffs stop at
`end of data − horizon` and an explicit cutoff beyond that is refused. A cutoff at or before
the first row of data has no one to label, so it is refused too.

A purchase counts where it is completed at the time that matters (`completed_sql`): in the
population when completed at the cutoff, so one refunded after the cutoff keeps its buyer in;
in the label window when completed at the window's end, so one refunded before it ends is no
purchase.
"""

from __future__ import annotations

import datetime as dt
import logging

import duckdb
import pandas as pd

from churnlens.config import ChurnConfig, CutoffConfig
from churnlens.data.contract import SCHEMAS, completed_sql
from churnlens.data.io import quote
from churnlens.data.tables import Tables, result_frame
from churnlens.errors import ChurnlensError

SPINE_COLUMNS = ["customer_id", "cutoff"]
# columns of a feature frame or risk list that are never features (the label is `churned`)
NOT_FEATURES = (*SPINE_COLUMNS, "as_of", "churned")
SILENT_RATES = (0.02, 0.95)  # a cutoff's churn rate at or beyond these says (almost) nothing
SPARSE_SHARE = 0.1  # a label window with under this share of the expected rows is a thin tail
log = logging.getLogger(__name__)


def data_end(tables: Tables, churn_type: str = "non_contractual") -> pd.Timestamp:
    """The latest behaviour the labels rest on: the last completed purchase (and, for
    contractual churn, the last cancellation).

    Not the latest row of any table: one survey answer after the last purchase would move the
    test cutoff past the purchases and label everyone in that gap as churned.
    """
    done = completed_sql(tables.columns("purchases"))
    sqls = [f"SELECT max(ordered_at) FILTER (WHERE {done}) FROM purchases_in"]
    if churn_type == "contractual" and "cancelled_at" in tables.columns("customers"):
        sqls.append("SELECT max(cancelled_at) FROM customers_in")
    ends = [end for sql in sqls for end in _times(tables, sql)]
    return max(end for end in ends if pd.notna(end))


def data_start(tables: Tables) -> pd.Timestamp:
    """The first signup or purchase: before it no customer can be in any population."""
    firsts = "(SELECT min(signup_at) FROM customers_in), (SELECT min(ordered_at) FROM purchases_in)"
    return min(_times(tables, f"SELECT {firsts}"))


def _first_purchase(tables: Tables) -> pd.Timestamp:
    return _times(tables, "SELECT min(ordered_at) FROM purchases_in")[0]


def _times(tables: Tables, sql: str) -> list[pd.Timestamp]:
    """The times in the one row a query over `tables` (`Tables.connect`) gives; NaT for NULL."""
    with tables.connect() as con:
        return [pd.Timestamp(value) for value in con.execute(sql).fetchall()[0]]


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
    """The configured cutoffs whose whole label window lies inside the data.

    A schedule runs back from the test cutoff in `step_days` steps, so a pinned test date is
    always the last cutoff, down to the start (default: data start + `min_history_days`).
    """
    end = data_end(tables, churn.type)
    last_allowed = end.normalize() - pd.Timedelta(days=churn.horizon_days)
    too_late = (
        f"leave(s) less than the {churn.horizon_days}-day label window before the data end "
        f"({end:%Y-%m-%d}, the last purchase); the last usable cutoff is {last_allowed:%Y-%m-%d}"
    )
    if cutoffs.dates:
        dates = [pd.Timestamp(day) for day in sorted(set(cutoffs.dates))]
        late = [d.date().isoformat() for d in dates if d > last_allowed]
        if late:
            raise ChurnlensError(f"config cutoffs.dates: {', '.join(late)} {too_late}")
        return _refuse_before_data(tables, dates)
    if cutoffs.test:
        test = pd.Timestamp(cutoffs.test)
        if test > last_allowed:
            raise ChurnlensError(f"config cutoffs.test: {test:%Y-%m-%d} {too_late}")
        derived_test = "cutoffs.test"
    elif cutoffs.end:
        test = min(pd.Timestamp(cutoffs.end), last_allowed)
        derived_test = "cutoffs.end, or the data end minus the horizon"
    else:
        test = last_allowed
        derived_test = f"data end {end:%Y-%m-%d} minus the {churn.horizon_days}-day horizon"
    data_start = _first_purchase(tables).normalize()
    if cutoffs.start:
        start = pd.Timestamp(cutoffs.start)
        derived_start = "cutoffs.start"
    else:
        start = data_start + pd.Timedelta(days=cutoffs.min_history_days)
        derived_start = (
            f"data start {data_start:%Y-%m-%d} + cutoffs.min_history_days "
            f"{cutoffs.min_history_days}"
        )
    step = pd.Timedelta(days=cutoffs.step_days)
    steps = (test - start) // step if start <= test else -1
    dates = [test - k * step for k in range(steps, -1, -1)]
    if not dates:
        raise ChurnlensError(
            f"config cutoffs: no cutoff between {start:%Y-%m-%d} ({derived_start}) and the "
            f"test cutoff {test:%Y-%m-%d} ({derived_test}); set cutoffs.start or "
            "cutoffs.min_history_days earlier, or shorten churn.horizon_days"
        )
    return _refuse_before_data(tables, dates)


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


def label_sql(churn: ChurnConfig, tables: Tables, with_labels: bool = True) -> str:
    """The population (and `churned`) at every cutoff as one SQL text in DuckDB's dialect,
    over the views `cutoffs_in`, `purchases_in` and `customers_in`; churnlens.spark runs the
    same text on Spark."""
    horizon = f"INTERVAL {churn.horizon_days} DAY"
    if churn.type == "non_contractual":
        columns = tables.columns("purchases")
        active = f"INTERVAL {churn.active_window_days} DAY"
        sql = f"""
            WITH pop AS (
                SELECT DISTINCT p.customer_id, c.cutoff FROM purchases_in p JOIN cutoffs_in c
                ON p.ordered_at >= c.cutoff - {active} AND p.ordered_at < c.cutoff
                AND {completed_sql(columns, "c.cutoff")}),
            bought AS (
                SELECT DISTINCT p.customer_id, c.cutoff FROM purchases_in p JOIN cutoffs_in c
                ON p.ordered_at >= c.cutoff AND p.ordered_at < c.cutoff + {horizon}
                AND {completed_sql(columns, f"c.cutoff + {horizon}")})
            SELECT pop.customer_id, pop.cutoff, bought.customer_id IS NULL AS churned
            FROM pop LEFT JOIN bought USING (customer_id, cutoff)"""
    else:
        if "cancelled_at" not in tables.columns("customers"):
            raise ChurnlensError(
                "table customers: column cancelled_at is required for contractual churn "
                "(config churn.type: contractual)"
            )
        sql = f"""
            SELECT k.customer_id, c.cutoff,
                   coalesce(k.cancelled_at < c.cutoff + {horizon}, FALSE) AS churned
            FROM customers_in k JOIN cutoffs_in c
            ON k.signup_at < c.cutoff AND (k.cancelled_at IS NULL OR k.cancelled_at >= c.cutoff)"""
    columns = ", ".join(SPINE_COLUMNS + (["churned"] if with_labels else []))
    return f"SELECT {columns} FROM ({sql}) AS labelled ORDER BY cutoff, customer_id"


def _query(tables, cutoffs, churn: ChurnConfig, with_labels: bool) -> pd.DataFrame:
    sql = label_sql(churn, tables, with_labels)
    with tables.connect() as con:
        _cutoff_table(con, [pd.Timestamp(cutoff) for cutoff in cutoffs])
        frame = result_frame(con.sql(sql))
    frame["customer_id"] = frame["customer_id"].astype("str")
    frame["cutoff"] = frame["cutoff"].astype("datetime64[us]")
    return frame


def silent_cutoffs(spine: pd.DataFrame) -> pd.Series:
    """The churn rate of each cutoff where (almost) everyone or no one churned, each with a
    warning naming it: such a label says nothing (often a horizon too long for the data, or a
    cutoff in a thin tail of rows; `churnlens validate` shows where the rows are)."""
    rates = spine.groupby("cutoff")["churned"].mean()
    low, high = SILENT_RATES
    silent = rates[(rates <= low) | (rates >= high)]
    for cutoff, rate in silent.items():
        log.warning(
            "labels: churn rate %.1f %% at cutoff %s (at most %.0f %% or at least %.0f %% says "
            "almost nothing); check churn.horizon_days, churn.active_window_days and the "
            "cutoffs against where the rows are (churnlens validate)",
            100 * rate,
            f"{cutoff:%Y-%m-%d}",
            100 * low,
            100 * high,
        )
    return silent


def require_informative(spine: pd.DataFrame) -> None:
    """Refuse to train when every cutoff's label is silent (see `silent_cutoffs`)."""
    silent = silent_cutoffs(spine)
    if len(silent) == spine["cutoff"].nunique():
        rates = ", ".join(f"{c:%Y-%m-%d} {r:.1%}" for c, r in silent.items())
        raise ChurnlensError(
            f"labels: the churn rate is at most {SILENT_RATES[0]:.0%} or at least "
            f"{SILENT_RATES[1]:.0%} at every cutoff ({rates}): there is nothing to learn; "
            "check churn.horizon_days and churn.active_window_days, and move the cutoffs to "
            "where the rows are (churnlens validate shows it)"
        )


def sparse_cutoffs(
    tables: Tables, cutoffs: list[pd.Timestamp], horizon_days: int, count=None
) -> list[str]:
    """A warning per cutoff whose label window holds under SPARSE_SHARE of the purchase rows
    the data's average rate gives: the rows thin out there, so churn there means little.
    `count`: see `counter`."""
    count = count or counter(tables)
    first, last = _times(tables, "SELECT min(ordered_at), max(ordered_at) FROM purchases_in")
    days = max((last - first) / pd.Timedelta(days=1), 1.0)
    horizon = pd.Timedelta(days=horizon_days)
    windows = [
        f"ordered_at >= {_sql_time(cutoff)} AND ordered_at < {_sql_time(cutoff + horizon)}"
        for cutoff in cutoffs
    ]
    total, *counts = count("purchases", ["TRUE", *windows])
    expected = total * min(horizon_days / days, 1.0)
    found = []
    for cutoff, rows in zip(cutoffs, counts, strict=True):
        if rows < SPARSE_SHARE * expected:
            found.append(
                f"cutoff {cutoff:%Y-%m-%d}: its {horizon_days}-day label window holds {rows:,} "
                f"purchase row(s), {rows / expected:.0%} of the {expected:,.0f} the data's "
                "average rate gives: a sparse tail, where nearly everyone looks churned; pin "
                "cutoffs.test (or cutoffs.end) before it"
            )
    return found


def rows_after_end(tables: Tables, churn_type: str, count=None) -> list[str]:
    """A warning per table with rows after the data end (`data_end`): no label reaches them.
    `count`: see `counter`."""
    count = count or counter(tables)
    end = data_end(tables, churn_type)
    found = []
    for name in tables.names:
        (later,) = count(name, [f"{quote(SCHEMAS[name].time_column)} > {_sql_time(end)}"])
        if later:
            found.append(
                f"{name}: {later:,} row(s) after the data end {end:%Y-%m-%d} (the last "
                "completed purchase, or cancellation for contractual churn): no label reaches "
                "them"
            )
    return found


def data_warnings(tables: Tables, cutoffs: CutoffConfig, churn: ChurnConfig, count=None):
    """What `validate` warns of beyond the contract: rows after the data end, training
    cutoffs that cannot be placed, label windows in a sparse tail. `count`: see `counter`."""
    found = rows_after_end(tables, churn.type, count)
    try:
        chosen = training_cutoffs(tables, cutoffs, churn)
    except ChurnlensError as error:  # validate reports the data; the cutoff problem is a warning
        return [*found, str(error)]
    return found + sparse_cutoffs(tables, chosen, churn.horizon_days, count)


def counter(tables: Tables):
    """`count(table, conditions)`: how many rows of a table of `tables` meet each SQL
    condition, in DuckDB (`Tables.connect`); the Spark engine counts on its own tables."""

    def count(name: str, conditions: list[str]) -> list[int]:
        with tables.connect() as con:
            counted = ", ".join(f"count_if({condition})" for condition in conditions)
            return list(con.execute(f"SELECT {counted} FROM {name}_in").fetchone())

    return count


def _sql_time(at: pd.Timestamp) -> str:
    return f"CAST('{pd.Timestamp(at):%Y-%m-%d %H:%M:%S.%f}' AS TIMESTAMP)"
