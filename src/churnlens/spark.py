"""Features, labels and scoring on Apache Spark, from the same definitions as on DuckDB.

Nothing is defined twice. The feature statement (`features.engine.feature_sql`), the
population and labels (`labels.label_sql`) and the derived ticket times
(`data.contract.ticket_times_sql`) are SQL written once in DuckDB's dialect; `spark_sql`
transpiles them with sqlglot, plus the few rewrites where the two engines differ in meaning
(sub-second epochs, DuckDB's `/` giving a DOUBLE, HUGEINT). Scoring runs
`scoring.score.risk_rows` (the model's booster text and JSON, TreeSHAP reasons, playbook) in
`mapInPandas` over partitions; the model's two files travel to the executors with
`SparkContext.addFile` and are checked against their sha256 there.

What needs every customer at once comes to the driver, a few columns per customer or a
sample: the BTYD fits per cutoff (`features.btyd`, on a fixed sample of at most
`modeling.bgnbd.FIT_CUSTOMERS` customers' summaries; the summaries and the features are
computed where the purchases are), the drift check (PSI on a sample of at most
`spark.drift_sample_rows` rows) and the budgeted target list (`rank_and_target`). Spark
scoring explains every customer (explain='all'): the local engine's early stop is a
single-machine saving that needs the global ranking first.

Inputs are Parquet paths (`data.<table>.path`) or Spark tables (`spark.tables`). The
contract's checks (`validate`, `SparkEngine`) are `data.contract`'s SQL transpiled, so they
give the local messages; a row's number is its place in Spark's read order. Outputs are
Parquet datasets partitioned by `cutoff_date` (features) or `as_of_date` (risk list).
Timestamps are read and compared in UTC.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import sqlglot
from pyspark import SparkFiles
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from sqlglot import exp
from sqlglot.dialects.spark import Spark
from sqlglot.time import format_time

from churnlens.config import Config, DataConfig, FeatureConfig, SparkConfig, parse_date
from churnlens.data.contract import (
    COMPLETION_COLUMNS,
    SCHEMAS,
    check,
    table_queries,
    table_summary,
    ticket_times_sql,
)
from churnlens.data.tables import Tables
from churnlens.economics import TIERS, check_budget, customer_value
from churnlens.errors import ChurnlensError
from churnlens.features import btyd
from churnlens.features.btyd import BTYD_FEATURES
from churnlens.features.engine import active_features, apply_dtypes, feature_sql, with_btyd
from churnlens.features.registry import Feature
from churnlens.labels import SPINE_COLUMNS, data_warnings, label_sql, training_cutoffs
from churnlens.modeling.model import ChurnModel
from churnlens.scoring import columns
from churnlens.scoring.playbook import load_playbook, value_cuts, warn_misspelt_families
from churnlens.scoring.reasons import feature_settings
from churnlens.scoring.score import (
    _check_as_of,
    check_contract,
    check_drift,
    rank_and_target,
    risk_rows,
    summarize,
)
from churnlens.scoring.status import STATUSES, stand_in_gap

log = logging.getLogger(__name__)
SPARK_TYPES = {
    "str": "string",
    "category": "string",
    "float64": "double",
    "int64": "bigint",
    "bool": "boolean",
    "datetime64[us]": "timestamp",
}
RANKED = ("rank", "target")  # the risk list's columns set on the driver, after ranking


def session(config: SparkConfig | None = None) -> SparkSession:
    """The running Spark session, or a new one (`spark.master`, `spark.conf`), in UTC."""
    config = config or SparkConfig()
    builder = SparkSession.builder.appName("churnlens")
    if config.master:
        builder = builder.master(config.master)
    settings = {
        "spark.sql.session.timeZone": "UTC",
        # naive Parquet timestamps as TIMESTAMP (read in UTC), as DuckDB reads them
        "spark.sql.parquet.inferTimestampNTZ.enabled": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        **config.conf,
    }
    if (config.master or "").startswith("local"):  # local workers run this Python (its venv)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    for key, value in settings.items():  # a running session takes the SQL settings too
        if key.startswith("spark.sql."):
            spark.conf.set(key, value)
    return spark


# --- one SQL text, two dialects ------------------------------------------------------------


def spark_sql(duckdb_sql: str) -> str:
    """DuckDB SQL as Spark SQL with the same meaning. A top-level ORDER BY is dropped: Spark's
    outputs are partitioned files, and a global sort would cost a shuffle."""
    tree = sqlglot.parse_one(duckdb_sql, read="duckdb")
    tree.set("order", None)
    for node in list(tree.find_all(exp.TimeToUnix)):  # epoch(): seconds with the microseconds
        micros = exp.Anonymous(this="unix_micros", expressions=[node.this])
        node.replace(exp.Div(this=micros, expression=exp.Literal.number(1_000_000)))
    for node in list(tree.find_all(exp.Anonymous)):
        if node.name.lower() == "epoch_us":
            node.replace(exp.Anonymous(this="unix_micros", expressions=node.expressions))
        if node.name.lower() == "try_strptime":  # DuckDB's format (or list of them)
            value, formats = node.expressions
            tries = [
                exp.Anonymous(
                    this="try_to_timestamp",
                    expressions=[value.copy(), exp.Literal.string(_java_format(form.name))],
                )
                for form in (formats.expressions if isinstance(formats, exp.Array) else [formats])
            ]
            node.replace(exp.Coalesce(this=tries[0], expressions=tries[1:]))
    for node in list(tree.find_all(exp.PercentileCont)):  # DuckDB's quantile_cont, exact
        node.replace(exp.Anonymous(this="percentile", expressions=[node.this, node.expression]))
    for node in list(tree.find_all(exp.DataType)):
        if node.this == exp.DataType.Type.INT128:
            node.replace(exp.DataType.build("decimal(38, 0)"))
    for node in list(tree.find_all(exp.Div)):  # DuckDB divides as DOUBLE, decimals too
        node.set("this", _double(node.this))
        node.set("expression", _double(node.expression))
    return tree.sql(dialect="spark")


def _double(node: exp.Expression) -> exp.Expression:
    return exp.Cast(this=node, to=exp.DataType.build("double"))


def _java_format(strptime: str) -> str:
    """A strptime format (%d/%m/%Y) as Spark's datetime pattern (dd/MM/yyyy)."""
    return format_time(strptime, Spark.INVERSE_TIME_MAPPING, Spark.INVERSE_TIME_TRIE)


# --- inputs --------------------------------------------------------------------------------


def inputs(spark: SparkSession, config: Config) -> dict[str, DataFrame]:
    """Every configured input as it is stored (the user's column names)."""
    frames = {}
    for name in SCHEMAS:
        if name in config.spark.tables:
            frames[name] = spark.table(config.spark.tables[name])
        elif config.data.table(name) is not None:
            frames[name] = spark.read.parquet(_parquet_path(config.data, name))
    return frames


def register_tables(spark: SparkSession, config: Config) -> Tables:
    """Register every configured input as the view `{table}_in` (canonical column names,
    tickets with their derived times) and return its `outline`."""
    present = {}
    for name, frame in inputs(spark, config).items():
        mapping = config.data.table(name).columns if config.data.table(name) else {}
        frame = frame.withColumnsRenamed({yours: ours for ours, yours in mapping.items()})
        if name == "tickets":
            derived = ticket_times_sql(frame.columns)
            frame = frame.selectExpr("*", *(f"{sql} AS {col}" for col, sql in derived.items()))
        frame.createOrReplaceTempView(f"{name}_in")
        present[name] = frame
    missing = [name for name in ("customers", "purchases") if name not in present]
    if missing:
        raise ChurnlensError(
            f"config: {' and '.join(f'data.{n}' for n in missing)} must name a Parquet file or "
            "folder, or spark.tables a Spark table, for the Spark engine"
        )
    return outline(present)


class SparkEngine:
    """The contract's checks (`data.contract.check`) on Spark: its DuckDB SQL transpiled.
    Spark rows have no file position; `_row` is Spark's read order (partition, then row)."""

    keeps_order = False  # a LIMIT without ORDER BY takes any rows

    def __init__(self, spark: SparkSession, frames: dict[str, DataFrame]):
        self.spark, self.frames = spark, frames

    def names(self, table: str) -> list:
        return list(self.frames[table].columns)

    def register(self, table: str, view: str, names: list[str]) -> None:
        frame = self.frames[table].toDF(*names)
        frame.withColumn("_row", F.monotonically_increasing_id()).createOrReplaceTempView(view)

    def types(self, view: str) -> dict[str, str]:
        return {f.name: f.dataType.simpleString() for f in self.spark.table(view).schema.fields}

    def view(self, name: str, sql: str, keep: bool = False) -> None:
        frame = self.spark.sql(spark_sql(sql))
        (frame.cache() if keep else frame).createOrReplaceTempView(name)

    def rows(self, sql: str) -> list[tuple]:
        return [tuple(row) for row in self.spark.sql(spark_sql(sql)).collect()]

    def positions(self, view: str, rows: list) -> list[int]:
        """Data rows: 1 + the rows before each in the read order."""
        if not rows:
            return []
        counted = ", ".join(f"count_if(_row < {row}) + 1" for row in rows)
        return list(self.rows(f"SELECT {counted} FROM {view}")[0])


def validate(spark: SparkSession, config: Config) -> pd.DataFrame:
    """The contract's checks on the Spark inputs (`churnlens validate --engine spark`): one
    `ContractError` listing every problem, as locally; else the local summary
    (`data.contract.table_summary`, one row per table) and warnings (`labels.data_warnings`),
    from the same SQL on the checked tables."""
    frames = inputs(spark, config)
    if "purchases" not in frames:
        raise ChurnlensError(
            "config: data.purchases must name a Parquet file or folder, or spark.tables a "
            "Spark table, for the Spark engine"
        )
    engine = SparkEngine(spark, frames)
    checked = check(engine, list(frames), config.data)
    queries = table_queries(checked)
    tables = {name: spark.sql(spark_sql(sql)) for name, sql in queries.items()}
    relations = {name: (f"({queries[name]}) AS _shown", tables[name].columns) for name in queries}
    found = table_summary(engine.rows, relations, checked.warnings)
    tables.pop("exits", None)

    def count(name: str, conditions: list[str]) -> list[int]:
        counted = ", ".join(f"count_if({condition})" for condition in conditions)
        return list(engine.rows(f"SELECT {counted} FROM ({queries[name]}) AS _counted")[0])

    found.attrs["warnings"] += data_warnings(outline(tables), config.cutoffs, config.churn, count)
    return found


def register_frames(spark: SparkSession, tables: Tables) -> Tables:
    """Register validated in-memory tables (`churnlens.validate`) as the `{table}_in` views
    (through Arrow, whose types hold even for an empty table)."""
    frames = {}
    for name, frame in tables.present().items():
        frames[name] = spark.createDataFrame(pa.Table.from_pandas(frame, preserve_index=False))
        frames[name].createOrReplaceTempView(f"{name}_in")
    return outline(frames)


def _parquet_path(data: DataConfig, name: str) -> str:
    path = data.path_of(name)
    if path.suffix.lower() == ".csv":
        raise ChurnlensError(
            f"config data.{name}: {path} is CSV; the Spark engine reads Parquet (or a Spark "
            "table via spark.tables)"
        )
    if not path.exists() and "://" not in str(data.table(name).path):
        raise ChurnlensError(f"config data.{name}: {path} does not exist")
    return str(path)


def outline(frames: dict[str, DataFrame]) -> Tables:
    """The few real rows of each input that every schema-, bound- and kind-driven rule of the
    local code needs: the columns and their types, each purchase status's first and last
    order, the first signup and last cancellation, and one event of each kind. Cutoffs, the
    data end and the active features are then computed by the same code as locally."""

    def extremes(frame: DataFrame, time: str, by: list[str]) -> pd.DataFrame:
        row = F.struct(*[F.col(f"`{c}`") for c in frame.columns])
        bounds = [F.min_by(row, F.col(time)).alias("first")]
        bounds += [F.max_by(row, F.col(time)).alias("last")]
        grouped = frame.groupBy(*by).agg(*bounds) if by else frame.agg(*bounds)
        rows = grouped.select(F.explode(F.array("first", "last")).alias("r")).select("r.*")
        return rows.toPandas()

    customers = frames["customers"]
    parts = [extremes(customers, "signup_at", [])]
    if "cancelled_at" in customers.columns:
        parts.append(extremes(customers.where("cancelled_at IS NOT NULL"), "cancelled_at", []))
    purchases = frames["purchases"]
    status = ["status"] if "status" in purchases.columns else []
    tables = {
        "customers": pd.concat(parts, ignore_index=True),
        "purchases": extremes(purchases, "ordered_at", status),
    }
    if "events" in frames:
        tables["events"] = extremes(frames["events"], "at", ["kind"])
    for name in ("tickets", "surveys"):
        if name in frames:
            tables[name] = frames[name].limit(1).toPandas()
    attributes = [c for c in customers.columns if c not in SCHEMAS["customers"].names]
    return Tables(**tables, attributes=attributes)


# --- labels and features -------------------------------------------------------------------


def spine(
    spark: SparkSession, tables: Tables, cutoffs, churn, with_labels: bool = True
) -> DataFrame:
    """The population (with `churned`) at `cutoffs`, from `labels.label_sql`."""
    days = pd.to_datetime([pd.Timestamp(c) for c in cutoffs]).astype("datetime64[us]")
    spark.createDataFrame(pd.DataFrame({"cutoff": days})).createOrReplaceTempView("cutoffs_in")
    return spark.sql(spark_sql(label_sql(churn, tables, with_labels)))


def features(
    spark: SparkSession,
    tables: Tables,
    population: DataFrame,
    config: FeatureConfig,
    data: DataConfig | None = None,
    horizon_days: int | None = None,
) -> tuple[DataFrame, list[Feature]]:
    """Features for each (customer_id, cutoff) row of `population`, as `build_features` gives
    them locally (other population columns ride along, last); and the active features."""
    data = data or DataConfig()
    active = active_features(tables, config, data.ces_scale, data.csat_scale)
    extra = [c for c in population.columns if c not in SPINE_COLUMNS]
    population.createOrReplaceTempView("spine_in")
    frame = spark.sql(spark_sql(feature_sql(tables, active, extra)))
    if with_btyd(config, horizon_days):
        frame = _with_btyd(spark, tables, frame, extra, horizon_days)
    return frame, active


def _with_btyd(spark, tables: Tables, frame: DataFrame, extra: list[str], horizon_days: int):
    """The BTYD features as `features.btyd` gives them: every buyer's summary at each cutoff
    from its SQL, transpiled; the fits on the driver over the fixed sample (`sample_sql`),
    the only rows that come back; the values where the rows are (mapInPandas)."""
    completion = [c for c in COMPLETION_COLUMNS if c in tables.purchases.columns]
    summary = spark.sql(spark_sql(btyd.summary_sql(completion)))
    summary.createOrReplaceTempView("btyd_summary")
    models = btyd.fit_models(spark.sql(spark_sql(btyd.sample_sql("btyd_summary"))).toPandas())

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            found = btyd.values(batch, models, horizon_days)
            yield pd.concat([batch[list(SPINE_COLUMNS)], found], axis=1)

    kinds = ["customer_id string", "cutoff timestamp", *(f"{n} double" for n in BTYD_FEATURES)]
    bought = frame.select(*SPINE_COLUMNS).join(summary, list(SPINE_COLUMNS))
    found = bought.mapInPandas(run, ", ".join(kinds))
    names = [c for c in frame.columns if c not in extra]
    return frame.join(found, list(SPINE_COLUMNS), "left").select(*names, *BTYD_FEATURES, *extra)


def to_pandas(frame: DataFrame, active: list[Feature]) -> pd.DataFrame:
    """A Spark feature frame as `build_features` returns it (ordered rows, fixed dtypes)."""
    local = (
        frame.toPandas()
        .sort_values(["cutoff", "customer_id"], kind="stable")
        .reset_index(drop=True)
    )
    return apply_dtypes(local, active)


def training_set(spark: SparkSession, tables: Tables, config: Config) -> DataFrame:
    """Features and the churn label at the config's training cutoffs (Spark's training_set)."""
    cutoffs = training_cutoffs(tables, config.cutoffs, config.churn)
    labelled = spine(spark, tables, cutoffs, config.churn)
    frame, _ = features(
        spark, tables, labelled, config.features, config.data, config.churn.horizon_days
    )
    return frame


def write_partitioned(frame: DataFrame, out: Path, column: str, by: str) -> None:
    """Write `frame` as Parquet under `out`, one folder per day of `column` (`by=YYYY-MM-DD`).
    Spark replaces the folder at the end of the job; a failed job leaves no _SUCCESS file."""
    frame.withColumn(by, F.date_format(column, "yyyy-MM-dd")).write.mode("overwrite").partitionBy(
        by
    ).parquet(str(out))


# --- scoring -------------------------------------------------------------------------------


def score(
    spark: SparkSession,
    model: ChurnModel,
    tables: Tables,
    as_of: str | dt.date,
    config: Config | None = None,
    *,
    budget_contacts: int | None = None,
    budget_money: float | None = None,
    lineage: dict | None = None,
) -> tuple[DataFrame, pd.DataFrame, dict]:
    """Score the population at `as_of` on Spark: (risk list, PSI table, summary), the risk
    list with the columns and values of `churnlens.score(..., explain='all')`."""
    config = config or Config()
    as_of = pd.Timestamp(parse_date(as_of, "as-of date"))
    contacts = budget_contacts if budget_contacts is not None else config.scoring.budget_contacts
    money = budget_money if budget_money is not None else config.scoring.budget_money
    check_budget(contacts, money)
    check_contract(model, config)
    lineage = {"model_name": config.model.name, "model_version": "", "run_id": ""} | (lineage or {})
    _check_as_of(tables, as_of, config.churn.type)
    population = spine(spark, tables, [as_of], config.churn, with_labels=False)
    if population.isEmpty():
        raise ChurnlensError(f"no customer is in the population at {as_of:%Y-%m-%d}")
    feature_config = feature_settings(model, config)
    windows = feature_config.windows_days
    frame, active = features(
        spark, tables, population, feature_config, config.data, config.churn.horizon_days
    )
    frame = frame.cache()
    worst, warned, drift = _drift(frame, active, model, config)
    values = _values(frame, active, config, windows)
    playbook = load_playbook(config.playbook.path)
    warn_misspelt_families(playbook, active)
    cuts = value_cuts(playbook, values["value"])
    population_wide = (cuts, stand_in_gap(values))
    rows = frame.mapInPandas(
        _risk_partitions(
            spark, model, active, config, windows, contacts, money, lineage, population_wide
        ),
        ", ".join(f"`{name}` {kind}" for name, kind in _risk_columns().items()),
    ).cache()
    keys = ["customer_id", "eligible", "expected_net_gain", "contact_cost"]
    ranked = rank_and_target(rows.select(*keys).toPandas(), contacts, money)
    ranked = spark.createDataFrame(ranked[["customer_id", *RANKED]])
    risk = rows.join(ranked, "customer_id").select(*columns.NAMES)
    counted = ["risk_tier", "status", "target", "contact_cost", "expected_net_gain"]
    counted += ["value_at_risk", "reason_family"]
    summary = summarize(risk.select(*counted).toPandas(), as_of, worst, warned, model, lineage)
    return risk, drift, summary


def _drift(frame: DataFrame, active, model: ChurnModel, config: Config):
    """PSI against training on all rows, or on a seeded sample of `spark.drift_sample_rows`."""
    from churnlens.drift import psi_table

    rows = frame.count()
    limit = config.spark.drift_sample_rows
    sample = frame if rows <= limit else frame.sample(fraction=limit / rows, seed=0)
    drift = psi_table(model.reference_, to_pandas(sample, active))
    worst, warned = check_drift(drift, config)
    return worst, warned, drift


def _risk_columns() -> dict[str, str]:
    """The columns `risk_rows` gives per partition (the risk list's, less rank and target, and
    `eligible`, which ranking needs) and their Spark types."""
    kept = {c.name: SPARK_TYPES[c.dtype] for c in columns.RISK_LIST if c.name not in RANKED}
    return kept | {"eligible": "boolean"}


def _values(frame: DataFrame, active, config: Config, windows) -> pd.DataFrame:
    """Every customer's value (economics.customer_value), for the playbook's value cuts, and
    purchase gap (gap_mean_days), for status's stand-in gap."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            features = apply_dtypes(batch.reset_index(drop=True), active)
            value = customer_value(features, windows, config.playbook)
            yield pd.DataFrame({"value": value, "gap_mean_days": features["gap_mean_days"]})

    return frame.mapInPandas(run, "value double, gap_mean_days double").toPandas()


def _risk_partitions(
    spark, model, active, config, windows, contacts, money, lineage, population_wide
):
    """The mapInPandas function: `risk_rows` per batch with the model loaded on the executor
    from its booster text and JSON, checked against the driver's sha256; `population_wide`
    holds the value cuts and stand-in gap, taken over the whole population."""
    folder = Path(tempfile.mkdtemp(prefix="churnlens-model-"))
    model.save(folder)
    hashes = model.file_hashes(folder)
    spark.sparkContext.addFile(str(folder), recursive=True)
    name = folder.name
    playbook_path = config.playbook.path
    wanted = list(_risk_columns())
    text = [name for name, kind in _risk_columns().items() if kind == "string"]

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        loaded = ChurnModel.load(Path(SparkFiles.get(name)), sha256=hashes)
        playbook = load_playbook(playbook_path)
        for batch in batches:
            if batch.empty:
                continue
            frame = apply_dtypes(batch.reset_index(drop=True), active)
            risk = risk_rows(
                loaded,
                frame,
                active,
                playbook,
                config,
                windows,
                "all",
                contacts,
                money,
                lineage,
                *population_wide,
            )
            risk = risk.reindex(columns=wanted)
            for column in text:
                if column in risk:
                    risk[column] = risk[column].astype("object").where(risk[column].notna(), None)
            yield risk

    return run


def write_scores(risk: DataFrame, drift: pd.DataFrame, summary: dict, out: Path) -> None:
    """The risk list under `out/risk_list/as_of_date=YYYY-MM-DD/`, drift.csv and summary.json
    beside it (drift and summary are small, written from the driver)."""
    import json

    from churnlens.data.io import write_csv

    write_partitioned(risk, out / "risk_list", "as_of", "as_of_date")
    write_csv(drift, out / "drift.csv")
    (out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True, default=str))


def read_risk_list(path: Path) -> pd.DataFrame:
    """A Spark risk list read back in the local risk list's columns, dtypes and order."""
    frame = pd.read_parquet(path).drop(columns="as_of_date")
    frame["risk_tier"] = pd.Categorical(frame["risk_tier"], categories=TIERS)
    frame["status"] = pd.Categorical(frame["status"], categories=STATUSES)
    return columns.conform(frame.sort_values("rank").reset_index(drop=True))
