"""The spreadsheet for the retention team: plain headers, rounded numbers, sentences, safe cells."""

from __future__ import annotations

import pandas as pd
import pytest

from churnlens.errors import ChurnlensError
from churnlens.reporting.readable import (
    money,
    percent,
    readable_list,
    sentence,
    write_readable_list,
)
from reporting_inputs import risk_list

COLUMNS = [
    "Rank",
    "Customer",
    "Score date",
    "Contact now",
    "Status",
    "Churn risk (%)",
    "Risk tier",
    "Customer value (USD)",
    "Value at risk (USD)",
    "Expected gain if contacted (USD)",
    "Reason 1",
    "Reason 2",
    "Reason 3",
    "How it shows",
    "Recommended action",
]


def test_formats():
    assert money(1234.567, "EUR") == "1,235 EUR" and money(float("nan"), "EUR") == "–"
    assert percent(0.4567) == "46 %" and percent(0.4567, 1) == "45.7 %"
    assert sentence("2 tickets open") == "2 tickets open." and sentence(None) == ""
    assert sentence("no purchase for 84 days!") == "No purchase for 84 days!"


def test_readable_list_columns_and_values():
    frame = readable_list(risk_list(), "USD")
    assert list(frame.columns) == COLUMNS
    top = frame.iloc[0]
    assert top["Customer"] == "top-customer-7" and top["Status"] == "at risk"
    assert top["Churn risk (%)"] == 46 and top["Customer value (USD)"] == 1234.57
    assert top["Expected gain if contacted (USD)"] == 150.46 and top["Contact now"] == "yes"
    assert top["Reason 1"] == "2 tickets open, the oldest for 9 days."
    assert top["How it shows"] == "No purchase for 84 days; usually every 21 days."
    assert top["Recommended action"] == "Proactive service recovery."
    assert frame.iloc[2]["Reason 1"] == "" and frame.iloc[3]["Status"] == "lapsed"
    flat = [str(cell) for cell in frame.to_numpy().ravel()]
    assert not any("0123456789abcdef" in cell or "0.812345" in cell for cell in flat)
    without = readable_list(risk_list(status=False), "USD")
    assert "Status" not in without and "How it shows" not in without


def test_written_csv_is_excel_ready_and_formula_safe(tmp_path):
    path = write_readable_list(risk_list(), "EUR", tmp_path / "contact_list.csv")
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # Excel reads UTF-8 only with a BOM
    back = pd.read_csv(path, encoding="utf-8-sig", keep_default_na=False)
    assert back.loc[1, "Recommended action"] == '\'=HYPERLINK("x").'
    assert back.loc[0, "Churn risk (%)"] == 46


def test_not_a_risk_list():
    with pytest.raises(ChurnlensError, match="column\\(s\\) rank, target missing"):
        readable_list(risk_list().drop(columns=["rank", "target"]), "EUR")
