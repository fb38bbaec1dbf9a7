"""Raw exports as a user brings them: a bare transaction log, any separator, markers, formats."""

from __future__ import annotations

import gzip
from importlib import resources

import pandas as pd
import yaml
from typer.testing import CliRunner

from churnlens.cli import app
from churnlens.config import DataConfig
from churnlens.data.contract import load_tables

runner = CliRunner()


def _cdnow_lines(n: int) -> bytes:
    """The first n lines of the shipped CDNOW sample: whitespace-aligned, no header, dates as
    YYYYMMDD (columns: full id, sample id, date, CDs, dollars)."""
    with (
        resources.files("churnlens.datasets")
        .joinpath("data", "CDNOW_sample.txt.gz")
        .open("rb") as handle
    ):
        return b"".join(gzip.open(handle).readlines()[:n])


def test_a_whitespace_log_without_header_customers_or_order_ids(tmp_path):
    (tmp_path / "log.txt.gz").write_bytes(gzip.compress(_cdnow_lines(60)))
    data = DataConfig(
        dir=tmp_path,
        purchases={
            "path": "log.txt.gz",
            "sep": "whitespace",
            "header": False,
            "date_format": "%Y%m%d",
            "columns": {"customer_id": "column0", "ordered_at": "column2", "amount": "column4"},
        },
    )
    tables = load_tables(data)
    raw = pd.read_csv(tmp_path / "log.txt.gz", sep=r"\s+", header=None, dtype=str)
    assert len(tables.purchases) == 60
    assert tables.purchases["order_id"].tolist() == [str(i) for i in range(1, 61)]
    assert tables.purchases["amount"].sum() == raw[4].astype(float).sum()
    first = pd.to_datetime(raw[2], format="%Y%m%d").groupby(raw[0]).min()
    customers = tables.customers.set_index("customer_id")["signup_at"]
    assert customers.sort_index().to_dict() == first.sort_index().to_dict()
    assert {w.column for w in tables.warnings} >= {"column1", "column3"}  # unused: warned


EXPORT = (
    "who;when;paid;via\n"
    "a1;31/12/2024 10:05;12.5;web\n"
    "a2;01/01/2025 09:00;3;?\n"
    "a1;15/01/2025 18:30;7;NULL\n"
)


def _export(tmp_path, text: str) -> dict:
    (tmp_path / "orders.csv.gz").write_bytes(gzip.compress(text.encode()))
    purchases = {
        "path": "orders.csv.gz",
        "sep": ";",
        "missing": ["?", "NULL"],
        "date_format": "%d/%m/%Y %H:%M",
        "columns": {
            "customer_id": "who",
            "ordered_at": "when",
            "amount": "paid",
            "channel": "via",
        },
    }
    return {"data": {"purchases": purchases, "latest": "2025-12-31"}}


def test_a_semicolon_gzip_export_with_markers_and_day_first_dates(tmp_path):
    config = _export(tmp_path, EXPORT)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = runner.invoke(app, ["validate", "-c", str(tmp_path / "config.yaml")])
    assert result.exit_code == 0, result.output
    tables = load_tables(DataConfig(dir=tmp_path, **config["data"]))
    assert tables.purchases["ordered_at"].tolist() == [
        pd.Timestamp("2024-12-31 10:05"),
        pd.Timestamp("2025-01-01 09:00"),
        pd.Timestamp("2025-01-15 18:30"),
    ]
    assert tables.purchases["channel"].isna().tolist() == [False, True, True]
    assert sorted(tables.customers["customer_id"]) == ["a1", "a2"]


def test_a_marker_id_is_not_a_customer_and_a_wrong_date_names_the_format(tmp_path):
    bad = EXPORT + "?;16/01/2025 10:00;5;web\na3;2025-01-17;5;web\n"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(_export(tmp_path, bad)))
    result = runner.invoke(app, ["validate", "-c", str(tmp_path / "config.yaml")])
    assert result.exit_code == 2
    assert "purchases.customer_id: required value is missing" in result.output
    assert "row 4 (order_id 4)" in result.output
    assert "not a date (expected '%d/%m/%Y %H:%M' (data.purchases.date_format))" in result.output
    assert "row 5" in result.output


def test_a_separator_other_than_the_declared_one_is_named_with_the_key_to_set(tmp_path):
    """A semicolon export read as comma-separated: one column named like the whole header
    (or a file DuckDB cannot sniff, a comma inside an id): exit 2 saying which key to set."""
    rows = "customer_id;ordered_at;amount\n007;2025-01-02;5\n7;2025-01-03;6\n"
    for name, text in (("one.csv", rows), ("sniff.csv", rows + "ACME, Inc;2025-01-04;7\n")):
        (tmp_path / name).write_text(text)
        config = {"data": {"dir": str(tmp_path), "purchases": {"path": name}}}
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
        result = runner.invoke(app, ["validate", "-c", str(tmp_path / "config.yaml")])
        assert result.exit_code == 2, result.output
        assert "data.purchases.sep" in result.output, result.output
    config["data"]["purchases"]["sep"] = ";"
    tables = load_tables(DataConfig(**config["data"]))
    assert tables.purchases["customer_id"].tolist() == ["007", "7", "ACME, Inc"]


def test_no_line_is_dropped_to_fit_a_guessed_dialect(tmp_path):
    """DuckDB's sniffer skipped leading lines that did not fit the rest (here two purchases
    without an amount): 'valid' with half the rows. Every line is read, or exit 2."""
    (tmp_path / "log.csv").write_text(
        "c1,2025-01-02\nc2,2025-01-03\nc3,2025-01-04,7\nc4,2025-01-05,8\n"
    )
    columns = {"customer_id": "column0", "ordered_at": "column1", "amount": "column2"}
    purchases = {"path": "log.csv", "header": False, "columns": columns}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"data": {"purchases": purchases}}))
    result = runner.invoke(app, ["validate", "-c", str(tmp_path / "config.yaml")])
    assert result.exit_code == 2 and "cannot read" in result.output, result.output
