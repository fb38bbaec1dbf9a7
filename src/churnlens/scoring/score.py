"""Batch scoring: the risk list at an as-of date, with reasons, actions and a budgeted target list.

Everything is computed before anything is written; a drift stop or a bad input leaves the
output folder as it was. Each file is replaced atomically and `manifest.json` is written last,
so a reader who finds a manifest finds the list it describes. Same inputs, same bytes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from churnlens.config import Config
from churnlens.data.contract import Tables, load_tables
from churnlens.data.io import write_atomic, write_csv, write_parquet
from churnlens.errors import ChurnlensError
from churnlens.features.engine import active_features, build_features
from churnlens.labels import data_end, population
from churnlens.modeling.model import ChurnModel
from churnlens.modeling.train import customer_value
from churnlens.scoring.drift import psi_table
from churnlens.scoring.playbook import load_playbook, recommend
from churnlens.scoring.reasons import REASON_COLUMNS, TOP_K, top_reasons

FILES = ("risk_list.parquet", "risk_list.csv", "drift.csv", "manifest.json")
EXPLAIN_CHUNK = 20_000  # rows explained per round when a budget may stop early


class DriftError(ChurnlensError):
    """Features drifted past the configured PSI limit: nothing is written (exit code 3)."""

    exit_code = 3


@dataclass
class ScoreResult:
    risk_list: pd.DataFrame
    drift: pd.DataFrame
    summary: dict


def load_model(config: Config, reference: str | None) -> tuple[ChurnModel, dict]:
    """The champion by default; `models:/...` from the registry; else an exported folder."""
    if reference is None or reference.startswith("models:/"):
        from churnlens import tracking

        return tracking.load_model_uri(config, reference or f"models:/{config.model.name}@champion")
    folder = Path(reference)
    lineage_file = folder / "champion.json"
    if not lineage_file.is_file():
        raise ChurnlensError(f"model folder {folder}: no champion.json (use `churnlens export`)")
    lineage = json.loads(lineage_file.read_text())
    model = ChurnModel.load(folder / "artifacts" / "model")
    return model, {
        "model_name": lineage["name"],
        "model_version": str(lineage["version"]),
        "run_id": lineage["run_id"],
    }


def _check_as_of(tables: Tables, as_of: pd.Timestamp) -> None:
    end = data_end(tables)
    if as_of > end.normalize() + pd.Timedelta(days=1):
        raise ChurnlensError(
            f"--as-of {as_of:%Y-%m-%d} is after the data end ({end:%Y-%m-%d}): features such as "
            "recency would count days the data do not cover; score at or before the data end"
        )


def _tiers(p: np.ndarray, config: Config) -> pd.Categorical:
    scoring = config.scoring
    tier = np.where(
        p >= scoring.high_risk_threshold,
        "high",
        np.where(p >= scoring.medium_risk_threshold, "medium", "low"),
    )
    return pd.Categorical(tier, categories=["low", "medium", "high"])


def _select_targets(frame: pd.DataFrame, contacts: int | None, money: float | None) -> np.ndarray:
    """Positive-gain customers, best first (ties by customer_id), within the budget."""
    eligible = frame["expected_net_gain"].to_numpy() > 0
    chosen = eligible.copy()
    if contacts is not None:
        chosen &= np.cumsum(eligible) <= contacts
    if money is not None:
        chosen &= np.cumsum(np.where(eligible, frame["contact_cost"].to_numpy(), 0.0)) <= money
    return chosen


def _explain_and_target(
    model, features, registry, playbook, p, value, explained, contacts, money
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Reasons, actions and expected net gain for the rows that need them.

    A customer's action, so their gain, depends on their reasons, and TreeSHAP costs a fraction
    of a millisecond a row. So beyond the rows in `explained` (the high tier), customers are
    explained best upper bound first (p x value x the best save rate - the cheapest action)
    until no unexplained customer could still enter the budgeted target list. Rows left
    unexplained have no reasons, no action and no gain (NaN); none of them could be a target.
    """
    best_save, least_cost = playbook.best_case
    upper = p * value * best_save - least_cost
    order = np.argsort(-upper, kind="stable")
    queue = order[(upper[order] > 0) & ~explained[order]]
    unlimited = contacts is None and money is None  # every positive gain is a target
    chunk = len(queue) if unlimited else max(EXPLAIN_CHUNK, 2 * (contacts or 0))
    values = pd.Series(value, index=features.index)
    parts, new = [], np.flatnonzero(explained)
    while True:
        if len(new):
            parts.append(top_reasons(model, features.iloc[new], registry, playbook.family_of))
        reasons = pd.concat(parts) if parts else pd.DataFrame(columns=REASON_COLUMNS)
        reasons = reasons.reindex(features.index)
        actions = recommend(playbook, reasons["reason_family"], features, values)
        gain = p * value * actions["save_rate"].to_numpy() - actions["contact_cost"].to_numpy()
        gain = np.where(explained, gain, np.nan)
        if not len(queue):
            break
        ranked = pd.DataFrame(
            {
                "expected_net_gain": gain,
                "contact_cost": actions["contact_cost"],
                "customer_id": features["customer_id"],
            }
        )
        ranked = ranked.sort_values(
            ["expected_net_gain", "customer_id"], ascending=[False, True], kind="stable"
        )
        left_out = ranked[
            (ranked["expected_net_gain"] > 0) & ~_select_targets(ranked, contacts, money)
        ]
        if len(left_out) and upper[queue[0]] < left_out["expected_net_gain"].iloc[0]:
            break  # every unexplained customer ranks below one the budget already left out
        new, queue = queue[:chunk], queue[chunk:]
        explained[new] = True
    actions.loc[~explained, "recommended_action"] = np.nan
    return reasons, actions, gain


def score(
    config: Config,
    as_of,
    model_reference: str | None = None,
    budget_contacts: int | None = None,
    budget_money: float | None = None,
    explain: str | None = None,
) -> ScoreResult:
    """Score the population at `as_of`; see docs/concepts.md (Scoring)."""
    as_of = pd.Timestamp(as_of)
    model, lineage = load_model(config, model_reference)
    playbook = load_playbook(config.playbook.path)
    tables = load_tables(config.data)
    _check_as_of(tables, as_of)
    spine = population(tables, [as_of], config.churn)
    if spine.empty:
        raise ChurnlensError(f"no customer is in the population at {as_of:%Y-%m-%d}")
    features = build_features(tables, spine, config.features, config.data)
    drift = psi_table(model.reference_, features)
    worst = drift[~drift["feature"].isin(config.scoring.drift_exempt)].iloc[0]
    if worst["psi"] > config.scoring.drift_stop_psi:
        raise DriftError(
            f"drift: feature {worst['feature']} has PSI {worst['psi']:.3f} against training, above "
            f"the limit scoring.drift_stop_psi = {config.scoring.drift_stop_psi}; nothing written"
        )
    p = model.predict_proba(features)
    value = customer_value(features, config).fillna(0.0).to_numpy()
    tier = _tiers(p, config)
    registry = active_features(tables, config.features, config.data.ces_scale)
    contacts = budget_contacts or config.scoring.budget_contacts
    money = budget_money or config.scoring.budget_money
    explained = np.asarray(tier == "high")
    if (explain or config.scoring.explain) == "all":
        explained[:] = True
    reasons, actions, gain = _explain_and_target(
        model, features, registry, playbook, p, value, explained, contacts, money
    )
    risk = pd.DataFrame(
        {
            "customer_id": features["customer_id"],
            "as_of": features["cutoff"],
            "churn_probability": p,
            "risk_tier": tier,
            "value": value,
            "value_at_risk": p * value,
            "expected_net_gain": gain,
        },
        index=features.index,
    )
    risk = pd.concat([risk, reasons, actions], axis=1)
    risk = risk.sort_values(
        ["expected_net_gain", "customer_id"], ascending=[False, True], kind="stable"
    ).reset_index(drop=True)
    risk.insert(7, "rank", np.arange(1, len(risk) + 1))
    risk.insert(8, "target", _select_targets(risk, contacts, money))
    for column, text in lineage.items():
        risk[column] = text
    targets = risk[risk["target"]]
    summary = {
        "as_of": f"{as_of:%Y-%m-%d}",
        "customers": len(risk),
        "high_risk": int((risk["risk_tier"] == "high").sum()),
        "targets": len(targets),
        "contact_cost": float(targets["contact_cost"].sum()),
        "expected_net_gain": float(targets["expected_net_gain"].sum()),
        "value_at_risk_total": float(risk["value_at_risk"].sum()),
        "value_at_risk_covered": float(targets["value_at_risk"].sum()),
        "max_psi": float(worst["psi"]),
        "drift_warnings": drift.loc[
            drift["psi"] > config.scoring.drift_warn_psi, "feature"
        ].tolist(),
        "reasons_for": int(risk["reason_family"].notna().sum()),
        **lineage,
    }
    return ScoreResult(risk, drift, summary)


def write_outputs(result: ScoreResult, out: Path) -> dict:
    """Write the risk list (Parquet, CSV), the PSI table and, last, the manifest."""
    paths = {
        "risk_list.parquet": write_parquet(result.risk_list, out / "risk_list.parquet"),
        "risk_list.csv": write_csv(result.risk_list, out / "risk_list.csv"),
        "drift.csv": write_csv(result.drift, out / "drift.csv"),
    }
    manifest = {
        **result.summary,
        "rows": len(result.risk_list),
        "reason_columns": [f"reason_{i}" for i in range(1, TOP_K + 1)],
        "files": {
            name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in paths.items()
        },
    }
    text = json.dumps(manifest, indent=1, sort_keys=True)
    write_atomic(out / "manifest.json", lambda tmp: tmp.write_text(text + "\n"))
    return manifest
