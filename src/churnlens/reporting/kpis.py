"""Retention KPIs: pure functions on the validated input tables (see docs/kpis.md).

Each KPI is defined once, as a small function whose docstring states its formula; the tables
below (`period_kpis`, `pareto_view`, `rfm_segments`, `cohort_retention`) only count the inputs
and call them. Who is a customer at a date is the labels' population rule, so KPIs and churn
labels never disagree: non-contractual — at least one completed purchase in the
`active_window_days` before the date; contractual — signed up before the date and not
cancelled before it. Likewise an order counts where it is completed at the end of the span
a KPI covers (`data.contract.completed_sql`): a refund after a period's end does not change
that period's KPIs.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from churnlens.config import ChurnConfig
from churnlens.data.contract import REFUND_STATUSES, completed_at
from churnlens.data.tables import Tables
from churnlens.errors import ChurnlensError
from churnlens.features.btyd import expected_spend
from churnlens.labels import data_end, population
from churnlens.modeling.bgnbd import BGNBD, fit_sample, rfm_summary

PERIODS = {"month": "M", "quarter": "Q"}
SEGMENTS = ("champions", "loyal", "needs attention", "at risk", "hibernating", "lost")


# ------------------------------------------------------------------------------------------------
# The KPIs, one formula each
# ------------------------------------------------------------------------------------------------
def _ratio(numerator: float, denominator: float, scale: float = 1.0) -> float:
    return numerator / denominator * scale if denominator else math.nan


def retention_rate(at_start: int, at_end: int, new: int) -> float:
    """Retention rate (%) = (customers at end − new customers) ÷ customers at start × 100.

    Customers who come back after a lapse count as retained, as in the textbook formula.
    """
    return _ratio(at_end - new, at_start, 100.0)


def churn_rate(lost: int, at_start: int) -> float:
    """Churn rate (%) = customers lost in the period ÷ customers at start × 100."""
    return _ratio(lost, at_start, 100.0)


def repeat_purchase_rate(repeat_buyers: int, buyers: int) -> float:
    """Repeat purchase rate (%) = customers with 2+ orders in the period ÷ buyers × 100."""
    return _ratio(repeat_buyers, buyers, 100.0)


def purchase_frequency(orders: int, buyers: int) -> float:
    """Purchase frequency = completed orders in the period ÷ customers who ordered."""
    return _ratio(orders, buyers)


def average_order_value(revenue: float, orders: int) -> float:
    """Average order value = revenue of completed orders ÷ completed orders."""
    return _ratio(revenue, orders)


def average_lifespan(churn_rate_percent: float) -> float:
    """Average customer lifespan (periods) = 1 ÷ churn rate (as a fraction), the steady state."""
    return _ratio(100.0, churn_rate_percent)


def historical_clv(order_value: float, frequency: float, lifespan: float) -> float:
    """Customer lifetime value (revenue) = average order value × purchase frequency × lifespan."""
    return order_value * frequency * lifespan


def nps(scores: pd.Series) -> float:
    """Net Promoter Score = % promoters (9–10) − % detractors (0–6) of the NPS answers."""
    return _ratio(int((scores >= 9).sum()) - int((scores <= 6).sum()), len(scores), 100.0)


def csat(scores: pd.Series, scale: int) -> float:
    """CSAT (%) = answers in the top two boxes (scale − 1 or scale) ÷ CSAT answers × 100."""
    return _ratio(int((scores >= scale - 1).sum()), len(scores), 100.0)


def ces(scores: pd.Series) -> float:
    """Customer effort score = mean CES answer (1 = very easy … ces_scale = very hard)."""
    return float(scores.mean()) if len(scores) else math.nan


def per_thousand_orders(count: int, orders: int) -> float:
    """Things gone wrong per 1,000 orders = count ÷ orders placed (any status) × 1,000."""
    return _ratio(count, orders, 1000.0)


def top_share(amounts: pd.Series, share: float = 0.2) -> float:
    """Top-20 % share (%) = sum of the largest ⌈20 % × n⌉ amounts ÷ sum of all n amounts × 100."""
    top = math.ceil(share * len(amounts))
    return _ratio(float(amounts.nlargest(top).sum()), float(amounts.sum()), 100.0)


# ------------------------------------------------------------------------------------------------
# Tables of KPIs
# ------------------------------------------------------------------------------------------------
def completed_purchases(tables: Tables, at) -> pd.DataFrame:
    """The purchases that count as orders at time `at` (`completed_at`)."""
    return tables.purchases[completed_at(tables.purchases, pd.Timestamp(at))[:, 0]]


def period_bounds(tables: Tables, period: str) -> pd.DataFrame:
    """(period, start, end) of every whole period from the first purchase to the data end."""
    if period not in PERIODS:
        raise ChurnlensError(f"period must be one of {', '.join(PERIODS)}, not {period!r}")
    first = tables.purchases["ordered_at"].min()
    last_day = data_end(tables).normalize() + pd.Timedelta(days=1)
    spans = pd.period_range(first, last_day, freq=PERIODS[period])
    starts = spans.start_time.as_unit("us")
    ends = (spans + 1).start_time.as_unit("us")
    keep = ends <= last_day
    return pd.DataFrame(
        {"period": spans.astype("str")[keep], "start": starts[keep], "end": ends[keep]}
    )


def _customer_counts(
    tables: Tables, churn: ChurnConfig, bounds: pd.DataFrame, completed: np.ndarray
) -> pd.DataFrame:
    """Customers at the start and end of each period, new (first order, or signup, in it) and
    lost; `completed`: the purchases completed at each period's end."""
    dates = list(bounds["start"]) + [bounds["end"].iloc[-1]]
    members = population(tables, dates, churn).groupby("cutoff")["customer_id"].agg(set)
    signup = tables.customers.set_index("customer_id")["signup_at"]
    purchases = tables.purchases
    rows = []
    for k, (start, end) in enumerate(zip(bounds["start"], bounds["end"], strict=True)):
        before, after = members.get(start, set()), members.get(end, set())
        if churn.type == "contractual":
            first = signup
        elif k == 0 or (completed[:, k] != completed[:, k - 1]).any():  # a refund in between
            first = purchases[completed[:, k]].groupby("customer_id")["ordered_at"].min()
        new = int(((first >= start) & (first < end)).sum())
        rows.append((len(before), len(after), new, len(before - after)))
    counts = pd.DataFrame(rows, columns=["customers_start", "customers_end", "new", "lost"])
    counts["retention_rate"] = [
        retention_rate(s, e, n)
        for s, e, n in zip(counts.customers_start, counts.customers_end, counts.new, strict=True)
    ]
    counts["churn_rate"] = [
        churn_rate(lost, s) for lost, s in zip(counts.lost, counts.customers_start, strict=True)
    ]
    return counts


def _in(times: pd.Series, start, end) -> pd.Series:
    return (times >= start) & (times < end)


def _order_kpis(tables: Tables, completed: np.ndarray, start, end) -> tuple[dict, int]:
    """Order KPIs over the orders in the period completed at its end (`completed`, per
    purchase), and the orders placed (any status)."""
    inside = _in(tables.purchases["ordered_at"], start, end).to_numpy()
    placed = tables.purchases[inside]
    done = tables.purchases[inside & completed]
    per_buyer = done.groupby("customer_id").size()
    revenue = float(done["amount"].sum())
    refund = placed["status"].isin(REFUND_STATUSES) if "status" in placed else False
    returns = int((refund & ~completed[inside]).sum())
    kpis = {
        "orders": len(done),
        "revenue": revenue,
        "repeat_purchase_rate": repeat_purchase_rate(int((per_buyer >= 2).sum()), len(per_buyer)),
        "purchase_frequency": purchase_frequency(len(done), len(per_buyer)),
        "average_order_value": average_order_value(revenue, len(done)),
        "returns_per_1000_orders": per_thousand_orders(returns, len(placed)),
    }
    return kpis, len(placed)


def _survey_kpis(tables: Tables, start, end, csat_scale: int) -> dict:
    if tables.surveys is None:
        return {"nps": math.nan, "csat": math.nan, "ces": math.nan}
    answers = tables.surveys[_in(tables.surveys["answered_at"], start, end)]
    kind = answers["kind"]
    return {
        "nps": nps(answers.loc[kind == "nps", "score"]),
        "csat": csat(answers.loc[kind == "csat", "score"], csat_scale),
        "ces": ces(answers.loc[kind == "ces", "score"]),
    }


def _hours(later: pd.Series, earlier: pd.Series) -> float:
    hours = (later - earlier).dropna() / pd.Timedelta(hours=1)
    return float(hours.mean()) if len(hours) else math.nan


def _ticket_kpis(tables: Tables, start, end, placed: int) -> dict:
    """First-response and resolution hours (means over tickets opened in the period), backlog
    (tickets opened before the period end and not resolved by it) and tickets per 1,000 orders."""
    empty = ("first_response_hours", "resolution_hours", "backlog", "tickets_per_1000_orders")
    if tables.tickets is None:
        return dict.fromkeys(empty, math.nan)
    tickets = tables.tickets
    opened = tickets[_in(tickets["opened_at"], start, end)]
    ended = tickets.get("ended_at", pd.Series(pd.NaT, index=tickets.index))  # resolved or closed
    open_at_end = (tickets["opened_at"] < end) & ~(ended < end)
    return {
        "first_response_hours": _hours(opened.get("first_response_at"), opened["opened_at"])
        if "first_response_at" in opened
        else math.nan,
        "resolution_hours": _hours(opened["resolved_at"], opened["opened_at"])
        if "resolved_at" in opened
        else math.nan,
        "backlog": int(open_at_end.sum()),
        "tickets_per_1000_orders": per_thousand_orders(len(opened), placed),
    }


def period_kpis(
    tables: Tables, churn: ChurnConfig, period: str = "month", csat_scale: int = 5
) -> pd.DataFrame:
    """One row per whole period: customer counts, retention and churn, order, survey and
    support KPIs, lifespan and historical CLV (the functions above; docs/kpis.md)."""
    bounds = period_bounds(tables, period)
    if bounds.empty:
        raise ChurnlensError(f"the data cover no whole {period}: no KPI can be computed")
    completed, rows = completed_at(tables.purchases, *bounds["end"]), []
    for k, (start, end) in enumerate(zip(bounds["start"], bounds["end"], strict=True)):
        orders, placed = _order_kpis(tables, completed[:, k], start, end)
        rows.append(
            {
                **orders,
                **_survey_kpis(tables, start, end, csat_scale),
                **_ticket_kpis(tables, start, end, placed),
            }
        )
    counts = _customer_counts(tables, churn, bounds, completed)
    frame = pd.concat([bounds, counts, pd.DataFrame(rows)], axis=1)
    frame["average_lifespan"] = frame["churn_rate"].map(average_lifespan)
    frame["clv"] = [
        historical_clv(v, f, life)
        for v, f, life in zip(
            frame.average_order_value,
            frame.purchase_frequency,
            frame.average_lifespan,
            strict=True,
        )
    ]
    return frame


def pareto_view(tables: Tables, start, end) -> pd.DataFrame:
    """The 80/20 view over [start, end): revenue share of the top 20 % of buyers, and ticket
    share of the top 20 % of customers who raised a ticket (`top_share`)."""
    done = completed_purchases(tables, end)
    revenue = done[_in(done["ordered_at"], start, end)].groupby("customer_id")["amount"].sum()
    rows = [("revenue share of the top 20 % of customers", len(revenue), top_share(revenue))]
    if tables.tickets is not None:
        tickets = tables.tickets[_in(tables.tickets["opened_at"], start, end)]
        raised = tickets.groupby("customer_id").size()
        rows.append(
            ("ticket share of the top 20 % of ticket raisers", len(raised), top_share(raised))
        )
    return pd.DataFrame(rows, columns=["view", "customers", "share"])


def _quintile(values: pd.Series) -> pd.Series:
    """Score 1–5: ⌈5 × average rank ÷ n⌉, so higher values get higher scores, ties alike."""
    return np.ceil(5 * values.rank(method="average") / len(values)).clip(1, 5).astype("int64")


def segment_of(r: int, f: int) -> str:
    """RFM segment from recency score r and frequency score f (5 = best):
    champions r≥4 & f≥4; loyal r≥3 & f≥3; needs attention r≥3 & f≤2; at risk r≤2 & f≥3;
    hibernating r=2 & f≤2; lost r=1 & f≤2."""
    if r >= 3:
        if f >= 3:
            return "champions" if r >= 4 and f >= 4 else "loyal"
        return "needs attention"
    if f >= 3:
        return "at risk"
    return "hibernating" if r == 2 else "lost"


def rfm_segments(
    tables: Tables, as_of, risk: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per customer with a completed purchase before `as_of`: recency (days), frequency
    (orders), monetary (revenue), their quintile scores and segment; and per segment the
    customers, revenue and — with a risk list — mean churn probability of those scored."""
    as_of = pd.Timestamp(as_of)
    done = completed_purchases(tables, as_of)
    done = done[done["ordered_at"] < as_of]
    if done.empty:
        raise ChurnlensError(f"no completed purchase before {as_of:%Y-%m-%d}: no RFM segments")
    grouped = done.groupby("customer_id")
    customers = pd.DataFrame(
        {
            "recency_days": (as_of - grouped["ordered_at"].max()) / pd.Timedelta(days=1),
            "frequency": grouped.size(),
            "monetary": grouped["amount"].sum(),
        }
    )
    customers["r"] = _quintile(-customers["recency_days"])
    customers["f"] = _quintile(customers["frequency"])
    customers["m"] = _quintile(customers["monetary"])
    customers["segment"] = [segment_of(r, f) for r, f in zip(customers.r, customers.f, strict=True)]
    customers = customers.reset_index()
    if risk is not None:
        customers = customers.merge(
            risk[["customer_id", "churn_probability"]], on="customer_id", how="left"
        )
    summary = customers.groupby("segment").agg(
        customers=("customer_id", "size"), revenue=("monetary", "sum")
    )
    if risk is not None:
        summary["mean_churn_probability"] = customers.groupby("segment")["churn_probability"].mean()
    summary = summary.reindex(list(SEGMENTS)).fillna({"customers": 0, "revenue": 0.0})
    summary["customers"] = summary["customers"].astype("int64")
    return customers, summary.rename_axis("segment").reset_index()


def cohort_retention(tables: Tables, churn: ChurnConfig) -> pd.DataFrame:
    """Cohort retention matrix (%): rows are first-purchase months (contractual: signup months),
    column k is the share of the cohort that bought in its k-th month after the first
    (contractual: was still subscribed at the end of that month). Month 0 is 100 % for
    non-contractual cohorts; months not wholly inside the data are missing, not 0."""
    last_month = (data_end(tables).normalize() + pd.Timedelta(days=1)).to_period("M") - 1
    if churn.type == "contractual":
        customers = tables.customers
        cohort = customers["signup_at"].dt.to_period("M")
        cancelled = customers.get("cancelled_at", pd.Series(pd.NaT, index=customers.index))
        size = cohort.value_counts()
        ages = range((last_month - cohort.min()).n + 1)
        stayed = {
            k: (~(cancelled < (cohort + k + 1).dt.start_time)).groupby(cohort).sum() for k in ages
        }
        counts = pd.DataFrame(stayed)
    else:
        month = tables.purchases["ordered_at"].dt.to_period("M")
        kept = completed_at(tables.purchases, (month + 1).dt.start_time)[:, 0]  # at month end
        done, month = tables.purchases[kept], month[kept]
        cohort = month.groupby(done["customer_id"]).transform("min")
        age = [offset.n for offset in month - cohort]
        active = pd.DataFrame({"cohort": cohort, "age": age, "customer_id": done["customer_id"]})
        size = active.drop_duplicates("customer_id")["cohort"].value_counts()
        counts = active.drop_duplicates().groupby(["cohort", "age"]).size().unstack(fill_value=0)
        counts = counts.reindex(columns=range((last_month - cohort.min()).n + 1), fill_value=0)
    matrix = counts.div(size.reindex(counts.index), axis=0) * 100.0
    observed = [[k <= (last_month - c).n for k in matrix.columns] for c in matrix.index]
    matrix = matrix.where(np.array(observed, dtype=bool)).sort_index()
    matrix.index = matrix.index.astype("str").rename("cohort")
    matrix.columns = pd.Index(matrix.columns, name="months_since_first")
    return matrix


def bgnbd_clv(tables: Tables, as_of, horizon_days: int, model: BGNBD | None = None) -> pd.DataFrame:
    """Forward-looking CLV per customer over the next `horizon_days` = BG/NBD expected purchases
    × the customer's historical average order value (fits BG/NBD in weeks unless `model` is a
    fitted one); `gamma_gamma_clv` uses the Gamma-Gamma expected spend per purchase day
    (features.btyd.expected_spend) instead, NaN where that fit fails. Returns customer_id,
    p_alive, expected_purchases, average_order_value, clv, expected_spend, gamma_gamma_clv."""
    done = completed_purchases(tables, as_of)
    done = done[done["ordered_at"] < pd.Timestamp(as_of)]
    summary = rfm_summary(done, as_of)
    fitted = fit_sample(summary)
    model = model or BGNBD(penalizer=0.001).fit(fitted["frequency"], fitted["recency"], fitted["T"])
    args = (summary["frequency"], summary["recency"], summary["T"])
    expected = model.expected_purchases(horizon_days / 7.0, *args)
    order_value = done.groupby("customer_id")["amount"].mean().reindex(summary.index)
    spend = expected_spend(done, pd.Timestamp(as_of), pd.Series(summary.index))
    return pd.DataFrame(
        {
            "customer_id": summary.index.astype("str"),
            "p_alive": model.p_alive(*args),
            "expected_purchases": expected,
            "average_order_value": order_value.to_numpy(),
            "clv": expected * order_value.to_numpy(),
            "expected_spend": spend,
            "gamma_gamma_clv": expected * spend,
        }
    )
