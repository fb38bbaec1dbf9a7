"""Training on a simulated shop: time split, quality against baselines, MLflow run and registry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from churnlens import pipeline, tracking
from churnlens.cli import app
from churnlens.config import load_config
from churnlens.errors import ChurnlensError
from churnlens.modeling.model import ChurnModel
from churnlens.modeling.split import time_split
from churnlens.modeling.train import mean_abs_shap
from conftest import make_config

runner = CliRunner()


# --- split ---------------------------------------------------------------------------------


def test_split_refuses_too_few_cutoffs_and_positives():
    with pytest.raises(ChurnlensError, match="needs at least 2"):
        time_split(pd.to_datetime(["2024-01-01"]), 30)
    cutoffs = pd.Series(pd.to_datetime(["2024-01-01", "2024-04-01", "2024-07-01"]).repeat(20))
    with pytest.raises(ChurnlensError, match="the train part has 0 churned"):
        time_split(cutoffs, 30, labels=pd.Series([False] * 60))


# --- a trained shop --------------------------------------------------------------------------


def store(root: Path) -> MlflowClient:
    """A client on the shop's store for runs and registry (the registry URI is process-global)."""
    uri = f"sqlite:///{root / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@pytest.fixture(scope="module")
def shop(trained_shop):
    return trained_shop


def test_lightgbm_beats_every_baseline_out_of_time(shop):
    test = shop[2].test_metrics()
    for baseline in ("recency_rule", "rfm_logistic", "bgnbd"):
        assert test.loc["lightgbm", "roc_auc"] > test.loc[baseline, "roc_auc"], baseline
        assert test.loc["lightgbm", "pr_auc"] > test.loc[baseline, "pr_auc"], baseline


def test_calibrated_model_has_low_ece(shop):
    assert shop[2].test_metrics().loc["lightgbm", "ece"] < 0.03


def test_planted_drivers_rank_among_top_features(shop):
    result = shop[2]
    # of ~85 features; measured: the best support, disengagement and detractor features rank
    # 5th, 2nd and 13th
    top = list(mean_abs_shap(result.model, result.split.part(result.scored, "test")).index[:15])
    support = {
        "first_response_hours_mean",
        "open_tickets",
        "reopen_rate",
        "tickets_30d",
        "tickets_90d",
        "days_since_last_ticket",
        "resolution_hours_mean",
        "awaiting_first_response",
        "oldest_open_ticket_days",
        "first_reply_wait_hours",
        "slow_replies_30d",
        "slow_replies_90d",
        "days_since_slow_reply",
        "reopened_tickets_90d",
    }
    detractor = {"last_nps", "nps_category", "csat_mean", "last_ces", "high_effort", "nps_change"}
    detractor |= {"days_since_detractor", "last_csat", "csat_change", "high_effort_90d"}
    disengaged = {
        "days_since_cart_abandoned",
        "cart_abandoned_30d",
        "cart_abandoned_90d",
        "days_since_newsletter_unsubscribe",
        "newsletter_unsubscribe_30d",
        "newsletter_unsubscribe_90d",
        "days_since_login",
        "login_30d",
    }
    for family in (support, detractor, disengaged):
        assert family & set(top), (family, top)


def test_run_is_tracked_with_params_metrics_and_artifacts(shop):
    root, _, result, registered = shop
    client = store(root)
    run = client.get_run(registered.run_id)
    assert run.data.params["test_cutoff"] == f"{result.split.test:%Y-%m-%d}"
    assert run.data.params["calibration"] in ("sigmoid", "isotonic")
    for key in (
        "test_roc_auc",
        "test_pr_auc",
        "test_ece",
        "test_brier",
        "test_log_loss",
        "test_recency_rule_roc_auc",
        "test_rfm_logistic_pr_auc",
        "test_bgnbd_roc_auc",
        "test_profit_top_k",
        "test_lift_top_decile",
    ):
        assert key in run.data.metrics, key
    assert run.data.metrics["test_roc_auc"] == pytest.approx(
        result.test_metrics().loc["lightgbm", "roc_auc"]
    )
    artifacts = {a.path for a in client.list_artifacts(registered.run_id)}
    artifacts |= {
        a.path
        for d in ("plots", "evaluation", "config")
        for a in client.list_artifacts(registered.run_id, d)
    }
    for path in (
        "plots/calibration.png",
        "plots/lift.png",
        "plots/shap_summary.png",
        "evaluation/test_set.parquet",
        "evaluation/metrics_by_cutoff.csv",
        "model_spec.json",
        "config/config0.yaml",
    ):
        assert path in artifacts, path
    assert run.inputs.dataset_inputs[0].dataset.name == "training_set"
    version = client.get_model_version_by_alias("shop", "challenger")
    assert str(version.version) == registered.version and version.run_id == registered.run_id


def test_registered_model_gives_the_in_process_probabilities(shop):
    _, path, result, _ = shop
    test = result.split.part(result.scored, "test")
    loaded, _ = tracking.load_registered(load_config(path), "challenger")
    np.testing.assert_allclose(
        loaded.predict_proba(test), result.model.predict_proba(test), rtol=0, atol=1e-12
    )


def test_mlflow_models_predict_works_on_the_registered_model(shop, tmp_path):
    root, _, result, registered = shop
    test = result.split.part(result.scored, "test").head(50)
    features = test[result.model.feature_names_]
    features = features.astype({c: "str" for c in features.select_dtypes("category")})
    split = json.loads(features.to_json(orient="split", index=False))
    (tmp_path / "input.json").write_text(json.dumps({"dataframe_split": split}))
    uri = f"sqlite:///{root / 'mlflow.db'}"
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "models",
            "predict",
            "-m",
            "models:/shop@challenger",
            "-i",
            str(tmp_path / "input.json"),
            "-t",
            "json",
            "-o",
            str(tmp_path / "out.json"),
            "--env-manager",
            "local",
        ],
        capture_output=True,
        text=True,
        env={"MLFLOW_TRACKING_URI": uri, "PATH": "/usr/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    predictions = json.loads((tmp_path / "out.json").read_text())["predictions"]
    got = [row["churn_probability"] for row in predictions]
    np.testing.assert_allclose(got, result.model.predict_proba(test), atol=1e-9)


def test_promote_moves_champion_only_for_a_better_challenger(shop):
    root, path, _, first = shop
    result = runner.invoke(app, ["promote", "-c", str(path)])
    assert result.exit_code == 0 and "no champion yet" in result.output
    worse_config = make_config(root, num_boost_round=2, params={"num_leaves": 2})
    _, worse = pipeline.train(worse_config)
    refused = runner.invoke(app, ["promote", "-c", str(worse_config)])
    assert refused.exit_code == 1, refused.output
    assert "not promoted" in refused.output and "ROC-AUC" in refused.output
    client = store(root)
    assert str(client.get_model_version_by_alias("shop", "champion").version) == first.version
    forced = runner.invoke(app, ["promote", "-c", str(worse_config), "--force"])
    assert forced.exit_code == 0 and "forced" in forced.output
    assert str(client.get_model_version_by_alias("shop", "champion").version) == worse.version


def test_missing_champion_is_a_clear_error(tmp_path, shop):
    root, _, _, _ = shop
    config = yaml.safe_load((root / "config0.yaml").read_text())
    config["data"]["dir"] = str(root / "data")
    config["tracking"]["uri"] = f"sqlite:///{tmp_path / 'empty.db'}"
    (tmp_path / "empty.db").touch()  # a store without models (a missing one: test_cli.py)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    result = runner.invoke(
        app, ["export", "-c", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "m")]
    )
    assert result.exit_code == 2
    assert "no 'champion' version of model 'shop'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "m").exists()


def test_export_writes_a_loadable_folder(shop, tmp_path):
    _, path, result, _ = shop
    runner.invoke(app, ["promote", "-c", str(path), "--force"])
    out = runner.invoke(app, ["export", "-c", str(path), "--out", str(tmp_path / "m")])
    assert out.exit_code == 0, out.output
    model = ChurnModel.load(tmp_path / "m" / "artifacts" / "model")
    assert json.loads((tmp_path / "m" / "champion.json").read_text())["name"] == "shop"
    test = result.split.part(result.scored, "test")
    assert model.predict_proba(test).shape == (len(test),)


# --- the fitted model's feature spec -----------------------------------------------------------


def test_category_levels_are_frozen(shop):
    result = shop[2]
    model = result.model
    test = result.split.part(result.scored, "test")
    category = next(n for n, k in model.dtypes_.items() if k == "category")
    rows = test[test[category].notna()]
    one = rows.head(1)
    same_level = rows[rows[category] == one[category].iloc[0]].head(20).copy()
    same_level[category] = same_level[category].astype("str")  # a batch with a single level
    alone = model.predict_proba(one)[0]
    assert model.predict_proba(rows)[0] == pytest.approx(alone, abs=1e-12)
    assert model.predict_proba(same_level)[0] == pytest.approx(alone, abs=1e-12)
    unseen = one.assign(**{category: "a-level-never-seen"})
    missing = one.assign(**{category: None})
    assert model.predict_proba(unseen)[0] == pytest.approx(model.predict_proba(missing)[0])


def test_levels_are_read_as_text_whatever_the_column_dtype():
    model = ChurnModel()
    model.feature_names_, model.dtypes_ = ["plan"], {"plan": "category"}
    model.categories_ = {"plan": ["1", "2"]}
    for values in (
        pd.Series(["1", "2", None, "3"], dtype=object),
        pd.Series(["1", "2", None, "3"], dtype="str"),
        pd.Series(pd.Categorical([1, 2, None, 3])),  # number-coded categories
        pd.Series([1, 2, pd.NA, 3], dtype="Int64"),
    ):
        prepared = model.prepare(pd.DataFrame({"plan": values}))["plan"]
        assert list(prepared.cat.categories) == ["1", "2"]
        assert prepared.cat.codes.tolist() == [0, 1, -1, -1], values.dtype  # 3 is unseen


def test_missing_feature_and_wrong_dtype_are_clear_errors(shop):
    model, test = shop[2].model, shop[2].scored
    with pytest.raises(ChurnlensError, match="missing: recency_days"):
        model.predict_proba(test.drop(columns="recency_days"))
    with pytest.raises(ChurnlensError, match="column orders_total must be numeric"):
        model.predict_proba(test.assign(orders_total="three"))
    with pytest.raises(ChurnlensError, match="not fitted"):
        ChurnModel().predict_proba(test)


def test_run_logs_intervals_best_baseline_and_metrics_per_cutoff(shop):
    root, _, result, registered = shop
    client = store(root)
    run = client.get_run(registered.run_id)
    reference = run.data.tags["best_baseline"]
    assert reference in ("recency_rule", "rfm_logistic", "bgnbd")
    metrics = run.data.metrics
    assert metrics["test_roc_auc_low"] <= metrics["test_roc_auc"] <= metrics["test_roc_auc_high"]
    assert metrics["test_roc_auc_diff"] == pytest.approx(
        metrics["test_roc_auc"] - metrics[f"test_{reference}_roc_auc"]
    )
    assert metrics["test_roc_auc_diff_low"] <= metrics["test_roc_auc_diff"]
    assert run.data.params["validation"] == result.split.validation
    history = client.get_metric_history(registered.run_id, "cutoff_roc_auc")
    scored = sorted(result.scored["cutoff"].unique())
    assert len(history) == len(scored)
    assert sorted(m.step for m in history)[-1] > sorted(m.step for m in history)[0] >= 0
