"""What the package writes: no formula cells in any CSV, file modes from the umask."""

from __future__ import annotations

import csv
import os
import re

import pandas as pd
import pytest
from typer.testing import CliRunner

from churnlens.cli import app
from churnlens.data.io import write_csv, write_parquet

runner = CliRunner()
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\0")
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
PREFIXES = ("=", "+", "-", "@", "\t", "\r", "")


def test_write_csv_prefixes_formula_text_and_keeps_numbers(tmp_path):
    frame = pd.DataFrame(
        {
            "=id": ["=HYPERLINK(1)", "plain", "-2", "+cmd|x", "@SUM(1+1)", "\tx", "\rx", None],
            "p": [0.5, -1.0, 2.0, -3.5, 0.0, 1.0, 1.0, float("nan")],
            "tier": pd.Categorical(["-low", "high", "high", "high", "high", "high", "high", None]),
        }
    )
    path = write_csv(frame, tmp_path / "x.csv")
    rows = list(csv.reader(path.open(newline="")))
    assert rows[0] == ["'=id", "p", "tier"]
    assert [row[0] for row in rows[1:]] == [
        "'=HYPERLINK(1)",
        "plain",
        "-2",  # a plain number is read as that number, not run
        "'+cmd|x",
        "'@SUM(1+1)",
        "'\tx",
        "'\rx",
        "",
    ]
    assert [row[1] for row in rows[1:]] == ["0.5", "-1.0", "2.0", "-3.5", "0.0", "1.0", "1.0", ""]
    assert rows[1][2] == "'-low" and rows[8][2] == ""
    assert frame["=id"].iloc[0] == "=HYPERLINK(1)"  # the caller's frame is untouched


def test_write_csv_keeps_case_distinct_names_and_writes_periods_as_text(tmp_path):
    frame = pd.DataFrame(
        {
            "Plan": ["a", "b"],
            "plan": [True, False],
            "month": pd.PeriodIndex(["2025-01", None], freq="M"),
        }
    )
    path = write_csv(frame, tmp_path / "x.csv", encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbfPlan,plan,month\r\n")
    rows = list(csv.reader(path.open(newline="", encoding="utf-8-sig")))
    assert rows[1:] == [["a", "true", "2025-01"], ["b", "false", ""]]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_get_the_mode_the_umask_asks_for(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        csv_path = write_csv(pd.DataFrame({"a": [1]}), tmp_path / "a.csv")
        parquet_path = write_parquet(pd.DataFrame({"a": [1]}), tmp_path / "a.parquet")
    finally:
        os.umask(old)
    assert csv_path.stat().st_mode & 0o777 == mode
    assert parquet_path.stat().st_mode & 0o777 == mode


@pytest.fixture(scope="module")
def hostile_scores(hostile_model):
    """Score the hostile shop through the CLI with the model trained on it."""
    path, folder = hostile_model
    out = path.parent / "scores"
    command = ["score", "-c", str(path), "--as-of", "2025-11-01", "--model", str(folder)]
    outcome = runner.invoke(app, [*command, "--out", str(out), "--explain", "all"])
    assert outcome.exit_code == 0, outcome.output
    return out


def _cells(path):
    rows = list(csv.reader(path.open(newline="", encoding="utf-8")))
    return [cell for row in rows for cell in row]


@pytest.mark.parametrize("name", ["risk_list.csv", "drift.csv"])
def test_no_csv_cell_starts_a_formula(hostile_scores, name):
    risky = [
        cell
        for cell in _cells(hostile_scores / name)
        if cell.startswith(FORMULA_STARTS) and not NUMBER.fullmatch(cell)
    ]
    assert risky == []


def test_hostile_ids_attributes_and_categories_arrive_prefixed(hostile_scores):
    risk = pd.read_csv(hostile_scores / "risk_list.csv", keep_default_na=False, dtype=str)
    ids = set(risk["customer_id"])
    for prefix in ("=", "+", "-", "@", "\t", "\r"):
        assert any(i.startswith("'" + prefix + "C") for i in ids), prefix
    assert any(i.startswith("C") for i in ids)  # plain ids stay plain
    drift = pd.read_csv(hostile_scores / "drift.csv", keep_default_na=False, dtype=str)
    assert {"'=region", "'@segment"} <= set(drift["feature"])
    levels = drift.loc[drift["feature"].isin(["'=region", "last_channel"]), "top_bin"]
    assert levels.str.startswith("'").all() and len(levels) == 2
    raw = pd.read_parquet(hostile_scores / "risk_list.parquet")
    assert set(raw["customer_id"]) == {i[1:] if i.startswith("'") else i for i in ids}


def test_numbers_stay_numbers_in_the_risk_list(hostile_scores):
    risk = pd.read_csv(hostile_scores / "risk_list.csv")
    for column in ("churn_probability", "value", "expected_net_gain", "rank"):
        assert pd.api.types.is_numeric_dtype(risk[column]), column
    assert (risk["expected_net_gain"] < 0).any()  # negative numbers are written as numbers
