"""Validated tables stay in DuckDB: SQL reads them there, pandas only when asked, and both
ways see the same rows; a frame a user changed or replaced is what SQL then sees."""

from __future__ import annotations

import pandas as pd
import pytest

from churnlens.config import Config
from churnlens.data import tables as tables_module
from churnlens.data.contract import validate
from churnlens.data.simulate import simulate
from churnlens.data.tables import Tables
from churnlens.features.engine import training_set


@pytest.fixture(scope="module")
def shop():
    frames = simulate(400, seed=4)
    frames.pop("ground_truth")
    return frames


def _frames(tables: Tables) -> dict[str, pd.DataFrame]:
    return {name: frame.copy() for name, frame in tables.present().items()}


def test_validation_keeps_the_tables_in_duckdb_and_reads_pandas_only_when_asked(shop):
    tables = validate(shop)
    assert tables.names == ["customers", "purchases", "tickets", "surveys", "events"]
    assert tables._frames == {}  # nothing read into pandas by validation
    training_set(tables, Config())
    assert tables._frames == {}  # nor by labels, features and BTYD
    assert "status" in tables.columns("purchases")
    assert tables.columns("absent") == {}
    with tables.connect() as con:
        (count,) = con.execute("SELECT count(*) FROM purchases_in").fetchone()
    assert count == len(tables.purchases) > 0
    assert set(tables._frames) == {"purchases"}


def test_stored_and_pandas_tables_give_the_same_training_set(shop):
    stored = validate(shop)
    from_frames = Tables(**_frames(stored), attributes=stored.attributes)
    config = Config()
    pd.testing.assert_frame_equal(training_set(stored, config), training_set(from_frames, config))


def test_sql_sees_a_frame_changed_or_replaced_after_reading(shop):
    tables = validate(shop)
    tables.purchases["amount"] = 1.0  # read, then changed in place
    with tables.connect() as con:
        assert con.execute("SELECT max(amount) FROM purchases_in").fetchone() == (1.0,)
    tables.events = None
    assert "events" not in tables.names and tables.columns("events") == {}
    with tables.connect() as con:
        assert "events_in" not in {name for (name,) in con.execute("SHOW TABLES").fetchall()}


def test_customers_and_purchases_are_required():
    with pytest.raises(TypeError, match="customers and purchases"):
        Tables(customers=pd.DataFrame({"customer_id": ["a"]}))


def _table_memory(tables: Tables) -> int:
    found = tables._database.execute(
        "SELECT sum(memory_usage_bytes) FROM duckdb_memory() WHERE tag = 'IN_MEMORY_TABLE'"
    )
    return found.fetchall()[0][0]


def test_tables_past_the_memory_share_are_compressed_with_the_same_rows(shop, monkeypatch):
    plain = validate(shop)
    assert not tables_module.compress_if_large(plain._database)  # a small shop stays as is
    monkeypatch.setattr(tables_module, "COMPRESS_SHARE", 0.0)
    compressed = validate(shop)
    assert _table_memory(compressed) < 0.7 * _table_memory(plain)
    for name in plain.names:
        pd.testing.assert_frame_equal(getattr(compressed, name), getattr(plain, name))


def test_a_containers_memory_limit_counts_when_smaller_than_the_machine(tmp_path):
    physical = tables_module.machine_memory(())
    v2, v1 = tmp_path / "memory.max", tmp_path / "memory.limit_in_bytes"
    v2.write_text("8589934592\n")
    assert tables_module.machine_memory((str(v2),)) == min(physical, 8 * 2**30)
    v2.write_text("max\n")
    v1.write_text("1073741824\n")
    assert tables_module.machine_memory((str(v2), str(v1))) == physical  # v2 says: no limit
    assert tables_module.machine_memory((str(tmp_path / "absent"), str(v1))) == 2**30
    v1.write_text(f"{2**63 - 4096}\n")  # v1's "no limit"
    assert tables_module.machine_memory((str(v1),)) == physical


def test_validation_numbers_each_row_by_its_customer_inside_sql_only():
    """Validation stores each row with its customer's number (KEY) in id order, which the
    features group by; DataFrames and `columns` never show it, and a table read as a
    DataFrame (served from the frame from then on) leaves the tables unkeyed."""
    shop = simulate(300, seed=2)
    shop.pop("ground_truth")
    tables = validate(shop)
    assert tables.keyed
    key = tables_module.KEY
    with tables.connect() as con:
        pairs = con.sql(
            f"SELECT p.{key}, c.{key} FROM purchases_in p JOIN customers_in c USING (customer_id)"
        ).fetchall()
        order = con.sql(f"SELECT customer_id FROM customers_in ORDER BY {key}").fetchall()
    assert len(pairs) == len(shop["purchases"]) and all(p == c for p, c in pairs)
    assert [c for (c,) in order] == sorted(shop["customers"]["customer_id"])
    assert key not in tables.columns("purchases") and key not in tables.purchases.columns
    assert not tables.keyed
