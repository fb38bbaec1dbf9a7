"""Per-customer reasons: the top risk-raising TreeSHAP contributions, told as sentences.

Contributions are LightGBM's exact TreeSHAP (`pred_contrib`), the same values
`shap.TreeExplainer` returns for a LightGBM booster, on the raw margin: they sum with the
base value to the margin for every row. Each reason's sentence is the feature's registry
template filled with the customer's own values.
"""

from __future__ import annotations

import string
from collections.abc import Callable

import numpy as np
import pandas as pd

from churnlens.features.registry import Feature
from churnlens.modeling.model import ChurnModel

TOP_K = 3
REASON_COLUMNS = [
    *(
        f"reason_{i}{part}"
        for i in range(1, TOP_K + 1)
        for part in ("_feature", "_contribution", "")
    ),
    "reason_family",
]


def _sentence(template: str | None, name: str, row: dict) -> str:
    """The filled template; a plain statement when a value it needs is missing."""
    if template is not None:
        try:
            if all(pd.notna(v) for v in _fields(template, row)):
                return template.format(**row)
        except (KeyError, ValueError, TypeError):
            pass
    value = row.get(name)
    label = name.replace("_", " ")
    return f"No {label} on record" if pd.isna(value) else f"{label}: {value}"


def _field_names(template: str) -> list[str]:
    return [field for _, field, _, _ in string.Formatter().parse(template) if field]


def _fields(template: str, row: dict) -> list:
    return [row[field] for field in _field_names(template)]


def top_reasons(
    model: ChurnModel,
    frame: pd.DataFrame,
    registry: list[Feature],
    family_of: Callable[[str], str],
    k: int = TOP_K,
) -> pd.DataFrame:
    """reason_i_feature, reason_i_contribution and reason_i per row of `frame` (i = 1..k),
    and reason_family: the family whose features together raise the risk most.

    Only positive (risk-raising) contributions are reasons; a row with fewer has missing
    slots. Ties keep the model's feature order, so the result is deterministic. The family
    sums over all its features, so five small support signals can outweigh one recency.
    """
    contributions = model.contributions(frame)[:, :-1]
    families = np.array([family_of(name) for name in model.feature_names_])
    names_of_families = sorted(set(families))
    strength = np.column_stack(
        [
            np.clip(contributions[:, families == family], 0, None).sum(axis=1)
            for family in names_of_families
        ]
    )
    order = np.argsort(-contributions, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(contributions, order, axis=1)
    names = np.asarray(model.feature_names_, dtype=object)[order]
    names[top <= 0] = None
    templates = {f.name: f.template for f in registry}
    used = {name for name in pd.unique(names.ravel()) if isinstance(name, str)}
    needed = used | {f for name in used if name in templates for f in _field_names(templates[name])}
    records = frame[[c for c in frame.columns if c in needed]].to_dict("records")
    out = {}
    for i in range(k):
        out[f"reason_{i + 1}_feature"] = names[:, i]
        out[f"reason_{i + 1}_contribution"] = np.where(top[:, i] > 0, top[:, i], np.nan)
        out[f"reason_{i + 1}"] = [
            None if name is None else _sentence(templates.get(name), name, row)
            for name, row in zip(names[:, i], records, strict=True)
        ]
    out["reason_family"] = np.where(
        strength.max(axis=1) > 0, np.array(names_of_families)[strength.argmax(axis=1)], None
    )
    result = pd.DataFrame(out, index=frame.index)
    text = [c for c in result.columns if not c.endswith("_contribution")]
    return result.astype({c: "str" for c in text})


def explain(model: ChurnModel, features: pd.DataFrame, tables, config=None) -> pd.DataFrame:
    """The reasons for every row of a feature frame (from `build_features` or `training_set`):
    customer_id, cutoff and the reason columns, with families from the config's playbook."""
    from churnlens.config import Config
    from churnlens.features.engine import active_features
    from churnlens.scoring.playbook import load_playbook

    config = config or Config()
    windows = model.contract_.get("feature_windows_days", config.features.windows_days)
    feature_config = config.features.model_copy(update={"windows_days": windows})
    registry = active_features(tables, feature_config, config.data.ces_scale)
    family_of = load_playbook(config.playbook.path).family_of
    reasons = top_reasons(model, features, registry, family_of)
    return pd.concat([features[["customer_id", "cutoff"]], reasons], axis=1)
