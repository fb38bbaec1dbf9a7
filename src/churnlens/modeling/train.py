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
from churnlens.economics import customer_value, expected_gain, saveable
from churnlens.errors import ChurnlensError, expect
from churnlens.features.registry import declared_features
from churnlens.labels import require_informative
from churnlens.modeling.baselines import baselines
from churnlens.modeling.evaluate import evaluate_by_cutoff, paired_bootstrap
from churnlens.modeling.model import ChurnModel
from churnlens.modeling.split import TimeSplit, time_split
from churnlens.scoring.playbook import Playbook, load_playbook, recommend
from churnlens.scoring.reasons import top_reasons
from churnlens.scoring.status import customer_status, gone_probability

MODEL = "lightgbm"
log = logging.getLogger(__name__)


@dataclass
class TrainingResult:
    model: ChurnModel
    split: TimeSplit
    scored: pd.DataFrame  # validation and test rows: every model's probability, value, action
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
        settings.threads,
        settings.blend,
    )


def model_contract(config: Config, split: TimeSplit) -> dict:
    """What the model's probabilities mean; scoring refuses a config that means otherwise."""
    return {
        "churn_type": config.churn.type,
        "horizon_days": config.churn.horizon_days,
        "active_window_days": config.churn.active_window_days,
        "feature_windows_days": list(config.features.windows_days),
        "test_cutoff": f"{split.test:%Y-%m-%d}",
        "labels_end": f"{split.test + pd.Timedelta(days=config.churn.horizon_days):%Y-%m-%d}",
    }


def campaign(
    model: ChurnModel, frame: pd.DataFrame, config: Config, playbook: Playbook
) -> pd.DataFrame:
    """Status, value and the playbook's action (cost, save rate) per row, as scoring prices
    them, and whether the row may be a retention target.

    Each cutoff is one population, as at a scoring date: the playbook's value rules use
    quantiles within it. The action follows the family of the row's strongest drivers and
    their share of the risk (roles from the declared registry), the value rules and status.
    """
    value = customer_value(frame, config.features.windows_days, config.playbook)
    status = pd.Series(customer_status(frame, config.scoring.status), index=frame.index)
    registry = declared_features(
        config.features, frame.columns, config.data.ces_scale, config.data.csat_scale
    )
    parts = []
    for _, part in frame.groupby("cutoff", sort=True):
        reasons = top_reasons(model, part, registry, playbook.family_of)
        where = part.index
        parts.append(
            recommend(
                playbook,
                reasons["reason_family"],
                part,
                value.loc[where],
                status.loc[where],
                reasons["driver_share"],
            )
        )
    eligible = (status != "lapsed") | config.scoring.status.target_lapsed
    return (
        pd.concat(parts).reindex(frame.index).assign(value=value, status=status, eligible=eligible)
    )


def fit(training_set: pd.DataFrame, config: Config | None = None) -> TrainingResult:
    """Fit the model and baselines on the out-of-time split of a stacked training set and
    evaluate them on the validation and test cutoffs; no tracking (see pipeline.train)."""
    config = config or Config()
    expect(training_set, pd.DataFrame, "fit: the training set is churnlens.training_set's frame")
    require_informative(training_set)
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
    test = split.part(training_set, "test")
    scored = pd.concat([valid, test])
    seconds = {}
    started = time.perf_counter()
    model = configured_model(config.model).fit(train, valid, reference=test)
    seconds[MODEL] = time.perf_counter() - started
    model.set_contract(model_contract(config, split))
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
    money = campaign(model, scored, config, load_playbook(config.playbook.path))
    scored = scored.assign(**columns, **money)
    gone = pd.concat(  # each cutoff is one population, as at a scoring date
        pd.Series(
            gone_probability(part, part[MODEL], config.scoring.status, config.churn.horizon_days),
            index=part.index,
        )
        for _, part in scored.groupby("cutoff", sort=False)
    ).reindex(scored.index)
    scored["expected_net_gain"] = expected_gain(
        saveable(scored[MODEL], gone), scored["value"], scored["save_rate"], scored["contact_cost"]
    )
    metrics = evaluate_by_cutoff(
        scored,
        list(columns),
        value="value",
        contact_cost="contact_cost",
        save_rate="save_rate",
        eligible="eligible",
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
