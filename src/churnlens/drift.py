"""Population stability (PSI) of each feature at scoring time against the training reference.

`reference_profile` runs at training time and returns plain JSON (lists of floats and strings,
no numpy types, no NaN or infinity) so it can live inside the model's JSON spec;
`psi_table` compares a scoring frame with it.

    PSI = sum over buckets of (actual - expected) * ln(actual / expected)

Both shares are floored at EPSILON (1e-4) first, so a bucket that is empty on one side adds a
large but finite amount instead of infinity; buckets empty on both sides add nothing. The
shares are not renormalised after flooring. Usual reading (the thresholds actually used are
configured elsewhere): PSI < 0.1 stable, 0.1 to 0.25 moderate shift, > 0.25 large shift.

Buckets:

* numeric features: the interior edges are training quantiles at 1/bins, ..., (bins-1)/bins
  taken with the "inverted_cdf" method, so every edge is an observed value; duplicates are
  removed, and so is an edge equal to the training maximum (its upper bucket would be empty),
  so a feature with few distinct values gets fewer buckets and a constant one a single bucket.
  A value goes to bucket ``np.searchsorted(edges, value, side="left")``: buckets are
  ``(-inf, e0], (e0, e1], ..., (e_last, inf)``, closed on the right, and every one of them
  holds training rows (unless all are missing). Only finite values define edges; +-inf fall
  in the outer buckets and NaN/NA goes to its own "missing" bucket.
* categorical features: one bucket per level seen in training (compared as text, converted
  with ``astype("str")`` as the model does), an "other" bucket for levels unseen in training
  (empty in the reference), and a "missing" bucket. In the table they are labelled
  ``<other>`` and ``<missing>`` so they cannot be confused with real levels of that name.

The same code assigns buckets for the reference and at scoring time; all of it is vectorised
(searchsorted + bincount for numbers, value_counts on the raw values for categories).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from churnlens.errors import ChurnlensError

EPSILON = 1e-4
"""Floor on bucket shares in the PSI sum, so empty buckets give a finite value."""

VERSION = 1
NUMERIC_DTYPES = ("float64", "int64")
CATEGORY_DTYPE = "category"
OTHER_LABEL, MISSING_LABEL = "<other>", "<missing>"
COLUMNS = ["feature", "kind", "psi", "top_bin", "top_expected", "top_actual"]


# --- public API ----------------------------------------------------------------------------


def reference_profile(frame: pd.DataFrame, dtypes: Mapping[str, str], bins: int = 10) -> dict:
    """Training-time distribution of each feature in `dtypes`, as plain JSON-ready data.

    `dtypes` maps feature name -> "float64" (or "int64") for numeric features and "category"
    for categorical ones, as in ``ChurnModel.dtypes_``. Numeric features get at most `bins`
    quantile buckets (fewer when there are few distinct values) plus a missing share;
    categorical features get a share per level seen in training plus "other" (0 in training)
    and "missing". See the module docstring for the exact bucket rules.

    Returns ``{"version": 1, "rows": n, "features": {name: profile}}`` where a numeric profile
    is ``{"kind": "numeric", "edges": [...], "shares": [...], "missing": share}`` (``len(shares)
    == len(edges) + 1``) and a categorical one is ``{"kind": "category", "levels": [...],
    "shares": [...], "other": 0.0, "missing": share}``.
    """
    if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 1:
        raise ChurnlensError(f"drift: bins must be a positive integer, got {bins!r}")
    bad = {n: k for n, k in dtypes.items() if k not in (*NUMERIC_DTYPES, CATEGORY_DTYPE)}
    if bad:
        listed = ", ".join(f"{n}={k!r}" for n, k in list(bad.items())[:10])
        raise ChurnlensError(
            f"drift: dtypes must be 'float64' or 'category', got {listed}"
            f"{' ...' if len(bad) > 10 else ''}"
        )
    _check_columns(frame, list(dtypes), "the training frame")
    if len(frame) == 0:
        raise ChurnlensError("drift: cannot build a reference profile from an empty frame")
    features = {}
    for name, kind in dtypes.items():
        if kind == CATEGORY_DTYPE:
            features[name] = _category_profile(frame[name])
        else:
            features[name] = _numeric_profile(_numeric_values(frame[name], name), int(bins))
    return {"version": VERSION, "rows": len(frame), "features": features}


def psi_table(reference: Mapping, frame: pd.DataFrame) -> pd.DataFrame:
    """PSI of every feature in `reference` (from `reference_profile`) measured on `frame`.

    One row per reference feature with columns ``feature``, ``kind`` ("numeric" or
    "category"), ``psi`` (float, >= 0), and the bucket with the largest contribution to it:
    ``top_bin`` (a label such as ``(1.5, 3]``, a level, ``<other>`` or ``<missing>``) with
    its ``top_expected`` and ``top_actual`` shares (the first bucket when nothing moved).
    Sorted by psi descending, then feature name. PSI < 0.1 is usually read as stable, 0.1 to
    0.25 as a moderate shift and > 0.25 as a large one. Extra columns in `frame` are
    ignored; reference features missing from it raise ChurnlensError naming them, as does an
    empty frame.
    """
    features = _reference_features(reference)
    _check_columns(frame, list(features), "the scoring frame")
    if len(frame) == 0:
        raise ChurnlensError("drift: cannot compute PSI on an empty frame")
    rows = []
    for name, profile in features.items():
        if profile["kind"] == "numeric":
            edges = np.asarray(profile["edges"], dtype="float64")
            actual = _numeric_shares(_numeric_values(frame[name], name), edges)
            labels = _numeric_labels(edges)
        else:
            levels = list(profile["levels"])
            actual = _category_shares(frame[name], levels)
            labels = [*levels, OTHER_LABEL]
        expected = np.array([*profile["shares"], *_other(profile), profile["missing"]], float)
        labels.append(MISSING_LABEL)
        parts = _psi_terms(expected, actual)
        top = int(np.argmax(parts))
        rows.append(
            {
                "feature": name,
                "kind": profile["kind"],
                "psi": float(parts.sum()),
                "top_bin": labels[top],
                "top_expected": float(expected[top]),
                "top_actual": float(actual[top]),
            }
        )
    table = pd.DataFrame(rows, columns=COLUMNS).astype({"psi": "float64"})
    table = table.sort_values(["psi", "feature"], ascending=[False, True], kind="mergesort")
    return table.reset_index(drop=True)


def shift_summary(drift: pd.DataFrame, above: float, exempt: list[str]) -> str:
    """One line naming the features of a `psi_table` whose PSI is above `above`, worst first:
    those watched, then those expected to move with the calendar or the age of a past burst
    of events (`exempt`), so a reader sees at once which shifts are news."""

    def listed(rows: pd.DataFrame) -> str:
        return ", ".join(f"{f} {p:.3f}" for f, p in zip(rows["feature"], rows["psi"], strict=True))

    moved = drift[drift["psi"] > above]
    expected = moved["feature"].isin(exempt)
    news, known = moved[~expected], moved[expected]
    parts = []
    if len(news):
        parts.append(f"features shifted against training (PSI above {above}): {listed(news)}")
    if len(known):
        parts.append(f"expected to move with time (scoring.drift_exempt): {listed(known)}")
    return "; ".join(parts) or f"no feature has PSI above {above}"


def population_stability_index(
    expected: np.ndarray, actual: np.ndarray, epsilon: float = EPSILON
) -> float:
    """PSI between two share vectors over the same buckets, shares floored at `epsilon`."""
    return float(_psi_terms(np.asarray(expected, float), np.asarray(actual, float), epsilon).sum())


def median_side(reference: Mapping, name: str, values: pd.Series) -> np.ndarray:
    """Per value of numeric feature `name`, on which side of the reference's median bucket it
    falls: -1 in a bucket below it, +1 above it, 0 in it (and NaN).

    The median bucket is the first whose cumulative row count reaches half the non-missing
    rows. Its upper edge is the training median itself (edges are observed quantiles), so +1
    means "above the median"; -1 means "at or below the edge under it" (the median bucket is
    left out on both sides). When the median is the training maximum, that bucket is the last
    one and no value is above it. Read from the profile alone, so the answer for a value is
    the same whatever else is scored with it."""
    profile = _reference_features(reference).get(name)
    if profile is None or profile["kind"] != "numeric":
        raise ChurnlensError(f"drift: the reference has no numeric profile of {name}")
    edges = np.asarray(profile["edges"], dtype="float64")
    counts = np.rint(np.asarray(profile["shares"]) * reference["rows"]).cumsum()
    middle = int(np.searchsorted(2 * counts, counts[-1], side="left"))
    bucket = _bucket_index(_numeric_values(values, name), edges)
    return np.where(bucket > edges.size, 0, np.sign(bucket - middle))


# --- buckets -------------------------------------------------------------------------------


def _psi_terms(expected: np.ndarray, actual: np.ndarray, epsilon: float = EPSILON) -> np.ndarray:
    if expected.shape != actual.shape:
        raise ChurnlensError(
            f"drift: expected and actual shares differ in length ({expected.size} vs {actual.size})"
        )
    e, a = np.maximum(expected, epsilon), np.maximum(actual, epsilon)
    return (a - e) * np.log(a / e)


def _numeric_values(values: pd.Series, name: str) -> np.ndarray:
    if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)):
        raise ChurnlensError(
            f"drift: column {name} must be numeric (it is numeric in the reference), "
            f"got {values.dtype}"
        )
    return values.to_numpy(dtype="float64", na_value=np.nan)


def _bucket_index(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bucket of each value: 0..len(edges) by searchsorted(side="left"), NaN -> len(edges)+1."""
    index = np.searchsorted(edges, x, side="left")
    return np.where(np.isnan(x), edges.size + 1, index)


def _numeric_shares(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shares of the value buckets followed by the missing share (length len(edges) + 2)."""
    counts = np.bincount(_bucket_index(x, edges), minlength=edges.size + 2)
    return counts / x.size


def _numeric_profile(x: np.ndarray, bins: int) -> dict:
    finite = x[np.isfinite(x)]
    if finite.size and bins > 1:
        q = np.arange(1, bins) / bins
        edges = np.unique(np.quantile(finite, q, method="inverted_cdf"))
        edges = edges[edges < finite.max()]
    else:
        edges = np.empty(0)
    shares = _numeric_shares(x, edges)
    return {
        "kind": "numeric",
        "edges": [float(e) for e in edges],
        "shares": [float(s) for s in shares[:-1]],
        "missing": float(shares[-1]),
    }


def _numeric_labels(edges: np.ndarray) -> list[str]:
    bounds = ["-inf", *(f"{e:.6g}" for e in edges), "inf"]
    labels = [f"({lo}, {hi}]" for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    labels[-1] = labels[-1][:-1] + ")"
    return labels


def _level_counts(values: pd.Series) -> tuple[pd.Series, int]:
    """Count per level as text, and the number of missing values.

    value_counts runs on the raw values (fast for categoricals and strings alike); only the
    distinct values are turned into text, with ``astype("str")`` as ``ChurnModel.prepare``
    does, then levels whose text coincides (1 and "1") are merged.
    """
    counts = values.value_counts(dropna=True)
    counts = counts[counts > 0]
    counts.index = pd.Index(counts.index.astype("str"), dtype=object)
    counts = counts.groupby(level=0, sort=True).sum()
    return counts, int(values.isna().sum())


def _category_profile(values: pd.Series) -> dict:
    counts, missing = _level_counts(values)
    n = len(values)
    return {
        "kind": "category",
        "levels": [str(level) for level in counts.index],
        "shares": [float(c / n) for c in counts.to_numpy()],
        "other": 0.0,
        "missing": float(missing / n),
    }


def _category_shares(values: pd.Series, levels: list[str]) -> np.ndarray:
    """Shares of the reference levels, then "other" (unseen levels), then missing."""
    counts, missing = _level_counts(values)
    known = counts.reindex(levels, fill_value=0).to_numpy(dtype="float64")
    other = float(counts.sum()) - known.sum()
    return np.array([*known, other, missing], dtype="float64") / len(values)


# --- checks --------------------------------------------------------------------------------


def _other(profile: Mapping) -> list[float]:
    return [float(profile.get("other", 0.0))] if profile["kind"] == "category" else []


def _reference_features(reference: Mapping) -> dict:
    if not isinstance(reference, Mapping) or not isinstance(reference.get("features"), Mapping):
        raise ChurnlensError("drift: the reference is not a profile from reference_profile()")
    if reference.get("version") != VERSION:
        raise ChurnlensError(
            f"drift: unsupported reference profile version {reference.get('version')!r} "
            f"(expected {VERSION}); retrain the model to refresh it"
        )
    for name, profile in reference["features"].items():
        try:
            kind = profile["kind"]
            size = len(profile["edges"]) + 1 if kind == "numeric" else len(profile["levels"])
            shares = [*profile["shares"], profile["missing"]]
            ok = kind in ("numeric", "category") and len(profile["shares"]) == size
            ok = ok and all(isinstance(v, int | float) and math.isfinite(v) for v in shares)
        except (KeyError, TypeError):
            ok = False
        if not ok:
            raise ChurnlensError(f"drift: reference entry for {name} is malformed")
    return dict(reference["features"])


def _check_columns(frame: pd.DataFrame, names: list[str], what: str) -> None:
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ChurnlensError(
            f"drift: {len(missing)} feature(s) are missing from {what}: "
            f"{', '.join(map(str, missing[:10]))}{' ...' if len(missing) > 10 else ''}"
        )
    duplicated = sorted({str(n) for n in frame.columns[frame.columns.duplicated()]} & set(names))
    if duplicated:
        raise ChurnlensError(f"drift: duplicated column(s) in {what}: {', '.join(duplicated)}")
