"""A model trained on a shop whose every text looks like a spreadsheet formula."""

from __future__ import annotations

import json

import pytest
import yaml

from churnlens.config import load_config
from churnlens.data.contract import load_tables
from churnlens.data.io import write_parquet
from churnlens.data.simulate import simulate
from churnlens.features.engine import training_set
from churnlens.modeling.train import fit

PREFIXES = ("=", "+", "-", "@", "\t", "\r", "")


def _hostile_shop(root):
    """A simulated shop whose ids, attribute names and values and categories look like formulas."""
    tables = simulate(1500, seed=5)
    ids = tables["customers"]["customer_id"]
    hostile = {old: f"{PREFIXES[i % len(PREFIXES)]}{old}" for i, old in enumerate(ids)}
    for frame in tables.values():
        frame["customer_id"] = frame["customer_id"].map(hostile)
    customers = tables["customers"].rename(columns={"segment": "@segment", "region": "=region"})
    customers["=region"] = customers["=region"].map(
        {"north": '=HYPERLINK("http://x")', "south": "+south", "east": "-east", "west": "@west"}
    )
    tables["customers"] = customers
    tables["purchases"]["channel"] = "=" + tables["purchases"]["channel"]
    for name in ("customers", "purchases", "tickets", "surveys", "events"):
        write_parquet(tables[name], root / "data" / f"{name}.parquet")
    config = {
        "data": {
            "dir": "data",
            **{t: {"path": f"{t}.parquet"} for t in tables if t != "ground_truth"},
        },
        "cutoffs": {"start": "2024-07-01", "step_days": 30},
        "model": {"name": "hostile"},
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="session")
def hostile_model(tmp_path_factory):
    """(config path, exported model folder) for the hostile shop; no tracking store."""
    root = tmp_path_factory.mktemp("hostile")
    path = _hostile_shop(root)
    config = load_config(path)
    result = fit(training_set(load_tables(config.data), config), config)
    folder = root / "model"
    saved = result.model.save(folder / "artifacts" / "model")
    hashes = result.model.file_hashes(saved)
    lineage = {"name": "hostile", "version": 1, "run_id": "r", "sha256": hashes}
    (folder / "champion.json").write_text(json.dumps(lineage))
    return path, folder
