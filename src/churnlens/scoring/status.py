"""Customer status at the as-of date: active, at_risk or lapsed (see config.StatusConfig).

A non-contractual label calls an infrequent buyer "churned" as readily as one who left months
ago. Status keeps the retention list for customers who can still be kept: a customer already
past their own return window (their usual gap between purchases, times a multiple) is lapsed
and gets a win-back action instead of a retention contact. Computed from the point-in-time
features `recency_days` and `gap_mean_days`, so it never looks past the as-of date.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnlens.config import StatusConfig

STATUSES = ["active", "at_risk", "lapsed"]


def customer_status(features: pd.DataFrame, settings: StatusConfig) -> pd.Categorical:
    """Status per row of a feature frame (rows without a purchase on record are lapsed)."""
    recency = features["recency_days"].to_numpy(float)
    gap = features["gap_mean_days"].to_numpy(float)
    if np.isnan(gap).all():
        gap = np.full_like(recency, settings.lapsed_floor_days / settings.lapsed_gap_multiple)
    usual = np.where(np.isnan(gap), np.nanmedian(gap), gap)
    lapsed = ~(
        recency <= np.maximum(settings.lapsed_gap_multiple * usual, settings.lapsed_floor_days)
    )
    at_risk = ~lapsed & (recency > settings.at_risk_gap_multiple * usual)
    return pd.Categorical(
        np.where(lapsed, "lapsed", np.where(at_risk, "at_risk", "active")), categories=STATUSES
    )
