"""The retention playbook: from a customer's strongest reason and value to an action.

The mapping lives in YAML (configs/playbook.yaml) so a retention team can change actions,
costs and save rates without touching code; this module validates it and applies it.
"""

from __future__ import annotations

import difflib
import fnmatch
import logging
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from churnlens.config import read_yaml
from churnlens.economics import expected_gain
from churnlens.errors import ChurnlensError

DEFAULT = "default"
log = logging.getLogger(__name__)
NO_INCENTIVE, TOP_VALUE, WIN_BACK = "no_incentive", "top_value", "win_back"  # rule actions
# Rules whose save rate holds for the whole risk: a win-back offer answers the leaving itself,
# not a cause, so the share of the risk from drivers (`driver_share`) does not scale it.
WHOLE_RISK = (WIN_BACK,)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Action(_Strict):
    action: str
    cost: float = Field(ge=0)
    save_rate: float = Field(ge=0, le=1)


class TopValueRule(_Strict):
    min_value_quantile: float = Field(ge=0, le=1)
    action: Action


class NoIncentiveRule(_Strict):
    max_value_quantile: float = Field(ge=0, le=1)
    min_discount_share: float = Field(ge=0, le=1)
    min_tickets_per_order: float = Field(ge=0)
    action: Action


class Playbook(_Strict):
    actions: dict[str, Action]
    families: dict[str, list[str]] = {}  # re-file features into another family by pattern
    top_value: TopValueRule | None = None
    no_incentive: NoIncentiveRule | None = None
    win_back: Action | None = None  # for lapsed customers, whatever their reasons
    # Share of an action's save rate that holds for a customer of this status: an `at_risk`
    # customer may already have left, and nobody gone can be kept. Missing statuses: 1.
    status_save_factor: dict[Literal["active", "at_risk", "lapsed"], float] = {}

    @field_validator("status_save_factor")
    @classmethod
    def _factors(cls, factors: dict[str, float]) -> dict[str, float]:
        if any(not 0 <= f <= 1 for f in factors.values()):
            raise ValueError("every factor must lie in [0, 1]")
        return factors

    def status_factor(self, status) -> np.ndarray:
        """Per customer, the factor their status puts on any action's save rate (1 unless the
        playbook sets one)."""
        factors = pd.Series(np.asarray(status, dtype=object)).map(self.status_save_factor)
        return factors.fillna(1.0).to_numpy(float)

    def family_of(self, feature: str, default: str = DEFAULT) -> str:
        """The first family with a pattern matching `feature`, else `default` (the family the
        feature registry gives it)."""
        for family, patterns in self.families.items():
            if any(fnmatch.fnmatchcase(feature, pattern) for pattern in patterns):
                return family
        return default

    def family_action(self, family: str) -> Action:
        """A reason family's action, else the default one."""
        return self.actions.get(family, self.actions[DEFAULT])

    def rule_action(self, rule: str) -> Action:
        """The action of a rule `ruled_actions` names (a family of the same name is apart)."""
        ruled = {
            NO_INCENTIVE: self.no_incentive and self.no_incentive.action,
            TOP_VALUE: self.top_value and self.top_value.action,
            WIN_BACK: self.win_back,
        }
        return ruled[rule]


def load_playbook(path: Path) -> Playbook:
    if not path.is_file():
        raise ChurnlensError(f"playbook {path}: file not found (config playbook.path)")
    raw = read_yaml(path, "playbook")
    if not isinstance(raw, dict):
        raise ChurnlensError(
            f"playbook {path}: empty or not a mapping; it needs `actions:` with a "
            f"'{DEFAULT}' entry (the package's own playbook.yaml shows the form)"
        )
    try:
        playbook = Playbook.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: "
            + ("unknown key" if e["type"] == "extra_forbidden" else e["msg"])
            for e in error.errors()
        )
        raise ChurnlensError(f"playbook {path}: {problems}") from None
    missing = sorted(set(playbook.families) - set(playbook.actions))
    if DEFAULT not in playbook.actions or missing:
        raise ChurnlensError(
            f"playbook {path}: actions need a '{DEFAULT}' entry and one per family"
            + (f"; no action for {', '.join(missing)}" if missing else "")
        )
    return playbook


def warn_misspelt_families(playbook: Playbook, registry) -> list[str]:
    """Warn of each action whose family no reason can have (none of the `registry`'s
    features, as the playbook files them, is in it) but which is close to one that can: a
    misspelt family (`pricng`) would otherwise never be chosen, in silence. An action for a
    family this shop's data lack (the default playbook's `billing`) is not near any, so it
    stays quiet. Returns the warnings."""
    families = {playbook.family_of(feature.name, feature.family) for feature in registry}
    found = []
    for name in sorted(set(playbook.actions) - families - {DEFAULT}):
        close = difflib.get_close_matches(name, sorted(families), n=1, cutoff=0.8)
        if close:
            found.append(
                f"playbook: action '{name}' names no reason family of this model, so it is "
                f"never chosen; did you mean '{close[0]}'?"
            )
            log.warning(found[-1])
    return found


def value_cuts(playbook: Playbook, value: pd.Series) -> tuple[float | None, float | None]:
    """The population's value quantiles the value rules compare with: (no-incentive ceiling,
    top-value floor). Spark computes them once over every partition."""
    cheap, top = playbook.no_incentive, playbook.top_value
    return (
        None if cheap is None else value.quantile(cheap.max_value_quantile),
        None if top is None else value.quantile(top.min_value_quantile),
    )


def ruled_actions(
    playbook: Playbook,
    features: pd.DataFrame,
    value: pd.Series,
    status: pd.Series | None,
    cuts: tuple[float | None, float | None],
) -> pd.Series:
    """Per customer, the action the value and status rules fix whatever their reasons
    (no_incentive, top_value, win_back), missing where the reason family picks it.

    The top-value rule wins over no-incentive, and win-back (lapsed customers, when the
    playbook has it) over both. `cuts` are the population's value quantiles (`value_cuts`)."""
    low, high = cuts
    chosen = pd.Series(None, index=value.index, dtype="object")
    cheap, top = playbook.no_incentive, playbook.top_value
    if cheap is not None:
        costly = _column(features, "discount_share") >= cheap.min_discount_share
        costly |= _column(features, "tickets_per_order") >= cheap.min_tickets_per_order
        chosen[(value <= low) & costly] = NO_INCENTIVE
    if top is not None:
        chosen[value >= high] = TOP_VALUE
    if playbook.win_back is not None and status is not None:
        chosen[np.asarray(status == "lapsed")] = WIN_BACK
    return chosen


def recommend(
    playbook: Playbook,
    family: pd.Series,
    features: pd.DataFrame,
    value: pd.Series,
    status: pd.Series | None = None,
    driver_share: pd.Series | None = None,
    cuts: tuple[float | None, float | None] | None = None,
) -> pd.DataFrame:
    """Action, cost and save rate per customer from their reason family and value rules.

    `family` is each customer's strongest reason family (missing: none, so 'default');
    the rules of `ruled_actions` come first. Value rules use quantiles of `value` in this
    scoring population (`cuts`, default `value_cuts` of `value`; pass the whole population's
    when these rows are a part of it). The save rate is the share of the customer's churn
    risk the contact is expected to remove: the action's, times the playbook's factor for the
    customer's status, times (for a retention action) `driver_share`, the part of the risk
    that comes from drivers an action can address (scoring.reasons): "no purchase for 40 days"
    is how churn shows, not a cause an offer can fix, so risk that only shows as signs earns
    little.
    """
    cuts = cuts or value_cuts(playbook, value)
    ruled = ruled_actions(playbook, features, value, status, cuts)
    family = family.fillna(DEFAULT).astype("object")
    by_rule = ruled.map({rule: playbook.rule_action(rule) for rule in ruled.dropna().unique()})
    by_family = family.map({name: playbook.family_action(name) for name in family.unique()})
    chosen = by_rule.where(ruled.notna(), by_family)  # a family may share a rule's name
    save_rate = chosen.map(lambda a: a.save_rate).astype("float64")
    if status is not None:
        save_rate *= playbook.status_factor(status)
    if driver_share is not None:
        save_rate *= np.where(ruled.isin(WHOLE_RISK), 1.0, driver_share.to_numpy(float))
    return pd.DataFrame(
        {
            "recommended_action": chosen.map(lambda a: a.action).astype("str"),
            "contact_cost": chosen.map(lambda a: a.cost).astype("float64"),
            "save_rate": save_rate,
        },
        index=family.index,
    )


def best_gain(
    playbook: Playbook,
    p: np.ndarray,
    features: pd.DataFrame,
    value: pd.Series,
    status: pd.Series,
    cuts: tuple[float | None, float | None],
    driver_share: np.ndarray | float = 1.0,
) -> np.ndarray:
    """Per customer, the highest expected net gain `recommend` can give them before their
    reasons are known: their ruled action's, else the best of the family actions, with
    `driver_share` (default 1: a true bound; WHOLE_RISK rules ignore it, as in `recommend`).
    Scoring explains only customers this bound lets into the targets."""
    factor = playbook.status_factor(status)

    def gain(action: Action, share=driver_share) -> np.ndarray:
        rate = action.save_rate * factor * share
        return expected_gain(p, value.to_numpy(float), rate, action.cost)

    bound = np.max([gain(action) for action in playbook.actions.values()], axis=0)
    ruled = ruled_actions(playbook, features, value, status, cuts)
    for key in ruled.dropna().unique():
        rows = (ruled == key).to_numpy()
        share = 1.0 if key in WHOLE_RISK else driver_share
        bound[rows] = gain(playbook.rule_action(key), share)[rows]
    return bound


def _column(features: pd.DataFrame, name: str) -> pd.Series:
    if name in features.columns:
        return features[name].astype("float64").fillna(0.0)
    return pd.Series(np.zeros(len(features)), index=features.index)
