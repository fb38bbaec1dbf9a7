"""Synthetic non-contractual shop whose churn drivers are known.

Why: a churn model can only be validated against a world where the truth is known.  Each
customer gets fixed traits (usual purchase gap, spend level, support luck, satisfaction,
discount hunting, support heaviness) and the shop is then simulated week by week, vectorised
over the customers still alive:

* purchases follow a renewal process with gamma(shape 4) gaps around the customer's usual gap,
  so "days since last purchase / usual gap" is meaningful; discount hunters mostly buy with a
  discount, support-heavy customers return and refund more (low margin) and open more tickets;
* tickets come at a customer-level rate; each goes bad (slow first response, unresolved or
  reopened) with a probability set by the customer's support luck, which also slows their
  ordinary responses; a bad ticket lowers satisfaction for a few weeks;
* surveys are answered after some purchases and tickets, scored from latent satisfaction;
* a latent disengagement state drifts upward for "faders": logins thin out, newsletter
  unsubscribes and abandoned carts appear;
* time-bound causes real shops have: the price of one plan rises from a date
  (``PRICE_RISE_AT`` of the period), a competitor enters one region from a later date
  (``COMPETITOR_AT``), and a support backlog makes most first replies slow for some weeks
  (``BACKLOG``), which turns those tickets bad;
* the weekly churn hazard is a small baseline multiplied, for each driver active at the start
  of the week, by its factor in ``MULTIPLIERS``: a bad ticket, a detractor answer (NPS <= 6,
  CSAT <= 2, CES >= 6) or a disengagement signal (unsubscribe, abandoned cart) within the
  last 8, 12 and 8 weeks respectively, being on the plan after its price rise, living in the
  region after the competitor came.

A churned customer does nothing on their own after ``churned_at`` (the shop may still answer or
close their tickets).  ``ground_truth`` records the drivers active when each customer churned,
or those active at ``end`` for customers still alive, and for churners ``churn_driver``: the
playbook family of the cause that made them leave (support, detractor, pricing or market),
drawn among the active causes in proportion to the log of their hazard factors (each one's
share of the raised hazard), missing when no cause was active (disengagement is how churn
shows, not why). Asked with ``hazard_at``, it also records ``hazard_at``: each customer's weekly
churn hazard as the generator drew it for the week holding that date (missing for customers
not signed up or already gone at the week's start), so a ranking can be compared with an
oracle that knows the true hazard.
"""

from collections import defaultdict

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

REGIONS = ("north", "south", "east", "west")
PLANS = ("basic", "standard", "premium")
ACQUISITION_CHANNELS = ("organic", "paid_search", "social", "referral")
SEGMENTS = ("consumer", "smb")
STATUSES = ("completed", "cancelled", "refunded", "returned")
CATEGORIES = ("electronics", "home", "fashion", "beauty", "sports", "toys", "grocery", "books")
SALES_CHANNELS = ("web", "app", "store")
TICKET_CHANNELS = ("email", "chat", "phone")
PRIORITIES = ("low", "normal", "high")
TOPICS = ("delivery", "billing", "product", "account", "returns")
SURVEY_KINDS = ("nps", "csat", "ces")
EVENT_KINDS = ("login", "newsletter_unsubscribe", "cart_abandoned")
COMMENTS = (
    "support never answered",
    "took too long to resolve",
    "delivery was late",
    "item broke quickly",
    "too expensive",
    "great service",
    "fast delivery",
    "love the products",
)
NEGATIVE_COMMENTS = 5  # the first five comments are complaints

SIGNUP_MARGIN_DAYS = 60.0  # no signups in the last 60 days, so everyone has some history
BASE_HAZARD = 0.0023  # weekly churn hazard with no driver active
DRIVERS = ("support", "detractor", "disengaged", "pricing", "market")
MULTIPLIERS = np.array([5.0, 5.0, 5.0, 3.0, 3.0])  # hazard factor per active driver
CAUSES = np.array([True, True, False, True, True])  # drivers that name why, not how
PRICE_RISE_PLAN, PRICE_RISE_AT = 1, 0.5  # the standard plan, from half-way through the period
COMPETITOR_REGION, COMPETITOR_AT = 1, 0.6  # the south region, from 60 % of the period
BACKLOG = (0.8, 0.88)  # support backlog over this part of the period (8 weeks in 2 years)
BACKLOG_SLOW = 0.6  # share of tickets opened in the backlog with a slow first reply
SUPPORT_WINDOW_DAYS = 56.0
DETRACTOR_WINDOW_DAYS = 84.0
DISENGAGED_WINDOW_DAYS = 56.0
SLOW_RESPONSE_HOURS = 24.0
GAP_SHAPE = 4.0  # gamma shape of inter-purchase gaps around the usual gap
BAD_TICKET_SHOCK = 1.2  # satisfaction drop per bad ticket, decays 10 % a week
PURCHASE_SURVEY_RATE = 0.15
TICKET_SURVEY_RATE = 0.25


def simulate(
    n_customers: int,
    seed: int,
    start: str = "2024-01-01",
    end: str = "2025-12-31",
    hazard_at: str | None = None,
) -> dict[str, pd.DataFrame]:
    """Simulate the shop; returns customers, purchases, tickets, surveys, events, ground_truth.

    Deterministic for a seed (``hazard_at`` adds a truth column and changes nothing else).
    All times lie in ``[start, end]`` (naive ``datetime64[us]``, whole seconds).
    """
    if n_customers < 1:
        raise ValueError("n_customers must be at least 1")
    t_start, t_end = pd.Timestamp(start), pd.Timestamp(end)
    horizon = (t_end - t_start) / pd.Timedelta(days=1)
    if horizon <= SIGNUP_MARGIN_DAYS:
        raise ValueError(f"the period must be longer than {SIGNUP_MARGIN_DAYS:.0f} days")
    if (horizon * 86400.0 + 1) * n_customers * len(EVENT_KINDS) >= 2.0**63:
        raise ValueError("too many customers for this period (sort keys would overflow)")
    shop = _Shop(np.random.default_rng(seed), n_customers, horizon)
    if hazard_at is not None:
        shop.hazard_at = (pd.Timestamp(hazard_at) - t_start) / pd.Timedelta(days=1)
        if not 0 <= shop.hazard_at < horizon:
            raise ValueError(f"hazard_at must lie in [{start}, {end})")
    for t0 in np.arange(0.0, horizon, 7.0):
        shop.step(t0, min(t0 + 7.0, horizon))
    return shop.tables(t_start)


class _Shop:
    """Customer traits, latent states and emitted rows of one simulation run."""

    def __init__(self, rng: np.random.Generator, n: int, horizon: float) -> None:
        self.rng, self.n, self.horizon = rng, n, horizon
        # Signups skew early (Beta(1, 1.8)), sorted so that customer index == signup order.
        self.signup = np.sort(rng.beta(1.0, 1.8, n)) * (horizon - SIGNUP_MARGIN_DAYS)
        self.region = rng.choice(4, n, p=[0.3, 0.25, 0.25, 0.2])
        self.plan = rng.choice(3, n, p=[0.5, 0.3, 0.2])
        self.acquisition = rng.choice(4, n, p=[0.4, 0.25, 0.2, 0.15])
        self.segment = rng.choice(2, n, p=[0.85, 0.15])
        self.hunter = rng.random(n) < 0.10
        self.heavy = rng.random(n) < 0.07
        self.usual_gap = np.clip(rng.gamma(2.5, 30.0 / 2.5, n), 7.0, 120.0)
        self.spend = rng.lognormal(np.log(40.0), 0.6, n) * np.where(self.segment == 1, 2.5, 1.0)
        self.fav_category = rng.choice(8, n, p=[0.15, 0.15, 0.2, 0.1, 0.1, 0.08, 0.12, 0.1])
        self.fav_channel = rng.choice(3, n, p=[0.5, 0.35, 0.15])
        self.login_rate = rng.gamma(2.0, 0.3, n)  # per week, ~2.6 a month on average
        self.ticket_rate = 0.04 * np.where(self.heavy, 5.0, 1.0) * rng.lognormal(0.0, 0.5, n)
        self.bad_luck = rng.standard_normal(n)  # unlucky customers get slower, worse support
        self.p_bad_ticket = 1.0 / (1.0 + np.exp(1.5 - 0.9 * self.bad_luck))
        self.satisfaction = rng.normal(0.3, 0.8, n)
        fader = rng.random(n) < 0.3
        self.fade_drift = np.where(fader, rng.uniform(0.03, 0.10, n), -0.03)
        self.fade_onset = np.where(fader, self.signup + rng.exponential(120.0, n), np.inf)
        channel_risk = np.array([1.0, 1.3, 1.2, 0.8])[self.acquisition]
        self.base_hazard = (
            BASE_HAZARD
            * channel_risk
            * np.where(self.segment == 1, 0.8, 1.0)
            * rng.lognormal(0.0, 0.3, n)
        )
        # Dynamic state.
        self.alive = np.ones(n, dtype=bool)
        self.churn_t = np.full(n, np.inf)
        self.drivers = np.zeros((n, len(DRIVERS)), dtype=bool)
        self.cause = np.full(n, -1)  # index into DRIVERS of the cause of churn, -1 none
        self.next_buy = self.signup + rng.exponential(3.0, n)
        self.until = np.zeros(n)  # end of the current week's activity window
        self.fade = np.zeros(n)
        self.shock = np.zeros(n)
        self.subscribed = rng.random(n) < 0.8
        self.last_bad_ticket = np.full(n, -np.inf)
        self.last_detractor = np.full(n, -np.inf)
        self.last_disengaged = np.full(n, -np.inf)
        self.hazard_at: float | None = None  # days since start: record the hazard then
        self.hazard = np.full(n, np.nan)
        self.rows: dict[str, dict[str, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))

    def _emit(self, table: str, **columns: np.ndarray) -> None:
        """Buffer rows compactly: customer indices as int32, codes/scores/counts as int8."""
        for name, values in columns.items():
            if values.dtype.kind == "i":
                values = values.astype(np.int32 if name == "cust" else np.int8)
            self.rows[table][name].append(values)

    def active_drivers(self, idx: np.ndarray, t: float) -> np.ndarray:
        """(len(idx), 5) flags, as in DRIVERS: a bad ticket, a detractor answer, a
        disengagement signal recently; on the plan after its price rise; in the region after
        the competitor came."""

        def recent(last: np.ndarray, window: float) -> np.ndarray:
            return (last[idx] <= t) & (last[idx] > t - window)

        return np.column_stack(
            [
                recent(self.last_bad_ticket, SUPPORT_WINDOW_DAYS),
                recent(self.last_detractor, DETRACTOR_WINDOW_DAYS),
                recent(self.last_disengaged, DISENGAGED_WINDOW_DAYS),
                (self.plan[idx] == PRICE_RISE_PLAN) & (t >= PRICE_RISE_AT * self.horizon),
                (self.region[idx] == COMPETITOR_REGION) & (t >= COMPETITOR_AT * self.horizon),
            ]
        )

    def step(self, t0: float, t1: float) -> None:
        """Simulate the week [t0, t1) for every signed-up customer still alive at t0."""
        idx = np.flatnonzero(self.alive & (self.signup < t1))
        self._churn(idx[self.signup[idx] < t0], t0, t1)
        lo = np.maximum(t0, self.signup[idx])
        self.until[idx] = np.minimum(t1, self.churn_t[idx])
        span = self.until[idx] - lo
        drift = np.where(self.fade_onset[idx] < t0, self.fade_drift[idx], -0.03)
        noise = 0.08 * self.rng.standard_normal(idx.size)
        self.fade[idx] = np.maximum(0.0, 0.98 * self.fade[idx] + drift + noise)
        self.shock[idx] *= 0.9
        buyers, bought_at, status = self._purchases(idx)
        tickets = self._tickets(idx, lo, span, buyers, bought_at, status)
        self._surveys(buyers, bought_at, *tickets)
        self._engagement(idx, lo, span)

    def _churn(self, idx: np.ndarray, t0: float, t1: float) -> None:
        """Draw who leaves during [t0, t1) from the hazard given the drivers active at t0."""
        drivers = self.active_drivers(idx, t0)
        rate = self.base_hazard[idx] * np.prod(np.where(drivers, MULTIPLIERS, 1.0), axis=1)
        if self.hazard_at is not None and t0 <= self.hazard_at < t1:
            self.hazard[idx] = rate
        hit = self.rng.random(idx.size) < -np.expm1(-rate * (t1 - t0) / 7.0)
        gone = idx[hit]
        self.churn_t[gone] = t0 + self.rng.random(gone.size) * (t1 - t0)
        self.alive[gone] = False
        self.drivers[gone] = drivers[hit]
        self.cause[gone] = self._cause(drivers[hit])

    def _cause(self, drivers: np.ndarray) -> np.ndarray:
        """One active cause per row, weighted by the log of its hazard factor; -1 if none."""
        weight = np.where(drivers & CAUSES, np.log(MULTIPLIERS), 0.0).cumsum(axis=1)
        draw = self.rng.random(len(drivers)) * weight[:, -1]
        picked = (draw[:, None] >= weight).sum(axis=1)
        return np.where(weight[:, -1] > 0, picked, -1)

    def _purchases(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every purchase due before each customer's window ends; returns who, when, status."""
        rng = self.rng
        who, when = [], []
        due = idx[self.next_buy[idx] < self.until[idx]]
        while due.size:
            who.append(due)
            when.append(self.next_buy[due])
            gaps = rng.gamma(GAP_SHAPE, 1.0 / GAP_SHAPE, due.size) * self.usual_gap[due]
            self.next_buy[due] += gaps * (1.0 + 0.3 * self.fade[due])
            due = due[self.next_buy[due] < self.until[due]]
        cust = np.concatenate(who) if who else np.zeros(0, dtype=idx.dtype)
        at = np.concatenate(when) if when else np.zeros(0)
        m = cust.size
        hunter, heavy = self.hunter[cust], self.heavy[cust]
        amount = np.round(self.spend[cust] * rng.lognormal(0.0, 0.4, m), 2)
        discounted = rng.random(m) < np.where(hunter, 0.8, np.where(heavy, 0.25, 0.1))
        share = rng.uniform(0.05, 0.25, m) + 0.15 * hunter
        discount = np.where(discounted, np.minimum(np.round(amount * share, 2), amount), 0.0)
        status_p = np.where(heavy[:, None], [0.8, 0.05, 0.06, 0.09], [0.93, 0.03, 0.015, 0.025])
        status = _pick(rng, status_p)
        category = np.where(
            rng.random(m) < 0.5,
            self.fav_category[cust],
            rng.choice(8, m, p=[0.15, 0.15, 0.2, 0.1, 0.1, 0.08, 0.12, 0.1]),
        )
        channel = np.where(rng.random(m) < 0.7, self.fav_channel[cust], rng.integers(0, 3, m))
        self._emit(
            "purchases",
            cust=cust,
            at=at,
            amount=amount,
            status=status,
            discount=discount,
            category=category,
            channel=channel,
        )
        return cust, at, status

    def _tickets(
        self,
        idx: np.ndarray,
        lo: np.ndarray,
        span: np.ndarray,
        buyers: np.ndarray,
        bought_at: np.ndarray,
        status: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Spontaneous tickets plus tickets about cancelled/refunded/returned orders."""
        rng = self.rng
        k = rng.poisson(self.ticket_rate[idx] * span / 7.0)
        spontaneous = np.repeat(idx, k)
        spontaneous_at = np.repeat(lo, k) + rng.random(k.sum()) * np.repeat(span, k)
        follow_up = (status != 0) & (rng.random(status.size) < 0.4)
        about_order = buyers[follow_up]
        after = bought_at[follow_up]
        after = after + rng.random(after.size) * np.minimum(2.0, self.until[about_order] - after)
        cust = np.concatenate([spontaneous, about_order])
        opened = np.concatenate([spontaneous_at, after])
        m = cust.size
        topic = np.concatenate(
            [
                rng.choice(5, spontaneous.size, p=[0.3, 0.15, 0.25, 0.15, 0.15]),
                np.where(rng.random(about_order.size) < 0.7, 4, 1),
            ]
        )
        bad = rng.random(m) < self.p_bad_ticket[cust]
        unresolved = bad & (rng.random(m) < 0.35)
        reopen = bad & (rng.random(m) < 0.45)
        slow = bad & ((rng.random(m) < 0.6) | ~(unresolved | reopen))
        in_backlog = (opened >= BACKLOG[0] * self.horizon) & (opened < BACKLOG[1] * self.horizon)
        slow |= in_backlog & (rng.random(m) < BACKLOG_SLOW)
        bad |= slow
        response_h = np.where(
            slow,
            SLOW_RESPONSE_HOURS + rng.lognormal(np.log(20.0), 0.6, m),
            np.minimum(
                rng.lognormal(np.log(3.0) + 0.5 * self.bad_luck[cust], 0.8),
                SLOW_RESPONSE_HOURS - 0.5,
            ),
        )
        first = np.where(unresolved & (rng.random(m) < 0.3), np.nan, opened + response_h / 24)
        reopened = np.where(reopen, 1 + rng.poisson(0.5, m), 0)
        work_h = rng.lognormal(np.log(18.0), 1.0, m) + 48.0 * reopened
        resolved = np.where(unresolved, np.nan, first + work_h / 24)
        self._emit(
            "tickets",
            cust=cust,
            at=opened,
            first=np.where(first <= self.horizon, first, np.nan),
            resolved=np.where(resolved <= self.horizon, resolved, np.nan),
            channel=rng.choice(3, m, p=[0.5, 0.3, 0.2]),
            priority=rng.choice(3, m, p=[0.3, 0.55, 0.15]),
            reopened=reopened,
            topic=topic,
        )
        np.maximum.at(self.last_bad_ticket, cust[bad], opened[bad])
        np.add.at(self.shock, cust[bad], -BAD_TICKET_SHOCK)
        return cust, opened, resolved, bad

    def _surveys(
        self,
        buyers: np.ndarray,
        bought_at: np.ndarray,
        ticket_cust: np.ndarray,
        opened: np.ndarray,
        resolved: np.ndarray,
        bad: np.ndarray,
    ) -> None:
        """NPS/CSAT after purchases, CSAT/CES after tickets, scored from satisfaction."""
        rng = self.rng
        p = rng.random(buyers.size) < PURCHASE_SURVEY_RATE
        t = rng.random(ticket_cust.size) < TICKET_SURVEY_RATE
        ticket_done = np.where(np.isnan(resolved), opened + 3.0, resolved)[t]
        cust = np.concatenate([buyers[p], ticket_cust[t]])
        at = np.concatenate([bought_at[p], ticket_done])
        at += rng.exponential(1.5, at.size)
        kind = np.concatenate(
            [np.where(rng.random(p.sum()) < 0.6, 0, 1), np.where(rng.random(t.sum()) < 0.5, 1, 2)]
        )
        mood = self.satisfaction[cust] + self.shock[cust]
        mood -= np.concatenate([np.zeros(p.sum()), 1.5 * bad[t]])
        z = rng.standard_normal(cust.size)
        score = np.select(
            [kind == 0, kind == 1],
            [
                np.clip(np.rint(7.3 + 1.6 * mood + 1.3 * z), 0, 10),
                np.clip(np.rint(4.0 + 0.8 * mood + 0.7 * z), 1, 5),
            ],
            np.clip(np.rint(3.0 - 1.0 * mood + 1.0 * z), 1, 7),
        ).astype(np.int64)
        detractor = (
            ((kind == 0) & (score <= 6))
            | ((kind == 1) & (score <= 2))
            | ((kind == 2) & (score >= 6))
        )
        commented = rng.random(cust.size) < np.where(detractor, 0.35, 0.08)
        comment = np.where(
            detractor,
            rng.integers(0, NEGATIVE_COMMENTS, cust.size),
            rng.integers(NEGATIVE_COMMENTS, len(COMMENTS), cust.size),
        )
        keep = at <= self.horizon
        self._emit(
            "surveys",
            cust=cust[keep],
            at=at[keep],
            kind=kind[keep],
            score=score[keep],
            comment=np.where(commented, comment, -1)[keep],
        )
        flagged = keep & detractor
        np.maximum.at(self.last_detractor, cust[flagged], at[flagged])

    def _engagement(self, idx: np.ndarray, lo: np.ndarray, span: np.ndarray) -> None:
        """Logins thin out as disengagement grows; unsubscribes and abandoned carts appear."""
        rng = self.rng
        fade = self.fade[idx]
        logins = rng.poisson(self.login_rate[idx] * np.exp(-fade) * span / 7.0)
        carts = rng.poisson((0.003 + 0.1 * np.maximum(fade - 0.25, 0.0)) * span / 7.0)
        unsub_rate = 0.001 + 0.04 * np.maximum(fade - 1.0, 0.0)
        unsub = self.subscribed[idx] & (rng.random(idx.size) < -np.expm1(-unsub_rate * span / 7))
        self.subscribed[idx[unsub]] = False
        counts = np.column_stack([logins, unsub, carts]).ravel()
        cust = np.repeat(np.repeat(idx, 3), counts)
        kind = np.repeat(np.tile(np.arange(3), idx.size), counts)
        at = np.repeat(np.repeat(lo, 3), counts) + rng.random(cust.size) * np.repeat(
            np.repeat(span, 3), counts
        )
        self._emit("events", cust=cust, at=at, kind=kind)
        signal = kind > 0
        np.maximum.at(self.last_disengaged, cust[signal], at[signal])

    def tables(self, t_start: pd.Timestamp) -> dict[str, pd.DataFrame]:
        """Assemble the emitted rows into sorted DataFrames with string ids and timestamps."""
        alive = np.flatnonzero(self.alive)
        self.drivers[alive] = self.active_drivers(alive, self.horizon)
        customer_ids = _ids("C", self.n, 7)
        out = {
            "customers": _frame(
                {
                    "customer_id": _strings(customer_ids),
                    "signup_at": _timestamps(t_start, self.signup),
                    "region": _labels(REGIONS, self.region),
                    "acquisition_channel": _labels(ACQUISITION_CHANNELS, self.acquisition),
                    "segment": _labels(SEGMENTS, self.segment),
                    "plan": _labels(PLANS, self.plan),
                },
            )
        }

        p = self._sorted("purchases")
        out["purchases"] = _frame(
            {
                "order_id": _strings(_ids("O", p["cust"].size, 8)),
                "customer_id": _strings(customer_ids.take(p["cust"])),
                "ordered_at": _timestamps(t_start, p["at"]),
                "amount": p["amount"],
                "status": _labels(STATUSES, p["status"]),
                "discount": p["discount"],
                "category": _labels(CATEGORIES, p["category"]),
                "channel": _labels(SALES_CHANNELS, p["channel"]),
            },
        )
        t = self._sorted("tickets")
        out["tickets"] = _frame(
            {
                "ticket_id": _strings(_ids("T", t["cust"].size, 8)),
                "customer_id": _strings(customer_ids.take(t["cust"])),
                "opened_at": _timestamps(t_start, t["at"]),
                "first_response_at": _timestamps(t_start, t["first"]),
                "resolved_at": _timestamps(t_start, t["resolved"]),
                "channel": _labels(TICKET_CHANNELS, t["channel"]),
                "priority": _labels(PRIORITIES, t["priority"]),
                "reopened": t["reopened"].astype(np.int64),
                "topic": _labels(TOPICS, t["topic"]),
            },
        )
        s = self._sorted("surveys")
        out["surveys"] = _frame(
            {
                "response_id": _strings(_ids("R", s["cust"].size, 8)),
                "customer_id": _strings(customer_ids.take(s["cust"])),
                "answered_at": _timestamps(t_start, s["at"]),
                "kind": _labels(SURVEY_KINDS, s["kind"]),
                "score": s["score"].astype(np.int64),
                "comment": _labels(COMMENTS, s["comment"]),
            },
        )
        e = self._sorted("events")
        out["events"] = _frame(
            {
                "customer_id": _strings(customer_ids.take(e["cust"])),
                "at": _timestamps(t_start, e["at"]),
                "kind": _labels(EVENT_KINDS, e["kind"]),
            },
        )
        out["ground_truth"] = _frame(
            {
                "customer_id": _strings(customer_ids),
                "churned_at": _timestamps(t_start, np.where(self.alive, np.nan, self.churn_t)),
                "driver_support": self.drivers[:, 0],
                "driver_detractor": self.drivers[:, 1],
                "driver_disengaged": self.drivers[:, 2],
                "driver_pricing": self.drivers[:, 3],
                "driver_market": self.drivers[:, 4],
                "churn_driver": _labels(DRIVERS, self.cause),
                "discount_hunter": self.hunter,
                "support_heavy": self.heavy,
                "usual_gap_days": self.usual_gap,
            }
            | ({"hazard_at": self.hazard} if self.hazard_at is not None else {}),
        )
        return out

    def _sorted(self, table: str) -> dict[str, np.ndarray]:
        """Rows of a table up to each customer's churn, by second, customer, then kind.

        Surveys are answered with a delay, so some land after a churn decided later on.
        """
        rows = {name: np.concatenate(chunks) for name, chunks in self.rows.pop(table).items()}
        keep = np.flatnonzero(rows["at"] <= self.churn_t[rows["cust"]])
        key = np.floor(rows["at"][keep] * 86400.0).astype(np.int64) * self.n + rows["cust"][keep]
        key = key * len(EVENT_KINDS) + (rows["kind"][keep] if "kind" in rows else 0)
        order = keep[np.argsort(key, kind="stable")]
        del key, keep
        for name in rows:  # one column at a time, to keep the peak memory low
            rows[name] = rows[name][order]
        return rows


def _pick(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of a (rows, levels) probability matrix."""
    return (rng.random(probs.shape[0])[:, None] > probs.cumsum(axis=1)[:, :-1]).sum(axis=1)


def _ids(prefix: str, count: int, width: int) -> pa.Array:
    """prefix + zero-padded 1..count, e.g. C0000001."""
    digits = pa.array(np.arange(1, count + 1)).cast(pa.large_string())
    padded = pc.utf8_lpad(digits, width=max(width, len(str(count))), padding="0")
    text = pa.large_string()
    return pc.binary_join_element_wise(pa.scalar(prefix, text), padded, pa.scalar("", text))


def _frame(columns: dict) -> pd.DataFrame:
    """A DataFrame over freshly built columns, without the copy that would raise peak memory."""
    return pd.DataFrame(columns, copy=False)


def _strings(values: pa.Array) -> pd.Series:
    """pandas' default string dtype; large_string is its storage, so this does not copy."""
    return pd.Series(values, dtype="str")


def _labels(levels: tuple[str, ...], codes: np.ndarray) -> pd.Series:
    """Level names for integer codes; negative codes become missing."""
    return _strings(pa.array(levels, pa.large_string()).take(pa.array(codes, mask=codes < 0)))


def _timestamps(t_start: pd.Timestamp, days: np.ndarray) -> np.ndarray:
    """Days since start (NaN = missing) as whole-second naive datetime64[us]."""
    seconds = np.floor(days * 86400.0)
    missing = np.isnan(seconds)
    seconds[missing] = 0.0
    micros = seconds.astype(np.int64)
    micros *= 1_000_000
    micros += t_start.to_datetime64().astype("datetime64[us]").astype(np.int64)
    stamps = micros.view("datetime64[us]")
    stamps[missing] = np.datetime64("NaT")
    return stamps
