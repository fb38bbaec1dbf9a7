"""`churnlens kpis` and `churnlens report` end to end on the trained simulated shop."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from typer.testing import CliRunner

from churnlens import pipeline
from churnlens.cli import app
from churnlens.config import load_config
from churnlens.data.contract import load_tables
from churnlens.labels import data_end

runner = CliRunner()


@pytest.fixture(scope="module")
def scores(trained_shop, tmp_path_factory):
    root, path, _, registered = trained_shop
    as_of = data_end(load_tables(load_config(path).data)).normalize() - pd.Timedelta(days=60)
    out = tmp_path_factory.mktemp("scores")
    pipeline.score(path, as_of, out, f"models:/shop/{registered.version}", budget_contacts=50)
    return path, out


def test_kpis_command_writes_a_csv(trained_shop, tmp_path):
    _, path, _, _ = trained_shop
    result = runner.invoke(
        app, ["kpis", "-c", str(path), "--period", "quarter", "--out", str(tmp_path / "k.csv")]
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "k.csv")
    assert {"retention_rate", "churn_rate", "nps", "csat", "backlog", "clv"} <= set(table.columns)
    assert table["period"].str.match(r"\d{4}Q[1-4]").all()
    shown = runner.invoke(app, ["kpis", "-c", str(path), "--period", "week"])
    assert shown.exit_code == 2 and "period must be one of month, quarter" in shown.output


def test_report_command_writes_report_and_list(scores, tmp_path):
    path, folder = scores
    risk = pd.read_parquet(folder / "risk_list.parquet")
    result = runner.invoke(
        app,
        [
            "report",
            "-c",
            str(path),
            "--scores",
            str(folder),
            "--out",
            str(tmp_path / "r.html"),
            "--list",
            str(tmp_path / "contact_list.csv"),
        ],
    )
    assert result.exit_code == 0, result.output
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    top = risk.loc[risk["target"]].sort_values("rank")["customer_id"].iloc[0]
    first = re.search(r'<td class="customer">([^<]*)</td>', html)
    assert first and first.group(1) == top
    assert "Test metrics against baselines" in html and "roc auc" in html
    assert html.count("<svg") == 3  # cohorts, importance, calibration
    assert "not available" not in html
    listed = pd.read_csv(tmp_path / "contact_list.csv", encoding="utf-8-sig")
    assert len(listed) == len(risk) and listed.loc[0, "Customer"] == risk["customer_id"].iloc[0]


def test_report_without_scores_is_a_clear_error(trained_shop, tmp_path):
    _, path, _, _ = trained_shop
    result = runner.invoke(
        app,
        ["report", "-c", str(path), "--scores", str(tmp_path), "--out", str(tmp_path / "r.html")],
    )
    assert result.exit_code == 2 and "no risk_list.parquet" in result.output
    assert not (tmp_path / "r.html").exists()
