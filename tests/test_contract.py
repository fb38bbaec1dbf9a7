"""The data contract: good input loads with fixed dtypes; each broken input names its problem."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from churnlens.cli import app
from churnlens.config import DataConfig, TableConfig, load_config
from churnlens.data import contract
from churnlens.data.contract import ContractError, load_tables, validate
from churnlens.data.tables import Tables
from churnlens.errors import ChurnlensError

runner = CliRunner()


def test_valid_shop_loads_with_contract_dtypes(shop):
    tables = load_tables(load_config(shop.write()).data)
    assert tables.purchases["ordered_at"].dtype == "datetime64[us]"
    assert tables.purchases["amount"].tolist() == [20.0, 35.5, 10.0, 0.0]
    assert tables.purchases["status"].tolist()[2] == "refunded"  # normalised case
    assert tables.tickets["first_response_at"].isna().tolist() == [False, True]
    assert str(tables.tickets["reopened"].dtype) == "Int64"
    assert tables.attributes == ["region"]


def test_optional_tables_may_be_absent(shop):
    for name in ("tickets", "surveys", "events"):
        del shop.config["data"][name]
    tables = load_tables(load_config(shop.write()).data)
    assert set(tables.present()) == {"customers", "purchases"}


def test_column_mapping_renames_user_columns(shop):
    shop.tables["purchases"] = shop.tables["purchases"].rename(columns={"amount": "total_eur"})
    shop.config["data"]["purchases"]["columns"] = {"amount": "total_eur"}
    tables = load_tables(load_config(shop.write()).data)
    assert tables.purchases["amount"].sum() == pytest.approx(65.5)


@pytest.mark.parametrize(
    "table, column", [("customers", "_r0"), ("customers", "_n"), ("purchases", "_row")]
)
def test_columns_named_as_the_checks_own_are_refused(shop, table, column):
    # an attribute `_r0` read the customer ids; a column `_row` crashed with a KeyError
    shop.tables[table][column] = "x"
    with pytest.raises(ChurnlensError, match=f"table {table}: column.s. '{column}' have names"):
        validate(shop.tables)


def test_an_unknown_underscore_column_outside_customers_is_ignored_with_a_warning(shop):
    shop.tables["purchases"]["_id"] = "x"
    warnings = [str(w) for w in validate(shop.tables).warnings]
    assert any(w.startswith("purchases._id: not a column of purchases, ignored") for w in warnings)


def _customers(n, **attributes):
    """n customers signed up on one day, with these attribute columns (i -> value)."""
    ids = [f"c{i}" for i in range(1, n + 1)]
    frame = {"customer_id": ids, "signup_at": ["2024-01-01"] * n}
    return pd.DataFrame(
        frame | {name: list(map(value, range(n))) for name, value in attributes.items()}
    )


IDENTIFIER = "a different value for nearly every customer"


def test_an_attribute_with_a_value_per_customer_is_warned_about_and_can_be_left_out(shop):
    shop.tables["customers"] = _customers(
        60, email=lambda i: f"u{i}@example.com", city=lambda i: f"city{i % 30}"
    )
    warned = {w.column for w in validate(shop.tables).warnings if IDENTIFIER in w.rule}
    assert warned == {"email"}  # 60 distinct of 60; the city's 30 of 60 are shared
    shop.config["data"]["customers"]["ignore"] = ["email"]
    tables = load_tables(load_config(shop.write()).data)
    assert "email" not in tables.customers.columns and tables.attributes == ["city"]
    assert not [w for w in tables.warnings if IDENTIFIER in w.rule]


def test_left_out_columns_must_exist_and_may_carry_names_the_checks_keep(shop):
    shop.tables["customers"]["_id"] = ["a", "b", "c"]
    shop.config["data"]["customers"]["ignore"] = ["_id", "emial"]
    with pytest.raises(ChurnlensError, match=r"data.customers.ignore: no column\(s\) emial"):
        load_tables(load_config(shop.write()).data)
    shop.config["data"]["customers"]["ignore"] = ["_id"]
    assert load_tables(load_config(shop.write()).data).attributes == ["region"]


def test_validate_prints_a_summary(shop):
    result = runner.invoke(app, ["validate", "-c", str(shop.write())])
    assert result.exit_code == 0, result.output
    for name in ("customers", "purchases", "tickets", "surveys", "events"):
        assert name in result.output


def _set(table, column, row, value):
    def mutate(shop):
        shop.tables[table].loc[row, column] = value

    return mutate


def _drop_column(table, column):
    def mutate(shop):
        shop.tables[table] = shop.tables[table].drop(columns=column)

    return mutate


def _refund(row, status, at):
    def mutate(shop):
        shop.tables["purchases"].loc[row, ["status", "refunded_at"]] = [status, at]

    return mutate


def _config(update):
    def mutate(shop):
        update(shop.config)

    return mutate


def _write_raw(name, content: bytes):
    def mutate(shop):
        shop.raw[name] = content

    return mutate


BAD_INPUTS = {
    "missing column": (
        _drop_column("purchases", "amount"),
        ["purchases.amount", "required column is missing"],
    ),
    "bad date": (
        _set("purchases", "ordered_at", 1, "2024-13-45"),
        ["purchases.ordered_at", "not a date", "row 2 (order_id o2)"],
    ),
    "negative amount": (
        _set("purchases", "amount", 0, "-5"),
        ["purchases.amount", "must be >= 0", "row 1 (order_id o1)"],
    ),
    "amount not a number": (
        _set("purchases", "amount", 3, "ten"),
        ["purchases.amount", "not a number", "row 4"],
    ),
    "duplicate id": (
        _set("purchases", "order_id", 1, "o1"),
        ["purchases.order_id", "ids must be unique", "row 1", "row 2"],
    ),
    "unknown customer": (
        _set("purchases", "customer_id", 2, "c99"),
        ["purchases.customer_id", "unknown customer", "row 3 (order_id o3)"],
    ),
    "response before opening": (
        _set("tickets", "first_response_at", 0, "2024-01-10 08:00:00"),
        ["tickets.first_response_at", "must not be before opened_at", "ticket_id t1"],
    ),
    "resolved before opening": (
        _set("tickets", "resolved_at", 0, "2024-01-01"),
        ["tickets.resolved_at", "must not be before opened_at"],
    ),
    "nps out of range": (
        _set("surveys", "score", 0, "11"),
        ["surveys.score", "nps scores must be whole numbers in 0..10", "s1"],
    ),
    "csat out of range": (
        _set("surveys", "score", 1, "0"),
        ["surveys.score", "csat scores", "1..5", "response_id s2"],
    ),
    "unknown survey kind": (
        _set("surveys", "kind", 2, "smiley"),
        ["surveys.kind", "must be one of nps, csat, ces"],
    ),
    "unknown purchase status": (
        _set("purchases", "status", 0, "shipped"),
        ["purchases.status", "must be one of completed"],
    ),
    "refund before its order": (
        _refund(0, "refunded", "2024-01-09"),
        ["purchases.refunded_at", "must not be before ordered_at", "row 1 (order_id o1)"],
    ),
    "refund time on a completed purchase": (
        _refund(1, "completed", "2024-03-01"),
        ["purchases.refunded_at", "status is not refunded or returned", "row 2 (order_id o2)"],
    ),
    "missing required value": (
        _set("events", "kind", 1, None),
        ["events.kind", "required value is missing", "row 2"],
    ),
    "negative reopen count": (
        _set("tickets", "reopened", 1, "-1"),
        ["tickets.reopened", "must be >= 0"],
    ),
    "fractional reopen count": (
        _set("tickets", "reopened", 1, "1.5"),
        ["tickets.reopened", "not a whole number"],
    ),
    "duplicate customer": (
        _set("customers", "customer_id", 2, "c1"),
        ["customers.customer_id", "ids must be unique"],
    ),
    "empty file": (_write_raw("events", b""), ["table events", "is empty"]),
    "header only": (_write_raw("events", b"customer_id,at,kind\n"), ["table events", "no rows"]),
    "not utf-8": (
        _write_raw("customers", "customer_id,signup_at\nc\xe9,2024-01-01\n".encode("latin-1")),
        ["table customers", "UTF-8"],
    ),
    "wrong extension": (
        _config(lambda c: c["data"]["events"].update(path="events.xlsx")),
        ["table events", "file type '.xlsx'"],
    ),
    "missing file": (
        _config(lambda c: c["data"]["events"].update(path="nowhere.csv")),
        ["table events", "not found"],
    ),
    "unknown config key": (
        _config(lambda c: c.update(churn={"horizon": 90})),
        ["churn.horizon", "unknown key"],
    ),
    "bad config value": (
        _config(lambda c: c.update(churn={"horizon_days": -3})),
        ["churn.horizon_days", "greater than 0"],
    ),
    "required table absent": (
        _config(lambda c: c["data"].pop("purchases")),
        ["data.purchases", "must name a file"],
    ),
    "unknown mapped column": (
        _config(lambda c: c["data"]["purchases"].update(columns={"amout": "x"})),
        ["data.purchases.columns", "unknown column(s) amout"],
    ),
    "mapped column absent from the file": (  # the file's own `amount` was read in silence
        _config(lambda c: c["data"]["purchases"].update(columns={"amount": "total_eur"})),
        ["data.purchases.columns", "amount: total_eur names no column of the file"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_exits_2_with_a_message_naming_the_problem(shop, case):
    mutate, expected = BAD_INPUTS[case]
    shop.raw = {}
    mutate(shop)
    config = shop.write()
    for name, content in shop.raw.items():
        (shop.root / f"{name}.csv").write_bytes(content)
    before = shop.files()
    result = runner.invoke(app, ["validate", "-c", str(config)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for text in expected:
        assert text in result.output, f"{text!r} not in:\n{result.output}"
    assert shop.files() == before


def test_all_problems_are_reported_at_once(shop):
    shop.tables["purchases"].loc[0, "amount"] = "-1"
    shop.tables["surveys"].loc[0, "score"] = "42"
    with pytest.raises(ContractError) as caught:
        load_tables(load_config(shop.write()).data)
    assert {(p.table, p.column) for p in caught.value.problems} == {
        ("purchases", "amount"),
        ("surveys", "score"),
    }


def test_at_most_five_offending_rows_are_listed(shop):
    purchases = pd.concat([shop.tables["purchases"]] * 4, ignore_index=True)
    purchases["order_id"] = [f"o{i}" for i in range(len(purchases))]
    purchases["amount"] = "-1"
    shop.tables["purchases"] = purchases
    with pytest.raises(ContractError) as caught:
        load_tables(load_config(shop.write()).data)
    (problem,) = caught.value.problems
    assert problem.rows == 16 and len(problem.examples) == 5
    assert "first 5 shown" in str(problem)


def test_an_id_marker_is_missing_in_every_table_even_when_customers_hold_it_too(shop):
    """A customer id such as ' N/A' in customers and in purchases: missing in both, not a
    known customer (the marker test on known customers' ids runs once, over customers)."""
    shop.tables["customers"].loc[0, "customer_id"] = " N/A"
    shop.tables["purchases"].loc[[0, 1], "customer_id"] = [" N/A", "NULL"]
    with pytest.raises(ContractError) as caught:
        load_tables(load_config(shop.write()).data)
    found = {(p.table, p.column, p.rule.split(" (")[0]): p for p in caught.value.problems}
    missing = "required value is missing"
    assert found["customers", "customer_id", missing].examples == ("row 1 (customer_id  N/A)",)
    purchases = found["purchases", "customer_id", missing]
    assert (purchases.rows, purchases.examples) == (
        2,
        ("row 1 (order_id o1)", "row 2 (order_id o2)"),
    )


def test_the_rows_shown_are_the_first_offending_ones_of_a_file_read_in_parallel(tmp_path):
    """Offending rows in many row groups (read by several threads), the first of them late:
    the rows shown are the first five in the file, for an error and for a warning."""
    rows = 200_000
    customers = pd.DataFrame({"customer_id": ["c1"], "signup_at": ["2024-01-01"]})
    purchases = pd.DataFrame(
        {
            "order_id": [f"o{i}" for i in range(rows)],
            "customer_id": "c1",
            "ordered_at": pd.Timestamp("2024-02-01"),
            "amount": 1.0,
            "status": "completed",
        }
    )
    negative = list(range(rows - 1, 150_000, -3)) + [120_017, 120_019, 99_999]  # 0-based
    refunded = list(range(rows - 2, 90_000, -5))
    purchases.loc[negative, "amount"] = -1.0
    purchases.loc[refunded, "status"] = "refunded"
    customers.to_parquet(tmp_path / "customers.parquet")
    purchases.to_parquet(tmp_path / "purchases.parquet", row_group_size=5_000)
    paths = {name: TableConfig(path=f"{name}.parquet") for name in ("customers", "purchases")}
    with pytest.raises(ContractError) as caught:
        load_tables(DataConfig(dir=tmp_path, **paths))
    (problem,) = caught.value.problems
    first = sorted(negative)[:5]
    assert problem.rows == len(negative)
    assert problem.examples == tuple(f"row {i + 1} (order_id o{i})" for i in first)
    purchases.loc[negative, "amount"] = 1.0
    (warning,) = validate({"customers": customers, "purchases": purchases}).warnings
    assert warning.rows == len(refunded)
    assert warning.examples == tuple(f"row {i + 1} (order_id o{i})" for i in sorted(refunded)[:5])


def test_parquet_input_and_timezones_are_normalised(shop):
    shop.write()
    purchases = shop.tables["purchases"].assign(
        ordered_at=pd.to_datetime(["2024-02-10T10:00:00+02:00"] * 4, utc=True),
        amount=[1.0, 2.0, 3.0, 4.0],
    )
    purchases.to_parquet(shop.root / "purchases.parquet")
    shop.config["data"]["purchases"]["path"] = "purchases.parquet"
    tables = load_tables(load_config(shop.write()).data)
    assert tables.purchases["ordered_at"].iloc[0] == pd.Timestamp("2024-02-10 08:00:00")


def test_exit_answers_are_stated_reasons_kept_out_of_the_features(shop):
    """An exit answer comes at leaving: it must not count as a survey answer in features."""
    from churnlens.config import FeatureConfig
    from churnlens.features.engine import build_features

    before = load_tables(load_config(shop.write()).data)
    exits = pd.DataFrame(
        {
            "response_id": ["x1", "x2"],
            "customer_id": ["c2", "c3"],
            "answered_at": ["2024-02-01", "2024-02-21"],
            "kind": ["EXIT", "exit"],
            "score": ["", ""],
            "reason": ["Support ", ""],
            "comment": ["", "moved abroad"],
        }
    )
    shop.tables["surveys"] = pd.concat([shop.tables["surveys"], exits], ignore_index=True)
    tables = load_tables(load_config(shop.write()).data)
    assert tables.surveys["response_id"].tolist() == ["s1", "s2", "s3"]
    assert tables.exits["response_id"].tolist() == ["x1", "x2"]
    assert tables.exits["reason"].tolist()[0] == "support"  # a code, compared lower-case
    assert tables.exits["comment"].tolist()[1] == "moved abroad"
    spine = pd.DataFrame(
        {"customer_id": ["c2", "c3"], "cutoff": pd.to_datetime(["2024-03-01"] * 2)}
    )
    config = FeatureConfig(windows_days=[30, 90], btyd=False)
    pd.testing.assert_frame_equal(
        build_features(tables, spine, config), build_features(before, spine, config)
    )


def test_an_exit_answer_needs_a_reason_or_a_comment_and_others_a_score(shop):
    shop.tables["surveys"] = pd.DataFrame(
        {
            "response_id": ["x1", "s9"],
            "customer_id": ["c2", "c3"],
            "answered_at": ["2024-02-01", "2024-02-21"],
            "kind": ["exit", "nps"],
            "score": ["", ""],
            "reason": ["", ""],
        }
    )
    result = runner.invoke(app, ["validate", "-c", str(shop.write())])
    assert result.exit_code == 2, result.output
    assert "surveys.reason: an exit answer needs a reason code or a comment" in result.output
    assert "row 1 (response_id x1)" in result.output
    assert "surveys.score: required value is missing" in result.output
    assert "row 2 (response_id s9)" in result.output and "Traceback" not in result.output


def test_few_valued_text_is_held_as_sorted_categoricals_with_the_same_values(shop, monkeypatch):
    """Text and code columns with few values come back as categoricals (levels sorted, so
    DuckDB orders them as text); one with more (free text) and the customers stay text."""
    monkeypatch.setattr(contract, "MAX_CODE_LEVELS", 2)
    shop.tables["purchases"]["category"] = ["toys", "books", "garden", "toys"]  # 3 values
    shop.tables["purchases"]["channel"] = ["web", " App", "web", None]
    plain = load_tables(load_config(shop.write()).data)
    status = plain.purchases["status"]
    assert isinstance(status.dtype, pd.CategoricalDtype)
    assert list(status.cat.categories) == sorted(set(status))  # codes: lower-case, stripped
    assert plain.purchases["channel"].tolist()[:2] == ["web", " App"]  # text: as it is
    assert plain.purchases["channel"].isna().tolist() == [False, False, False, True]
    assert list(plain.purchases["channel"].cat.categories) == [" App", "web"]
    assert plain.purchases["category"].dtype == "str"
    assert plain.customers["region"].dtype == "str"  # attributes: the model's own dtypes


def test_features_labels_and_kpis_are_the_same_from_categoricals_and_text():
    from churnlens.config import ChurnConfig, Config
    from churnlens.data.simulate import simulate
    from churnlens.features.engine import training_set
    from churnlens.reporting.kpis import period_kpis

    shop = simulate(300, seed=2)
    shop.pop("ground_truth")
    coded = validate(shop)
    text = Tables(**{n: f.copy() for n, f in coded.present().items()}, attributes=coded.attributes)
    for frame in text.present().values():
        for column in frame.columns:
            if isinstance(frame[column].dtype, pd.CategoricalDtype):
                frame[column] = frame[column].astype("str").where(frame[column].notna())
    assert isinstance(coded.events["kind"].dtype, pd.CategoricalDtype)
    assert text.events["kind"].dtype == "str"
    config = Config()
    pd.testing.assert_frame_equal(training_set(coded, config), training_set(text, config))
    churn = ChurnConfig()
    pd.testing.assert_frame_equal(period_kpis(coded, churn), period_kpis(text, churn))
