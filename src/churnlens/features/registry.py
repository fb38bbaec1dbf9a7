"""Every feature in one place: name, source, window, SQL, dtype, fill and reason sentence.

Adding a feature is one `Feature` entry. `sql` is an aggregate over the source's rows before
the cutoff (columns: `ts` = the row's time, `cutoff`, and the source's prepared columns); a
`derived` feature is an expression over other features' names. `template` is the sentence a
reason shows, filled from the customer's own feature values.

Aggregates run on exact types (DECIMAL money to 1/10,000, integer microseconds and counts)
so that DuckDB's parallel aggregation gives the same bits in any order: outputs are
byte-identical from run to run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Source = Literal["customers", "purchases", "tickets", "surveys", "events", "derived"]
Dtype = Literal["int64", "float64", "category"]
DAY = 86400.0
DAY_US, HOUR_US = 86_400_000_000, 3_600_000_000


@dataclass(frozen=True)
class Feature:
    name: str
    source: Source
    sql: str
    template: str
    dtype: Dtype = "float64"
    window: int | None = None
    requires: tuple[str, ...] = ()  # optional input columns, or features for `derived`
    sums: bool = False  # a sum of amounts: 0, like a count, when the source has no rows

    @property
    def fill(self) -> str | None:
        """Counts and sums over no rows are 0; every other missing value stays NaN."""
        return "0" if self.dtype == "int64" or self.sums else None


def _days_since(expr: str) -> str:
    return f"(epoch(cutoff) - epoch({expr})) / {DAY}"


def _in_window(days: int) -> str:
    return f"ts >= cutoff - INTERVAL {days} DAY"


def _column_name(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", text.lower()).strip("_")


def _purchases(windows: list[int]) -> list[Feature]:
    done = "FILTER (WHERE completed)"
    feats = [
        Feature(
            "recency_days",
            "purchases",
            _days_since(f"max(ts) {done}"),
            "Last purchase {recency_days:.0f} days ago",
        ),
        Feature(
            "days_since_first_purchase",
            "purchases",
            _days_since(f"min(ts) {done}"),
            "First purchase {days_since_first_purchase:.0f} days ago",
        ),
        Feature(
            "orders_total",
            "purchases",
            f"count(*) {done}",
            "{orders_total:.0f} orders in total",
            "int64",
        ),
        Feature(
            "spend_total",
            "purchases",
            f"coalesce(sum(amount) {done}, 0)",
            "Spent {spend_total:,.0f} in total",
            sums=True,
        ),
    ]
    for w in windows:
        feats += [
            Feature(
                f"orders_{w}d",
                "purchases",
                f"count(*) FILTER (WHERE completed AND {_in_window(w)})",
                f"{{orders_{w}d:.0f}} orders in the last {w} days",
                "int64",
                w,
            ),
            Feature(
                f"spend_{w}d",
                "purchases",
                f"coalesce(sum(amount) FILTER (WHERE completed AND {_in_window(w)}), 0)",
                f"Spent {{spend_{w}d:,.0f}} in the last {w} days",
                window=w,
                sums=True,
            ),
        ]
    for w in windows[:-1]:
        before = f"completed AND ts >= cutoff - INTERVAL {2 * w} DAY AND NOT {_in_window(w)}"
        feats += [
            Feature(
                f"orders_trend_{w}d",
                "purchases",
                f"count(*) FILTER (WHERE completed AND {_in_window(w)}) "
                f"- count(*) FILTER (WHERE {before})",
                f"{{orders_trend_{w}d:+.0f}} orders in the last {w} days "
                f"against the {w} days before",
                "int64",
                w,
            ),
            Feature(
                f"spend_trend_{w}d",
                "purchases",
                f"coalesce(sum(amount) FILTER (WHERE completed AND {_in_window(w)}), 0) "
                f"- coalesce(sum(amount) FILTER (WHERE {before}), 0)",
                f"Spend changed by {{spend_trend_{w}d:+,.0f}} in the last {w} days "
                f"against the {w} days before",
                window=w,
                sums=True,
            ),
        ]
    feats += [
        Feature(
            "gap_mean_days",
            "purchases",
            f"avg(gap_us) {done} / {DAY_US}",
            "Usually buys every {gap_mean_days:.0f} days",
        ),
        Feature(
            "gap_std_days",
            "purchases",
            f"sqrt((count(gap_us) {done} * sum(gap_us::HUGEINT * gap_us) {done} "
            f"- sum(gap_us::HUGEINT) {done} ** 2)::DOUBLE "
            f"/ nullif(count(gap_us) {done} * (count(gap_us) {done} - 1), 0)) / {DAY_US}",
            "Irregular buyer: gaps vary by {gap_std_days:.0f} days",
        ),
        Feature(
            "last_gap_days",
            "purchases",
            f"arg_max(gap_us, seq) {done} / {DAY_US}",
            "The last two orders were {last_gap_days:.0f} days apart",
        ),
        Feature(
            "discount_share",
            "purchases",
            f"avg(discounted::INTEGER) {done}",
            "{discount_share:.0%} of orders used a discount",
            requires=("discount",),
        ),
        Feature(
            "refund_rate",
            "purchases",
            "avg(refunded::INTEGER)",
            "{refund_rate:.0%} of orders refunded or returned",
            requires=("status",),
        ),
        Feature(
            "categories_bought",
            "purchases",
            f"count(DISTINCT category) {done}",
            "Bought from {categories_bought:.0f} categories",
            "int64",
            requires=("category",),
        ),
        Feature(
            "channels_used",
            "purchases",
            f"count(DISTINCT channel) {done}",
            "Bought through {channels_used:.0f} channels",
            "int64",
            requires=("channel",),
        ),
        Feature(
            "last_channel",
            "purchases",
            f"arg_max(channel, seq) {done}",
            "Last bought via {last_channel}",
            "category",
            requires=("channel",),
        ),
    ]
    return feats


def _tickets(windows: list[int]) -> list[Feature]:
    feats = [
        Feature(
            "tickets_total", "tickets", "count(*)", "{tickets_total:.0f} support tickets", "int64"
        ),
    ]
    feats += [
        Feature(
            f"tickets_{w}d",
            "tickets",
            f"count(*) FILTER (WHERE {_in_window(w)})",
            f"{{tickets_{w}d:.0f}} support tickets in the last {w} days",
            "int64",
            w,
        )
        for w in windows
    ]
    feats += [
        Feature(
            "open_tickets",
            "tickets",
            # ended_at: the first of resolved_at and closed_at (data contract)
            "count(*) FILTER (WHERE ended_at IS NULL OR ended_at >= cutoff)",
            "{open_tickets:.0f} support ticket(s) still open",
            "int64",
            requires=("ended_at",),
        ),
        Feature(
            "awaiting_first_response",
            "tickets",
            "count(*) FILTER (WHERE first_response_at IS NULL OR first_response_at >= cutoff)",
            "{awaiting_first_response:.0f} ticket(s) still waiting for a first reply",
            "int64",
            requires=("first_response_at",),
        ),
        Feature(
            "first_response_hours_mean",
            "tickets",
            "avg(epoch_us(first_response_at) - epoch_us(ts)) "
            f"FILTER (WHERE first_response_at < cutoff) / {HOUR_US}",
            "First reply took {first_response_hours_mean:.0f} hours on average",
            requires=("first_response_at",),
        ),
        Feature(
            "resolution_hours_mean",
            "tickets",
            f"avg(epoch_us(resolved_at) - epoch_us(ts)) FILTER (WHERE resolved_at < cutoff) "
            f"/ {HOUR_US}",
            "Tickets took {resolution_hours_mean:.0f} hours to resolve on average",
            requires=("resolved_at",),
        ),
        Feature(
            "reopen_rate",
            "tickets",
            # reopened_since: when the ticket counts as reopened (data contract)
            "avg(CASE WHEN reopened IS NOT NULL "
            "THEN coalesce(reopened_since < cutoff, FALSE)::INTEGER END)",
            "{reopen_rate:.0%} of tickets were reopened",
            requires=("reopened",),
        ),
        Feature(
            "days_since_last_ticket",
            "tickets",
            _days_since("max(ts)"),
            "Last support ticket {days_since_last_ticket:.0f} days ago",
        ),
    ]
    return feats


def _surveys(ces_scale: int) -> list[Feature]:
    high_effort = int(ces_scale * 2 / 3) + 1  # 5..7 on the usual 7-point scale
    return [
        Feature(
            "last_nps",
            "surveys",
            "arg_max(score, seq) FILTER (WHERE kind = 'nps')",
            "Last NPS answer was {last_nps:.0f}",
        ),
        Feature(
            "nps_change",
            "surveys",
            "arg_max(score - prev_score, seq) FILTER (WHERE kind = 'nps')",
            "NPS moved by {nps_change:+.0f} since the answer before",
        ),
        Feature(
            "csat_mean",
            "surveys",
            "avg(score::BIGINT) FILTER (WHERE kind = 'csat')",
            "Average CSAT {csat_mean:.1f}",
        ),
        Feature(
            "last_ces",
            "surveys",
            "arg_max(score, seq) FILTER (WHERE kind = 'ces')",
            "Last effort score (CES) was {last_ces:.0f}",
        ),
        Feature(
            "days_since_last_answer",
            "surveys",
            _days_since("max(ts)"),
            "Last survey answer {days_since_last_answer:.0f} days ago",
        ),
        Feature(
            "survey_answers", "surveys", "count(*)", "{survey_answers:.0f} survey answers", "int64"
        ),
        Feature(
            "nps_category",
            "derived",
            "CASE WHEN last_nps >= 9 THEN 'promoter' WHEN last_nps >= 7 THEN 'passive' "
            "WHEN last_nps >= 0 THEN 'detractor' END",
            "Last NPS answer makes them a {nps_category} ({last_nps:.0f})",
            "category",
            requires=("last_nps",),
        ),
        Feature(
            "high_effort",
            "derived",
            f"(last_ces >= {high_effort})::DOUBLE",
            "Reported high effort (CES {last_ces:.0f})",
            requires=("last_ces",),
        ),
    ]


def _events(windows: list[int], kinds: list[str]) -> list[Feature]:
    feats = []
    for kind in kinds:
        col, label = _column_name(kind), kind.replace("_", " ")
        is_kind = f"kind = '{kind.replace(chr(39), chr(39) * 2)}'"
        feats += [
            Feature(
                f"{col}_{w}d",
                "events",
                f"count(*) FILTER (WHERE {is_kind} AND {_in_window(w)})",
                f"{{{col}_{w}d:.0f}} {label} event(s) in the last {w} days",
                "int64",
                w,
            )
            for w in windows
        ]
        feats.append(
            Feature(
                f"days_since_{col}",
                "events",
                _days_since(f"max(ts) FILTER (WHERE {is_kind})"),
                f"Last {label} {{days_since_{col}:.0f}} days ago",
            )
        )
    return feats


def _cross_source() -> list[Feature]:
    return [
        Feature(
            "overdue_ratio",
            "derived",
            "recency_days / nullif(gap_mean_days, 0)",
            "No purchase for {recency_days:.0f} days; usually buys every {gap_mean_days:.0f}",
            requires=("recency_days", "gap_mean_days"),
        ),
        Feature(
            "overdue_last_gap",
            "derived",
            "recency_days / nullif(last_gap_days, 0)",
            "No purchase for {recency_days:.0f} days; the last gap was {last_gap_days:.0f}",
            requires=("recency_days", "last_gap_days"),
        ),
        Feature(
            "avg_order_value",
            "derived",
            "spend_total / nullif(orders_total, 0)",
            "Average order {avg_order_value:,.0f}",
            requires=("spend_total", "orders_total"),
        ),
        Feature(
            "tickets_per_order",
            "derived",
            "tickets_total / nullif(orders_total, 0)",
            "{tickets_per_order:.1f} support tickets per order",
            requires=("tickets_total", "orders_total"),
        ),
    ]


def feature_registry(
    windows: list[int], event_kinds: list[str], ces_scale: int = 7
) -> list[Feature]:
    """All features in output order, for the given windows and event kinds."""
    tenure = Feature(
        "tenure_days", "customers", _days_since("signup_at"), "Customer for {tenure_days:.0f} days"
    )
    return (
        [tenure]
        + _purchases(windows)
        + _tickets(windows)
        + _surveys(ces_scale)
        + _events(windows, event_kinds)
        + _cross_source()
    )
