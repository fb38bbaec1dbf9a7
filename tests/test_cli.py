"""The command line end to end on a small simulated shop: simulate, validate, features."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from churnlens.cli import app

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


def test_every_command_has_help():
    for command in ("simulate", "validate", "features"):
        result = invoke(command, "--help")
        assert result.exit_code == 0 and "Usage" in result.output
