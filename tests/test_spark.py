"""The Spark engine gives what DuckDB gives: features, labels and risk lists (Spark local mode).

One session for the module and one small simulated shop, read from Parquet by both engines.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import churnlens as cl
from churnlens import pipeline
from churnlens import spark as on_spark
from churnlens.config import Config, DataConfig, FeatureConfig, TableConfig
from churnlens.data.contract import ContractError, load_tables
from churnlens.data.io import write_parquet
from churnlens.errors import ChurnlensError
from churnlens.features.engine import active_features, build_features, training_set
from churnlens.modeling.bgnbd import fit_sample, fit_sample_sql
from test_features import (
    CUSTOMERS,
    DAYS,
    _day,
    _tables,
    changed_after_cutoff,
    event,
    purchase,
    spine,
    survey,
    ticket,
)

TABLES = ("customers", "purchases", "tickets", "surveys", "events")
AS_OF = "2025-12-31"


@pytest.fixture(scope="module")
def spark():
    return on_spark.session(
        cl.config.SparkConfig(
            master="local[2]",
            conf={"spark.sql.shuffle.partitions": "2", "spark.ui.enabled": "false"},
        )
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shop")
    pipeline.simulate(folder, customers=250, seed=5)
    purchases = pd.read_parquet(folder / "purchases.parquet")
    purchases.loc[purchases.index % 7 == 0, "channel"] = None  # a last channel may be unknown
    write_parquet(purchases, folder / "purchases.parquet")
    data = DataConfig(dir=folder, **{n: TableConfig(path=f"{n}.parquet") for n in TABLES})
    return Config(data=data, model={"num_boost_round": 40})


def assert_same(local: pd.DataFrame, remote: pd.DataFrame) -> None:
    """Equal columns, dtypes and rows; floats within 1e-9 with NaN in the same places."""
    assert list(local.columns) == list(remote.columns)
    assert len(local) == len(remote) > 0
    for name in local.columns:
        ours, theirs = local[name], remote[name]
        assert ours.dtype == theirs.dtype, name
        if ours.dtype.kind == "f":
            np.testing.assert_array_equal(ours.isna(), theirs.isna(), err_msg=name)
            np.testing.assert_allclose(theirs, ours, rtol=0, atol=1e-9, err_msg=name)
        else:
            pd.testing.assert_series_equal(ours, theirs, check_names=False, obj=name)


def test_the_spark_sql_keeps_duckdb_meanings():
    sql = on_spark.spark_sql("SELECT epoch(t) / 86400, epoch_us(t), x::HUGEINT FROM v_in")
    assert "UNIX_MICROS(t)" in sql and "UNIX_TIMESTAMP" not in sql  # microseconds kept
    assert "DECIMAL(38, 0)" in sql and "CAST(86400 AS DOUBLE)" in sql


def test_the_btyd_fit_sample_is_drawn_alike_on_both_engines(spark):
    ids = pd.Index([f"C{k:05d}" for k in range(60)], name="customer_id")
    summary = pd.DataFrame({"frequency": np.arange(60.0)}, index=ids)
    local = fit_sample(summary, size=12)
    spark.createDataFrame(summary.reset_index()).createOrReplaceTempView("sample_in")
    drawn = spark.sql(on_spark.spark_sql(fit_sample_sql("sample_in", ["customer_id"], 12)))
    assert sorted(drawn.toPandas()["customer_id"]) == list(local.index)
    assert len(local) == 12 and list(local.index) != list(ids[:12])  # a draw, not the first


def test_features_and_labels_equal_duckdb_at_every_cutoff(spark, config):
    local = training_set(load_tables(config.data), config)
    tables = on_spark.register_tables(spark, config)
    remote = on_spark.training_set(spark, tables, config)
    remote = on_spark.to_pandas(remote, active_features(tables, config.features))
    assert local["cutoff"].nunique() > 5 and local["churned"].any()
    assert_same(local, remote)


def test_risk_lists_equal_duckdb(spark, config, tmp_path):
    tables = load_tables(config.data)
    model = cl.fit(training_set(tables, config), config).model
    local = cl.score(model, tables, AS_OF, config, budget_contacts=15, explain="all")
    risk, drift, summary = on_spark.score(
        spark, model, on_spark.register_tables(spark, config), AS_OF, config, budget_contacts=15
    )
    on_spark.write_scores(risk, drift, summary, tmp_path)
    remote = on_spark.read_risk_list(tmp_path / "risk_list")
    assert (tmp_path / "risk_list" / f"as_of_date={AS_OF}").is_dir()
    assert 1 <= local.risk_list["target"].sum() <= 15  # the comparison is not of empty lists
    assert_same(local.risk_list, remote)
    pd.testing.assert_frame_equal(local.drift, drift)
    assert summary["targets"] == local.summary["targets"]
    assert summary["contact_cost"] == local.summary["contact_cost"]


def test_validate_on_spark_reports_what_duckdb_reports(spark, config, tmp_path):
    """Valid inputs give the same summary and warnings on both engines; broken purchases
    the same error: rules, counts, rows, ids."""
    events = pd.read_parquet(config.data.dir / "events.parquet")
    events.loc[:2, "at"] = pd.Timestamp("2025-12-31 06:00")  # after the last purchase
    events.to_parquet(tmp_path / "events.parquet", index=False)
    data = config.data.model_copy(update={"events": TableConfig(path=tmp_path / "events.parquet")})
    late = config.model_copy(update={"data": data})
    local, remote = pipeline.validate(late), pipeline.validate(late, engine="spark")
    assert len(local) == 5 and local["missing"].str.len().gt(0).any()
    assert "events: 3 row(s) after the data end 2025-12-30" in " ".join(local.attrs["warnings"])
    pd.testing.assert_frame_equal(local, remote)
    assert remote.attrs["warnings"] == local.attrs["warnings"]
    purchases = pd.read_parquet(config.data.dir / "purchases.parquet")
    purchases.loc[[3, 40], "amount"] = -1.0
    purchases.loc[7, "order_id"] = purchases.loc[8, "order_id"]
    purchases.loc[9, "customer_id"] = "nobody"
    purchases.loc[11, "ordered_at"] = pd.Timestamp("1985-01-01")
    purchases.loc[12, "status"] = " SHIPPED"
    purchases.to_parquet(tmp_path / "purchases.parquet", index=False)
    data = config.data.model_copy(
        update={"purchases": TableConfig(path=tmp_path / "purchases.parquet")}
    )
    broken = config.model_copy(update={"data": data})
    with pytest.raises(ContractError) as local:
        pipeline.validate(broken)
    with pytest.raises(ContractError) as remote:
        pipeline.validate(broken, engine="spark")
    assert len(local.value.problems) == 6
    assert str(remote.value) == str(local.value)


def test_csv_inputs_are_refused_with_the_key(spark, config):
    data = config.data.model_copy(update={"purchases": TableConfig(path="purchases.csv")})
    with pytest.raises(ChurnlensError, match="data.purchases.*CSV"):
        on_spark.register_tables(spark, config.model_copy(update={"data": data}))


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    purchases=st.lists(purchase, min_size=1, max_size=15),
    tickets=st.lists(ticket, max_size=6),
    surveys=st.lists(survey, max_size=6),
    events=st.lists(event, max_size=6),
    new=st.tuples(
        st.lists(purchase, max_size=3),
        st.lists(ticket, max_size=2),
        st.lists(survey, max_size=2),
        st.lists(event, max_size=2),
    ),
    cutoff_day=st.integers(1, DAYS),
    keep=st.lists(st.booleans(), min_size=1, max_size=4),
    shift=st.integers(0, 300),
)
def test_rows_at_or_after_the_cutoff_never_change_spark_features(
    spark, purchases, tickets, surveys, events, new, cutoff_day, keep, shift
):
    cutoff_hours = cutoff_day * 24
    config = FeatureConfig(windows_days=[7, 30], event_kinds=["login", "cart_abandoned"])
    frame = spine(CUSTOMERS, _day(cutoff_hours))

    def on_spark_engine(tables):
        outline = on_spark.register_frames(spark, tables)
        result, active = on_spark.features(
            spark, outline, spark.createDataFrame(frame), config, None, 30
        )
        return on_spark.to_pandas(result, active)

    original = _tables(purchases, tickets, surveys, events)
    changed = changed_after_cutoff(
        (purchases, tickets, surveys, events), cutoff_hours, keep, new, shift
    )
    before = on_spark_engine(original)
    pd.testing.assert_frame_equal(before, on_spark_engine(changed))
    assert_same(build_features(original, frame, config, None, 30), before)
