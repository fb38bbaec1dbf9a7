"""Labels that say nothing and rows that are not where the range says: warned, or refused."""

from __future__ import annotations

import logging

import pandas as pd
import pytest
from typer.testing import CliRunner

from churnlens.cli import app
from churnlens.data.contract import validate
from churnlens.errors import ChurnlensError
from churnlens.labels import require_informative, rows_after_end, sparse_cutoffs
from churnlens.modeling.train import fit

runner = CliRunner()


def _spine(rates: dict[str, float], n: int = 100) -> pd.DataFrame:
    parts = [
        pd.DataFrame(
            {
                "customer_id": [f"c{i}" for i in range(n)],
                "cutoff": pd.Timestamp(day),
                "churned": [i < rate * n for i in range(n)],
            }
        )
        for day, rate in rates.items()
    ]
    return pd.concat(parts, ignore_index=True)


def test_a_silent_cutoff_is_a_warning_naming_it(caplog):
    with caplog.at_level(logging.WARNING, logger="churnlens"):
        require_informative(_spine({"2024-01-01": 1.0, "2024-02-01": 0.6, "2024-03-01": 0.01}))
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "100.0 % at cutoff 2024-01-01" in warned and "1.0 % at cutoff 2024-03-01" in warned
    assert "2024-02-01" not in warned


def test_training_refuses_when_every_cutoff_is_silent():
    spine = _spine({"2024-01-01": 1.0, "2024-02-01": 0.96, "2024-03-01": 1.0})
    with pytest.raises(ChurnlensError, match=r"every cutoff \(2024-01-01 100.0%"):
        fit(spine.assign(orders_total=1.0))


def _log(days: list[str]) -> dict[str, pd.DataFrame]:
    ids = [f"c{i % 50}" for i in range(len(days))]
    return {
        "customers": pd.DataFrame(
            {"customer_id": [f"c{i}" for i in range(50)], "signup_at": "2024-01-01"}
        ),
        "purchases": pd.DataFrame(
            {
                "order_id": [f"o{i}" for i in range(len(days))],
                "customer_id": ids,
                "ordered_at": days,
                "amount": "1",
            }
        ),
    }


def test_a_cutoff_in_a_sparse_tail_is_flagged_and_rows_after_the_end_reported():
    busy = [f"2024-{m:02d}-{d:02d}" for m in range(1, 7) for d in range(1, 29)]  # 168 rows
    frames = _log(busy + ["2024-11-20", "2024-12-30"])
    frames["surveys"] = pd.DataFrame(
        {
            "response_id": ["s1"],
            "customer_id": ["c1"],
            "answered_at": ["2025-01-15"],
            "kind": ["nps"],
            "score": ["9"],
        }
    )
    tables = validate(frames)
    cutoffs = [pd.Timestamp("2024-04-01"), pd.Timestamp("2024-10-01")]
    found = sparse_cutoffs(tables, cutoffs, 60)
    assert len(found) == 1 and found[0].startswith("cutoff 2024-10-01: its 60-day label window")
    assert rows_after_end(tables, "non_contractual") == [
        "surveys: 1 row(s) after the data end 2024-12-30 (the last completed purchase, or "
        "cancellation for contractual churn): no label reaches them"
    ]


def test_validate_prints_where_the_rows_are_and_the_sparse_tail(shop):
    busy = [f"2024-{m:02d}-{d:02d}" for m in range(1, 7) for d in range(1, 29)]
    shop.tables = _log(busy + ["2024-12-30"])
    shop.config = {
        "data": {name: {"path": f"{name}.csv"} for name in shop.tables},
        "churn": {"horizon_days": 60},
        "cutoffs": {"test": "2024-10-01", "step_days": 60},
    }
    result = runner.invoke(app, ["validate", "-c", str(shop.write())])
    assert result.exit_code == 0, result.output
    assert "2024-01-0" in result.output and "..2024-06-2" in result.output  # the 95 % span
    assert "cutoff 2024-10-01: its 60-day label window holds 0 purchase row(s)" in result.output
