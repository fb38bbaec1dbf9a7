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


def test_score_with_report_writes_the_same_report_as_the_report_command(trained_shop, tmp_path):
    _, path, _, registered = trained_shop
    as_of = data_end(load_tables(load_config(path).data)).normalize() - pd.Timedelta(days=60)
    model = f"models:/shop/{registered.version}"
    scored = runner.invoke(
        app,
        ["score", "-c", str(path), "--as-of", f"{as_of:%Y-%m-%d}", "--model", model]
        + ["--budget", "50", "--out", str(tmp_path / "s"), "--report", str(tmp_path / "a.html")],
    )
    assert scored.exit_code == 0, scored.output
    assert f"report: {tmp_path / 'a.html'}" in scored.output.replace("\n", "")
    again = runner.invoke(
        app,
        ["report", "-c", str(path), "--scores", str(tmp_path / "s")]
        + ["--out", str(tmp_path / "b.html")],
    )
    assert again.exit_code == 0, again.output
    assert (tmp_path / "a.html").read_bytes() == (tmp_path / "b.html").read_bytes()


def test_training_logs_its_model_card_and_a_safe_metrics_csv_to_mlflow(trained_shop, tmp_path):
    from mlflow.tracking import MlflowClient

    root, _, result, registered = trained_shop
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    card = client.download_artifacts(registered.run_id, "model_card.html", str(tmp_path))
    html = open(card, encoding="utf-8").read()
    assert f"shop v{registered.version}" in html and registered.run_id in html
    assert f"{result.split.test:%Y-%m-%d}" in html  # the test cutoff
    assert "Test metrics against baselines" in html and "rfm_logistic" in html
    assert html.count("<svg") == 2  # calibration and importance, inline
    assert "Drift at scoring" not in html and 'src="http' not in html
    logged = client.download_artifacts(registered.run_id, "evaluation", str(tmp_path))
    with open(f"{logged}/metrics_by_cutoff.csv", "rb") as handle:
        assert b"\r\n" in handle.read()  # written by data.io.write_csv, like every CSV


def test_report_that_cannot_write_its_list_writes_nothing(scores, tmp_path):
    path, folder = scores
    (tmp_path / "file").write_text("mine")
    for out, listed, message in (
        (tmp_path / "r.html", tmp_path / "file" / "list.csv", "--list"),
        (tmp_path, tmp_path / "list.csv", "--out"),
    ):
        args = ["report", "-c", str(path), "--scores", str(folder), "--out", str(out)]
        result = runner.invoke(app, [*args, "--list", str(listed)])
        assert result.exit_code == 2 and f"error: {message}" in result.output, result.output
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_score_with_a_report_it_cannot_write_stops_before_scoring(trained_shop, tmp_path):
    _, path, _, registered = trained_shop
    (tmp_path / "file").write_text("mine")
    result = runner.invoke(
        app,
        ["score", "-c", str(path), "--as-of", "2025-06-30"]
        + ["--model", f"models:/shop/{registered.version}"]
        + ["--out", str(tmp_path / "s"), "--report", str(tmp_path / "file" / "r.html")],
    )
    assert result.exit_code == 2 and "error: --report" in result.output, result.output
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_key_figures_are_those_of_the_score_date_not_later(scores, tmp_path):
    path, folder = scores
    as_of = pd.read_parquet(folder / "risk_list.parquet")["as_of"].iloc[0]
    pipeline.report(path, folder, tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    period = pd.Period(re.search(r"key figures for (\d{4}-\d{2})", html).group(1), "M")
    assert (period + 1).start_time <= as_of < (period + 2).start_time  # the last whole month


def test_report_without_a_tracking_store_creates_none(scores, tmp_path):
    path, folder = scores
    config = load_config(path)
    tracking = config.tracking.model_copy(update={"uri": f"sqlite:///{tmp_path / 'none.db'}"})
    config = config.model_copy(update={"tracking": tracking})
    pipeline.report(config, folder, tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "not available (no tracking store at sqlite:///" in html
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]  # no none.db, no lock file
