"""The risk list's columns, defined once: name, type and meaning.

This list orders and types the columns `score` returns and the files `churnlens score`
writes, and `docs/concepts.md` shows it (a test keeps the two equal).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class OutputColumn:
    name: str
    dtype: str
    meaning: str


def _reason(i: int) -> list[OutputColumn]:
    return [
        OutputColumn(f"reason_{i}_feature", "str", f"driver feature behind reason {i}"),
        OutputColumn(
            f"reason_{i}_family",
            "str",
            f"playbook family of reason {i} (each reason's family differs from the others')",
        ),
        OutputColumn(
            f"reason_{i}_contribution",
            "float64",
            f"share (0-1) of the customer's risk-raising TreeSHAP contributions from reason {i}",
        ),
        OutputColumn(f"reason_{i}", "str", f"reason {i} as a sentence"),
    ]


RISK_LIST = (
    OutputColumn("customer_id", "str", "the customer"),
    OutputColumn("as_of", "datetime64[us]", "the scoring date: features use data before it"),
    OutputColumn(
        "status",
        "category",
        "active / at_risk / lapsed: lapsed customers are past their own return window "
        "(scoring.status) and get a win-back action, not a retention contact",
    ),
    OutputColumn(
        "churn_probability",
        "float64",
        "calibrated probability of no completed purchase (or a cancellation) within the "
        "model's horizon after as_of",
    ),
    OutputColumn(
        "gone_probability",
        "float64",
        "probability that the customer had already left at as_of, from their silence and "
        "usual gap between signs of life (scoring.status)",
    ),
    OutputColumn("risk_tier", "category", "low / medium / high by scoring thresholds"),
    OutputColumn("value", "float64", "margin over the value window (churnlens.economics)"),
    OutputColumn("value_at_risk", "float64", "churn_probability × value"),
    OutputColumn(
        "expected_net_gain",
        "float64",
        "expected saveable gain of one contact: (churn_probability − gone_probability, at "
        "least 0) × value × save_rate − contact_cost of the recommended action; empty when "
        "the customer was not explained",
    ),
    OutputColumn(
        "rank",
        "int64",
        "1 = the best expected net gain among retention candidates, lapsed customers after "
        "them; ties by customer_id",
    ),
    OutputColumn("target", "bool", "in the budgeted retention contact list"),
    *_reason(1),
    *_reason(2),
    *_reason(3),
    OutputColumn("reason_family", "str", "playbook family whose drivers raise risk most"),
    OutputColumn(
        "driver_share",
        "float64",
        "share (0-1) of the customer's risk-raising TreeSHAP contributions from drivers told "
        "as reasons: the part of the risk an action can address (1 when the model has no "
        "driver feature at all, as on a bare purchase log)",
    ),
    OutputColumn(
        "sign_feature",
        "str",
        "the strongest risk-raising sign (how churn shows) whose value is worrying (fixed "
        "side, or worse than the training median: `Feature.says_nothing`); empty when none is",
    ),
    OutputColumn("sign_contribution", "float64", "its share (0-1) of the customer's risk"),
    OutputColumn("sign", "str", "that sign as a sentence"),
    OutputColumn("recommended_action", "str", "the playbook's action for this customer"),
    OutputColumn("contact_cost", "float64", "cost of one contact with that action"),
    OutputColumn(
        "save_rate",
        "float64",
        "share of the customer's risk the contact is expected to remove: the action's save "
        "rate × the playbook's factor for the status × driver_share (not for win-back)",
    ),
    OutputColumn("model_name", "str", "registered model name"),
    OutputColumn("model_version", "str", "registered model version ('' when in memory)"),
    OutputColumn("run_id", "str", "MLflow run that trained it ('' when in memory)"),
)
NAMES = [column.name for column in RISK_LIST]


def conform(frame: pd.DataFrame) -> pd.DataFrame:
    """The risk list's columns in their documented order and types."""
    missing = [name for name in NAMES if name not in frame.columns]
    if missing:  # a bug, not a user error: the scorer must fill every column
        raise RuntimeError(f"risk list: columns {', '.join(missing)} were not computed")
    return frame[NAMES].astype({c.name: c.dtype for c in RISK_LIST if c.dtype != "category"})


def markdown() -> str:
    """The column table as Markdown, for docs/concepts.md."""
    rows = ["| column | type | meaning |", "|---|---|---|"]
    rows += [f"| `{c.name}` | {c.dtype} | {c.meaning} |" for c in RISK_LIST]
    return "\n".join(rows)
