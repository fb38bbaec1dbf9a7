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
from churnlens.data.contract import Tables
from churnlens.data.io import write_csv, write_parquet
from churnlens.data.output_set import publish
from churnlens.drift import psi_table
from churnlens.economics import check_budget, customer_value, expected_gain, risk_tiers
from churnlens.economics import select_targets as _budgeted
from churnlens.errors import ChurnlensError
from churnlens.features.engine import active_features, build_features
from churnlens.labels import data_end, population
from churnlens.modeling.model import ChurnModel
from churnlens.scoring import columns
from churnlens.scoring.playbook import load_playbook, recommend
from churnlens.scoring.reasons import REASON_COLUMNS, TOP_K, top_reasons
from churnlens.scoring.status import STATUSES, customer_status

log = logging.getLogger(__name__)
EXPLAIN_CHUNK = 20_000  # rows explained per round when a budget may stop early


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


def _check_as_of(tables: Tables, as_of: pd.Timestamp) -> None:
    end = data_end(tables)
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
    cuts=None,
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Reasons, actions and expected net gain for the rows that need them.

    A customer's action, so their gain, depends on their reasons, and TreeSHAP costs a fraction
    of a millisecond a row. So beyond the rows in `explained` (the high tier), customers are
    explained best upper bound first (p x value x the best save rate - the cheapest action)
    until no unexplained customer could still enter the budgeted target list (lapsed ones,
    not `eligible`, never can). Rows left unexplained have no reasons, no action and no gain
    (NaN); none of them could be a target.
    """
    best_save, least_cost = playbook.best_case
    upper = expected_gain(p, value, best_save, least_cost)
    order = np.argsort(-upper, kind="stable")
    queue = order[(upper[order] > 0) & ~explained[order] & eligible[order]]
    unlimited = contacts is None and money is None  # every positive gain is a target
    chunk = len(queue) if unlimited else max(EXPLAIN_CHUNK, 2 * (contacts or 0))
    values = pd.Series(value, index=features.index)
    parts, new = [], np.flatnonzero(explained)
    while True:
        if len(new):
            parts.append(top_reasons(model, features.iloc[new], registry, playbook.family_of))
        reasons = pd.concat(parts) if parts else pd.DataFrame(columns=REASON_COLUMNS)
        reasons = reasons.reindex(features.index)
        actions = recommend(playbook, reasons["reason_family"], features, values, status, cuts)
        gain = expected_gain(p, value, actions["save_rate"], actions["contact_cost"])
        gain = np.where(explained, gain, np.nan)
        if not len(queue):
            break
        ranked = _ranked(
            pd.DataFrame(
                {
                    "eligible": eligible,
                    "expected_net_gain": gain,
                    "contact_cost": actions["contact_cost"],
                    "customer_id": features["customer_id"],
                }
            )
        )
        left_out = ranked[  # eligible customers the budget could not take
            ranked["eligible"]
            & (ranked["expected_net_gain"] > 0)
            & ~_select_targets(ranked, contacts, money)
        ]
        if len(left_out) and upper[queue[0]] < left_out["expected_net_gain"].iloc[0]:
            break  # every unexplained customer ranks below one the budget already left out
        new, queue = queue[:chunk], queue[chunk:]
        explained[new] = True
    actions.loc[~explained, ["recommended_action", "contact_cost", "save_rate"]] = np.nan
    return reasons, actions, gain


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
) -> pd.DataFrame:
    """The risk list's rows before ranking: probability, tier, value, status, reasons, action
    and expected net gain. With explain='all' and the population's value `cuts`
    (playbook.value_cuts) each row depends on that row only, so Spark runs this per
    partition (churnlens.spark)."""
    p = model.predict_proba(features)
    value = customer_value(features, windows, config.playbook).to_numpy()
    tier = risk_tiers(p, config.scoring)
    status = pd.Series(customer_status(features, config.scoring.status), index=features.index)
    eligible = (status != "lapsed").to_numpy() | config.scoring.status.target_lapsed
    explained = np.asarray(tier == "high") | (explain == "all")
    reasons, actions, gain = _explain_and_target(
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
        cuts,
    )
    risk = pd.DataFrame(
        {
            "customer_id": features["customer_id"],
            "as_of": features["cutoff"],
            "status": status,
            "eligible": eligible,
            "churn_probability": p,
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


def model_feature_config(model: ChurnModel, config: Config):
    """The feature windows the model was trained with, and the feature config using them."""
    windows = model.contract_.get("feature_windows_days", config.features.windows_days)
    return windows, config.features.model_copy(update={"windows_days": windows})


def check_drift(drift: pd.DataFrame, config: Config) -> tuple[float, list[str]]:
    """The worst PSI among features not exempt, and the features past the warning limit;
    raises DriftError past the stop limit."""
    worst = drift[~drift["feature"].isin(config.scoring.drift_exempt)].iloc[0]
    if worst["psi"] > config.scoring.drift_stop_psi:
        raise DriftError(
            f"drift: feature {worst['feature']} has PSI {worst['psi']:.3f} against training, above "
            f"the limit scoring.drift_stop_psi = {config.scoring.drift_stop_psi}; nothing written"
        )
    warned = drift.loc[drift["psi"] > config.scoring.drift_warn_psi, "feature"].tolist()
    for feature in warned:
        log.warning(
            "feature %s drifted (PSI above %s against training)",
            feature,
            config.scoring.drift_warn_psi,
        )
    return float(worst["psi"]), warned


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
    `explain` is 'targets' (possible targets and the high tier) or 'all'. `lineage`
    (model_name, model_version, run_id) is stamped on every row. Raises `DriftError` when a
    feature drifted past scoring.drift_stop_psi.
    """
    config = config or Config()
    as_of = pd.Timestamp(parse_date(as_of, "as-of date"))
    contacts = budget_contacts if budget_contacts is not None else config.scoring.budget_contacts
    money = budget_money if budget_money is not None else config.scoring.budget_money
    check_budget(contacts, money)
    explain = explain or config.scoring.explain
    if explain not in ("targets", "all"):
        raise ChurnlensError(f"explain must be 'targets' or 'all', not {explain!r}")
    check_contract(model, config)
    lineage = {
        "model_name": config.model.name,
        "model_version": "",
        "run_id": "",
        **(lineage or {}),
    }
    playbook = load_playbook(config.playbook.path)
    _check_as_of(tables, as_of)
    spine = population(tables, [as_of], config.churn)
    if spine.empty:
        raise ChurnlensError(f"no customer is in the population at {as_of:%Y-%m-%d}")
    windows, feature_config = model_feature_config(model, config)
    features = build_features(tables, spine, feature_config, config.data, config.churn.horizon_days)
    drift = psi_table(model.reference_, features)
    worst, warned = check_drift(drift, config)
    registry = active_features(
        tables, feature_config, config.data.ces_scale, config.data.csat_scale
    )
    risk = risk_rows(
        model, features, registry, playbook, config, windows, explain, contacts, money, lineage
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
