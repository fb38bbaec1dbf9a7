"""The model path that runs no stored code, file hashes from training, corrupt models and
stores, and two trainings on one store at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from churnlens import pipeline
from churnlens.cli import app
from churnlens.data.io import write_parquet
from churnlens.data.simulate import simulate
from conftest import make_config

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A shop of 1,500 customers with its own store: version 1 is champion and exported."""
    root = tmp_path_factory.mktemp("trust")
    shop = simulate(1500, seed=5)
    for name, frame in shop.items():
        write_parquet(frame, root / "data" / f"{name}.parquet")
    path = make_config(root)
    result, registered = pipeline.train(path)
    pipeline.promote(path)
    exported = pipeline.export(path, root / "exported")
    return root, path, f"{result.split.test:%Y-%m-%d}", exported


def score_args(path, as_of, out, model=None):
    return ["score", "-c", path, "--as-of", as_of, "--out", out] + (
        ["--model", model] if model else []
    )


def test_scoring_from_the_registry_runs_no_code_from_the_artifact_store(store, tmp_path):
    root, path, as_of, _ = store
    marker = tmp_path / "stored code ran"
    planted = 0
    for script in (root / "mlartifacts").rglob("*.py"):
        with script.open("a") as handle:
            handle.write(f"\nimport pathlib; pathlib.Path({str(marker)!r}).write_text('ran')\n")
        planted += 1
    assert planted >= 1  # the pyfunc's models-from-code script and its code copy
    result = invoke(*score_args(path, as_of, tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert not marker.exists()


def test_a_tampered_booster_is_refused_from_a_folder_and_from_the_registry(store, tmp_path):
    root, path, as_of, exported = store
    booster = exported / "artifacts" / "model" / "booster.txt"
    original = booster.read_bytes()
    booster.write_bytes(original.replace(b"leaf_value=", b"leaf_value=9", 1))
    try:
        result = invoke(*score_args(path, as_of, tmp_path / "a", exported))
        assert result.exit_code == 2, result.output
        assert "booster.txt does not match the sha256 recorded at training" in result.output
        assert not (tmp_path / "a").exists()
    finally:
        booster.write_bytes(original)
    stored = next((root / "mlartifacts").rglob("artifacts/model/booster.txt"))
    kept = stored.read_bytes()
    stored.write_bytes(kept + b"\n")
    try:
        result = invoke(*score_args(path, as_of, tmp_path / "b"))
        assert result.exit_code == 2 and "does not match the sha256" in result.output
    finally:
        stored.write_bytes(kept)


@pytest.mark.parametrize(
    "file, content, message",
    [
        ("champion.json", "{not json", "not a churnlens export"),
        ("champion.json", '{"name": "s", "version": 1, "run_id": "r", "sha256": {}}', "no lineage"),
        ("champion.json", '{"sha256": {"booster.txt": "0"}}', "not a churnlens export"),
        ("artifacts/model/model.json", "[1, 2", "does not match the sha256"),
        ("artifacts/model/booster.txt", "", "does not match the sha256"),
    ],
)
def test_a_corrupt_exported_model_is_exit_2(store, tmp_path, file, content, message):
    root, path, as_of, exported = store
    copy = tmp_path / "model"
    subprocess.run(["cp", "-r", str(exported), str(copy)], check=True)
    (copy / file).write_text(content)
    result = invoke(*score_args(path, as_of, tmp_path / "out", copy))
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_a_store_that_is_not_a_database_is_exit_2(store, tmp_path):
    _, path, _, _ = store
    config = yaml.safe_load(Path(path).read_text())
    (tmp_path / "store.db").write_text("this is not a database\n" * 100)
    config["tracking"] = {"uri": f"sqlite:///{tmp_path / 'store.db'}"}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    result = invoke("promote", "-c", tmp_path / "run.yaml")
    assert result.exit_code == 2, result.output
    assert "cannot be opened" in result.output and "Traceback" not in result.output


def test_two_trainings_on_a_new_store_both_register(store, tmp_path):
    root, path, _, _ = store
    configs = []
    for seed in (1, 2):
        config = yaml.safe_load(Path(path).read_text())
        config["tracking"] = {"uri": f"sqlite:///{tmp_path / 'new.db'}"}
        config["model"]["seed"] = seed
        config["data"]["dir"] = str(root / "data")
        configs.append(tmp_path / f"run{seed}.yaml")
        configs[-1].write_text(yaml.safe_dump(config))
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "churnlens", "train", "-c", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
        )
        for config in configs
    ]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    registered = sorted(
        line for out in outputs for line in out.splitlines() if "registered" in line
    )
    assert registered == [
        "registered shop version 1 as challenger",
        "registered shop version 2 as challenger",
    ]
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'new.db'}"
    versions = MlflowClient(uri, registry_uri=uri).search_model_versions("name='shop'")
    assert len(versions) == 2
    assert all(json.loads(v.tags["model_sha256"]) for v in versions)


def test_the_store_comes_from_the_environment_when_needed_and_stays_out_of_it(
    store, tmp_path, monkeypatch
):
    """MLflow writes MLFLOW_TRACKING_URI when told a store: a churnlens process started after
    a run must still find the user's environment, and a later change of it must count."""
    from churnlens import tracking
    from churnlens.config import load_config

    _, path, _, _ = store
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    assert "already the champion" in pipeline.promote(path)
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert "MLFLOW_REGISTRY_URI" not in os.environ
    other = f"sqlite:///{tmp_path / 'other.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", other)
    assert tracking.tracking_uri(load_config(path)) == other
