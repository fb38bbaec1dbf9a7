"""A literal risk list and report input shared by the report, readable-list and browser tests."""

from __future__ import annotations

import pandas as pd

from churnlens.config import ChurnConfig
from churnlens.reporting import kpis
from churnlens.reporting.report import ReportInput
from test_kpis import shop

SCRIPT = "<script>document.title='pwned'</script>"


def risk_list(status: bool = True) -> pd.DataFrame:
    risk = pd.DataFrame(
        {
            "customer_id": ["top-customer-7", SCRIPT, "c3", "c4"],
            "as_of": pd.to_datetime(["2024-03-01"] * 4),
            "churn_probability": [0.4567, 0.81, 0.3, 0.05],
            "risk_tier": pd.Categorical(
                ["medium", "high", "medium", "low"], categories=["low", "medium", "high"]
            ),
            "value": [1234.567, 300.0, 50.0, 20.0],
            "value_at_risk": [563.82, 243.0, 15.0, 1.0],
            "expected_net_gain": [150.456, 40.0, -1.0, float("nan")],
            "rank": [1, 2, 3, 4],
            "target": [True, True, False, False],
            "reason_1_feature": ["open_tickets", "acquisition_channel", None, None],
            "reason_1_family": ["support", "market", None, None],
            "reason_1_contribution": [0.812345, 0.4, None, None],
            "reason_1": ["2 tickets open, the oldest for 9 days", f"channel {SCRIPT}", None, None],
            "reason_2": ["last NPS answer 3 (detractor)", None, None, None],
            "reason_3": [None, None, None, None],
            "reason_family": ["support", "attribute", None, None],
            "recommended_action": ["proactive service recovery", '=HYPERLINK("x")', None, None],
            "contact_cost": [8.0, 0.3, 0.3, 0.3],
            "save_rate": [0.3, 0.05, 0.05, 0.05],
            "model_name": "churnlens-demo",
            "model_version": "3",
            "run_id": "0123456789abcdef",
        }
    )
    if status:
        risk.insert(2, "status", ["at_risk", "active", "active", "lapsed"])
        risk.insert(
            17, "sign", ["no purchase for 84 days; usually every 21 days", None, None, None]
        )
    return risk


def report_input(status: bool = True) -> ReportInput:
    tables = shop()
    churn = ChurnConfig(active_window_days=30)
    risk = risk_list(status)
    _, segments = kpis.rfm_segments(tables, "2024-03-01", risk)
    return ReportInput(
        risk_list=risk,
        kpis=kpis.period_kpis(tables, churn, "month"),
        currency="EUR",
        cohorts=kpis.cohort_retention(tables, churn),
        segments=segments,
        pareto=kpis.pareto_view(tables, "2024-01-01", "2024-03-01"),
        model_card={
            "model": "churnlens-demo v3",
            "data window": "2024-01-01 to 2024-02-29",
            "horizon": "90 days",
            "attribute": SCRIPT,
        },
        metrics=pd.DataFrame(
            {"roc_auc": [0.81, 0.7], "brier": [0.12, 0.2], "n": [400, 400]},
            index=pd.Index(["lightgbm", "recency_rule"], name="model"),
        ),
        calibration=pd.DataFrame({"predicted": [0.1, 0.5, 0.9], "observed": [0.12, 0.45, 0.85]}),
        drift=pd.DataFrame({"feature": ["recency_days", "open_tickets"], "psi": [0.05, 0.01]}),
        importance=pd.Series({"recency_days": 0.5, "open_tickets": 0.3, "last_nps": 0.1}),
        exits=exit_answers(),
    )


def exit_answers() -> pd.DataFrame:
    """Stated leaving reasons: one agreeing with the model, one not, one customer not scored,
    and an older answer that a later one replaces."""
    return pd.DataFrame(
        {
            "response_id": ["x1", "x2", "x3", "x4"],
            "customer_id": ["top-customer-7", "c3", "gone-1", "c3"],
            "answered_at": pd.to_datetime(["2024-02-20", "2024-02-25", "2024-02-27", "2024-01-10"]),
            "kind": "exit",
            "reason": ["support", "pricing", None, "delivery"],
            "comment": [None, "too expensive", SCRIPT, None],
        }
    )
