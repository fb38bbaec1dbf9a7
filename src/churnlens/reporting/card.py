"""The model card's content from what training logged: facts, test metrics against the
baselines, a calibration curve and global SHAP importance, all on the out-of-time test cutoff."""

from __future__ import annotations

import pandas as pd
from sklearn.calibration import calibration_curve

from churnlens.modeling.model import ChurnModel
from churnlens.modeling.train import mean_abs_shap

METRICS = (
    "n",
    "base_rate",
    "roc_auc",
    "pr_auc",
    "brier",
    "log_loss",
    "ece",
    "lift_top_decile",
    "capture_top_decile",
    "profit_top_k",
)
IMPORTANCE_ROWS = 2000  # mean |SHAP| is stable well before this; TreeSHAP costs ~1 ms a row


def model_card(
    lineage: dict,
    params: dict,
    metrics_by_cutoff: pd.DataFrame,
    test: pd.DataFrame,
    model: ChurnModel,
) -> tuple[dict, pd.DataFrame, pd.DataFrame, pd.Series]:
    """(facts, test metrics per model, calibration bins, mean |SHAP| per feature).

    `lineage` names the model (model_name, model_version, run_id); `params`, the metrics table
    and the test rows are what the training run logged (`tracking.training_record`).
    """
    contract = getattr(model, "contract_", {})
    test_cutoff = params.get("test_cutoff", "")
    train_cutoffs = [c for c in params.get("train_cutoffs", "").split(",") if c]
    facts = {
        "model": f"{lineage['model_name']} v{lineage['model_version']}",
        "run id": lineage["run_id"],
        "churn": f"{contract.get('churn_type', '?')}, horizon {contract.get('horizon_days', '?')} "
        "days",
        "training cutoffs": f"{train_cutoffs[0]} to {train_cutoffs[-1]}" if train_cutoffs else "?",
        "test cutoff": test_cutoff or "?",
        "training rows": params.get("training_rows", "?"),
        "features": params.get("n_features", "?"),
        "calibration": params.get("calibration", "?"),
    }
    on_test = metrics_by_cutoff[metrics_by_cutoff["cutoff"].astype("str").str[:10] == test_cutoff]
    metrics = on_test.set_index("model")[[m for m in METRICS if m in on_test.columns]]
    y = test["churned"].to_numpy(int)
    observed, predicted = calibration_curve(
        y, model.predict_proba(test), n_bins=10, strategy="quantile"
    )
    sample = test if len(test) <= IMPORTANCE_ROWS else test.sample(IMPORTANCE_ROWS, random_state=0)
    importance = mean_abs_shap(model, sample).rename("mean_abs_shap")
    calibration = pd.DataFrame({"predicted": predicted, "observed": observed})
    return facts, metrics, calibration, importance
