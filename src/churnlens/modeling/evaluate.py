"""Metrics for churn models: ranking, calibration, targeting and money, per cutoff and overall.

Ranking (ROC-AUC, PR-AUC) says whether churners score higher than stayers; calibration
(Brier, log loss, ECE) says whether a score of 0.3 means 30 %, which the retention list needs
because it multiplies probabilities by money; lift and capture in the top decile and the
profit of contacting the top-k say what the scores are worth to a campaign that can only reach
a few customers. Standard metrics come from scikit-learn; only ECE, lift/capture and profit,
which it does not provide, are computed here.

Inputs are validated once (`_validate`): empty input, mismatched lengths, labels other than
0/1 and probabilities outside [0, 1] raise `ChurnlensError`. A single class in `y_true` is
not an error (a quiet cutoff can have no churners): metrics that need both classes are NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    roc_auc_score,
)

from churnlens.economics import expected_gain
from churnlens.errors import ChurnlensError

# Probabilities are clipped to [EPS, 1 - EPS] for log loss: one confident wrong prediction of
# exactly 0 or 1 would otherwise make the whole metric infinite.
LOG_LOSS_EPS = 1e-15

OVERALL = "overall"


def _validate(y_true: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    """Labels as an int array of 0/1 and scores as a float array in [0, 1], same length."""
    try:
        y = np.asarray(y_true, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ChurnlensError(f"y_true must be numeric 0/1 labels: {exc}") from None
    try:
        scores = np.asarray(p, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ChurnlensError(f"p must be numeric probabilities: {exc}") from None
    if y.ndim != 1 or scores.ndim != 1:
        raise ChurnlensError(
            f"y_true and p must be one-dimensional, got shapes {y.shape} and {scores.shape}"
        )
    if len(y) != len(scores):
        raise ChurnlensError(f"y_true has {len(y)} rows but p has {len(scores)}; they must match")
    if len(y) == 0:
        raise ChurnlensError("cannot evaluate on empty input: y_true and p have no rows")
    if np.isnan(y).any():
        raise ChurnlensError("y_true has missing values")
    if not np.isin(y, (0.0, 1.0)).all():
        bad = np.unique(y[~np.isin(y, (0.0, 1.0))])[:5].tolist()
        raise ChurnlensError(f"y_true must contain only 0 and 1, found {bad}")
    if not np.isfinite(scores).all():
        raise ChurnlensError("p contains NaN or infinite values")
    if scores.min() < 0.0 or scores.max() > 1.0:
        raise ChurnlensError(
            f"p must be probabilities in [0, 1], found range [{scores.min()}, {scores.max()}]"
        )
    return y.astype(np.int64), scores


def _values(value: Any, n: int, name: str = "value") -> np.ndarray:
    """A money amount or rate as a float array of length n (a scalar is broadcast)."""
    try:
        values = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ChurnlensError(f"{name} must be numeric: {exc}") from None
    if values.ndim == 0:
        values = np.full(n, float(values))
    if values.shape != (n,):
        raise ChurnlensError(f"{name} has {values.size} entries but there are {n} rows")
    if not np.isfinite(values).all() or (values < 0).any():
        raise ChurnlensError(f"{name} must be finite and non-negative")
    return values


def _ranking(p: np.ndarray) -> np.ndarray:
    """Row positions from highest to lowest score; ties keep input order (stable sort)."""
    return np.argsort(-p, kind="stable")


def expected_calibration_error(
    y_true: Any, p: Any, n_bins: int = 10, strategy: str = "quantile"
) -> float:
    """Weighted mean of |observed churn rate - mean predicted| over score bins.

    Each bin weighs by its share of rows. `quantile` (default) makes equal-frequency bins:
    churn scores pile up near zero, so equal-width (`uniform`) bins put most customers in one
    or two bins and leave the upper bins with a handful of rows whose noise dominates the
    metric; equal-frequency bins give every bin the same sample size and resolve the range
    where the customers actually are. Tied scores always share a bin (duplicate quantile edges
    are merged), so there may be fewer than `n_bins` bins. Like any binned ECE it is biased
    upward on small samples: a perfectly calibrated model scores slightly above 0.
    """
    y, scores = _validate(y_true, p)
    if not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ChurnlensError(f"n_bins must be a positive integer, got {n_bins!r}")
    if strategy == "quantile":
        edges = np.quantile(scores, np.linspace(0.0, 1.0, n_bins + 1))
    elif strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    else:
        raise ChurnlensError(f"strategy must be 'quantile' or 'uniform', got {strategy!r}")
    # Bin i holds edges[i] <= p < edges[i+1]; the top bin also holds its upper edge.
    bins = np.searchsorted(np.unique(edges[1:-1]), scores, side="right")
    observed = np.bincount(bins, weights=y)
    predicted = np.bincount(bins, weights=scores)
    # count * |rate - mean p| == |sum y - sum p|, so empty bins contribute 0.
    return float(np.abs(observed - predicted).sum() / len(y))


def lift_at(y_true: Any, p: Any, fraction: float = 0.1) -> tuple[float, float]:
    """(lift, capture rate) of the top `fraction` of rows by score.

    The top set has ceil(fraction * n) rows; ties at its boundary are broken by input order
    (stable sort), so the result is deterministic. Lift is the churn rate in the top set over
    the overall churn rate; capture is the share of all churners that fall in the top set.
    Both are NaN when there are no churners.
    """
    y, scores = _validate(y_true, p)
    if not 0.0 < fraction <= 1.0:
        raise ChurnlensError(f"fraction must be in (0, 1], got {fraction}")
    positives = int(y.sum())
    if positives == 0:
        return math.nan, math.nan
    # round() first so that e.g. 0.1 * 30 == 3.0000000000000004 does not become 4 rows.
    n_top = max(1, math.ceil(round(fraction * len(y), 9)))
    caught = int(y[_ranking(scores)[:n_top]].sum())
    lift = (caught / n_top) / (positives / len(y))
    return float(lift), caught / positives


def expected_profit(
    y_true: Any,
    p: Any,
    value: Any,
    contact_cost: Any,
    save_rate: Any,
    k: int | None = None,
    eligible: Any = None,
) -> float:
    """Realised expected profit of a retention campaign chosen from the scores.

    Who is contacted: customers ranked by their expected gain (`churnlens.economics`:
    `p * value * save_rate - contact_cost`; ties by input order), keeping only those with a
    positive expected gain (and `eligible`, when given: scoring leaves lapsed customers out),
    at most `k` of them (`k=None`: no cap). `value`, `contact_cost`
    and `save_rate` are scalars or one entry per row (the playbook's action per customer), so
    training measures the campaign that scoring would run.

    What it earns: each contacted churner (y=1) is saved with probability `save_rate` and then
    keeps `value`; every contact costs `contact_cost`. So the profit is the sum over contacted
    customers of `y * value * save_rate - contact_cost`, expected over the save but realised
    over who actually churned. Contacting nobody earns 0.
    """
    y, scores = _validate(y_true, p)
    values = _values(value, len(y))
    cost = _values(contact_cost, len(y), "contact_cost")
    rate = _values(save_rate, len(y), "save_rate")
    if (rate > 1.0).any():
        raise ChurnlensError(f"save_rate must be in [0, 1], got {rate.max()}")
    if k is not None and k < 0:
        raise ChurnlensError(f"k must be >= 0 or None, got {k}")
    gain = expected_gain(scores, values, rate, cost)
    if eligible is not None:
        gain = np.where(np.asarray(eligible, bool), gain, -np.inf)
    order = _ranking(gain)
    chosen = order[gain[order] > 0][:k]
    return float(expected_gain(y[chosen], values[chosen], rate[chosen], cost[chosen]).sum())


def evaluate(
    y_true: Any,
    p: Any,
    *,
    value: Any = None,
    contact_cost: Any = 1.0,
    save_rate: Any = 0.2,
    top_fraction: float = 0.1,
    k: int | None = None,
    eligible: Any = None,
) -> dict[str, float]:
    """Every metric for one set of scores.

    Keys: roc_auc, pr_auc (average precision), brier, log_loss, ece, lift_top_decile,
    capture_top_decile (at `top_fraction`, a decile by default), profit_top_k (only when
    `value` is given; see `expected_profit`), n, positives, base_rate. roc_auc and pr_auc are
    NaN when `y_true` has a single class, since ranking is undefined without both.
    """
    y, scores = _validate(y_true, p)
    both_classes = 0 < y.sum() < len(y)
    clipped = np.clip(scores, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
    lift, capture = lift_at(y, scores, top_fraction)
    metrics: dict[str, float] = {
        "roc_auc": float(roc_auc_score(y, scores)) if both_classes else math.nan,
        "pr_auc": float(average_precision_score(y, scores)) if both_classes else math.nan,
        "brier": float(brier_score_loss(y, scores, pos_label=1)),
        "log_loss": float(log_loss(y, clipped, labels=[0, 1])),
        "ece": expected_calibration_error(y, scores),
        "lift_top_decile": lift,
        "capture_top_decile": capture,
    }
    if value is not None:
        metrics["profit_top_k"] = expected_profit(
            y, scores, value, contact_cost, save_rate, k, eligible
        )
    metrics["n"] = len(y)
    metrics["positives"] = int(y.sum())
    metrics["base_rate"] = float(y.mean())
    return metrics


def evaluate_by_cutoff(
    frame: pd.DataFrame,
    score_columns: Sequence[str],
    label: str = "churned",
    cutoff: str = "cutoff",
    **kwargs: Any,
) -> pd.DataFrame:
    """A long table of `evaluate` per model (score column) and cutoff, plus an overall row.

    Rows are ordered by model in `score_columns` order, then by cutoff ascending, then the
    model's "overall" row (its `cutoff` is the string "overall") over all cutoffs pooled;
    columns are `model`, `cutoff` and the metric names. Metrics per cutoff show whether a model
    holds up over time, which a pooled number can hide. `kwargs` go to `evaluate`; `value` may
    be a column name of `frame`, a scalar, or an array aligned with `frame`'s rows. `k` is a
    count per cutoff and, for the overall row, for the pooled rows.
    """
    if not score_columns:
        raise ChurnlensError("evaluate_by_cutoff needs at least one score column")
    missing = [c for c in [label, cutoff, *score_columns] if c not in frame.columns]
    if missing:
        raise ChurnlensError(f"columns not in the frame: {missing}")
    if len(frame) == 0:
        raise ChurnlensError("cannot evaluate on empty input: the frame has no rows")
    if frame[cutoff].isna().any():
        raise ChurnlensError(f"column {cutoff!r} has missing values")
    per_row = {}  # money arguments given per row: a column name or an aligned array
    for name in ("value", "contact_cost", "save_rate", "eligible"):
        given = kwargs.get(name)
        if isinstance(given, str):
            if given not in frame.columns:
                raise ChurnlensError(f"{name} column {given!r} is not in the frame")
            per_row[name] = frame[given].to_numpy()
        elif given is not None and np.ndim(given) > 0:
            per_row[name] = (
                np.asarray(given) if name == "eligible" else _values(given, len(frame), name)
            )

    groups = frame.groupby(cutoff, sort=True).indices
    keys = sorted(groups)
    labels = frame[label].to_numpy()
    rows = []
    for model in score_columns:
        scores = frame[model].to_numpy()
        for key, positions in [*((key, groups[key]) for key in keys), (OVERALL, None)]:
            take = slice(None) if positions is None else positions
            sliced = {name: values[take] for name, values in per_row.items()}
            try:
                metrics = evaluate(labels[take], scores[take], **{**kwargs, **sliced})
            except ChurnlensError as exc:
                raise ChurnlensError(f"model {model!r}, cutoff {key}: {exc}") from None
            rows.append({"model": model, "cutoff": key, **metrics})
    return pd.DataFrame(rows)


BOOTSTRAP_METRICS = ("roc_auc", "pr_auc", "brier", "ece")


def _weighted_metrics(y: np.ndarray, p: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """ROC-AUC, PR-AUC (average precision), Brier and ECE of one model under each row of
    `weights` (resample counts, shape B x n), from one sort of the scores.

    Tied scores form one threshold, as in scikit-learn. ECE uses the full sample's
    equal-frequency bins for every resample, so it measures calibration on fixed score bands.
    """
    order = np.argsort(-p, kind="stable")
    ys, ps, w = y[order], p[order], weights[:, order]
    starts = np.flatnonzero(np.r_[True, np.diff(ps) != 0])  # one group per distinct score
    pos = np.add.reduceat(w * ys, starts, axis=1)
    neg = np.add.reduceat(w * (1 - ys), starts, axis=1)
    total_pos, total_neg = pos.sum(axis=1), neg.sum(axis=1)
    below_neg = total_neg[:, None] - np.cumsum(neg, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (pos * (below_neg + 0.5 * neg)).sum(axis=1) / (total_pos * total_neg)
        tp, predicted = np.cumsum(pos, axis=1), np.cumsum(pos + neg, axis=1)
        precision = np.where(predicted > 0, tp / np.where(predicted > 0, predicted, 1), 0.0)
        ap = (pos * precision).sum(axis=1) / total_pos
    n = w.sum(axis=1)
    brier = (w * (ps - ys) ** 2).sum(axis=1) / n
    edges = np.unique(np.quantile(p, np.linspace(0.0, 1.0, 11))[1:-1])
    bins = np.searchsorted(edges, ps, side="right")
    one_hot = np.equal.outer(bins, np.arange(len(edges) + 1)).astype(float)
    ece = np.abs((w * (ys - ps)) @ one_hot).sum(axis=1) / n
    return {"roc_auc": auc, "pr_auc": ap, "brier": brier, "ece": ece}


def paired_bootstrap(
    y_true: Any,
    scores: dict[str, Any],
    reference: str | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Percentile bootstrap intervals for each model's metrics and its difference to `reference`.

    The same resamples of customers score every model (paired), so the interval of a
    difference reflects how often one model beats the other on the same customers, which is
    much narrower than comparing two separate intervals. One row per (model, metric): value
    (on the full sample), low, high, and diff, diff_low, diff_high against `reference` (NaN
    for the reference itself or without one).
    """
    y = _validate(y_true, next(iter(scores.values())))[0]
    if reference is not None and reference not in scores:
        raise ChurnlensError(f"reference model {reference!r} is not among the scores")
    rng = np.random.default_rng(seed)
    full = {
        name: _weighted_metrics(y, _validate(y, p)[1], np.ones((1, len(y))))
        for name, p in scores.items()
    }
    draws: dict[str, dict[str, list]] = {
        name: {m: [] for m in BOOTSTRAP_METRICS} for name in scores
    }
    for start in range(0, n_boot, 100):  # resample counts in chunks to bound memory
        size = min(100, n_boot - start)
        picks = rng.integers(0, len(y), (size, len(y))) + len(y) * np.arange(size)[:, None]
        weights = np.bincount(picks.ravel(), minlength=size * len(y)).reshape(size, len(y))
        for name, p in scores.items():
            for metric, values in _weighted_metrics(y, np.asarray(p, float), weights).items():
                draws[name][metric].append(values)
    tail = (1 - level) / 2 * 100
    rows = []
    for name in scores:
        for metric in BOOTSTRAP_METRICS:
            sample = np.concatenate(draws[name][metric])
            row = {"model": name, "metric": metric, "value": float(full[name][metric][0])}
            row["low"], row["high"] = np.nanpercentile(sample, [tail, 100 - tail])
            diff = [math.nan] * 3
            if reference is not None and name != reference:
                delta = sample - np.concatenate(draws[reference][metric])
                base = full[name][metric][0] - full[reference][metric][0]
                diff = [float(base), *np.nanpercentile(delta, [tail, 100 - tail])]
            row["diff"], row["diff_low"], row["diff_high"] = diff
            rows.append(row)
    return pd.DataFrame(rows)
