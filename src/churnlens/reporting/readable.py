"""The risk list as people read it: a spreadsheet for the retention team, and number formats.

The machine list (`risk_list.parquet`) keeps every column. This one keeps what a retention
agent acts on, under plain headers: rounded percentages, money with the configured currency
in the header (cells stay numbers, so they sort and sum), reasons and sign as sentences, the
action and the expected gain — no raw contributions, feature names or run ids.

It is a CSV, not XLSX: every spreadsheet opens it, it needs no extra dependency, and numbers
stay numbers. It is written with a UTF-8 byte-order mark because Excel reads UTF-8 without
one as a legacy code page and garbles any non-ASCII name. Text cells that a spreadsheet
would run as a formula are neutralised by `write_csv`, like in every CSV the package writes.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from churnlens.data.io import write_csv
from churnlens.errors import ChurnlensError

REQUIRED = (
    "customer_id",
    "as_of",
    "churn_probability",
    "risk_tier",
    "value",
    "value_at_risk",
    "expected_net_gain",
    "rank",
    "target",
)


def money(value: float, currency: str) -> str:
    """'1,234 EUR' — whole units; '–' when unknown."""
    return "–" if value is None or pd.isna(value) else f"{value:,.0f} {currency}"


def percent(value: float, digits: int = 0) -> str:
    """A fraction as a percentage: 0.4567 -> '46 %'; '–' when unknown."""
    return "–" if value is None or pd.isna(value) else f"{value * 100:.{digits}f} %"


def sentence(text) -> str:
    """A reason or sign as a sentence: capitalised, ending with a full stop; '' when absent."""
    if not isinstance(text, str) or not text.strip():
        return ""
    text = text.strip()
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def check_risk_list(risk: pd.DataFrame) -> None:
    missing = [column for column in REQUIRED if column not in risk.columns]
    if missing:
        raise ChurnlensError(
            f"risk list: column(s) {', '.join(missing)} missing; expected the output of "
            "`churnlens score`"
        )


def readable_list(risk: pd.DataFrame, currency: str) -> pd.DataFrame:
    """One row per customer in rank order with the columns documented in docs/kpis.md."""
    check_risk_list(risk)
    risk = risk.sort_values("rank", kind="stable")
    columns = {
        "Rank": risk["rank"].astype("int64"),
        "Customer": risk["customer_id"].astype("str"),
        "Score date": pd.to_datetime(risk["as_of"]).dt.strftime("%Y-%m-%d"),
        "Contact now": risk["target"].map({True: "yes", False: "no"}),
    }
    if "status" in risk.columns:
        columns["Status"] = risk["status"].astype("str").str.replace("_", " ")
    columns |= {
        "Churn risk (%)": (risk["churn_probability"] * 100).round(0).astype("int64"),
        "Risk tier": risk["risk_tier"].astype("str"),
        f"Customer value ({currency})": risk["value"].round(2),
        f"Value at risk ({currency})": risk["value_at_risk"].round(2),
        f"Expected gain if contacted ({currency})": risk["expected_net_gain"].round(2),
    }
    for i in (1, 2, 3):
        if f"reason_{i}" in risk.columns:
            columns[f"Reason {i}"] = risk[f"reason_{i}"].map(sentence)
    if "sign" in risk.columns:
        columns["How it shows"] = risk["sign"].map(sentence)
    if "recommended_action" in risk.columns:
        action = risk["recommended_action"].where(risk["recommended_action"].notna(), "")
        columns["Recommended action"] = action.astype("str").map(sentence)
    return pd.DataFrame(columns).reset_index(drop=True)


def write_readable_list(risk: pd.DataFrame, currency: str, path: Path) -> Path:
    """Write `readable_list` as a UTF-8 (with BOM) CSV, atomically."""
    return write_csv(readable_list(risk, currency), path, encoding="utf-8-sig")
