"""Per-customer reasons: the strongest risk-raising drivers, and apart the strongest sign.

Contributions are LightGBM's exact TreeSHAP (`pred_contrib`, run once per pattern of split
sides: `modeling.treeshap`), the values `shap.TreeExplainer` returns for a LightGBM booster
(to ~1e-14), on the raw margin. Log-odds mean nothing
to a retention team, so each reason reports its **share of the customer's risk**: the
feature's contribution over the sum of every risk-raising contribution of that customer
(0-1; 0.4 = "40 % of what pushes this customer above the average customer"). Shares keep
the order of the contributions, need no calibration step (an isotonic map is flat in
places, so "points of probability" would be 0 there), and compare across customers.

Only `driver` features (causes the business can act on) fill reason_1..3; the strongest
risk-raising `sign` (how the churn shows: recency, fading orders, logins) fills `sign`;
`context` features are never told, nor is a value that reports nothing (a missing value, 0
for a count or flag: "no ticket open" is not a cause; a value on the reassuring side of the
feature's concern: "No purchase for 0 days" is not a sign, `Feature.says_nothing`). Signs are
judged against the model's training population (`ChurnModel.reference_`); a customer with no
worrying sign gets empty sign columns. A feature the registry does not know is context. Each
sentence is the feature's registry template filled with the customer's own values.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from churnlens.errors import ChurnlensError
from churnlens.features.btyd import BTYD_FEATURES
from churnlens.features.registry import (
    Feature,
    column_name,
    event_kinds_in,
    render,
    template_parts,
)
from churnlens.modeling.model import ChurnModel
from churnlens.scoring.playbook import load_playbook

TOP_K = 3
DEFAULT_FAMILY = "default"
REASON_COLUMNS = [
    *(
        f"reason_{i}{part}"
        for i in range(1, TOP_K + 1)
        for part in ("_feature", "_family", "_contribution", "")
    ),
    "reason_family",
    "driver_share",
    "sign_feature",
    "sign_contribution",
    "sign",
]


def sentence(feature: Feature | None, name: str, row: dict) -> str:
    """The feature's sentence for this customer; a plain statement when a value is missing."""
    value = row.get(name)
    if feature is not None:
        try:
            if all(pd.notna(row[field]) for field in _field_names(feature.template)):
                return render(feature.template, row)
        except (KeyError, ValueError, TypeError):
            pass
    label = name.replace("_", " ")
    return f"No {label} on record" if pd.isna(value) else f"{label}: {value}"


def _field_names(template: str) -> list[str]:
    return [field for _, field, _, _ in template_parts(template) if field]


def _strongest(values: np.ndarray, allowed: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and values of the k largest positive entries per row among `allowed`
    columns; ties keep the column order, so the result is deterministic."""
    masked = np.where(allowed, values, -np.inf)
    order = np.argsort(-masked, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(masked, order, axis=1)


def _strongest_per_family(
    values: np.ndarray, allowed: np.ndarray, families: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """As `_strongest`, with at most one column of each family per row: its strongest. Three
    sentences on one cause ("3 slow replies", "the last slow reply 5 days ago") tell a
    retention team less than one on each of three causes."""
    present = sorted(set(families[allowed.any(axis=0)]))
    columns = np.zeros((len(values), max(len(present), k)), dtype=int)
    best = np.full(columns.shape, -np.inf)  # a family with no allowed column stays empty
    for j, family in enumerate(present):
        own = np.flatnonzero(families == family)
        idx, value = _strongest(values[:, own], allowed[:, own], 1)
        columns[:, j], best[:, j] = own[idx[:, 0]], value[:, 0]
    order, value = _strongest(best, np.ones(best.shape, dtype=bool), k)
    return np.take_along_axis(columns, order, axis=1), value


def top_reasons(
    model: ChurnModel,
    frame: pd.DataFrame,
    registry: list[Feature],
    family_of: Callable[[str, str], str],
    k: int = TOP_K,
) -> pd.DataFrame:
    """REASON_COLUMNS per row of `frame`: for i = 1..k reason_i_feature, reason_i_family,
    reason_i_contribution (share of the customer's risk) and the sentence reason_i, from the
    risk-raising drivers, one per family; reason_family, the family whose drivers together
    raise the risk most (it picks the action); driver_share, the share of the customer's risk
    that comes from drivers told as reasons (what an action can address; the rest is how
    churn shows);
    sign_feature, sign_contribution and sign, the strongest sign whose value worries (judged
    against the model's training population: `Feature.says_nothing`), empty when none does.

    `family_of(feature, registry_family)` gives a feature's playbook family (the playbook may
    re-file features). Rows with fewer risk-raising drivers have missing slots. The family
    sums over its drivers, so five small support drivers can outweigh one detractor answer.
    """
    share, pushing = _shares(model.contributions(frame))
    known, names, roles = _roles(model, registry)
    families = np.array(
        [family_of(n, known[n].family if n in known else DEFAULT_FAMILY) for n in names],
        dtype=object,
    )
    silent = _silent(model, frame, known, names, roles)
    drivers = roles == "driver"
    reason_idx, reason_share = _strongest_per_family(share, drivers & ~silent, families, k)
    sign_idx, sign_share = _strongest(share, (roles == "sign") & ~silent, 1)
    picked = np.column_stack([reason_idx, sign_idx])
    picked_share = np.column_stack([reason_share, sign_share])
    picked_names = np.where(picked_share > 0, names[picked], None)
    texts = _sentences(frame, picked_names, known)
    out = {}
    for i in range(k):
        present = picked_share[:, i] > 0
        out[f"reason_{i + 1}_feature"] = picked_names[:, i]
        out[f"reason_{i + 1}_family"] = np.where(present, families[picked[:, i]], None)
        out[f"reason_{i + 1}_contribution"] = np.where(present, picked_share[:, i], np.nan)
        out[f"reason_{i + 1}"] = texts[:, i]
    family_names = np.array(sorted(set(families[drivers])), dtype=object)
    out["reason_family"] = np.full(len(frame), None, dtype=object)
    if family_names.size:
        acting = np.where(silent, 0.0, pushing)
        strength = np.column_stack(
            [acting[:, drivers & (families == f)].sum(axis=1) for f in family_names]
        )
        out["reason_family"] = np.where(
            strength.max(axis=1) > 0, family_names[strength.argmax(axis=1)], None
        )
    out["driver_share"] = _driver_share(share, drivers, silent)
    out["sign_feature"] = picked_names[:, k]
    out["sign_contribution"] = np.where(picked_share[:, k] > 0, picked_share[:, k], np.nan)
    out["sign"] = texts[:, k]
    result = pd.DataFrame(out, index=frame.index)
    text = [c for c in result.columns if not c.endswith(("_contribution", "_share"))]
    return result.astype({c: "str" for c in text})


def _sentences(frame: pd.DataFrame, picked: np.ndarray, known: dict) -> np.ndarray:
    """`sentence` for each picked feature name (None: no sentence) of `frame`'s rows. A
    sentence reads only its feature's own values, so it is rendered once per feature and
    distinct set of those values (a million-row list repeats "1 ticket ..." thousands of
    times): at 1M, 91k renderings instead of 207k, the same strings."""
    texts = np.full(picked.size, None, dtype=object)
    codes, names = pd.factorize(picked.ravel())  # None: -1
    cells = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[cells], np.arange(-1, len(names)), side="right")
    for name, start, end in zip(names, bounds[:-1], bounds[1:], strict=True):
        these = cells[start:end]
        fields = [name, *(_field_names(known[name].template) if name in known else [])]
        columns = [c for c in dict.fromkeys(fields) if c in frame.columns]
        values = frame[columns].iloc[these // picked.shape[1]]
        first, inverse = _distinct(values)
        records = values.iloc[first].to_dict("records")
        said = [sentence(known.get(name), name, row) for row in records]
        texts[these] = np.array(said, dtype=object)[inverse]
    return texts.reshape(picked.shape)


def _distinct(values: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(a first row of each distinct row of `values`, each row's distinct one). Floats are
    compared by their bits: -0.0 and 0.0 read "-0" and "0"."""
    codes = [
        column.to_numpy().view(np.int64)
        if column.dtype == np.float64
        else pd.factorize(column, use_na_sentinel=False)[0]
        for _, column in values.items()
    ]
    keys = np.column_stack(codes) if codes else np.zeros((len(values), 1), dtype=np.int64)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    return first, inverse.ravel()


def _shares(contributions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(each feature's share of the customer's risk, its risk-raising part) from contributions
    to the margin whose last column is the base value."""
    contributions = contributions[:, :-1]
    pushing = np.clip(contributions, 0, None)
    total = pushing.sum(axis=1, keepdims=True)
    share = np.divide(contributions, total, out=np.zeros_like(contributions), where=total > 0)
    return share, pushing


def _roles(model: ChurnModel, registry: list[Feature]):
    """(registry by name, the model's feature names, their roles; unknown ones are context)."""
    known = {f.name: f for f in registry}
    names = np.asarray(model.feature_names_, dtype=object)
    roles = np.array([known[n].role if n in known else "context" for n in names])
    return known, names, roles


def _silent(model, frame, known, names, roles) -> np.ndarray:
    """Per row and feature, whether the value reports nothing (`Feature.says_nothing`)."""
    silent = np.zeros((len(frame), len(names)), dtype=bool)
    for j in np.flatnonzero(roles != "context"):
        silent[:, j] = known[names[j]].says_nothing(frame[names[j]], model.reference_)
    return silent


def _driver_share(share: np.ndarray, drivers: np.ndarray, silent: np.ndarray) -> np.ndarray:
    """The share of each customer's risk from drivers whose values are told. A model with no
    driver at all (a bare purchase log) cannot tell causes from signs: its whole risk counts,
    so the playbook's default action is priced on it rather than on nothing."""
    if not drivers.any():
        return np.ones(len(share))
    told = np.clip(share, 0, None)
    np.copyto(told, 0.0, where=silent | ~drivers)  # in place: the screen's rows are many
    return told.sum(axis=1)


def screening_share(model: ChurnModel, frame: pd.DataFrame, registry: list[Feature]):
    """`driver_share` (see top_reasons) from path attributions instead of TreeSHAP
    (`ChurnModel.path_contributions`): an estimate at the cost of a prediction, which scoring
    uses to pick whom to explain exactly."""
    share, _ = _shares(model.path_contributions(frame))
    known, names, roles = _roles(model, registry)
    silent = _silent(model, frame, known, names, roles)
    return _driver_share(share, roles == "driver", silent)


def feature_settings(model: ChurnModel, config):
    """The config's feature settings with the feature windows the model was trained on, the
    BTYD features exactly when the model was trained with them, and, unless the config names
    event kinds, the kinds the model learned from: a kind absent from the scoring data counts
    0 (the drift check judges whether that is plausible) instead of missing the model's
    features, and a kind it never saw is not built."""
    windows = model.contract_.get("feature_windows_days", config.features.windows_days)
    update = {
        "windows_days": windows,
        "btyd": any(name in model.feature_names_ for name in BTYD_FEATURES),
    }
    learned = event_kinds_in(model.feature_names_, windows)
    if config.features.event_kinds is None:
        update["event_kinds"] = learned
    else:
        named = {column_name(kind) for kind in config.features.event_kinds}
        left_out = [kind for kind in learned if kind not in named]
        if left_out:
            raise ChurnlensError(
                f"features.event_kinds leaves out event kind(s) {', '.join(left_out)} the "
                "model was trained with; add them, or drop features.event_kinds to use the "
                "model's own"
            )
    return config.features.model_copy(update=update)


def registry_for(model: ChurnModel, tables, config) -> tuple:
    """(feature settings, registry) a model's features are built and explained with (see
    `feature_settings`). Built once per run."""
    from churnlens.features.engine import active_features

    feature_config = feature_settings(model, config)
    registry = active_features(
        tables, feature_config, config.data.ces_scale, config.data.csat_scale
    )
    return feature_config, registry


def explain(model: ChurnModel, features: pd.DataFrame, tables, config=None) -> pd.DataFrame:
    """The reasons for every row of a feature frame (from `build_features` or `training_set`):
    customer_id, cutoff and the reason columns, with families from the config's playbook."""
    from churnlens.config import Config

    config = config or Config()
    _, registry = registry_for(model, tables, config)
    family_of = load_playbook(config.playbook.path).family_of
    reasons = top_reasons(model, features, registry, family_of)
    return pd.concat([features[["customer_id", "cutoff"]], reasons], axis=1)


def reason_accuracy(risk: pd.DataFrame, truth: pd.DataFrame, horizon_days: int) -> dict:
    """How often the reasons name the true cause, on a shop whose truth is known.

    `risk` is a risk list with reasons (customer_id, as_of, reason_i_family, reason_family);
    `truth` has customer_id, churned_at and churn_driver (the family of the cause). Counted:
    customers in the list who truly leave within `horizon_days` after the as-of date with a
    known driver. Returns their number and the shares whose first reason's family is the
    driver's (`first`), whose any of the reasons is (`any`), and whose reason family, which
    picks the action, is (`action_family`).
    """
    rows = risk.merge(truth, on="customer_id", how="inner")
    end = rows["as_of"] + pd.Timedelta(days=horizon_days)
    leave = (rows["churned_at"] >= rows["as_of"]) & (rows["churned_at"] < end)
    rows = rows[leave & rows["churn_driver"].notna()]
    slots = rows[[c for c in rows.columns if c.startswith("reason_") and c.endswith("_family")]]
    named = slots.drop(columns="reason_family").eq(rows["churn_driver"], axis=0)
    return {
        "customers": len(rows),
        "first": float(named["reason_1_family"].mean()),
        "any": float(named.any(axis=1).mean()),
        "action_family": float((rows["reason_family"] == rows["churn_driver"]).mean()),
    }
