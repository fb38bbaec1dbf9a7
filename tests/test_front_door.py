"""The front door: the DataFrame API, the model's contract, one money model, MLflow artifacts,
and the command line's handling of options, stores and errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

import churnlens
from churnlens import pipeline
from churnlens.cli import app
from churnlens.config import load_config
from churnlens.data.contract import load_tables
from churnlens.errors import ChurnlensError
from churnlens.modeling.plots import shap_summary_plot
from churnlens.scoring.score import score

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_the_api_is_listed_and_importing_it_loads_nothing_heavy():
    code = (
        "import sys, churnlens; print(churnlens.__all__); "
        "print(sorted(m for m in ('lightgbm', 'mlflow', 'shap', 'duckdb') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    listed, loaded = done.stdout.splitlines()
    for name in ("validate", "training_set", "fit", "explain", "score", "load_cdnow"):
        assert f"'{name}'" in listed
    assert loaded == "[]"


def test_version_is_printed_and_matches_the_package_metadata():
    from importlib.metadata import version

    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"churnlens {churnlens.__version__}"
    assert version("churnlens") == churnlens.__version__


def test_dataframes_validate_with_the_same_messages_as_files(shop):
    shop.tables["purchases"].loc[1, "amount"] = "-5"
    with pytest.raises(ChurnlensError) as from_files:
        load_tables(load_config(shop.write()).data)
    with pytest.raises(ChurnlensError) as from_frames:
        churnlens.validate(shop.tables)
    assert str(from_frames.value) == str(from_files.value)
    assert "purchases.amount: must be >= 0" in str(from_frames.value)
    with pytest.raises(ChurnlensError, match="unknown table"):
        churnlens.validate({**shop.tables, "orders": shop.tables["purchases"]})


# --- the trained shop: contract, money, MLflow ----------------------------------------------


@pytest.fixture(scope="module")
def trained(trained_shop):
    root, path, result, registered = trained_shop
    config = load_config(path)
    return config, load_tables(config.data), result, registered


def test_model_carries_its_contract_and_scoring_refuses_another_horizon(trained, tmp_path):
    config, tables, result, _ = trained
    contract = result.model.contract_
    assert contract["horizon_days"] == 90 and contract["churn_type"] == "non_contractual"
    assert contract["feature_windows_days"] == config.features.windows_days
    assert contract["test_cutoff"] == f"{result.split.test:%Y-%m-%d}"
    saved = churnlens.ChurnModel.load(result.model.save(tmp_path / "m"))
    assert saved.contract_ == contract
    other = config.model_copy(
        update={"churn": config.churn.model_copy(update={"horizon_days": 60})}
    )
    with pytest.raises(ChurnlensError, match=r"horizon_days = 90.*churn.horizon_days is 60"):
        score(result.model, tables, result.split.test, other)
    wider = config.churn.model_copy(update={"active_window_days": 730})
    with pytest.raises(ChurnlensError, match=r"active_window_days = 365.*is 730"):
        score(result.model, tables, result.split.test, config.model_copy(update={"churn": wider}))


def test_an_argument_of_the_wrong_kind_is_refused_with_what_belongs_there(trained, shop):
    config, tables, result, _ = trained
    raw = shop.tables  # DataFrames as read, not validated
    with pytest.raises(ChurnlensError, match="training_set: tables are validated tables.*not dict"):
        churnlens.training_set(raw, config)
    with pytest.raises(ChurnlensError, match="score: tables are validated tables.*not dict"):
        score(result.model, raw, result.split.test, config)
    with pytest.raises(ChurnlensError, match="score: model is a ChurnModel.*not Tables"):
        score(tables, tables, result.split.test, config)
    with pytest.raises(ChurnlensError, match="fit: the training set is .*, not Tables"):
        churnlens.fit(tables, config)


def test_training_profit_and_scoring_gain_agree_for_the_same_customers(trained):
    config, tables, result, _ = trained
    test = result.split.part(result.scored, "test").set_index("customer_id")
    risk = score(result.model, tables, result.split.test, config, explain="all").risk_list
    risk = risk.set_index("customer_id").loc[test.index]
    for column in ("value", "contact_cost", "save_rate", "expected_net_gain"):
        np.testing.assert_allclose(risk[column], test[column], rtol=1e-9, err_msg=column)
    assert (risk["recommended_action"] == test["recommended_action"]).all()
    # and the profit metric is the realised gain of the customers it contacts: those not lapsed
    # with a positive gain on the model's own probability (it compares models, which have no
    # gone_probability of their own)
    assert (risk["status"] == test["status"]).all()
    own = test["lightgbm"] * test["value"] * test["save_rate"] - test["contact_cost"]
    chosen = test[(own > 0) & (test["status"] != "lapsed")]
    realised = chosen["churned"] * chosen["value"] * chosen["save_rate"] - chosen["contact_cost"]
    profit = result.test_metrics().loc["lightgbm", "profit_top_k"]
    assert profit == pytest.approx(realised.sum())


def test_registered_pyfunc_accepts_the_packages_own_feature_frame(trained, monkeypatch):
    config, _, result, registered = trained
    frame = result.split.part(result.scored, "test").head(40)
    assert (frame.dtypes == "int64").sum() > 10  # counts stay integers
    # MLflow also writes MLFLOW_TRACKING_URI, which later tests' churnlens would take for the
    # user's store: monkeypatch removes it again
    monkeypatch.setenv("MLFLOW_TRACKING_URI", config.tracking.uri)
    mlflow.set_tracking_uri(config.tracking.uri)
    pyfunc = mlflow.pyfunc.load_model(registered.model_uri)
    got = pyfunc.predict(frame[result.model.feature_names_])["churn_probability"]
    np.testing.assert_allclose(got, result.model.predict_proba(frame), atol=1e-12)


def test_shap_summary_is_its_own_figure_with_feature_names(trained, tmp_path, monkeypatch):
    config, _, result, registered = trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", config.tracking.uri)  # removed again after
    mlflow.set_tracking_uri(config.tracking.uri)
    lift = mlflow.artifacts.download_artifacts(
        run_id=registered.run_id, artifact_path="plots/lift.png", dst_path=str(tmp_path)
    )
    summary = mlflow.artifacts.download_artifacts(
        run_id=registered.run_id, artifact_path="plots/shap_summary.png", dst_path=str(tmp_path)
    )
    assert open(lift, "rb").read() != open(summary, "rb").read()
    test = result.split.part(result.scored, "test")
    figure = shap_summary_plot(result.model, test)
    names = {label.get_text() for axis in figure.axes for label in axis.get_yticklabels()}
    top = churnlens.modeling.train.mean_abs_shap(result.model, test.head(2000)).index[:3]
    assert set(top) <= names
    plt.close(figure)


# --- the command line -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "as_of, message",
    [
        ("yesterday", "not a date"),
        ("2025-13-45", "not a date"),
        ("01/02/2025", "write it as YYYY-MM-DD"),
    ],
)
def test_bad_as_of_dates_exit_2(trained_shop, exported_model, tmp_path, as_of, message):
    _, path, _, _ = trained_shop
    result = invoke(
        "score", "-c", path, "--as-of", as_of, "--model", exported_model, "--out", tmp_path
    )
    assert result.exit_code == 2, result.output
    assert message in result.output and as_of in result.output
    assert "Traceback" not in result.output and not any(tmp_path.iterdir())


@pytest.mark.parametrize("option", ["--budget", "--budget-money"])
def test_a_zero_budget_is_refused_not_taken_as_no_limit(
    trained_shop, exported_model, tmp_path, option
):
    _, path, result, _ = trained_shop
    as_of = f"{result.split.test:%Y-%m-%d}"
    out = tmp_path / "out"
    done = invoke(
        "score", "-c", path, "--as-of", as_of, "--model", exported_model, "--out", out, option, 0
    )
    assert done.exit_code == 2 and "must be > 0" in done.output
    assert not out.exists()


def test_scoring_an_exported_folder_touches_no_tracking_store(
    trained_shop, exported_model, tmp_path, monkeypatch
):
    root, path, result, _ = trained_shop
    config = yaml.safe_load(path.read_text())
    config.pop("tracking")
    config["data"]["dir"] = str(root / "data")
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    as_of = f"{result.split.test:%Y-%m-%d}"
    done = invoke(
        "score", "-c", "run.yaml", "--as-of", as_of, "--model", exported_model, "--out", "out"
    )
    assert done.exit_code == 0, done.output
    shown = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".out."))
    assert shown == ["out", "run.yaml"]  # no mlflow.db, no mlartifacts


def test_relative_store_trains_beside_the_config_and_a_rerun_registers_nothing(
    trained_shop, tmp_path, monkeypatch
):
    root, path, _, _ = trained_shop
    shutil.copytree(root / "data", tmp_path / "data")
    config = yaml.safe_load(path.read_text())
    config["tracking"] = {"uri": "sqlite:///store/runs.db"}
    config["model"]["threads"] = 1
    (tmp_path / "store").mkdir()
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.chdir(tmp_path / "data")  # not the config's folder
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    first = invoke("train", "-c", tmp_path / "run.yaml")
    assert first.exit_code == 0, first.output
    assert (tmp_path / "store" / "runs.db").is_file()
    assert "registered shop version 1 as challenger" in first.output
    for label in ("ROC-AUC", "PR-AUC", "capture@10%", "lightgbm", "rfm_logistic"):
        assert label in first.output  # never cut to the terminal's width
    for chatter in ("INFO", "Hint", "Successfully registered", "Created version"):
        assert chatter not in first.output
    again = invoke("train", "-c", tmp_path / "run.yaml")
    assert again.exit_code == 0, again.output
    assert "same data and settings as shop version 1" in again.output
    missing = yaml.safe_load((tmp_path / "run.yaml").read_text())
    missing["tracking"] = {"uri": "sqlite:///nowhere/runs.db"}
    (tmp_path / "missing.yaml").write_text(yaml.safe_dump(missing))
    refused = invoke("train", "-c", tmp_path / "missing.yaml")
    assert refused.exit_code == 2 and "does not exist" in refused.output
    assert not (tmp_path / "nowhere").exists()


def test_an_unexpected_error_exits_4_with_one_line_and_a_traceback_file(shop, monkeypatch):
    def broken(config, engine=None):
        raise KeyError("a bug")

    monkeypatch.setattr(pipeline, "validate", broken)
    result = invoke("validate", "-c", shop.write())
    assert result.exit_code == 4
    line = result.output.strip()
    assert line.startswith("internal error: KeyError") and "\n" not in line
    trace = line.rsplit("(traceback: ", 1)[1].rstrip(")")
    assert "raise KeyError" in open(trace).read()
    os.remove(trace)


def test_threads_default_to_the_machines_cores_and_follow_the_config():
    from churnlens.config import ModelConfig
    from churnlens.modeling.train import configured_model

    assert configured_model(ModelConfig()).threads is None  # LightGBM gets os.cpu_count()
    assert configured_model(ModelConfig(threads=3)).threads == 3
