"""The steps behind the CLI, one function per command: they read and write files and the
MLflow registry, and call the DataFrame API (`churnlens.validate`, `fit`, `score`, ...).

Each takes a config (a path or a `Config`); the CLI only parses options, calls one of these
and prints what it returns. Notebooks may call them too.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from churnlens.config import Config, load_config
from churnlens.data.contract import load_tables, summarize
from churnlens.errors import ChurnlensError

log = logging.getLogger(__name__)


def _config(config: Config | str | Path) -> Config:
    return config if isinstance(config, Config) else load_config(config)


def simulate(
    out: Path,
    customers: int = 2000,
    seed: int = 1,
    start: str = "2024-01-01",
    end: str = "2025-12-31",
    fmt: str = "parquet",
) -> dict[str, tuple[int, Path]]:
    """Simulate a shop and write its tables (and ground truth); {table: (rows, path)}."""
    from churnlens.data.io import write_csv, write_parquet
    from churnlens.data.simulate import simulate as simulate_shop

    if fmt not in ("parquet", "csv"):
        raise ChurnlensError(f"--format must be parquet or csv, not {fmt!r}")
    write = write_parquet if fmt == "parquet" else write_csv
    tables = simulate_shop(customers, seed=seed, start=start, end=end)
    return {
        name: (len(frame), write(frame, out / f"{name}.{fmt}")) for name, frame in tables.items()
    }


def validate(config: Config | str | Path) -> pd.DataFrame:
    """Load and check every input table; return one summary row per table."""
    return summarize(load_tables(_config(config).data))


@dataclass(frozen=True)
class FeaturesWritten:
    path: Path
    rows: int
    cutoffs: int
    churn_rate: float


def features(config: Config | str | Path, out: Path) -> FeaturesWritten:
    """Write the point-in-time training set (features + label per customer and cutoff)."""
    from churnlens.features.engine import write_features
    from churnlens.labels import labels, training_cutoffs

    config = _config(config)
    tables = load_tables(config.data)
    spine = labels(tables, training_cutoffs(tables, config.cutoffs, config.churn), config.churn)
    rows = write_features(tables, spine, config.features, out, config.data)
    return FeaturesWritten(out, rows, spine["cutoff"].nunique(), float(spine["churned"].mean()))


def train(config: Config | str | Path):
    """Build the training set, fit and evaluate the model and baselines, log and register it.

    Returns (TrainingResult, RegisteredRun): the new version carries the `challenger` alias.
    Training the same data with the same settings again registers nothing new: it returns the
    version that already holds that model.
    """
    from churnlens import tracking
    from churnlens.features.engine import training_set
    from churnlens.modeling.plots import training_figures
    from churnlens.modeling.train import fit

    config_path = None if isinstance(config, Config) else Path(config)
    config = _config(config)
    frame = training_set(load_tables(config.data), config)
    tracking.check_store(config)
    result = fit(frame, config)
    test = result.split.part(result.scored, "test")
    scores = {name: test[name].to_numpy() for name in result.metrics["model"].unique()}
    figures = training_figures(result.model, test, scores)
    return result, tracking.log_training(result, frame, config, config_path, figures)


def promote(config: Config | str | Path, force: bool = False) -> str:
    """Make the challenger the champion if it beats it on the same test cutoff."""
    from churnlens import tracking

    return tracking.promote(_config(config), force=force)


def export(config: Config | str | Path, out: Path | None = None) -> Path:
    """Copy the champion model to a folder (default models/<name>) for scoring without MLflow."""
    from churnlens import tracking

    config = _config(config)
    return tracking.export(config, out or Path("models") / config.model.name)


def load_model(config: Config, reference: str | None = None):
    """(ChurnModel, lineage): the champion by default, `models:/...` from the registry, else an
    exported folder (which needs no tracking store)."""
    from churnlens.modeling.model import ChurnModel

    if reference is None or reference.startswith("models:/"):
        from churnlens import tracking

        return tracking.load_model_uri(config, reference or f"models:/{config.model.name}@champion")
    folder = Path(reference)
    lineage_file = folder / "champion.json"
    if not lineage_file.is_file():
        raise ChurnlensError(f"model folder {folder}: no champion.json (use `churnlens export`)")
    lineage = json.loads(lineage_file.read_text())
    model = ChurnModel.load(folder / "artifacts" / "model")
    return model, {
        "model_name": lineage["name"],
        "model_version": str(lineage["version"]),
        "run_id": lineage["run_id"],
    }


def score(
    config: Config | str | Path,
    as_of,
    out: Path,
    model: str | None = None,
    budget_contacts: int | None = None,
    budget_money: float | None = None,
    explain: str | None = None,
):
    """Score the population at `as_of` with a registered or exported model; write the risk list
    (Parquet, CSV), drift.csv and manifest.json to `out`. Returns the ScoreResult."""
    from churnlens.config import parse_date
    from churnlens.scoring.score import score as score_tables
    from churnlens.scoring.score import write_outputs

    config = _config(config)
    as_of = parse_date(as_of, "--as-of")
    churn_model, lineage = load_model(config, model)
    result = score_tables(
        churn_model,
        load_tables(config.data),
        as_of,
        config,
        budget_contacts=budget_contacts,
        budget_money=budget_money,
        explain=explain,
        lineage=lineage,
    )
    write_outputs(result, out)
    return result
