"""BTYD features: what a BG/NBD model fitted at each cutoff says about each customer.

The classical "buy till you die" model turns a customer's repeat purchases, recency and age
into P(alive), the expected purchases and P(no purchase) in the churn horizon; Gamma-Gamma
turns the spend of their repeat purchases into an expected spend per purchase, shrunk toward
the population mean the fewer repeats they made. These are
strong, smooth summaries of the purchase rhythm that a tree model would otherwise have to
piece together, and they soften the tenure gap between training and test cutoffs. At each
cutoff the model is fitted on the purchases before it only (every customer who has bought),
completed as of that cutoff (`completed_at`: a refund counts from its time on), so the
features are point-in-time like the SQL ones. A fit that fails at one cutoff leaves
that cutoff's features of that model missing (NaN, which LightGBM handles) with a warning.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from churnlens.data.contract import COMPLETION_COLUMNS, Tables, completed_at
from churnlens.errors import ChurnlensError
from churnlens.modeling.bgnbd import BGNBD, fit_sample, rfm_summary
from churnlens.modeling.gammagamma import GammaGamma

log = logging.getLogger(__name__)

BTYD_FEATURES = (
    "bgnbd_p_alive",
    "bgnbd_expected_purchases",
    "bgnbd_p_no_purchase",
    "gg_expected_spend",
)
PENALIZER = 0.001  # keeps the fit finite when a cutoff shows little sign of dropout
WEEK = 7.0


def _at_cutoff(purchases: pd.DataFrame, cutoff, customers: pd.Series, horizon_days: int):
    """BTYD features of `customers` at one cutoff (NaN for those who never bought)."""
    out = pd.DataFrame(np.nan, index=range(len(customers)), columns=list(BTYD_FEATURES))
    summary = rfm_summary(purchases, cutoff, unit_days=WEEK)
    if summary.empty:
        return out
    out["gg_expected_spend"] = expected_spend(purchases, cutoff, customers)
    fitted = fit_sample(summary)
    try:
        model = BGNBD(PENALIZER).fit(fitted["frequency"], fitted["recency"], fitted["T"])
    except ChurnlensError as error:
        log.warning("BTYD features at cutoff %s are missing: %s", f"{cutoff:%Y-%m-%d}", error)
        return out
    own = summary.reindex(customers.to_numpy())
    known = own["frequency"].notna().to_numpy()
    x, tx, T = (own[c].to_numpy()[known] for c in ("frequency", "recency", "T"))
    t = horizon_days / WEEK
    out.loc[known, "bgnbd_p_alive"] = model.p_alive(x, tx, T)
    out.loc[known, "bgnbd_expected_purchases"] = model.expected_purchases(t, x, tx, T)
    out.loc[known, "bgnbd_p_no_purchase"] = model.p_no_purchase(t, x, tx, T)
    return out


def expected_spend(purchases: pd.DataFrame, cutoff, customers: pd.Series) -> np.ndarray:
    """Gamma-Gamma expected spend per purchase day from the repeat purchase days before the
    cutoff (days as in `rfm_summary`); NaN for customers who never bought or a failed fit."""
    before = purchases[purchases["ordered_at"] < cutoff]
    daily = before.groupby(["customer_id", before["ordered_at"].dt.normalize()])["amount"].sum()
    repeats = daily[daily.groupby(level=0).cumcount().to_numpy() > 0].groupby(level=0)
    summary = pd.DataFrame({"x": repeats.size(), "m": repeats.mean()})
    summary = summary.reindex(daily.index.unique(level=0)).fillna({"x": 0.0})
    fitted = fit_sample(summary)
    try:
        model = GammaGamma().fit(fitted["x"], fitted["m"])
    except ChurnlensError as error:
        log.warning("Gamma-Gamma spend at cutoff %s is missing: %s", f"{cutoff:%Y-%m-%d}", error)
        return np.full(len(customers), np.nan)
    own = summary.reindex(customers.to_numpy())
    spend = model.expected_spend(own["x"].fillna(0.0), own["m"])
    return np.where(own["x"].notna(), spend, np.nan)


def add_btyd_features(tables: Tables, frame: pd.DataFrame, horizon_days: int) -> pd.DataFrame:
    """`frame` (customer_id, cutoff, ...) with the BTYD features of each row appended."""
    wanted = ["customer_id", "ordered_at", "amount", *COMPLETION_COLUMNS]
    purchases = tables.purchases[[c for c in wanted if c in tables.purchases.columns]]
    features = pd.DataFrame(np.nan, index=frame.index, columns=list(BTYD_FEATURES))
    groups = frame.groupby("cutoff", sort=True).groups
    completed = completed_at(purchases, *groups)
    for k, (cutoff, rows) in enumerate(groups.items()):
        done = purchases[completed[:, k]]
        part = _at_cutoff(done, cutoff, frame.loc[rows, "customer_id"], horizon_days)
        features.loc[rows] = part.to_numpy()
    return pd.concat([frame, features.astype("float64")], axis=1)
