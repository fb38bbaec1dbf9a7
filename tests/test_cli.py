"""The command line end to end on a small simulated shop: simulate, validate, features; and
output paths and tracking stores it cannot write: exit 2 before any work, nothing written."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from churnlens import pipeline
from churnlens.cli import app
from churnlens.config import load_config
from churnlens.errors import ChurnlensError
from test_output_set import read_only

runner = CliRunner()
TABLES = ("customers", "purchases", "tickets", "surveys", "events")


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shop")
    result = invoke("simulate", "--customers", 400, "--seed", 3, "--out", root / "data")
    assert result.exit_code == 0, result.output
    config = {
        "data": {"dir": "data", **{t: {"path": f"{t}.parquet"} for t in TABLES}},
        "cutoffs": {"start": "2024-09-01", "step_days": 60},
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    return root


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def test_simulate_is_byte_identical_for_a_seed(simulated, tmp_path):
    result = invoke("simulate", "--customers", 400, "--seed", 3, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert digests(tmp_path) == digests(simulated / "data")
    assert set(digests(tmp_path)) == {f"{t}.parquet" for t in (*TABLES, "ground_truth")}


def test_simulated_shop_passes_validation(simulated):
    result = invoke("validate", "-c", simulated / "config.yaml")
    assert result.exit_code == 0, result.output
    assert "valid" in result.output


def test_features_writes_every_cutoff(simulated, tmp_path):
    out = tmp_path / "ts.parquet"
    result = invoke("features", "-c", simulated / "config.yaml", "--out", out)
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    cutoffs = sorted(frame["cutoff"].unique())
    # every 60 days back from the test cutoff: the last purchase day minus the 90-day horizon,
    # whatever later rows other tables hold
    purchases = pd.read_parquet(simulated / "data" / "purchases.parquet")
    last_day = purchases.loc[purchases["status"] == "completed", "ordered_at"].max().normalize()
    assert cutoffs[-1] == last_day - pd.Timedelta(days=90)
    assert cutoffs == list(pd.date_range(end=cutoffs[-1], periods=len(cutoffs), freq="60D"))
    assert pd.Timestamp("2024-09-01") <= cutoffs[0] < pd.Timestamp("2024-10-31")
    assert frame.columns[:2].tolist() == ["customer_id", "cutoff"]
    assert frame.columns[-1] == "churned"
    assert not frame.duplicated(["customer_id", "cutoff"]).any()
    assert [p.name for p in tmp_path.iterdir()] == ["ts.parquet"]  # no temp file left


def test_features_on_bad_input_exits_2_and_writes_nothing(simulated, tmp_path):
    shop = tmp_path / "shop"
    shutil.copytree(simulated, shop)
    purchases = pd.read_parquet(shop / "data/purchases.parquet")
    purchases.loc[7, "amount"] = -1.0
    purchases.to_parquet(shop / "data/purchases.parquet")
    out = tmp_path / "out" / "ts.parquet"
    result = invoke("features", "-c", shop / "config.yaml", "--out", out)
    assert result.exit_code == 2
    assert "purchases.amount: must be >= 0" in result.output
    assert "row 8" in result.output
    assert not out.parent.exists() or not any(out.parent.iterdir())


COMMANDS = ("simulate", "validate", "features", "train", "promote", "export", "score", "verify")


def test_every_command_has_help():
    for command in (*COMMANDS, "kpis", "report"):
        result = invoke(command, "--help")
        assert result.exit_code == 0 and "Usage" in result.output


def test_output_paths_that_cannot_be_written_are_exit_2_before_any_work(simulated, tmp_path):
    """A folder where a file goes, a file where a folder goes or where a parent folder should
    be: one message naming the option, no traceback, nothing written."""
    (tmp_path / "file").write_text("mine")
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "pipe")  # as /dev/stdout or /dev/null: writing would replace it
    config = simulated / "config.yaml"
    cases = [
        (("kpis", "-c", config, "--out", tmp_path / "pipe"), "device, pipe or socket"),
        (("features", "-c", config, "--out", tmp_path / "pipe"), "device, pipe or socket"),
        (("simulate", "--customers", 10, "--out", tmp_path / "file"), "is a file"),
        (("simulate", "--customers", 10, "--out", tmp_path / "file" / "x"), "is a file, not"),
        (("features", "-c", config, "--out", tmp_path / "folder"), "is a folder"),
        (("features", "-c", config, "--out", tmp_path / "file" / "ts.parquet"), "is a file, not"),
        (("kpis", "-c", config, "--out", tmp_path / "folder"), "is a folder"),
        (("export", "-c", config, "--out", tmp_path / "file"), "is a file"),
    ]
    for args, message in cases:
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert f"error: --out {args[-1]}" in result.output and message in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder", "pipe"]
    assert (tmp_path / "file").read_text() == "mine" and not any((tmp_path / "folder").iterdir())
    assert stat.S_ISFIFO((tmp_path / "pipe").stat().st_mode)


def test_kpis_without_surveys_print_a_dash_not_nan(simulated, tmp_path):
    config = yaml.safe_load((simulated / "config.yaml").read_text())
    config["data"] = {"dir": str(simulated / "data"), "purchases": {"path": "purchases.parquet"}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    result = invoke("kpis", "-c", tmp_path / "c.yaml")
    assert result.exit_code == 0, result.output
    assert "nan" not in result.output and " - " in result.output


@pytest.fixture
def champion_store(trained_shop, exported_model, tmp_path):
    """A copy of the store that holds the trained shop's champion, and a config using it."""
    store = tmp_path / "store"
    store.mkdir()
    shutil.copy(exported_model.parent / "mlflow.db", store / "mlflow.db")
    config = load_config(trained_shop[1])
    tracking = config.tracking.model_copy(update={"uri": f"sqlite:///{store}/mlflow.db"})
    return store, config.model_copy(update={"tracking": tracking})


def test_export_never_deletes_a_folder_that_is_not_an_export(champion_store, tmp_path):
    _, config = champion_store
    mine = tmp_path / "documents"
    mine.mkdir()
    (mine / "thesis.txt").write_text("mine")
    with pytest.raises(ChurnlensError, match="holds other files, not an exported model"):
        pipeline.export(config, mine)
    assert [p.name for p in mine.iterdir()] == ["thesis.txt"]
    exported = pipeline.export(config, tmp_path / "model")
    assert pipeline.export(config, exported) == exported  # an earlier export is replaced
    assert (exported / "champion.json").is_file()


def test_a_read_only_store_serves_scoring_and_refuses_writers_before_work(champion_store):
    store, config = champion_store
    with read_only(store):
        model, lineage = pipeline.load_model(config)  # the champion, as `score` loads it
        assert lineage["model_name"] == "shop" and model.feature_names_
        for step in (pipeline.train, pipeline.promote):
            with pytest.raises(ChurnlensError, match="read-only here, and this step writes"):
                step(config)
    assert sorted(p.name for p in store.iterdir()) == ["mlflow.db"]


def test_reading_steps_on_a_missing_store_say_how_to_get_one_and_create_nothing(
    simulated, tmp_path, monkeypatch
):
    """`score` with the default champion, `promote` and `export` on the default store
    (./mlflow.db) before any training: exit 2 saying what to do; no empty store appears."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = simulated / "config.yaml"
    for step in (["score", "--as-of", "2025-06-30", "--out", "out"], ["promote"], ["export"]):
        result = invoke(step[0], "-c", config, *step[1:])
        assert result.exit_code == 2, result.output
        assert f"no tracking store at sqlite:///{tmp_path}/mlflow.db" in result.output
        assert "`churnlens train`" in result.output and "--model" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("uri", ["models:/shop", "models:/", "models:/shop@", "models:/shop/"])
def test_a_model_uri_without_alias_or_version_says_how_to_write_one(champion_store, uri):
    with pytest.raises(ChurnlensError, match="write models:/NAME@ALIAS or models:/NAME/VERSION"):
        pipeline.load_model(champion_store[1], uri)


@pytest.mark.parametrize(
    ("dates", "message"),
    [
        (("--start", "2025-02-30"), "--start '2025-02-30': not a date"),
        (("--start", "2025-01-01", "--end", "2024-01-01"), "must be longer than 60 days"),
    ],
)
def test_simulate_with_bad_dates_is_exit_2_and_writes_nothing(tmp_path, dates, message):
    result = invoke("simulate", "--customers", 10, "--out", tmp_path / "shop", *dates)
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "shop").exists()
