"""Customer status at the as-of date: active, at_risk or lapsed (see config.StatusConfig).

A non-contractual label calls an infrequent buyer "churned" as readily as one who left months
ago. Status keeps the retention list for customers who can still be kept: a customer already
past their own return window is lapsed and gets a win-back action instead of a retention
contact. The window comes from every sign of life the shop records, not purchases only: a
customer who stopped buying but still logs in is still there (and worth a retention contact),
and one who left a few weeks ago has usually stopped logging in long before a purchase is
overdue. Each kind of sign is taken as a steady stream, so their rates add up: the usual gap
between signs of life is 1 / (1 / the usual gap between purchases + tickets and listed events
per day over the longest feature window). Computed from point-in-time features, so it never
looks past the as-of date; a shop with purchases only gets the purchase rhythm alone.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from churnlens.config import StatusConfig
from churnlens.features.registry import column_name

STATUSES = ["active", "at_risk", "lapsed"]


def _longest_window(columns) -> int | None:
    windows = [int(m[1]) for c in columns if (m := re.fullmatch(r"orders_(\d+)d", c))]
    return max(windows, default=None)


def stand_in_gap(features: pd.DataFrame) -> float:
    """The population's median purchase gap, which stands in for one-order customers (NaN
    when nobody has two orders). Taken once over the whole population, so a customer's status
    does not depend on the batch they are scored in."""
    gap = features["gap_mean_days"].to_numpy(float)
    return np.nan if np.isnan(gap).all() else float(np.nanmedian(gap))


def signs_of_life(
    features: pd.DataFrame, settings: StatusConfig, stand_in: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: days since the last sign of life, and the usual gap between signs of life.

    Signs are completed purchases, tickets opened and the events in `settings.life_events`,
    where the feature frame has them. A customer with one order has no purchase gap of their
    own: `stand_in` (default: `stand_in_gap` of this frame) stands in. Gaps under a day
    (orders at the same time) count as a day: the rhythm of a daily buyer, not an infinite rate.
    """
    silence = features["recency_days"].to_numpy(float)
    gap = features["gap_mean_days"].to_numpy(float)
    stand_in = stand_in_gap(features) if stand_in is None else stand_in
    if np.isnan(stand_in):
        stand_in = settings.lapsed_floor_days / settings.lapsed_gap_multiple
    rate = 1.0 / np.maximum(np.where(np.isnan(gap), stand_in, gap), 1.0)
    window = _longest_window(features.columns)
    sources = [("days_since_last_ticket", f"tickets_{window}d")] + [
        (f"days_since_{column_name(kind)}", f"{column_name(kind)}_{window}d")
        for kind in settings.life_events
    ]
    if window is not None:
        span = np.minimum(window, features["tenure_days"].to_numpy(float))
        for since, count in sources:
            if since in features.columns and count in features.columns:
                silence = np.fmin(silence, features[since].to_numpy(float))
                rate = rate + features[count].to_numpy(float) / np.maximum(span, 1.0)
    return silence, 1.0 / rate


def customer_status(
    features: pd.DataFrame, settings: StatusConfig, stand_in: float | None = None
) -> pd.Categorical:
    """Status per row of a feature frame (rows without any sign of life on record are lapsed);
    `stand_in` as in `signs_of_life`."""
    silence, usual = signs_of_life(features, settings, stand_in)
    lapsed = ~(
        silence <= np.maximum(settings.lapsed_gap_multiple * usual, settings.lapsed_floor_days)
    )
    at_risk = ~lapsed & (silence > settings.at_risk_gap_multiple * usual)
    return pd.Categorical(
        np.where(lapsed, "lapsed", np.where(at_risk, "at_risk", "active")), categories=STATUSES
    )


def gone_probability(
    features: pd.DataFrame,
    p: np.ndarray,
    settings: StatusConfig,
    horizon_days: int,
    stand_in: float | None = None,
) -> np.ndarray:
    """Per row: the probability that the customer has already left at the as-of date.

    The Pareto/NBD reading of a silence: while a customer stays, signs of life come at their
    usual rate λ (1 / the usual gap, see `signs_of_life`); they leave at a daily hazard δ.
    After s silent days P(still there) = 1 / (1 + δ / (λ + δ) × (e^((λ + δ) s) − 1)). δ is
    the customer's own, read off their churn probability over the horizon:
    p = 1 − e^(−δ × horizon). So a long silence from a frequent visitor at high risk most
    likely means they are gone, the same silence from a rare buyer at low risk does not.
    `stand_in` as in `signs_of_life`.
    """
    silence, usual = signs_of_life(features, settings, stand_in)
    delta = -np.log1p(-np.clip(p, 0.0, 1.0 - 1e-9)) / horizon_days
    rate = 1.0 / usual + delta
    silence = np.nan_to_num(silence, nan=np.inf)  # no sign of life on record: gone
    growth = np.expm1(np.minimum(rate * silence, 700.0))
    return 1.0 - 1.0 / (1.0 + delta / rate * growth)
