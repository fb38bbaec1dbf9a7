"""The money model, in one place: what a customer is worth, what contacting them is expected
to earn, the risk tiers, and whom a budget buys. Training's profit metric and scoring's target
list both use it, with the playbook's per-action costs and save rates.

- **value**: the margin a customer brings in a year, ``margin_rate × spend`` over the feature
  window closest to ``playbook.value_window_days`` (365 by default), as of the cutoff.
  A customer with no spend on record is worth 0.
- **expected gain** of one contact, the *saveable* gain: ``p × value × save_rate − cost``,
  where ``p`` is the saveable churn probability (the churn probability less the probability
  that the customer has already left: ``saveable``), ``cost`` the action's price and
  ``save_rate`` the share of the customer's risk the contact removes: the action's save rate,
  lower for a customer who went quiet (the playbook's status factor), times the share of the
  risk that comes from drivers an action can address (scoring.playbook.recommend).
  So risk that only shows as symptoms, or from a customer who may be gone, ranks lower than
  risk with a live cause.
- **targets**: customers with a positive expected gain, best first, within the contact and
  money budgets; lapsed customers (scoring.status) get a win-back action and are not targets
  unless configured.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnlens.config import PlaybookConfig, ScoringConfig
from churnlens.errors import ChurnlensError

TIERS = ["low", "medium", "high"]


def value_window(windows_days: list[int], settings: PlaybookConfig) -> int:
    """The feature window whose spend measures value: the one closest to value_window_days."""
    return min(windows_days, key=lambda w: abs(w - settings.value_window_days))


def customer_value(
    features: pd.DataFrame, windows_days: list[int], settings: PlaybookConfig
) -> pd.Series:
    """Margin over the value window (see the module docstring); 0 without spend on record."""
    spend = features[f"spend_{value_window(windows_days, settings)}d"].astype("float64")
    return (spend * settings.margin_rate).fillna(0.0).rename("value")


def saveable(p, gone) -> np.ndarray:
    """The churn probability a contact can still act on: `p` less the probability that the
    customer has already left (scoring.status.gone_probability), never below 0. A customer
    already gone counts as churned in the label, but nobody gone can be kept."""
    return np.clip(np.asarray(p, float) - np.asarray(gone, float), 0.0, None)


def expected_gain(p, value, save_rate, cost) -> np.ndarray:
    """Expected net gain of contacting each customer: p × value × save_rate − cost."""
    return np.asarray(p, float) * np.asarray(value, float) * np.asarray(save_rate, float) - (
        np.asarray(cost, float)
    )


def risk_tiers(p: np.ndarray, settings: ScoringConfig) -> pd.Categorical:
    """'high' from high_risk_threshold, 'medium' from medium_risk_threshold, else 'low'."""
    tier = np.where(
        p >= settings.high_risk_threshold,
        "high",
        np.where(p >= settings.medium_risk_threshold, "medium", "low"),
    )
    return pd.Categorical(tier, categories=TIERS)


def check_budget(contacts: int | None, money: float | None) -> None:
    """A budget is a positive number or absent (no limit); 0 would silently buy nothing."""
    for name, amount in (("contacts", contacts), ("money", money)):
        if amount is not None and not amount > 0:
            raise ChurnlensError(
                f"budget {name} must be > 0, got {amount}; leave it out for no limit"
            )


def select_targets(
    gain: np.ndarray,
    cost: np.ndarray,
    contacts: int | None = None,
    money: float | None = None,
    eligible: np.ndarray | None = None,
) -> np.ndarray:
    """Which rows are targets, for rows already ordered best first by expected gain.

    Positive-gain rows (among `eligible` ones: lapsed customers are not, by default) are taken
    in order while the running count stays within `contacts` and the running contact cost
    within `money` (None: no limit).
    """
    check_budget(contacts, money)
    eligible = (np.asarray(gain, float) > 0) & (True if eligible is None else eligible)
    chosen = eligible.copy()
    if contacts is not None:
        chosen &= np.cumsum(eligible) <= contacts
    if money is not None:
        chosen &= np.cumsum(np.where(eligible, np.asarray(cost, float), 0.0)) <= money
    return chosen
