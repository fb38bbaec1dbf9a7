"""Scoring DataFrames: the risk list at an as-of date, with reasons, actions and targets.

`score` is pure: validated tables and a fitted model in, a `ScoreResult` out. Reading inputs,
loading the model from the registry or a folder, and writing the files live in
`churnlens.pipeline`; `write_outputs` here writes a result.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from churnlens.config import Config, parse_date
from churnlens.data.io import write_csv, write_parquet
from churnlens.data.output_set import publish
from churnlens.data.tables import Tables
from churnlens.drift import psi_table, shift_summary
from churnlens.economics import (
    check_budget,
    customer_value,
    expected_gain,
    risk_tiers,
    saveable,
)
from churnlens.economics import select_targets as _budgeted
from churnlens.errors import VALIDATED, ChurnlensError, expect
from churnlens.features.engine import build_features
from churnlens.labels import data_end, population
from churnlens.modeling.model import ChurnModel
from churnlens.scoring import columns
from churnlens.scoring.playbook import (
    best_gain,
    load_playbook,
    recommend,
    value_cuts,
    warn_misspelt_families,
)
from churnlens.scoring.reasons import (
    REASON_COLUMNS,
    TOP_K,
    registry_for,
    screening_share,
    top_reasons,
)
from churnlens.scoring.status import STATUSES, customer_status, gone_probability, stand_in_gap

log = logging.getLogger(__name__)
EXPLAIN_CHUNK = 20_000  # fewest rows explained per round when a budget may stop early
EXPLAIN = ("targets", "high", "all")  # who gets reasons, beyond what the budget needs


class DriftError(ChurnlensError):
    """Features drifted past the configured PSI limit: nothing is written (exit code 3)."""

    exit_code = 3


@dataclass
class ScoreResult:
    risk_list: pd.DataFrame
    drift: pd.DataFrame
    summary: dict


def check_contract(model: ChurnModel, config: Config) -> None:
    """Refuse a config whose churn definition differs from the one the model learned."""
    contract = model.contract_
    wanted = {
        "churn_type": config.churn.type,
        "horizon_days": config.churn.horizon_days,
        "active_window_days": config.churn.active_window_days,
    }
    keys = {name: f"churn.{name}" for name in wanted} | {"churn_type": "churn.type"}
    for name, ours in wanted.items():
        if name in contract and contract[name] != ours:
            raise ChurnlensError(
                f"model: trained for {name} = {contract[name]!r}, but the config's "
                f"{keys[name]} is {ours!r}; its probabilities would mean something else. Score "
                f"with a config of {name} = {contract[name]!r} or train a model for {ours!r}"
            )


def _check_as_of(tables: Tables, as_of: pd.Timestamp, churn_type: str) -> None:
    end = data_end(tables, churn_type)  # contractual data end with the last cancellation
    if as_of > end.normalize() + pd.Timedelta(days=1):
        raise ChurnlensError(
            f"--as-of {as_of:%Y-%m-%d} is after the data end ({end:%Y-%m-%d}): features such as "
            "recency would count days the data do not cover; score at or before the data end"
        )


def _select_targets(frame: pd.DataFrame, contacts: int | None, money: float | None) -> np.ndarray:
    """Targets among rows sorted best first (see churnlens.economics.select_targets)."""
    return _budgeted(
        frame["expected_net_gain"].fillna(-np.inf).to_numpy(),
        frame["contact_cost"].to_numpy(),
        contacts,
        money,
        frame["eligible"].to_numpy(),
    )


def _explain_and_target(
    model,
    features,
    registry,
    playbook,
    p,
    value,
    status,
    eligible,
    explained,
    contacts,
    money,
    margin=1.0,
    cuts=None,
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Reasons, actions and expected net gain for the rows that need them; `p` is the
    saveable churn probability (economics.saveable).

    A customer's action, so their gain, depends on their reasons, and TreeSHAP is the costly
    step. So beyond the rows in `explained` (asked for), customers are explained in rounds,
    best upper bound first (playbook.best_gain: the best gain their possible actions allow),
    until no unexplained customer could still enter the budgeted target list
    (lapsed ones, not `eligible`, never can). With `margin` < 1 (scoring.screen_margin) the
    bound takes each customer's driver share as its path-attribution estimate plus `margin`
    (reasons.screening_share) instead of 1: a screen, no longer a proof, that spares TreeSHAP
    for customers whose gain could only come from a driver share far above their estimate.
    Each round explains and prices only its new rows (value rules against the whole
    population) and ranks only the explained candidates.
    Rows left unexplained have no reasons, no action and no gain (NaN); none could be a target.
    """
    values = pd.Series(value, index=features.index)
    cuts = cuts or value_cuts(playbook, values)  # the whole population's, for every round
    upper = best_gain(playbook, p, features, values, status, cuts)
    open_rows = np.flatnonzero((upper > 0) & ~explained & eligible)
    if margin < 1 and len(open_rows):  # screen: the bound with each row's estimated share
        rows = features.iloc[open_rows]
        share = np.minimum(1.0, screening_share(model, rows, registry) + margin)
        args = (p[open_rows], rows, values.iloc[open_rows], status.iloc[open_rows], cuts, share)
        upper[open_rows] = best_gain(playbook, *args)
    order = np.argsort(-upper, kind="stable")
    queue = order[(upper[order] > 0) & ~explained[order] & eligible[order]]
    unlimited = contacts is None and money is None  # every positive gain is a target
    size = len(queue) if unlimited else max(EXPLAIN_CHUNK, contacts or 0)  # the first round
    ids = features["customer_id"].to_numpy()
    gain = np.full(len(features), np.nan)
    cost = np.full(len(features), np.nan)
    parts, priced, new = [], [], np.flatnonzero(explained)
    while True:
        if len(new):
            rows = features.iloc[new]
            reasons = top_reasons(model, rows, registry, playbook.family_of)
            actions = recommend(
                playbook,
                reasons["reason_family"],
                rows,
                values.iloc[new],
                status.iloc[new],
                reasons["driver_share"],
                cuts=cuts,
            )
            gain[new] = expected_gain(
                p[new], value[new], actions["save_rate"], actions["contact_cost"]
            )
            cost[new] = actions["contact_cost"].to_numpy()
            parts.append(reasons)
            priced.append(actions)
        if not len(queue):
            break
        candidates = np.flatnonzero(eligible & (gain > 0))  # explained, could be targets
        ranked = candidates[np.lexsort((ids[candidates], -gain[candidates]))]
        left_out = ranked[~_budgeted(gain[ranked], cost[ranked], contacts, money)]
        if len(left_out) and upper[queue[0]] < gain[left_out[0]]:
            break  # every unexplained customer ranks below one the budget already left out
        new, queue = queue[:size], queue[size:]
        explained[new] = True
        size = max(EXPLAIN_CHUNK, int(explained.sum()) // 4)  # then a quarter more a round
    reasons = _stacked(parts, REASON_COLUMNS, features.index)
    actions = _stacked(priced, ["recommended_action", "contact_cost", "save_rate"], features.index)
    return reasons, actions, gain


def _stacked(parts: list[pd.DataFrame], names: list[str], index: pd.Index) -> pd.DataFrame:
    """The explained rows' parts on the whole population's index; other rows missing."""
    frame = pd.concat(parts) if parts else pd.DataFrame(columns=names)
    return frame.reindex(index)


def _ranked(frame: pd.DataFrame) -> pd.DataFrame:
    """Retention candidates first (lapsed customers after them), best expected gain first,
    ties by customer_id."""
    return frame.sort_values(
        ["eligible", "expected_net_gain", "customer_id"],
        ascending=[False, False, True],
        kind="stable",
    )


def risk_rows(
    model,
    features,
    registry,
    playbook,
    config,
    windows,
    explain,
    contacts,
    money,
    lineage,
    cuts=None,
    stand_in=None,
) -> pd.DataFrame:
    """The risk list's rows before ranking: probability, tier, value, status, reasons, action
    and expected net gain. With explain='all', the population's value `cuts`
    (playbook.value_cuts) and its `stand_in` gap (status.stand_in_gap) each row depends on
    that row only, so Spark runs this per partition (churnlens.spark)."""
    p = model.predict_proba(features)
    value = customer_value(features, windows, config.playbook).to_numpy()
    tier = risk_tiers(p, config.scoring)
    settings = config.scoring.status
    stand_in = stand_in_gap(features) if stand_in is None else stand_in
    status = pd.Series(customer_status(features, settings, stand_in), index=features.index)
    gone = gone_probability(features, p, settings, config.churn.horizon_days, stand_in)
    eligible = (status != "lapsed").to_numpy() | settings.target_lapsed
    explained = {
        "targets": np.zeros(len(features), dtype=bool),
        "high": np.asarray(tier == "high"),
        "all": np.ones(len(features), dtype=bool),
    }[explain]
    reasons, actions, gain = _explain_and_target(
        model,
        features,
        registry,
        playbook,
        saveable(p, gone),
        value,
        status,
        eligible,
        explained,
        contacts,
        money,
        config.scoring.screen_margin,
        cuts,
    )
    risk = pd.DataFrame(
        {
            "customer_id": features["customer_id"],
            "as_of": features["cutoff"],
            "status": status,
            "eligible": eligible,
            "churn_probability": p,
            "gone_probability": gone,
            "risk_tier": tier,
            "value": value,
            "value_at_risk": p * value,
            "expected_net_gain": gain,
        },
        index=features.index,
    )
    return pd.concat([risk, reasons, actions], axis=1).assign(**lineage)


def rank_and_target(risk: pd.DataFrame, contacts: int | None, money: float | None):
    """`risk` (at least customer_id, eligible, expected_net_gain, contact_cost) ranked, with
    `rank` and the budgeted `target` flag: the one global step of scoring."""
    risk = _ranked(risk).reset_index(drop=True)
    risk["rank"] = np.arange(1, len(risk) + 1)
    risk["target"] = _select_targets(risk, contacts, money)
    return risk


def check_drift(drift: pd.DataFrame, config: Config) -> tuple[float, list[str]]:
    """The worst PSI among features not exempt, and the features past the warning limit;
    raises DriftError past the stop limit."""
    exempt, warn = config.scoring.drift_exempt, config.scoring.drift_warn_psi
    watched = drift[~drift["feature"].isin(exempt)]  # may be none
    worst = float(watched["psi"].max()) if len(watched) else 0.0
    stop = config.scoring.drift_stop_psi
    if worst > stop:
        names = watched.loc[watched["psi"] > stop, "feature"].tolist()
        also = f" (also {', '.join(names[1:])})" if len(names) > 1 else ""
        raise DriftError(
            f"drift: feature {names[0]} has PSI {worst:.3f} against training, above the limit "
            f"scoring.drift_stop_psi = {stop}{also}; nothing written. If the shift is expected "
            "(a cohort that ages, a feature that grows with the calendar), list the features in "
            "the config's scoring.drift_exempt "
            f"(reported, never a stop), e.g. drift_exempt: [{', '.join([*exempt, *names])}]; "
            f"else retrain on recent data. All shifts: {shift_summary(drift, warn, exempt)}"
        )
    warned = drift.loc[drift["psi"] > warn, "feature"].tolist()
    if warned:
        log.warning("drift: %s (drift.csv has every feature)", shift_summary(drift, warn, exempt))
    return worst, warned


def summarize(risk, as_of, worst_psi, warned, model, lineage) -> dict:
    """The manifest's summary of a ranked risk list."""
    targets = risk[risk["target"]]
    return {
        "as_of": f"{as_of:%Y-%m-%d}",
        "customers": len(risk),
        "high_risk": int((risk["risk_tier"] == "high").sum()),
        "status": {name: int((risk["status"] == name).sum()) for name in STATUSES},
        "targets": len(targets),
        "contact_cost": float(targets["contact_cost"].sum()),
        "expected_net_gain": float(targets["expected_net_gain"].sum()),
        "value_at_risk_total": float(risk["value_at_risk"].sum()),
        "value_at_risk_covered": float(targets["value_at_risk"].sum()),
        "max_psi": worst_psi,
        "drift_warnings": warned,
        "reasons_for": int(risk["reason_family"].notna().sum()),
        "model_contract": model.contract_,
        **lineage,
    }


def score(
    model: ChurnModel,
    tables: Tables,
    as_of: str | dt.date,
    config: Config | None = None,
    *,
    budget_contacts: int | None = None,
    budget_money: float | None = None,
    explain: str | None = None,
    lineage: dict | None = None,
) -> ScoreResult:
    """Score the population at `as_of`: probability, tier, value, reasons, action, targets.

    `tables` come from `churnlens.validate`; `model` from `churnlens.fit(...).model`,
    `ChurnModel.load` or the registry. Budgets (contacts, money) default to the config's;
    `explain` (default: the config's) gives reasons to the possible targets ('targets'),
    also to the whole high tier ('high'), or to everyone ('all'). `lineage`
    (model_name, model_version, run_id) is stamped on every row. Raises `DriftError` when a
    feature drifted past scoring.drift_stop_psi.
    """
    config = config or Config()
    expect(model, ChurnModel, "score: model is a ChurnModel (churnlens.fit(...).model or load)")
    expect(tables, Tables, f"score: tables are {VALIDATED}")
    as_of = pd.Timestamp(parse_date(as_of, "as-of date"))
    contacts = budget_contacts if budget_contacts is not None else config.scoring.budget_contacts
    money = budget_money if budget_money is not None else config.scoring.budget_money
    check_budget(contacts, money)
    explain = explain or config.scoring.explain
    if explain not in EXPLAIN:
        raise ChurnlensError(f"explain must be 'targets', 'high' or 'all', not {explain!r}")
    check_contract(model, config)
    lineage = {
        "model_name": config.model.name,
        "model_version": "",
        "run_id": "",
        **(lineage or {}),
    }
    playbook = load_playbook(config.playbook.path)
    _check_as_of(tables, as_of, config.churn.type)
    spine = population(tables, [as_of], config.churn)
    if spine.empty:
        raise ChurnlensError(f"no customer is in the population at {as_of:%Y-%m-%d}")
    feature_config, registry = registry_for(model, tables, config)
    warn_misspelt_families(playbook, registry)
    horizon = config.churn.horizon_days
    features = build_features(tables, spine, feature_config, config.data, horizon, registry)
    drift = psi_table(model.reference_, features)
    worst, warned = check_drift(drift, config)
    risk = risk_rows(
        model,
        features,
        registry,
        playbook,
        config,
        feature_config.windows_days,
        explain,
        contacts,
        money,
        lineage,
    )
    risk = columns.conform(rank_and_target(risk, contacts, money))
    summary = summarize(risk, as_of, worst, warned, model, lineage)
    return ScoreResult(risk, drift, summary)


def write_outputs(result: ScoreResult, out: Path) -> dict:
    """Write the risk list (Parquet, CSV), the PSI table and the manifest as one set."""
    files = {
        "risk_list.parquet": lambda path: write_parquet(result.risk_list, path),
        "risk_list.csv": lambda path: write_csv(result.risk_list, path),
        "drift.csv": lambda path: write_csv(result.drift, path),
    }
    manifest = {
        **result.summary,
        "rows": len(result.risk_list),
        "reason_columns": [f"reason_{i}" for i in range(1, TOP_K + 1)],
    }
    return publish(out, files, manifest)
