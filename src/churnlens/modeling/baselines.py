"""Honest baselines on the same split as the model: what LightGBM has to beat.

- recency rule: the longer since the last purchase, the likelier churn;
- logistic regression on RFM (recency, frequency, monetary value);
- BG/NBD: P(no purchase in the horizon) from the customer's repeat purchases, recency and age
  (not 1 − P(alive), which is 0 for every one-order customer and ranks worse than chance).

Each scores the same rows as the model and is mapped to a probability by a Platt (logistic)
fit of its raw score on the validation rows, like the model's sigmoid calibration. The map is
strictly increasing (a refused slope <= 0 means the score does not rank churners higher, and
the baseline is reported as failed), so every baseline keeps its own ranking and ROC-AUC while
Brier and ECE become comparable. Isotonic maps would clip and tie scores outside the
validation range and change the ranking.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from churnlens.errors import ChurnlensError
from churnlens.modeling.bgnbd import BGNBD, fit_sample
from churnlens.modeling.model import Calibrator

RFM = ["recency_days", "orders_total", "spend_total"]
WEEK = 7.0
_EPS = 1e-12


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


class _Baseline:
    """A raw score per row (`_score`), mapped to a probability by a monotone Platt fit."""

    name = ""

    def _score(self, frame: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def _calibrate(self, valid: pd.DataFrame) -> None:
        self.map_ = Calibrator("sigmoid").fit(self._score(valid), valid["churned"].to_numpy(int))
        slope = self.map_.params_["a"]
        if not slope > 0:
            raise ChurnlensError(
                f"baseline {self.name}: its score ranks churners lower on the validation rows "
                f"(Platt slope {slope:.3g}), so no increasing map to a probability exists"
            )

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.map_.predict(self._score(frame))


def _rfm(frame: pd.DataFrame) -> np.ndarray:
    values = frame[RFM].to_numpy(float)
    return np.where(np.isnan(values), np.nanmax(values, axis=0, initial=0.0), values)


class RecencyRule(_Baseline):
    name = "recency_rule"

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame) -> RecencyRule:
        self._calibrate(valid)
        return self

    def _score(self, frame: pd.DataFrame) -> np.ndarray:
        recency = frame["recency_days"]
        return np.log1p(recency.fillna(recency.max()).to_numpy(float))


class RFMLogistic(_Baseline):
    name = "rfm_logistic"

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame) -> RFMLogistic:
        self.pipeline_ = make_pipeline(
            FunctionTransformer(np.log1p), StandardScaler(), LogisticRegression(max_iter=1000)
        ).fit(_rfm(train), train["churned"].to_numpy(int))
        self._calibrate(valid)
        return self

    def _score(self, frame: pd.DataFrame) -> np.ndarray:
        return self.pipeline_.decision_function(_rfm(frame))


class BGNBDBaseline(_Baseline):
    """BG/NBD fitted on the last training cutoff (one row per customer), in weeks."""

    name = "bgnbd"

    def __init__(self, horizon_days: int):
        self.horizon_days = horizon_days

    @staticmethod
    def _summary(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        frequency = np.maximum(frame["orders_total"].fillna(0).to_numpy(float) - 1, 0)
        age = np.nan_to_num(frame["days_since_first_purchase"].to_numpy(float)) / WEEK
        recency = age - np.nan_to_num(frame["recency_days"].to_numpy(float)) / WEEK
        recency = np.where(frequency > 0, np.clip(recency, 0, age), 0.0)
        return frequency, recency, age

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame) -> BGNBDBaseline:
        last = train[train["cutoff"] == train["cutoff"].max()]
        last = fit_sample(last[last["orders_total"] > 0])
        self.model_ = BGNBD(penalizer=0.001).fit(*self._summary(last))
        self._calibrate(valid)
        return self

    def _score(self, frame: pd.DataFrame) -> np.ndarray:
        frequency, recency, age = self._summary(frame)
        quiet = self.model_.p_no_purchase(self.horizon_days / WEEK, frequency, recency, age)
        return _logit(np.where(frame["orders_total"].to_numpy() > 0, quiet, 1.0))


def baselines(horizon_days: int) -> list[_Baseline]:
    """Fresh instances of every baseline for a churn horizon."""
    return [RecencyRule(), RFMLogistic(), BGNBDBaseline(horizon_days)]
