"""The steps as plain Python functions, one per CLI command, taking a config path or object.

The CLI only parses options and calls these; notebooks call them directly.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from churnlens.config import Config, load_config
from churnlens.data.contract import Tables, load_tables, summarize
from churnlens.features.engine import build_features, write_features
from churnlens.labels import labels, training_cutoffs


def _config(config: Config | str | Path) -> Config:
    return config if isinstance(config, Config) else load_config(config)


def validate(config: Config | str | Path) -> pd.DataFrame:
    """Load and check every input table; return one summary row per table."""
    return summarize(load_tables(_config(config).data))


def training_spine(config: Config, tables: Tables) -> pd.DataFrame:
    """(customer_id, cutoff, churned) for every configured training cutoff."""
    return labels(tables, training_cutoffs(tables, config.cutoffs, config.churn), config.churn)


def features(config: Config | str | Path, out: Path | None = None) -> pd.DataFrame | int:
    """The point-in-time training set: features and label per (customer, cutoff).

    Returns the DataFrame, or with `out` streams it to Parquet and returns the row count.
    """
    config = _config(config)
    tables = load_tables(config.data)
    spine = training_spine(config, tables)
    horizon = config.churn.horizon_days
    if out is not None:
        return write_features(tables, spine, config.features, out, config.data, horizon)
    return build_features(tables, spine, config.features, config.data, horizon)


def train(config: Config | str | Path):
    """Build the training set, fit and evaluate the model and baselines, log and register it.

    Returns (TrainingResult, RegisteredRun): the new version carries the `challenger` alias.
    """
    from churnlens import tracking
    from churnlens.modeling.plots import training_figures
    from churnlens.modeling.train import train_model

    config_path = None if isinstance(config, Config) else Path(config)
    config = _config(config)
    training_set = features(config)
    result = train_model(training_set, config)
    test = result.split.part(result.scored, "test")
    scores = {name: test[name].to_numpy() for name in result.metrics["model"].unique()}
    figures = training_figures(result.model, test, scores)
    return result, tracking.log_training(result, training_set, config, config_path, figures)
