"""Honest baselines on the same split as the model: what LightGBM has to beat.

- recency rule: the longer since the last purchase, the likelier churn;
- logistic regression on RFM (recency, frequency, monetary value);
- BG/NBD: 1 − P(alive) from the customer's repeat purchases, recency and age.

Each scores the same rows as the model. The rule and BG/NBD produce ranks, not probabilities,
so both are mapped to probabilities by isotonic regression on the validation cutoff, which
leaves their ranking (and so ROC-AUC) as it is while making Brier and ECE comparable.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from churnlens.modeling.bgnbd import BGNBD

RFM = ["recency_days", "orders_total", "spend_total"]
WEEK = 7.0


def _isotonic(score_valid: np.ndarray, y_valid: np.ndarray) -> IsotonicRegression:
    return IsotonicRegression(out_of_bounds="clip", y_min=1e-4, y_max=1 - 1e-4).fit(
        score_valid, y_valid
    )


def _rfm(frame: pd.DataFrame) -> np.ndarray:
    values = frame[RFM].to_numpy(float)
    return np.where(np.isnan(values), np.nanmax(values, axis=0, initial=0.0), values)


class RecencyRule:
    name = "recency_rule"

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame) -> RecencyRule:
        self.map_ = _isotonic(self._score(valid), valid["churned"].to_numpy(int))
        return self

    @staticmethod
    def _score(frame: pd.DataFrame) -> np.ndarray:
        return frame["recency_days"].fillna(frame["recency_days"].max()).to_numpy(float)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.map_.predict(self._score(frame))


class RFMLogistic:
    name = "rfm_logistic"

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame) -> RFMLogistic:
        self.pipeline_ = make_pipeline(
            FunctionTransformer(np.log1p), StandardScaler(), LogisticRegression(max_iter=1000)
        ).fit(_rfm(train), train["churned"].to_numpy(int))
        return self

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.pipeline_.predict_proba(_rfm(frame))[:, 1]


class BGNBDBaseline:
    """BG/NBD fitted on the last training cutoff (one row per customer), in weeks."""

    name = "bgnbd"

    @staticmethod
    def _summary(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        frequency = np.maximum(frame["orders_total"].to_numpy(float) - 1, 0)
        age = frame["days_since_first_purchase"].to_numpy(float) / WEEK
        recency = age - frame["recency_days"].to_numpy(float) / WEEK
        recency = np.where(frequency > 0, np.clip(recency, 0, age), 0.0)
        return frequency, recency, age

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame) -> BGNBDBaseline:
        last = train[train["cutoff"] == train["cutoff"].max()]
        last = last[last["orders_total"] > 0]
        self.model_ = BGNBD(penalizer=0.001).fit(*self._summary(last))
        self.map_ = _isotonic(self._dead(valid), valid["churned"].to_numpy(int))
        return self

    def _dead(self, frame: pd.DataFrame) -> np.ndarray:
        frequency, recency, age = self._summary(frame)
        alive = self.model_.p_alive(frequency, recency, np.maximum(age, 1e-9))
        return np.where(frame["orders_total"].to_numpy() > 0, 1 - alive, 1.0)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.map_.predict(self._dead(frame))


BASELINES = (RecencyRule, RFMLogistic, BGNBDBaseline)
