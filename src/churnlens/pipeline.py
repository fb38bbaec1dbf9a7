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
    if out is not None:
        return write_features(tables, spine, config.features, out, config.data)
    return build_features(tables, spine, config.features, config.data)


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


def kpis(config: Config | str | Path, period: str = "month") -> pd.DataFrame:
    """Retention KPIs per whole month or quarter of the input data (docs/kpis.md)."""
    from churnlens.reporting.kpis import period_kpis

    config = _config(config)
    return period_kpis(load_tables(config.data), config.churn, period, config.data.csat_scale)


def report(
    config: Config | str | Path,
    scores: Path,
    out: Path,
    period: str = "month",
    readable: Path | None = None,
) -> Path:
    """The HTML report on the risk list `churnlens score` wrote to the folder `scores`.

    KPIs, cohorts and segments come from the input tables; the model card from the scoring
    model's training run when the tracking store holds it (else the card says why not). With
    `readable`, also writes the retention team's spreadsheet there.
    """
    from churnlens.labels import data_end
    from churnlens.reporting import kpis as retention
    from churnlens.reporting.readable import write_readable_list
    from churnlens.reporting.report import ReportInput, write_report

    config = _config(config)
    risk, drift = _score_outputs(scores)
    tables = load_tables(config.data)
    as_of = pd.Timestamp(risk["as_of"].iloc[0])
    window = pd.Timedelta(days=config.churn.active_window_days)
    first = tables.purchases["ordered_at"].min()
    card, metrics, calibration, importance = _model_card(config, risk)
    facts = {
        **card,
        "data window": f"{first:%Y-%m-%d} to {data_end(tables):%Y-%m-%d}",
        "scored at": f"{as_of:%Y-%m-%d}",
    }
    report_input = ReportInput(
        risk_list=risk,
        kpis=retention.period_kpis(tables, config.churn, period, config.data.csat_scale),
        currency=config.reporting.currency,
        cohorts=retention.cohort_retention(tables, config.churn),
        segments=retention.rfm_segments(tables, as_of, risk)[1],
        pareto=retention.pareto_view(tables, as_of - window, as_of),
        model_card=facts,
        metrics=metrics,
        calibration=calibration,
        drift=drift,
        importance=importance,
        top_targets=config.reporting.top_targets,
    )
    path = write_report(report_input, out)
    if readable is not None:
        write_readable_list(risk, config.reporting.currency, readable)
    return path


def _score_outputs(scores: Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The risk list and drift table `churnlens score --out scores` wrote."""
    from churnlens.errors import ChurnlensError

    path = scores / "risk_list.parquet"
    if not path.is_file():
        raise ChurnlensError(
            f"--scores {scores}: no risk_list.parquet; run `churnlens score --out {scores}` first"
        )
    risk = pd.read_parquet(path)
    if risk.empty:
        raise ChurnlensError(f"risk list {path}: no rows, nothing to report")
    drift = scores / "drift.csv"
    return risk, pd.read_csv(drift) if drift.is_file() else None


def _model_card(config: Config, risk: pd.DataFrame):
    """(facts, metrics, calibration, importance) of the model that scored `risk`."""
    from churnlens import tracking
    from churnlens.errors import ChurnlensError
    from churnlens.reporting.card import model_card

    lineage = risk[["model_name", "model_version", "run_id"]].iloc[0].astype("str").to_dict()
    try:
        model, _ = tracking.load_model_uri(
            config, f"models:/{lineage['model_name']}/{lineage['model_version']}"
        )
        params, metrics, test = tracking.training_record(config, lineage["run_id"])
    except ChurnlensError as error:
        facts = {
            "model": f"{lineage['model_name']} v{lineage['model_version']}",
            "run id": lineage["run_id"],
            "training record": f"not available ({error})",
        }
        return facts, None, None, None
    return model_card(lineage, params, metrics, test, model)
