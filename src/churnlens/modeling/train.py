"""Training: split by time, fit the calibrated model and the baselines, evaluate them all.

Pure computation on a training-set DataFrame; tracking and registration live in tracking.py.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from churnlens.config import Config, ModelConfig
from churnlens.errors import ChurnlensError
from churnlens.modeling.baselines import baselines
from churnlens.modeling.evaluate import evaluate_by_cutoff, paired_bootstrap
from churnlens.modeling.model import ChurnModel
from churnlens.modeling.split import TimeSplit, time_split

MODEL = "lightgbm"
log = logging.getLogger(__name__)


@dataclass
class TrainingResult:
    model: ChurnModel
    split: TimeSplit
    scored: pd.DataFrame  # validation and test rows with every model's probability
    metrics: pd.DataFrame  # evaluate_by_cutoff over `scored`
    seconds: dict[str, float] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # baseline -> why it has no scores
    intervals: pd.DataFrame | None = None  # paired bootstrap on the test cutoff, see below

    def test_metrics(self) -> pd.DataFrame:
        """One row per model on the out-of-time test cutoff."""
        test = self.metrics[self.metrics["cutoff"] == self.split.test]
        return test.drop(columns="cutoff").set_index("model")


def configured_model(settings: ModelConfig) -> ChurnModel:
    """An unfitted ChurnModel with the config's parameters."""
    return ChurnModel(
        settings.params,
        settings.num_boost_round,
        settings.early_stopping_rounds,
        settings.calibration,
        settings.seed,
    )


def customer_value(frame: pd.DataFrame, config: Config) -> pd.Series:
    """Margin over the value window: spend in the closest feature window times margin rate."""
    windows = config.features.windows_days
    window = min(windows, key=lambda w: abs(w - config.playbook.value_window_days))
    return frame[f"spend_{window}d"] * config.playbook.margin_rate


def train_model(training_set: pd.DataFrame, config: Config) -> TrainingResult:
    """Fit and evaluate on the out-of-time split of a stacked training set."""
    split = time_split(
        training_set["cutoff"],
        config.churn.horizon_days,
        training_set["churned"],
        customers=training_set["customer_id"],
        validation=config.cutoffs.validation,
        min_train_cutoffs=config.cutoffs.min_train_cutoffs,
        holdout_share=config.cutoffs.holdout_share,
    )
    train, valid = split.part(training_set, "train"), split.part(training_set, "valid")
    scored = pd.concat([valid, split.part(training_set, "test")])
    seconds = {}
    started = time.perf_counter()
    model = configured_model(config.model).fit(train, valid)
    seconds[MODEL] = time.perf_counter() - started
    model.set_reference(split.part(training_set, "test"))
    columns = {MODEL: model.predict_proba(scored)}
    failed = {}
    for baseline in baselines(config.churn.horizon_days):
        started = time.perf_counter()
        try:
            columns[baseline.name] = baseline.fit(train, valid).predict_proba(scored)
        except (ChurnlensError, ArithmeticError, ValueError, np.linalg.LinAlgError) as error:
            # a reference that cannot be fitted on these data is reported, not fatal
            failed[baseline.name] = str(error)
            log.warning("baseline %s failed: %s", baseline.name, error)
            continue
        seconds[baseline.name] = time.perf_counter() - started
    scored = scored.assign(**columns, value=customer_value(scored, config).to_numpy())
    metrics = evaluate_by_cutoff(
        scored,
        list(columns),
        value="value",
        contact_cost=config.playbook.contact_cost,
        save_rate=config.playbook.save_rate,
    )
    result = TrainingResult(model, split, scored, metrics, seconds, failed)
    result.intervals = bootstrap_intervals(result, list(columns))
    return result


def bootstrap_intervals(result: TrainingResult, models: list[str]) -> pd.DataFrame:
    """95 % paired bootstrap intervals on the test cutoff, differences against the baseline
    with the best test ROC-AUC (the `reference` column): is LightGBM reliably above it?"""
    test = result.split.part(result.scored, "test")
    roc = result.test_metrics()["roc_auc"]
    reference = roc.drop(MODEL).idxmax() if len(models) > 1 else None
    intervals = paired_bootstrap(
        test["churned"].to_numpy(int), {name: test[name].to_numpy() for name in models}, reference
    )
    return intervals.assign(reference=reference)


def mean_abs_shap(model: ChurnModel, frame: pd.DataFrame) -> pd.Series:
    """Global importance: mean |TreeSHAP contribution| per feature, largest first."""
    contributions = np.abs(model.contributions(frame)[:, :-1]).mean(axis=0)
    return pd.Series(contributions, index=model.feature_names_).sort_values(ascending=False)
