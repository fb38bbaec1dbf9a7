"""Shared fixtures: a tiny literal shop written as CSV files plus a config pointing at it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from churnlens import pipeline
from churnlens.config import load_config
from churnlens.data.io import write_parquet
from churnlens.data.simulate import simulate

TINY = {
    "customers": pd.DataFrame(
        {
            "customer_id": ["c1", "c2", "c3"],
            "signup_at": ["2024-01-01", "2024-01-05", "2024-02-01"],
            "region": ["north", "south", "north"],
        }
    ),
    "purchases": pd.DataFrame(
        {
            "order_id": ["o1", "o2", "o3", "o4"],
            "customer_id": ["c1", "c1", "c2", "c3"],
            "ordered_at": ["2024-01-10", "2024-02-10 12:30:00", "2024-01-20", "2024-02-15"],
            "amount": ["20.0", "35.5", "10", "0"],
            "status": ["completed", "completed", "Refunded", "completed"],
        }
    ),
    "tickets": pd.DataFrame(
        {
            "ticket_id": ["t1", "t2"],
            "customer_id": ["c1", "c2"],
            "opened_at": ["2024-01-11 09:00:00", "2024-01-21 10:00:00"],
            "first_response_at": ["2024-01-11 15:00:00", ""],
            "resolved_at": ["2024-01-12 09:00:00", ""],
            "reopened": ["0", "1"],
        }
    ),
    "surveys": pd.DataFrame(
        {
            "response_id": ["s1", "s2", "s3"],
            "customer_id": ["c1", "c2", "c3"],
            "answered_at": ["2024-01-15", "2024-01-25", "2024-02-20"],
            "kind": ["nps", "csat", "ces"],
            "score": ["9", "2", "6"],
        }
    ),
    "events": pd.DataFrame(
        {
            "customer_id": ["c1", "c2"],
            "at": ["2024-01-12", "2024-01-22"],
            "kind": ["login", "cart_abandoned"],
        }
    ),
}


class Shop:
    """A folder with the tiny shop as CSV files and a `config.yaml` pointing at them."""

    def __init__(self, root: Path):
        self.root = root
        self.tables = {name: frame.copy() for name, frame in TINY.items()}
        self.config: dict = {
            "data": {name: {"path": f"{name}.csv"} for name in self.tables},
            "cutoffs": {"dates": ["2024-02-01"]},
        }

    def write(self) -> Path:
        for name, frame in self.tables.items():
            frame.to_csv(self.root / f"{name}.csv", index=False)
        path = self.root / "config.yaml"
        path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        return path

    def files(self) -> set[str]:
        return {p.name for p in self.root.rglob("*")}


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    return Shop(tmp_path)


SHOP_TABLES = ("customers", "purchases", "tickets", "surveys", "events")
# the simulated shop's plans and regions are churn drivers (a price rise, a competitor)
SHOP_FEATURES = {
    "attribute_roles": {"plan": "driver", "region": "driver"},
    "attribute_families": {"plan": "pricing", "region": "market"},
}


def make_config(root: Path, **model) -> Path:
    """A config for the simulated shop under root/data with its own SQLite MLflow store."""
    config = {
        "data": {"dir": "data", **{t: {"path": f"{t}.parquet"} for t in SHOP_TABLES}},
        "cutoffs": {"start": "2024-07-01", "step_days": 30},
        "features": SHOP_FEATURES,
        "model": {"name": "shop", **model},
        "tracking": {"uri": f"sqlite:///{root / 'mlflow.db'}"},
    }
    path = root / f"config{len(model)}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="session")
def trained_shop(tmp_path_factory):
    """A simulated shop of 4,000 customers with one trained, registered model (version 1).

    Returns (root, config path, TrainingResult, RegisteredRun).
    """
    root = tmp_path_factory.mktemp("trained")
    for name, frame in simulate(4000, seed=7).items():
        write_parquet(frame, root / "data" / f"{name}.parquet")
    path = make_config(root)
    result, registered = pipeline.train(path)
    return root, path, result, registered


@pytest.fixture(scope="session")
def exported_model(trained_shop, tmp_path_factory) -> Path:
    """The trained shop's model exported through a copy of its store (the shared store keeps
    no champion, as the promotion tests expect)."""
    root, path, _, _ = trained_shop
    folder = tmp_path_factory.mktemp("export")
    shutil.copy(root / "mlflow.db", folder / "mlflow.db")
    config = load_config(path)
    tracking = config.tracking.model_copy(update={"uri": f"sqlite:///{folder}/mlflow.db"})
    config = config.model_copy(update={"tracking": tracking})
    pipeline.promote(config, force=True)
    return pipeline.export(config, folder / "model")
