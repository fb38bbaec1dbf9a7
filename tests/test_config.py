"""Config rules that span keys: orderings, and event kinds compared as the data are."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from pydantic import ValidationError

from churnlens.config import FeatureConfig, ScoringConfig, load_config
from churnlens.data.contract import validate
from churnlens.errors import ChurnlensError
from churnlens.features.engine import build_features


def test_event_kinds_in_any_case_are_one_family():
    config = FeatureConfig(
        windows_days=[30],
        event_kinds=["LOGIN", " login ", "Delivery_Late"],
        event_roles={"Delivery_Late": "driver"},
        event_families={"DELIVERY_LATE": "delivery"},
    )
    assert config.event_kinds == ["login", "delivery_late"]
    assert config.event_roles == {"delivery_late": "driver"}
    assert config.event_families == {"delivery_late": "delivery"}
    tables = validate(
        {
            "customers": pd.DataFrame({"customer_id": ["a"], "signup_at": ["2024-01-01"]}),
            "purchases": pd.DataFrame(
                {
                    "order_id": ["1"],
                    "customer_id": ["a"],
                    "ordered_at": ["2024-01-02"],
                    "amount": ["10"],
                }
            ),
            "events": pd.DataFrame(
                {
                    "customer_id": ["a", "a", "a"],
                    "at": ["2024-01-10", "2024-01-11", "2024-01-12"],
                    "kind": ["login", "LOGIN", "Delivery_Late"],
                }
            ),
        }
    )
    spine = pd.DataFrame({"customer_id": ["a"], "cutoff": [pd.Timestamp("2024-01-20")]})
    features = build_features(tables, spine, config.model_copy(update={"btyd": False}))
    assert features["login_30d"].tolist() == [2]
    assert features["delivery_late_30d"].tolist() == [1]
    assert not any("LOGIN" in name for name in features.columns)


def test_one_kind_named_twice_in_roles_is_a_config_error():
    with pytest.raises(ValidationError, match="names one event kind twice"):
        FeatureConfig(event_roles={"login": "sign", "LOGIN": "driver"})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"medium_risk_threshold": 0.5}, "medium_risk_threshold must be below"),
        ({"high_risk_threshold": 0.1}, "medium_risk_threshold must be below"),
        ({"drift_warn_psi": 0.25}, "drift_warn_psi must be below drift_stop_psi"),
        ({"drift_stop_psi": 0.05}, "drift_warn_psi must be below drift_stop_psi"),
    ],
)
def test_tiers_and_drift_limits_must_be_ordered(settings, message):
    with pytest.raises(ValidationError, match=message):
        ScoringConfig(**settings)


@pytest.mark.parametrize("day", ["2025-13-01", "2025-02-30"])
def test_a_day_that_does_not_exist_names_its_key(tmp_path, day):
    """YAML's own date parsing raised a bare ValueError on these (exit 4)."""
    (tmp_path / "c.yaml").write_text(f"cutoffs:\n  test: {day}\n  start: 2024-07-01\n")
    with pytest.raises(ChurnlensError, match=r"cutoffs\.test: .*date"):
        load_config(tmp_path / "c.yaml")
    (tmp_path / "c.yaml").write_text("cutoffs:\n  test: 2025-10-01\n  start: 2024-07-01\n")
    cutoffs = load_config(tmp_path / "c.yaml").cutoffs
    assert (cutoffs.test, cutoffs.start) == (dt.date(2025, 10, 1), dt.date(2024, 7, 1))
