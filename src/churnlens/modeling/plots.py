"""Figures logged with every training run: calibration, lift, and the SHAP summary."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display: figures are only written to files

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402

from churnlens.modeling.model import ChurnModel  # noqa: E402


def calibration_plot(y: np.ndarray, scores: dict[str, np.ndarray]):
    """Observed churn rate against predicted probability, per model (quantile bins)."""
    figure, axis = plt.subplots(figsize=(5, 5))
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
    for name, p in scores.items():
        observed, predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
        axis.plot(predicted, observed, marker="o", label=name)
    axis.set(
        xlabel="predicted churn probability",
        ylabel="observed churn rate",
        title="Calibration on the test cutoff",
    )
    axis.legend()
    return figure


def lift_plot(y: np.ndarray, scores: dict[str, np.ndarray]):
    """Share of churners captured when contacting the top x % by score, per model."""
    figure, axis = plt.subplots(figsize=(5, 5))
    share = np.arange(1, len(y) + 1) / len(y)
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":", label="random")
    for name, p in scores.items():
        order = np.argsort(-p, kind="stable")
        axis.plot(share, np.cumsum(y[order]) / max(y.sum(), 1), label=name)
    axis.set(
        xlabel="share of customers contacted",
        ylabel="share of churners captured",
        title="Capture curve on the test cutoff",
    )
    axis.legend()
    return figure


def shap_summary_plot(model: ChurnModel, frame: pd.DataFrame, max_rows: int = 2000):
    """shap's beeswarm of the exact TreeSHAP values on a sample of rows."""
    import shap

    sample = frame.sample(min(max_rows, len(frame)), random_state=0)
    prepared = model.prepare(sample)
    values = model.contributions(sample)[:, :-1]
    numeric = prepared.apply(lambda c: c.cat.codes.where(c.notna()) if c.dtype == "category" else c)
    figure = plt.figure()  # shap draws onto the current figure: it must be a new one
    shap.summary_plot(values, numeric, show=False, max_display=15)
    figure.tight_layout()
    return figure


def training_figures(model: ChurnModel, test: pd.DataFrame, scores: dict[str, np.ndarray]):
    y = test["churned"].to_numpy(int)
    return {
        "calibration": calibration_plot(y, scores),
        "lift": lift_plot(y, scores),
        "shap_summary": shap_summary_plot(model, test),
    }
