"""Every feature in one place: name, source, window, SQL, dtype, fill, role and sentence.

Adding a feature is one `Feature` entry. `sql` is an aggregate over the source's rows before
the cutoff (columns: `ts` = the row's time, `cutoff`, and the source's prepared columns); a
`derived` feature is an expression over other features' names. `template` is the sentence a
reason shows, filled from the customer's own feature values (`render`: "{orders_total:#order}"
reads "1 order", "24 orders"). A value that reports nothing (missing, or 0 for a count, sum or
flag: no ticket open, no detractor answer) is never a reason, however the model weighs it: a
cause must be present to be acted on, and a protective value is never told as a risk. Nor is a
value on the reassuring side of the feature's `concern` (see `Feature.says_nothing`).

Every feature has a `role`: a `driver` is a cause the business can act on (support, survey
answers, price and plan, discounts, returns), a `sign` shows churn without causing it
(recency, frequency, spend trend, logins, carts, e-mail), and `context` is neither (tenure,
rhythm, most customer attributes). Reasons name drivers; the strongest sign is told apart.
`family` names the playbook family whose action fits the feature. The user declares roles
and families for what the package cannot know: event kinds and customer attributes
(`features.event_roles`, `event_families`, `attribute_roles`, `attribute_families`).

Aggregates run on exact types (DECIMAL money to 1/10,000, integer microseconds and counts)
so that DuckDB's parallel aggregation gives the same bits in any order: outputs are
byte-identical from run to run.
"""

from __future__ import annotations

import functools
import operator
import re
import string
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from churnlens.config import FeatureConfig, Role
from churnlens.drift import median_side
from churnlens.errors import ChurnlensError

Source = Literal["customers", "purchases", "tickets", "surveys", "events", "derived"]
Dtype = Literal["int64", "float64", "category"]
DAY = 86400.0
DAY_US, HOUR_US = 86_400_000_000, 3_600_000_000
RECENT_DAYS = (30, 90)  # windows of the support and survey drivers: the last month and quarter
KNOWN_EVENTS: dict[str, tuple[Role, str]] = {
    "login": ("sign", "disengaged"),
    "newsletter_unsubscribe": ("sign", "disengaged"),
    "cart_abandoned": ("sign", "disengaged"),
}
UNKNOWN_EVENT: tuple[Role, str] = ("sign", "disengaged")  # behaviour, unless declared a driver
# Sentences for attributes commonly found in customer tables; others read "Their x is v".
ATTRIBUTE_SENTENCES = {
    "plan": "On the {plan} plan",
    "region": "In the {region} region",
    "segment": "In the {segment} segment",
    "country": "Based in {country}",
    "acquisition_channel": "Came through {acquisition_channel}",
}


CONCERN_OPERATORS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
CONCERN_OPERATORS["=="] = operator.eq  # a category's worrying level, e.g. a detractor
MEDIAN = "median"  # a concern bound: the training population's median (Feature.says_nothing)
HIGHER, LOWER = (">", MEDIAN), ("<", MEDIAN)  # worrying above / below the training median
# Event kinds that are a worry in themselves: more of them, or a recent one, is worrying. For
# every other kind told as a sign (logins, visits: engagement) fewer, or an old one, is.
UNWELCOME_EVENTS = {"newsletter_unsubscribe", "cart_abandoned"}
COUNTED = re.compile(r"(\+?)#([^\W\d_].+)")  # "{n:#order}", "{n:+#order}"; "{n:#x}" is hex


def counted(number: float, noun: str, sign: str = "") -> str:
    """`number` rounded, with `noun` in the singular for 1 and -1 and the plural otherwise
    ("1 order", "0 orders", "+2 categories"); a fraction that rounds to 0 reads "less than 1
    day" (a ticket opened this morning has not been open for "0 days")."""
    text = f"{number:{sign}.0f}"
    if number and float(text) == 0:
        return f"less than 1 {noun}"
    if abs(float(text)) != 1:
        noun = noun[:-1] + "ies" if re.search(r"[^aeiou]y$", noun) else noun + "s"
    return f"{text} {noun}"


@functools.cache
def template_parts(template: str) -> tuple:
    """`string.Formatter().parse` of a template, once per template: a million-row list
    renders tens of thousands of sentences from a few dozen templates."""
    return tuple(string.Formatter().parse(template))


class _Sentence(string.Formatter):
    """str.format, plus the spec `#noun` (`+#noun` to show the sign) for a counted noun."""

    def parse(self, format_string: str):
        return template_parts(format_string)

    def format_field(self, value, format_spec: str) -> str:
        match = COUNTED.fullmatch(format_spec)
        if match is None:
            return super().format_field(value, format_spec)
        return counted(value, match[2], match[1])


_SENTENCE = _Sentence()


def render(template: str, row: dict) -> str:
    """A feature's template filled with a customer's values (see `counted` for `#noun`)."""
    return _SENTENCE.vformat(template, (), row)


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
    role: Role = field(kw_only=True)
    family: str = field(kw_only=True)
    flag: bool = field(default=False, kw_only=True)  # a 0/1 flag: 0 is nothing to report
    # The side on which a value is a concern, e.g. ("<=", 6) for an NPS answer: a value on the
    # other side (a promoter's 9, a CSAT of 5, no refund) is never told as a risk reason, even
    # where the model's TreeSHAP contribution happens to be positive. The bound MEDIAN judges
    # the value against the training population (HIGHER, LOWER; see `says_nothing`).
    concern: tuple[str, float | str] | None = field(default=None, kw_only=True)

    def says_nothing(self, values: pd.Series, reference: dict | None = None) -> np.ndarray:
        """Per value, whether it reports nothing to worry about: missing, 0 for a count, sum or
        flag (unless fewer is the concern: no order in 30 days is), or a value outside the
        feature's `concern`.

        A fixed bound is for values whose meaning is the same in every shop (a falling trend,
        overdue against one's own rhythm, an NPS of 6). How many days of silence, orders or
        logins are worrying depends on the shop, so those are judged against the population
        the model learned from: `reference` is the model's training profile
        (`ChurnModel.reference_`, drift.reference_profile), and a value worries when it falls
        in a bucket wholly on the worse side of the training median's (`drift.median_side`):
        "No purchase for 0 days" or "24 orders in total" is never told where most customers
        buy less often. The profile travels with the model, so a row gets the same answer
        whatever it is scored with (a Spark partition, a chunk of targets), and the rule needs
        no setting of its own.
        """
        silent = values.isna().to_numpy()
        compare, bound = self.concern or (None, None)
        if (self.fill == "0" or self.flag) and compare not in ("<", "<="):
            silent = silent | (values == 0).to_numpy(dtype=bool, na_value=False)
        if bound == MEDIAN:
            if reference is None:
                raise ChurnlensError(
                    f"feature {self.name}: is judged against the training median; pass the "
                    "model's reference profile (ChurnModel.reference_)"
                )
            worse = 1 if compare == ">" else -1
            silent = silent | (median_side(reference, self.name, values) != worse)
        elif compare is not None:
            typed = values if isinstance(bound, str) else values.astype("float64")
            worrying = CONCERN_OPERATORS[compare](typed, bound)
            silent = silent | ~worrying.to_numpy(dtype=bool, na_value=False)
        return silent

    @property
    def fill(self) -> str | None:
        """Counts and sums over no rows are 0; every other missing value stays NaN."""
        return "0" if self.dtype == "int64" or self.sums else None


def _days_since(expr: str) -> str:
    return f"(epoch(cutoff) - epoch({expr})) / {DAY}"


def _in_window(days: int) -> str:
    """The row is in the `days` before the cutoff. The times carry no time zone, so a day is
    always DAY_US, and whole numbers compare faster than an INTERVAL's calendar arithmetic."""
    return f"epoch_us(ts) >= epoch_us(cutoff) - {days * DAY_US}"


def distinct_completed(column: str) -> str:
    """The distinct values of `column` among the completed purchases before the cutoff. The
    engine gives each row either its value's bit (`{column}_bit`) or whether it is the first
    with its value (`first_{column}`), and leaves the other term empty (engine.DISTINCT_COUNTED)."""
    return (
        f"coalesce(bit_count(bit_or({column}_bit) FILTER (WHERE completed)), 0)"
        f" + count(*) FILTER (WHERE completed AND first_{column})"
    )


def _gap_spread(done: str) -> str:
    """The sample standard deviation of the gaps between completed purchases, in days, from
    the gaps in whole seconds: their sums are exact in 64 bits (the contract's dates span less
    than 68 years), so every engine and the running totals (features/running.py) give the
    same bits from the same steps of double arithmetic. Gaps in microseconds would need
    128-bit sums of squares."""
    n, seconds = f"count(gap_us) {done}", "(gap_us // 1000000)"
    s1, s2 = f"sum({seconds}) {done}", f"sum({seconds} * {seconds}) {done}"
    return (
        f"sqrt(greatest({n}::DOUBLE * {s2} - {s1}::DOUBLE * {s1}, 0) "
        f"/ nullif({n} * ({n} - 1), 0)) / {DAY}"
    )


def column_name(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", text.lower()).strip("_")


def _purchases(windows: list[int]) -> list[Feature]:
    done = "FILTER (WHERE completed)"
    sign = dict(role="sign", family="fading")
    feats = [
        Feature(
            "recency_days",
            "purchases",
            _days_since(f"max(ts) {done}"),
            "No purchase for {recency_days:#day}",
            role="sign",
            family="overdue",
            concern=HIGHER,
        ),
        Feature(
            "days_since_first_purchase",
            "purchases",
            _days_since(f"min(ts) {done}"),
            "First purchase {days_since_first_purchase:#day} ago",
            role="context",
            family="overdue",
        ),
        Feature(
            "orders_total",
            "purchases",
            f"count(*) {done}",
            "{orders_total:#order} in total",
            "int64",
            **sign,
            concern=LOWER,
        ),
        Feature(
            "spend_total",
            "purchases",
            f"coalesce(sum(amount) {done}, 0)",
            "Spent {spend_total:,.0f} in total",
            sums=True,
            **sign,
            concern=LOWER,
        ),
    ]
    for w in windows:
        feats += [
            Feature(
                f"orders_{w}d",
                "purchases",
                f"count(*) FILTER (WHERE completed AND {_in_window(w)})",
                f"{{orders_{w}d:#order}} in the last {counted(w, 'day')}",
                "int64",
                w,
                **sign,
                concern=LOWER,
            ),
            Feature(
                f"spend_{w}d",
                "purchases",
                f"coalesce(sum(amount) FILTER (WHERE completed AND {_in_window(w)}), 0)",
                f"Spent {{spend_{w}d:,.0f}} in the last {counted(w, 'day')}",
                window=w,
                sums=True,
                **sign,
                concern=LOWER,
            ),
        ]
    # a trend is the last w days less the w days before: 2 x (last w) - (last 2w), which
    # shares the window aggregates instead of filtering on a second, closed range
    for w in windows[:-1]:
        recent, longer = f"completed AND {_in_window(w)}", f"completed AND {_in_window(2 * w)}"
        feats += [
            Feature(
                f"orders_trend_{w}d",
                "purchases",
                f"2 * count(*) FILTER (WHERE {recent}) - count(*) FILTER (WHERE {longer})",
                # led by a word: a cell starting with a sign is a formula to a spreadsheet
                f"Orders changed by {{orders_trend_{w}d:+.0f}} in the last "
                f"{counted(w, 'day')} against the {counted(w, 'day')} before",
                "int64",
                w,
                **sign,
                concern=("<", 0.0),
            ),
            Feature(
                f"spend_trend_{w}d",
                "purchases",
                f"2 * coalesce(sum(amount) FILTER (WHERE {recent}), 0) "
                f"- coalesce(sum(amount) FILTER (WHERE {longer}), 0)",
                f"Spend changed by {{spend_trend_{w}d:+,.0f}} in the last {counted(w, 'day')} "
                f"against the {counted(w, 'day')} before",
                window=w,
                sums=True,
                **sign,
                concern=("<", 0.0),
            ),
        ]
    feats += [
        Feature(
            "gap_mean_days",
            "purchases",
            f"avg(gap_us) {done} / {DAY_US}",
            "Usually buys every {gap_mean_days:#day}",
            role="context",
            family="overdue",
        ),
        Feature(
            "gap_std_days",
            "purchases",
            _gap_spread(done),
            "Irregular buyer: gaps vary by {gap_std_days:#day}",
            role="context",
            family="overdue",
        ),
        Feature(
            "last_gap_days",
            "purchases",
            f"arg_max(gap_us, seq) {done} / {DAY_US}",
            "The last two orders were {last_gap_days:#day} apart",
            role="context",
            family="overdue",
        ),
        Feature(
            "discount_share",
            "purchases",
            f"avg(discounted::INTEGER) {done}",
            "{discount_share:.0%} of orders used a discount",
            requires=("discount",),
            role="driver",
            family="pricing",
            concern=(">", 0.0),
        ),
        Feature(
            "refund_rate",
            "purchases",
            "avg(refunded::INTEGER)",
            "{refund_rate:.0%} of orders refunded or returned",
            requires=("status",),
            role="driver",
            family="returns",
            concern=(">", 0.0),
        ),
        Feature(
            "categories_bought",
            "purchases",
            distinct_completed("category"),
            "Bought from {categories_bought:#category}",
            "int64",
            requires=("category",),
            **sign,
            concern=LOWER,
        ),
        Feature(
            "channels_used",
            "purchases",
            distinct_completed("channel"),
            "Bought through {channels_used:#channel}",
            "int64",
            requires=("channel",),
            **sign,
            concern=LOWER,
        ),
        Feature(
            "last_channel",
            "purchases",
            # the last known channel on every engine: DuckDB's arg_max skips a missing
            # value, Spark's max_by returns it
            "arg_max(channel, seq) FILTER (WHERE completed AND channel IS NOT NULL)",
            "Last bought via {last_channel}",
            "category",
            requires=("channel",),
            role="context",
            family="fading",
        ),
    ]
    return feats


def _tickets(windows: list[int], slow_reply_hours: float) -> list[Feature]:
    support = dict(role="driver", family="support")
    # ended_at: the first of resolved_at and closed_at (data contract)
    is_open = "ended_at IS NULL OR ended_at >= cutoff"
    unanswered = "first_response_at IS NULL OR first_response_at >= cutoff"
    # the first reply's delay as known at the cutoff: an unanswered ticket has waited till now
    replied = "CASE WHEN first_response_at < cutoff THEN first_response_at ELSE cutoff END"
    slow = f"epoch_us({replied}) - epoch_us(ts) > {round(slow_reply_hours * HOUR_US)}"
    feats = [
        Feature(
            "tickets_total",
            "tickets",
            "count(*)",
            "{tickets_total:#support ticket}",
            "int64",
            **support,
        ),
    ]
    feats += [
        Feature(
            f"tickets_{w}d",
            "tickets",
            f"count(*) FILTER (WHERE {_in_window(w)})",
            f"{{tickets_{w}d:#support ticket}} in the last {counted(w, 'day')}",
            "int64",
            w,
            **support,
        )
        for w in windows
    ]
    feats += [
        Feature(
            "open_tickets",
            "tickets",
            f"count(*) FILTER (WHERE {is_open})",
            "{open_tickets:#support ticket} open, the oldest for {oldest_open_ticket_days:#day}",
            "int64",
            requires=("ended_at",),
            **support,
        ),
        Feature(
            "oldest_open_ticket_days",
            "tickets",
            f"max(epoch(cutoff) - epoch(ts)) FILTER (WHERE {is_open}) / {DAY}",
            "A support ticket has been open for {oldest_open_ticket_days:#day}",
            requires=("ended_at",),
            **support,
        ),
        Feature(
            "awaiting_first_response",
            "tickets",
            f"count(*) FILTER (WHERE {unanswered})",
            "{awaiting_first_response:#ticket} waiting for a first reply, the oldest for "
            "{first_reply_wait_hours:#hour}",
            "int64",
            requires=("first_response_at",),
            **support,
        ),
        Feature(
            "first_reply_wait_hours",
            "tickets",
            f"max(epoch_us(cutoff) - epoch_us(ts)) FILTER (WHERE {unanswered}) / {HOUR_US}",
            "A ticket has waited {first_reply_wait_hours:#hour} for a first reply",
            requires=("first_response_at",),
            **support,
        ),
    ]
    feats += [
        Feature(
            f"slow_replies_{w}d",
            "tickets",
            f"count(*) FILTER (WHERE {_in_window(w)} AND {slow})",
            f"{{slow_replies_{w}d:#ticket}} in the last {counted(w, 'day')} waited over "
            f"{slow_reply_hours:g} hours for a first reply",
            "int64",
            w,
            requires=("first_response_at",),
            **support,
        )
        for w in RECENT_DAYS
    ]
    feats += [
        # how fresh the last slow reply is: its effect on a customer fades, a count over a
        # window cannot tell one from last week from one three months ago
        Feature(
            "days_since_slow_reply",
            "tickets",
            _days_since(f"max(ts) FILTER (WHERE {slow})"),
            f"A ticket opened {{days_since_slow_reply:#day}} ago waited over "
            f"{slow_reply_hours:g} hours for a first reply",
            requires=("first_response_at",),
            **support,
        ),
        Feature(
            "first_response_hours_mean",
            "tickets",
            "avg(epoch_us(first_response_at) - epoch_us(ts)) "
            f"FILTER (WHERE first_response_at < cutoff) / {HOUR_US}",
            "First reply took {first_response_hours_mean:#hour} on average",
            requires=("first_response_at",),
            **support,
            concern=(">", slow_reply_hours),
        ),
        Feature(
            "resolution_hours_mean",
            "tickets",
            f"avg(epoch_us(resolved_at) - epoch_us(ts)) FILTER (WHERE resolved_at < cutoff) "
            f"/ {HOUR_US}",
            "Tickets took {resolution_hours_mean:#hour} to resolve on average",
            requires=("resolved_at",),
            **support,
        ),
        # `reopened` is a count without a date: these two assume reopens happen soon after the
        # ticket is opened (the contract has no reopen time)
        Feature(
            "reopen_rate",
            "tickets",
            # reopened_since: when the ticket counts as reopened (data contract)
            "avg(CASE WHEN reopened IS NOT NULL "
            "THEN coalesce(reopened_since < cutoff, FALSE)::INTEGER END)",
            "{reopen_rate:.0%} of tickets were reopened",
            requires=("reopened",),
            **support,
            concern=(">", 0.0),
        ),
        Feature(
            f"reopened_tickets_{RECENT_DAYS[-1]}d",
            "tickets",
            f"count(*) FILTER (WHERE reopened_since < cutoff AND {_in_window(RECENT_DAYS[-1])})",
            f"{{reopened_tickets_{RECENT_DAYS[-1]}d:#ticket}} from the last "
            f"{counted(RECENT_DAYS[-1], 'day')} reopened",
            "int64",
            RECENT_DAYS[-1],
            requires=("reopened",),
            **support,
        ),
        Feature(
            "days_since_last_ticket",
            "tickets",
            _days_since("max(ts)"),
            "Last support ticket {days_since_last_ticket:#day} ago",
            # long ago says the customer is quiet (a proxy for inactivity), not that support
            # failed them: recent trouble is in the windowed and open-ticket drivers
            role="context",
            family="support",
        ),
    ]
    return feats


def _surveys(ces_scale: int, csat_scale: int = 5) -> list[Feature]:
    high_effort = int(ces_scale * 2 / 3) + 1  # 5..7 on the usual 7-point scale
    survey = dict(role="driver", family="detractor")
    days = RECENT_DAYS[-1]
    return [
        Feature(
            "last_nps",
            "surveys",
            "arg_max(score, seq) FILTER (WHERE kind = 'nps')",
            "Last NPS answer was {last_nps:.0f} out of 10",
            **survey,
            concern=("<=", 6.0),
        ),
        Feature(
            "nps_change",
            "surveys",
            "arg_max(score - prev_score, seq) FILTER (WHERE kind = 'nps')",
            "NPS moved by {nps_change:+.0f} since the answer before",
            **survey,
            concern=("<", 0.0),
        ),
        Feature(
            "days_since_detractor",
            "surveys",
            _days_since("max(ts) FILTER (WHERE kind = 'nps' AND score <= 6)"),
            "Gave a detractor NPS answer {days_since_detractor:#day} ago",
            **survey,
        ),
        Feature(
            "csat_mean",
            "surveys",
            "avg(score::BIGINT) FILTER (WHERE kind = 'csat')",
            "Average CSAT {csat_mean:.1f}",
            **survey,
            concern=("<", csat_scale - 1.0),
        ),
        Feature(
            "last_csat",
            "surveys",
            "arg_max(score, seq) FILTER (WHERE kind = 'csat')",
            "Last CSAT answer was {last_csat:.0f}",
            **survey,
            concern=("<", csat_scale - 1.0),
        ),
        Feature(
            "csat_change",
            "surveys",
            "arg_max(score - prev_score, seq) FILTER (WHERE kind = 'csat')",
            "CSAT moved by {csat_change:+.0f} since the answer before",
            **survey,
            concern=("<", 0.0),
        ),
        Feature(
            "last_ces",
            "surveys",
            "arg_max(score, seq) FILTER (WHERE kind = 'ces')",
            "Last effort score (CES) was {last_ces:.0f}",
            **survey,
            concern=(">=", float(high_effort)),
        ),
        Feature(
            f"high_effort_{days}d",
            "surveys",
            f"count(*) FILTER (WHERE kind = 'ces' AND score >= {high_effort} "
            f"AND {_in_window(days)})",
            f"{{high_effort_{days}d:#high-effort answer}} (CES {high_effort}+) "
            f"in the last {counted(days, 'day')}",
            "int64",
            days,
            **survey,
        ),
        Feature(
            "days_since_last_answer",
            "surveys",
            _days_since("max(ts)"),
            "Last survey answer {days_since_last_answer:#day} ago",
            role="sign",
            family="disengaged",
            concern=HIGHER,
        ),
        Feature(
            "survey_answers",
            "surveys",
            "count(*)",
            "{survey_answers:#survey answer}",
            "int64",
            role="context",
            family="detractor",
        ),
        Feature(
            "nps_category",
            "derived",
            "CASE WHEN last_nps >= 9 THEN 'promoter' WHEN last_nps >= 7 THEN 'passive' "
            "WHEN last_nps >= 0 THEN 'detractor' END",
            "Last NPS answer makes them a {nps_category} ({last_nps:.0f})",
            "category",
            requires=("last_nps",),
            **survey,
            concern=("==", "detractor"),  # a promoter's answer is never a reason to leave
        ),
        Feature(
            "high_effort",
            "derived",
            f"(last_ces >= {high_effort})::DOUBLE",
            "Reported high effort (CES {last_ces:.0f})",
            requires=("last_ces",),
            **survey,
            flag=True,
        ),
    ]


def event_kinds_in(names, windows: list[int]) -> list[str]:
    """The event kinds (as their column names) whose features are all among `names`: the
    inverse of `_events`' naming, so a model scores with the kinds it learned from even
    when one is absent from the scoring data (its counts are then 0)."""
    names = set(names)
    built_in = {f.name for f in feature_registry(FeatureConfig(windows_days=windows), [])}
    kinds = []
    for name in sorted(names - built_in):
        kind = name.removeprefix("days_since_")
        if kind != name and all(f"{kind}_{w}d" in names for w in windows):
            kinds.append(kind)
    return kinds


def _events(
    windows: list[int], kinds: list[str], config: FeatureConfig, taken: set[str]
) -> list[Feature]:
    """Counts per window and days since the last, per event kind; a kind whose feature names
    are `taken` (by another feature or kind: 'orders' would give orders_30d) is refused."""
    feats: list[Feature] = []
    clashing, taken = [], set(taken)
    for kind in kinds:
        col, label = column_name(kind), kind.replace("_", " ")
        role, family = KNOWN_EVENTS.get(kind, UNKNOWN_EVENT)
        if kind in config.event_roles:
            role, family = config.event_roles[kind], col
        kind_of = dict(role=role, family=config.event_families.get(kind, family))
        # a sign's side: more (or more recent) unwelcome events worry, less engagement does
        more, recent = (HIGHER, LOWER) if kind in UNWELCOME_EVENTS else (LOWER, HIGHER)
        more, recent = (more, recent) if role == "sign" else (None, None)
        is_kind = f"kind = '{kind.replace(chr(39), chr(39) * 2)}'"
        feats += [
            Feature(
                f"{col}_{w}d",
                "events",
                f"count(*) FILTER (WHERE {is_kind} AND {_in_window(w)})",
                f"{{{col}_{w}d:#{label} event}} in the last {counted(w, 'day')}",
                "int64",
                w,
                **kind_of,
                concern=more,
            )
            for w in windows
        ]
        feats.append(
            Feature(
                f"days_since_{col}",
                "events",
                _days_since(f"max(ts) FILTER (WHERE {is_kind})"),
                f"Last {label} {{days_since_{col}:#day}} ago",
                **kind_of,
                concern=recent,
            )
        )
        names = {f.name for f in feats[-len(windows) - 1 :]}
        if names & taken:
            clashing.append(kind)
        taken |= names
    if clashing:
        raise ChurnlensError(
            f"table events: kind(s) {', '.join(map(repr, clashing))} give feature names that "
            "another feature or kind already has (e.g. 'orders' gives orders_30d; 'log in' and "
            "'log_in' both give log_in_30d); rename those kinds in the events"
        )
    return feats


def _cross_source() -> list[Feature]:
    return [
        Feature(
            "overdue_ratio",
            "derived",
            "recency_days / nullif(gap_mean_days, 0)",
            "No purchase for {recency_days:#day}; usually every {gap_mean_days:#day}",
            requires=("recency_days", "gap_mean_days"),
            role="sign",
            family="overdue",
            concern=(">", 1.0),
        ),
        Feature(
            "overdue_last_gap",
            "derived",
            "recency_days / nullif(last_gap_days, 0)",
            "No purchase for {recency_days:#day}; the last gap was {last_gap_days:#day}",
            requires=("recency_days", "last_gap_days"),
            role="sign",
            family="overdue",
            concern=(">", 1.0),
        ),
        Feature(
            "avg_order_value",
            "derived",
            "spend_total / nullif(orders_total, 0)",
            "Average order {avg_order_value:,.0f}",
            requires=("spend_total", "orders_total"),
            role="context",
            family="fading",
        ),
        Feature(
            "tickets_per_order",
            "derived",
            "tickets_total / nullif(orders_total, 0)",
            "{tickets_total:#support ticket} for {orders_total:#order}",
            requires=("tickets_total", "orders_total"),
            role="driver",
            family="support",
            concern=HIGHER,  # "0.0 tickets per order" is no reason where most have fewer
        ),
    ]


def attribute_feature(name: str, dtype: Dtype, config: FeatureConfig) -> Feature:
    """A customer attribute: context unless declared, its own family unless declared."""
    label = name.replace("_", " ")
    number = "{" + name + ":,.2f}" if dtype == "float64" else "{" + name + "}"
    return Feature(
        name,
        "customers",
        '"' + name.replace('"', '""') + '"',
        config.attribute_sentences.get(name)
        or ATTRIBUTE_SENTENCES.get(name)
        or f"Their {label} is {number}",
        dtype,
        role=config.attribute_roles.get(name, "context"),
        family=config.attribute_families.get(name, name),
    )


def feature_registry(
    config: FeatureConfig, event_kinds: list[str], ces_scale: int = 7, csat_scale: int = 5
) -> list[Feature]:
    """All built-in features in output order, for the configured windows and these event kinds."""
    tenure = Feature(
        "tenure_days",
        "customers",
        _days_since("signup_at"),
        "Customer for {tenure_days:#day}",
        role="context",
        family="overdue",
    )
    windows = config.windows_days
    features = [tenure, *_purchases(windows), *_tickets(windows, config.slow_reply_hours)]
    features += _surveys(ces_scale, csat_scale)
    cross = _cross_source()
    taken = {f.name for f in features + cross}
    return features + _events(windows, event_kinds, config, taken) + cross


def declared_features(
    config: FeatureConfig, columns, ces_scale: int = 7, csat_scale: int = 5
) -> list[Feature]:
    """The registry for a feature frame when its tables are not at hand (e.g. training's
    campaign): built-in features, the configured or declared event kinds, and the declared
    attributes among `columns`. Roles and families are all reasons need."""
    kinds = sorted(set(config.event_kinds or []) | set(config.event_roles))
    attributes = [name for name in config.attribute_roles if name in set(columns)]
    return feature_registry(config, kinds, ces_scale, csat_scale) + [
        attribute_feature(name, "category", config) for name in attributes
    ]
