"""The steps behind the CLI, one function per command: they read and write files and the
MLflow registry, and call the DataFrame API (`churnlens.validate`, `fit`, `score`, ...).

Each takes a config (a path or a `Config`); the CLI only parses options, calls one of these
and prints what it returns. Notebooks may call them too.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from churnlens.config import Config, load_config
from churnlens.data.contract import load_tables, summarize
from churnlens.data.io import refuse_special
from churnlens.errors import ChurnlensError

log = logging.getLogger(__name__)


def _config(config: Config | str | Path) -> Config:
    return config if isinstance(config, Config) else load_config(config)


def check_output(path: Path, option: str, folder: bool = False) -> None:
    """Refuse, before any work, an output path this process cannot write: a folder where a
    file goes (or a file where a folder goes), a file where a parent folder should be, or a
    folder it may not write in. A long run then does not fail at its end, and a command that
    writes two files (the report and its contact list) writes neither rather than one."""
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise ChurnlensError(f"{option} {path} is a file; give a folder path")
    if not folder and path.is_dir():
        raise ChurnlensError(f"{option} {path} is a folder; give a file path")
    if not folder:
        refuse_special(path, option)
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ChurnlensError(f"{option} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ChurnlensError(f"{option} {path}: no permission to write in {parent}")


def simulate(
    out: Path,
    customers: int = 2000,
    seed: int = 1,
    start: str = "2024-01-01",
    end: str = "2025-12-31",
    fmt: str = "parquet",
) -> dict[str, tuple[int, Path]]:
    """Simulate a shop and write its tables (and ground truth); {table: (rows, path)}."""
    from churnlens.config import parse_date
    from churnlens.data.io import write_csv, write_parquet
    from churnlens.data.simulate import simulate as simulate_shop

    if fmt not in ("parquet", "csv"):
        raise ChurnlensError(f"--format must be parquet or csv, not {fmt!r}")
    start, end = parse_date(start, "--start"), parse_date(end, "--end")
    check_output(out, "--out", folder=True)
    write = write_parquet if fmt == "parquet" else write_csv
    try:
        tables = simulate_shop(customers, seed=seed, start=f"{start}", end=f"{end}")
    except ValueError as error:  # the simulator's checks of its arguments
        raise ChurnlensError(f"simulate --start {start} --end {end}: {error}") from None
    return {
        name: (len(frame), write(frame, out / f"{name}.{fmt}")) for name, frame in tables.items()
    }


def validate(config: Config | str | Path, engine: str | None = None) -> pd.DataFrame:
    """Load and check every input table; return one summary row per table. Its warnings
    (`attrs["warnings"]`) include rows after the data end and cutoffs whose label window
    falls in a sparse tail of rows (`labels.data_warnings`). On Spark: the same."""
    from churnlens.labels import data_warnings

    config = _config(config)
    if _engine(config, engine) == "spark":
        from churnlens import spark

        return spark.validate(spark.session(config.spark), config)
    tables = load_tables(config.data)
    summary = summarize(tables)
    summary.attrs["warnings"] += data_warnings(tables, config.cutoffs, config.churn)
    return summary


@dataclass(frozen=True)
class FeaturesWritten:
    path: Path
    rows: int
    cutoffs: int
    churn_rate: float


def _engine(config: Config, engine: str | None) -> str:
    engine = engine or config.engine
    if engine not in ("duckdb", "spark"):
        raise ChurnlensError(f"--engine must be duckdb or spark, not {engine!r}")
    return engine


def features(config: Config | str | Path, out: Path, engine: str | None = None) -> FeaturesWritten:
    """Write the point-in-time training set (features + label per customer and cutoff): one
    Parquet file with DuckDB, a Parquet folder partitioned by cutoff_date with Spark."""
    from churnlens.features.engine import write_features
    from churnlens.labels import labels, silent_cutoffs, training_cutoffs

    config = _config(config)
    if _engine(config, engine) == "spark":
        from churnlens import spark

        session = spark.session(config.spark)
        frame = spark.training_set(session, spark.register_tables(session, config), config)
        frame = frame.cache()
        spark.write_partitioned(frame, out, "cutoff", "cutoff_date")
        rows, cutoffs, rate = frame.selectExpr(
            "count(*)", "count(DISTINCT cutoff)", "avg(CAST(churned AS DOUBLE))"
        ).first()
        return FeaturesWritten(out, rows, cutoffs, rate)
    check_output(out, "--out")
    tables = load_tables(config.data)
    spine = labels(tables, training_cutoffs(tables, config.cutoffs, config.churn), config.churn)
    silent_cutoffs(spine)
    rows = write_features(
        tables, spine, config.features, out, config.data, config.churn.horizon_days
    )
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
    tracking.check_store(config, write=True)
    frame = training_set(load_tables(config.data), config)
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
    out = out or Path("models") / config.model.name
    check_output(out, "--out", folder=True)
    return tracking.export(config, out)


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
    try:
        lineage = json.loads(lineage_file.read_text())
        hashes = lineage["sha256"]
        names = {
            "model_name": str(lineage["name"]),
            "model_version": str(lineage["version"]),
            "run_id": str(lineage["run_id"]),
        }
        if not hashes or not isinstance(hashes, dict):
            raise ValueError("no file hashes")
    except (ValueError, KeyError, TypeError):
        raise ChurnlensError(
            f"model folder {folder}: champion.json is not a churnlens export (no lineage or "
            "file hashes); export the model again with `churnlens export`"
        ) from None
    return ChurnModel.load(folder / "artifacts" / "model", sha256=hashes), names


def score(
    config: Config | str | Path,
    as_of,
    out: Path,
    model: str | None = None,
    budget_contacts: int | None = None,
    budget_money: float | None = None,
    explain: str | None = None,
    engine: str | None = None,
    report_path: Path | None = None,
):
    """Score the population at `as_of` with a registered or exported model; write the risk list
    (Parquet, CSV), drift.csv and manifest.json to `out`, and with `report_path` the HTML
    report on them (as `report` does). Returns the ScoreResult.

    With Spark: out/risk_list/ partitioned by as_of_date, drift.csv and summary.json; the
    returned risk_list holds the target rows only (the whole list stays on the cluster)."""
    from churnlens.config import parse_date
    from churnlens.scoring.score import ScoreResult, write_outputs
    from churnlens.scoring.score import score as score_tables

    config = _config(config)
    as_of = parse_date(as_of, "--as-of")
    engine = _engine(config, engine)
    if engine == "duckdb":  # a Spark path may be a cluster's (s3://...): Spark checks it
        check_output(out, "--out", folder=True)
        if report_path is not None:
            check_output(report_path, "--report")
    churn_model, lineage = load_model(config, model)
    if engine == "spark":
        from churnlens import spark

        if explain not in (None, "all"):
            raise ChurnlensError("--explain: the Spark engine explains every customer ('all')")
        if report_path is not None:
            raise ChurnlensError("--report: write the report from a local scoring run")
        session = spark.session(config.spark)
        tables = spark.register_tables(session, config)
        risk, drift, summary = spark.score(
            session,
            churn_model,
            tables,
            as_of,
            config,
            budget_contacts=budget_contacts,
            budget_money=budget_money,
            lineage=lineage,
        )
        spark.write_scores(risk, drift, summary, out)
        targets = risk.where("target").orderBy("rank").toPandas()
        return ScoreResult(targets, drift, summary)
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
    if report_path is not None:
        report(config, out, report_path)
    return result


def verify(folder: Path) -> int:
    """Check a scoring run's files against its manifest; the number of files checked."""
    from churnlens.data.output_set import MANIFEST
    from churnlens.data.output_set import verify as problems_of

    problems = problems_of(Path(folder))
    if problems:
        raise ChurnlensError(f"{folder}: the output set is not intact: " + "; ".join(problems))
    return len(json.loads((Path(folder) / MANIFEST).read_text())["files"])


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

    check_output(out, "--out")
    if readable is not None:
        check_output(readable, "--list")
    config = _config(config)
    risk, drift = _score_outputs(scores)
    tables = load_tables(config.data)
    as_of = pd.Timestamp(risk["as_of"].iloc[0])
    window = pd.Timedelta(days=config.churn.active_window_days)
    first = tables.purchases["ordered_at"].min()
    card, metrics, calibration, importance = _model_card(config, risk)
    kpis = retention.period_kpis(tables, config.churn, period, config.data.csat_scale)
    facts = {
        **card,
        "data window": f"{first:%Y-%m-%d} to {data_end(tables):%Y-%m-%d}",
        "scored at": f"{as_of:%Y-%m-%d}",
    }
    report_input = ReportInput(
        risk_list=risk,
        kpis=kpis[kpis["end"] <= as_of],  # key figures as of the scores, not after them
        currency=config.reporting.currency,
        cohorts=retention.cohort_retention(tables, config.churn),
        segments=retention.rfm_segments(tables, as_of, risk)[1],
        pareto=retention.pareto_view(tables, as_of - window, as_of),
        model_card=facts,
        metrics=metrics,
        calibration=calibration,
        drift=drift,
        importance=importance,
        exits=tables.exits,
        top_targets=config.reporting.top_targets,
    )
    path = write_report(report_input, out)
    if readable is not None:
        write_readable_list(risk, config.reporting.currency, readable)
    return path


def _score_outputs(scores: Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The risk list and drift table `churnlens score --out scores` wrote."""
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
