"""A standardised logistic regression on the model's numeric features, blended with LightGBM.

On real purchase logs the purchase rhythm is close to log-linear in the churn odds: a logistic
regression on the signed-log, standardised features ranks as well as LightGBM or better (CDNOW
at 180 days, benchmarks/results/real_data.md), while LightGBM finds interactions. The churn
model's margin is `w * LightGBM + (1 - w) * logistic`, with `w` chosen on the latest validation
cutoff (the validation rows most like the test cutoff; the test is never seen), then calibrated.
Both parts are additive in the margin, so the blend's per-feature contributions are exact:
`w * TreeSHAP + (1 - w) * coefficient * standardised value` (categorical features get no
linear term). Everything is plain numbers, saved as JSON with the model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.linear_model import LogisticRegression

WEIGHTS = tuple(i / 10 for i in range(11))  # LightGBM's share of the margin
# Newton steps on the exact Hessian: a handful of passes over the rows (6 on 134k training
# rows, 80 features) where lbfgs took 150 and stopped short of the optimum; half the CPU.
SOLVER = "newton-cholesky"
# The logistic part is fitted on at most MAX_ROWS training rows, a uniform sample without
# replacement drawn by a generator seeded with the model's seed (same data and seed, same
# sample). CDNOW (165k and 75k training rows) and the 20k-customer simulation are fitted in
# full: a 50k sample cost CDNOW 0.0005 test ROC-AUC on average over three seeds, as the blend
# weight chosen on validation moved. Above the bound the sample's margin ranks like the full
# fit's (benchmarks/results/training.md) at a fixed cost.
MAX_ROWS = 200_000
# Newton's method starts from the fit on every WARM_STEP-th row (an eighth of the CPU per
# step), close enough to the optimum that two steps on all rows reach it (six from zero): the
# same convergence test on the same rows, so the same solution to the solver's tolerance.
WARM_STEP = 8


def _signed_log(x: np.ndarray) -> np.ndarray:
    """sign(x) * ln(1 + |x|) as a new array. `log` of 1 + |x| rather than `log1p`: numpy
    vectorises `log` (a third of the CPU in single precision); they differ by < 1e-6 here."""
    out = np.abs(x)
    out += 1
    np.log(out, out=out)
    return np.copysign(out, x, out=out)


def _nanmedians(x: np.ndarray) -> np.ndarray:
    """Each column's median over its values (NaN for a column without one), as
    `np.nanmedian(x, axis=0)` but from one sort of each column (NaN sorts last): numpy's
    vectorised sort is twice as fast as nanmedian's column-by-column selection."""
    ordered, counts = np.sort(x, axis=0), (~np.isnan(x)).sum(axis=0)
    lower = ordered[np.maximum(counts - 1, 0) // 2, np.arange(x.shape[1])]
    upper = ordered[counts // 2 - (counts == 0), np.arange(x.shape[1])]
    return (lower + upper) / 2


def _roc_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """ROC-AUC from the ranks of `score` (the Mann-Whitney U of the positives over the others;
    ties count a half, as in roc_auc_score; NaN for one class): one sort, without the input
    checks that were most of roc_auc_score's CPU for the weight's 11 scores on every fit."""
    n_positive = positive.sum()
    u = rankdata(score)[positive].sum() - n_positive * (n_positive + 1) / 2
    return float(u / (n_positive * (len(score) - n_positive)))


def sample_rows(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted positions of a uniform sample of `size` of `n` > `size` rows."""
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


class LinearPart:
    """Median-imputed, signed-log, standardised logistic regression over `columns`."""

    def __init__(self, state: dict | None = None):
        self.state = state or {}

    def fit(
        self,
        prepared: pd.DataFrame,
        y: np.ndarray,
        columns: list[str],
        seed: int = 0,
        max_rows: int = MAX_ROWS,
    ) -> LinearPart:
        """Fit on at most `max_rows` of the rows (see MAX_ROWS), in single precision: a
        quarter of the CPU of double, the coefficients equal to 5 digits."""
        frame, y = prepared[columns], np.asarray(y)
        if len(frame) > max_rows:  # sampled before conversion: only the sample is copied
            rows = sample_rows(len(frame), max_rows, seed)
            frame, y = frame.iloc[rows], y[rows]
        x = _signed_log(frame.to_numpy(np.float32))  # a fresh array, changed in place below
        # a column with no value (none in the data, or none in the sample) takes 0: its
        # standardised values are then all 0 and it adds nothing to the margin
        medians = _nanmedians(x)
        medians[np.isnan(medians)] = 0
        np.copyto(x, medians, where=np.isnan(x))
        means, scales = x.mean(axis=0), x.std(axis=0)
        scales = np.where(scales > 0, scales, np.float32(1))
        x -= means
        x /= scales
        fitted = LogisticRegression(solver=SOLVER, max_iter=100, warm_start=True)
        if len(np.unique(y[::WARM_STEP])) == 2:  # the start (see WARM_STEP), if it can be fitted
            fitted.fit(x[::WARM_STEP], y[::WARM_STEP])
        fitted.fit(x, y)
        self.state = {
            "columns": list(columns),
            "medians": medians.tolist(),
            "means": means.tolist(),
            "scales": scales.tolist(),
            "coef": fitted.coef_[0].tolist(),
            "intercept": float(fitted.intercept_[0]),
            "weight": 1.0,
        }
        return self

    @property
    def weight(self) -> float:
        return self.state["weight"]

    def _terms(self, prepared: pd.DataFrame) -> np.ndarray:
        """Each column's term of the logistic margin (the intercept excluded)."""
        s = self.state
        x = _signed_log(prepared[s["columns"]].to_numpy(float))
        x = np.where(np.isnan(x), s["medians"], x)
        return (x - s["means"]) / s["scales"] * np.asarray(s["coef"])

    def margin(self, prepared: pd.DataFrame) -> np.ndarray:
        return self._terms(prepared).sum(axis=1) + self.state["intercept"]

    def blend(self, tree_margin: np.ndarray, prepared: pd.DataFrame) -> np.ndarray:
        w = self.weight
        return tree_margin if w == 1.0 else w * tree_margin + (1 - w) * self.margin(prepared)

    def blend_contributions(
        self, tree: np.ndarray, prepared: pd.DataFrame, names: list[str]
    ) -> np.ndarray:
        """TreeSHAP columns (features..., base) blended with the logistic terms."""
        w = self.weight
        if w == 1.0:
            return tree
        linear = np.zeros_like(tree)
        where = [names.index(c) for c in self.state["columns"]]
        linear[:, where] = self._terms(prepared)
        linear[:, -1] = self.state["intercept"]
        return w * tree + (1 - w) * linear

    def choose_weight(self, tree_margin: np.ndarray, linear_margin: np.ndarray, y) -> dict:
        """Set the weight whose blend of the two margins ranks `y` best; ties go to more
        LightGBM. Returns {weight: ROC-AUC} for the record."""
        positive = np.asarray(y) == 1
        scores = {w: _roc_auc(positive, w * tree_margin + (1 - w) * linear_margin) for w in WEIGHTS}
        self.state["weight"] = float(max(scores, key=lambda w: (round(scores[w], 6), w)))
        return scores
