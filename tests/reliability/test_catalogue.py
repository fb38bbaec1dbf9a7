"""A catalogue of bad inputs run through the real command line.

Each case breaks one thing in the tiny literal shop (a table, the config file or a
command-line option) and runs a command on it. Every case must exit 2 with a message naming
what is wrong, print no traceback, and leave every file as it was (no output created).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import pytest
from typer.testing import CliRunner

from churnlens.cli import app

runner = CliRunner()


@dataclass(frozen=True)
class Case:
    mutate: Callable
    expected: tuple[str, ...]
    command: str = "validate"
    options: tuple[str, ...] = ()


def cell(table, column, row, value):
    def mutate(shop):
        shop.tables[table].loc[row, column] = value

    return mutate


def column(table, name, values):
    def mutate(shop):
        shop.tables[table][name] = values

    return mutate


def rename(table, old, new):
    def mutate(shop):
        shop.tables[table] = shop.tables[table].rename(columns={old: new})

    return mutate


def drop(table, name):
    def mutate(shop):
        shop.tables[table] = shop.tables[table].drop(columns=name)

    return mutate


def config(update):
    def mutate(shop):
        update(shop.config)

    return mutate


def raw_file(name, text: str | bytes):
    """Replace a table's CSV with exact bytes (for what pandas would not write)."""

    def mutate(shop):
        shop.raw[f"{name}.csv"] = text.encode() if isinstance(text, str) else text

    return mutate


def raw_config(text: str):
    def mutate(shop):
        shop.raw["config.yaml"] = text.encode()

    return mutate


def parquet(table, **columns):
    """Store a table as Parquet with the given columns replaced by typed values."""

    def mutate(shop):
        frame = shop.tables[table].assign(**columns)
        shop.parquet[table] = frame
        shop.config["data"][table]["path"] = f"{table}.parquet"

    return mutate


def both(*mutations):
    def mutate(shop):
        for one in mutations:
            one(shop)

    return mutate


MISSING_ID = "required value is missing"
LATE = "after data.latest"
EARLY = "before data.earliest (1990-01-01)"
FINITE = "must be finite"
HUGE = "must be at most 1e+12 in size"
ATTRIBUTE = "attribute name must not be blank nor hold"
PURCHASES_HEADER = "order_id,customer_id,ordered_at,amount,status"

CASES: dict[str, Case] = {
    # customers: ids that are not customers
    "customer id of spaces": Case(
        cell("customers", "customer_id", 1, "   "), ("customers.customer_id", MISSING_ID, "row 2")
    ),
    "customer id NULL": Case(
        cell("customers", "customer_id", 0, "NULL"), ("customers.customer_id", MISSING_ID)
    ),
    "customer id ?": Case(cell("customers", "customer_id", 0, "?"), ("customers.customer_id",)),
    "customer id -": Case(
        cell("customers", "customer_id", 2, "-"), ("customers.customer_id", MISSING_ID, "row 3")
    ),
    "customer id N/A": Case(
        cell("customers", "customer_id", 0, "N/A"), ("customers.customer_id", MISSING_ID)
    ),
    "customer id na": Case(
        cell("customers", "customer_id", 0, "na"), ("customers.customer_id", MISSING_ID)
    ),
    "customer id empty": Case(
        cell("customers", "customer_id", 1, None), ("customers.customer_id", MISSING_ID)
    ),
    # customers: implausible dates
    "signup in 1900": Case(
        cell("customers", "signup_at", 0, "1900-01-01"), ("customers.signup_at", EARLY, "row 1")
    ),
    "signup in 2999": Case(
        cell("customers", "signup_at", 2, "2999-01-01"), ("customers.signup_at", LATE, "row 3")
    ),
    "signup not a date": Case(
        cell("customers", "signup_at", 1, "yesterday"), ("customers.signup_at", "not a date")
    ),
    "cancelled before signup": Case(
        column("customers", "cancelled_at", ["2023-12-01", None, None]),
        ("customers.cancelled_at", "must not be before signup_at"),
    ),
    "cancelled in 2999": Case(
        column("customers", "cancelled_at", [None, "2999-12-31", None]),
        ("customers.cancelled_at", LATE, "row 2"),
    ),
    # customers: attribute names LightGBM cannot take, and numbers that are not finite
    "attribute name with quote": Case(
        rename("customers", "region", 're"gion'), (ATTRIBUTE, "customers.'re\"gion'")
    ),
    "attribute name with comma": Case(
        rename("customers", "region", "region,zone"), (ATTRIBUTE, "'region,zone'")
    ),
    "attribute name with colon": Case(
        rename("customers", "region", "geo:region"), (ATTRIBUTE, "'geo:region'")
    ),
    "attribute name with bracket": Case(
        rename("customers", "region", "region[0]"), (ATTRIBUTE, "'region[0]'")
    ),
    "attribute name with brace": Case(
        rename("customers", "region", "{region}"), (ATTRIBUTE, "'{region}'")
    ),
    "attribute name with tab": Case(
        rename("customers", "region", "re\tgion"), (ATTRIBUTE, "'re\\tgion'")
    ),
    "attribute name blank": Case(rename("customers", "region", " "), (ATTRIBUTE, "' '")),
    "numeric attribute inf": Case(
        column("customers", "income", ["10", "inf", "20"]), ("customers.income", FINITE, "row 2")
    ),
    "customers duplicate header": Case(
        raw_file("customers", "customer_id,signup_at,signup_at\nc1,2024-01-01,2024-01-02\n"),
        ("table customers", "duplicate column header", "'signup_at'"),
    ),
    "customers without signup column": Case(
        drop("customers", "signup_at"), ("customers.signup_at", "required column is missing")
    ),
    # purchases: dates
    "purchase in 2999": Case(
        cell("purchases", "ordered_at", 1, "2999-06-01"),
        ("purchases.ordered_at", LATE, "row 2 (order_id o2)"),
    ),
    "purchase in 1985": Case(
        cell("purchases", "ordered_at", 0, "1985-01-01"), ("purchases.ordered_at", EARLY)
    ),
    "purchase before signup": Case(
        cell("purchases", "ordered_at", 0, "2023-12-31"),
        ("purchases.ordered_at", "before the customer's signup day", "order_id o1"),
    ),
    "purchase date day first": Case(
        cell("purchases", "ordered_at", 2, "31/01/2024"), ("purchases.ordered_at", "not a date")
    ),
    # purchases: numbers
    "amount inf": Case(
        cell("purchases", "amount", 0, "inf"), ("purchases.amount", FINITE, "order_id o1")
    ),
    "amount -inf": Case(cell("purchases", "amount", 1, "-inf"), ("purchases.amount", FINITE)),
    "amount 1e300": Case(
        cell("purchases", "amount", 2, "1e300"), ("purchases.amount", HUGE, "order_id o3")
    ),
    "amount 1.2e17": Case(cell("purchases", "amount", 3, "1.2e17"), ("purchases.amount", HUGE)),
    "amount nan text": Case(
        cell("purchases", "amount", 0, "nan"), ("purchases.amount", "not a number")
    ),
    "amount NaN text": Case(
        cell("purchases", "amount", 1, "NaN"), ("purchases.amount", "not a number")
    ),
    "amount true text": Case(
        cell("purchases", "amount", 0, "true"), ("purchases.amount", "not a number")
    ),
    "amount decimal comma": Case(
        cell("purchases", "amount", 0, "12,50"), ("purchases.amount", "not a number")
    ),
    "amount boolean parquet": Case(
        parquet("purchases", amount=[True, False, True, True]),
        ("purchases.amount", "must be a number, not true/false"),
    ),
    "amount inf parquet": Case(
        parquet("purchases", amount=[1.0, float("inf"), 2.0, 3.0]), ("purchases.amount", FINITE)
    ),
    "discount inf": Case(
        column("purchases", "discount", ["0", "inf", "0", "0"]),
        ("purchases.discount", FINITE, "order_id o2"),
    ),
    "discount 1e13": Case(
        column("purchases", "discount", ["0", "0", "1e13", "0"]), ("purchases.discount", HUGE)
    ),
    "discount negative": Case(
        column("purchases", "discount", ["-0.5", "0", "0", "0"]),
        ("purchases.discount", "must be >= 0"),
    ),
    # purchases: ids, headers, mapping, status
    "order id NULL": Case(
        cell("purchases", "order_id", 3, "NULL"), ("purchases.order_id", MISSING_ID, "row 4")
    ),
    "purchase customer blank": Case(
        cell("purchases", "customer_id", 0, "  "), ("purchases.customer_id", MISSING_ID)
    ),
    "purchase customer N/A": Case(
        cell("purchases", "customer_id", 2, "N/A"), ("purchases.customer_id", MISSING_ID)
    ),
    "purchases duplicate header": Case(
        raw_file(
            "purchases", "order_id,customer_id,ordered_at,amount,amount\no1,c1,2024-01-10,1,2\n"
        ),
        ("table purchases", "duplicate column header", "'amount'"),
    ),
    "mapped column clashes": Case(
        both(
            column("purchases", "total", ["1", "2", "3", "4"]),
            config(lambda c: c["data"]["purchases"].update(columns={"amount": "total"})),
        ),
        ("data.purchases.columns", "amount would appear twice"),
    ),
    "unknown status": Case(
        cell("purchases", "status", 1, " SHIPPED "), ("purchases.status", "must be one of")
    ),
    # purchases: refund times (o3 is c2's refunded purchase of 2024-01-20)
    "refund before its order": Case(
        column("purchases", "refunded_at", [None, None, "2024-01-19", None]),
        ("purchases.refunded_at", "must not be before ordered_at", "row 3 (order_id o3)"),
    ),
    "refund time on a completed purchase": Case(
        column("purchases", "refunded_at", ["2024-01-15", None, "2024-01-25", None]),
        ("purchases.refunded_at", "status is not refunded or returned", "order_id o1"),
    ),
    "refund in 2999": Case(
        column("purchases", "refunded_at", [None, None, "2999-01-25", None]),
        ("purchases.refunded_at", LATE, "order_id o3"),
    ),
    "refund time not a date": Case(
        column("purchases", "refunded_at", [None, None, "soon", None]),
        ("purchases.refunded_at", "not a date", "order_id o3"),
    ),
    # tickets
    "ticket opened in 2999": Case(
        cell("tickets", "opened_at", 0, "2999-01-01"), ("tickets.opened_at", LATE, "ticket_id t1")
    ),
    "ticket opened in 1970": Case(
        cell("tickets", "opened_at", 1, "1970-01-01"), ("tickets.opened_at", EARLY)
    ),
    "ticket resolved in 2999": Case(
        cell("tickets", "resolved_at", 0, "2999-01-01"), ("tickets.resolved_at", LATE)
    ),
    "ticket closed before opened": Case(
        column("tickets", "closed_at", ["2024-01-10", ""]),
        ("tickets.closed_at", "must not be before opened_at", "ticket_id t1"),
    ),
    "ticket closed not a date": Case(
        column("tickets", "closed_at", ["", "soon"]), ("tickets.closed_at", "not a date")
    ),
    "reopened before opened": Case(
        column("tickets", "reopened_at", ["", "2024-01-20"]),
        ("tickets.reopened_at", "must not be before opened_at", "ticket_id t2"),
    ),
    "reopened time on a ticket never reopened": Case(
        column("tickets", "reopened_at", ["2024-01-13", ""]),
        ("tickets.reopened_at", "reopened count is 0", "ticket_id t1"),
    ),
    "reopened in 2999": Case(
        column("tickets", "reopened_at", ["", "2999-01-01"]), ("tickets.reopened_at", LATE)
    ),
    "reopened inf": Case(cell("tickets", "reopened", 0, "inf"), ("tickets.reopened", FINITE)),
    "reopened 1e300": Case(cell("tickets", "reopened", 1, "1e300"), ("tickets.reopened", HUGE)),
    "ticket id NULL": Case(cell("tickets", "ticket_id", 0, "NULL"), ("tickets.ticket_id",)),
    "ticket customer ?": Case(
        cell("tickets", "customer_id", 1, "?"), ("tickets.customer_id", MISSING_ID)
    ),
    "tickets duplicate header": Case(
        raw_file("tickets", "ticket_id,customer_id,opened_at,opened_at\nt1,c1,2024-01-11,x\n"),
        ("table tickets", "duplicate column header"),
    ),
    # surveys
    "survey score inf": Case(cell("surveys", "score", 0, "inf"), ("surveys.score", FINITE)),
    "survey score nan": Case(cell("surveys", "score", 1, "nan"), ("surveys.score", "not a number")),
    "survey answered in 1900": Case(
        cell("surveys", "answered_at", 2, "1900-05-01"), ("surveys.answered_at", EARLY)
    ),
    "survey response id blank": Case(
        cell("surveys", "response_id", 0, " "), ("surveys.response_id", MISSING_ID)
    ),
    "survey kind blank": Case(cell("surveys", "kind", 1, "   "), ("surveys.kind", MISSING_ID)),
    "ces score above scale": Case(
        cell("surveys", "score", 2, "9"), ("surveys.score", "ces scores must be whole numbers")
    ),
    "survey score boolean parquet": Case(
        parquet("surveys", score=[True, True, False]),
        ("surveys.score", "must be a number, not true/false"),
    ),
    # events
    "event in 2999": Case(cell("events", "at", 0, "2999-01-01"), ("events.at", LATE, "row 1")),
    "event kind blank": Case(cell("events", "kind", 1, " "), ("events.kind", MISSING_ID)),
    "event customer NULL": Case(
        cell("events", "customer_id", 0, "NULL"), ("events.customer_id", MISSING_ID)
    ),
    "event customer unknown": Case(
        cell("events", "customer_id", 1, "c99"), ("events.customer_id", "unknown customer")
    ),
    "events file empty": Case(raw_file("events", b""), ("table events", "is empty")),
    # the config file
    "earliest not a date": Case(
        config(lambda c: c["data"].update(earliest="soon")), ("data.earliest", "valid date")
    ),
    "latest before earliest": Case(
        config(lambda c: c["data"].update(earliest="2024-01-01", latest="2023-01-01")),
        ("data", "'latest' is before 'earliest'"),
    ),
    "data after configured latest": Case(
        config(lambda c: c["data"].update(latest="2024-01-31")),
        ("purchases.ordered_at", "after data.latest (2024-01-31"),
    ),
    "data before configured earliest": Case(
        config(lambda c: c["data"].update(earliest="2024-01-15")),
        ("customers.signup_at", "before data.earliest (2024-01-15)"),
    ),
    "misspelt data key": Case(
        config(lambda c: c["data"].update(earliset="1990-01-01")),
        ("data.earliset", "unknown key"),
    ),
    "csat scale too small": Case(
        config(lambda c: c["data"].update(csat_scale=1)), ("data.csat_scale", "greater than")
    ),
    "risk tiers out of order": Case(
        config(lambda c: c.update(scoring={"medium_risk_threshold": 0.6})),
        ("scoring", "medium_risk_threshold must be below high_risk_threshold"),
    ),
    "drift limits out of order": Case(
        config(lambda c: c.update(scoring={"drift_warn_psi": 0.3})),
        ("scoring", "drift_warn_psi must be below drift_stop_psi"),
    ),
    "config not yaml": Case(raw_config("data: [unclosed\n"), ("config", "not valid YAML")),
    "config a list": Case(raw_config("- data\n"), ("config", "mapping of sections")),
    "cutoff dates before the data": Case(
        config(lambda c: c["cutoffs"].update(dates=["2020-01-01"])),
        ("config cutoffs", "2020-01-01", "before the start of the data (2024-01-01)"),
        "features",
    ),
    "cutoff schedule before the data": Case(
        config(lambda c: c.update(cutoffs={"start": "2019-01-01", "end": "2019-03-01"})),
        ("config cutoffs", "2019-03-01", "before the start of the data"),
        "features",
    ),
    "cutoff after the data": Case(
        config(lambda c: c["cutoffs"].update(dates=["2024-03-01"])),
        ("config cutoffs.dates", "2024-03-01", "label window"),
        "features",
    ),
    "bad data in features command": Case(
        cell("purchases", "amount", 0, "inf"), ("purchases.amount", FINITE), "features"
    ),
    # command-line options
    "features without out": Case(lambda shop: None, ("Missing option '--out'",), "features-bare"),
    "score explain unknown": Case(
        lambda shop: None,
        ("explain must be 'targets', 'high' or 'all'", "'everyone'"),
        "score",
        ("--explain", "everyone"),
    ),
    "score budget zero": Case(
        lambda shop: None, ("budget contacts must be > 0",), "score", ("--budget", "0")
    ),
    "score budget money negative": Case(
        lambda shop: None, ("budget money must be > 0",), "score", ("--budget-money", "-5")
    ),
    "score top not a number": Case(
        lambda shop: None, ("Invalid value for '--top'",), "score", ("--top", "ten")
    ),
    "score as-of not a date": Case(
        lambda shop: None,
        ("--as-of", "2025-13-45", "not a date"),
        "score",
        ("--as-of", "2025-13-45"),
    ),
    "score as-of day first": Case(
        lambda shop: None, ("--as-of", "not a date"), "score", ("--as-of", "01/02/2024")
    ),
    "score as-of after the data": Case(
        lambda shop: None,
        ("--as-of 2025-01-01 is after the data end",),
        "score",
        ("--as-of", "2025-01-01"),
    ),
    "score amount inf": Case(
        cell("purchases", "amount", 0, "inf"), ("purchases.amount", FINITE), "score"
    ),
    "score purchase in 2999": Case(
        cell("purchases", "ordered_at", 1, "2999-06-01"), ("purchases.ordered_at", LATE), "score"
    ),
    "score attribute name with comma": Case(
        rename("customers", "region", "region,zone"), (ATTRIBUTE,), "score"
    ),
    "score other churn horizon": Case(
        config(lambda c: c.update(churn={"horizon_days": 30})),
        ("model: trained for horizon_days = 90", "churn.horizon_days is 30"),
        "score",
    ),
    "simulate format": Case(
        lambda shop: None, ("--format must be parquet or csv",), "simulate", ("--format", "xlsx")
    ),
    "simulate no customers": Case(
        lambda shop: None, ("Invalid value for '--customers'",), "simulate", ("--customers", "0")
    ),
}


def snapshot(root) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def arguments(case: Case, config, root, model=None) -> list[str]:
    out = root / "out"
    score = ["score", "-c", str(config), "--as-of", "2024-02-01", "--out", str(out)]
    return {
        "validate": ["validate", "-c", str(config)],
        "features": ["features", "-c", str(config), "--out", str(out / "ts.parquet")],
        "features-bare": ["features", "-c", str(config)],
        "score": [*score, "--model", str(model)],
        "simulate": ["simulate", "--out", str(out)],
    }[case.command] + list(case.options)


def test_the_catalogue_is_large():
    assert len(CASES) >= 60


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_exits_2_naming_the_problem_and_writes_nothing(shop, name, request):
    case = CASES[name]
    # score needs a real model that loads; the hostile shop's is trained once per session
    model = request.getfixturevalue("hostile_model")[1] if case.command == "score" else None
    shop.raw, shop.parquet = {}, {}
    case.mutate(shop)
    config = shop.write()
    for file, content in shop.raw.items():
        (shop.root / file).write_bytes(content)
    for table, frame in shop.parquet.items():
        frame.to_parquet(shop.root / f"{table}.parquet", index=False)
    before = snapshot(shop.root)
    model_files = snapshot(model) if model else None
    result = runner.invoke(app, arguments(case, config, shop.root, model))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    for text in case.expected:
        assert text in result.output, f"{text!r} not in:\n{result.output}"
    assert snapshot(shop.root) == before
    assert not (shop.root / "out").exists()
    assert model_files is None or snapshot(model) == model_files


def test_the_unchanged_shop_passes_every_command_used_above(shop):
    """The catalogue's failures come from its mutations, not from the fixture."""
    config = shop.write()
    assert runner.invoke(app, ["validate", "-c", str(config)]).exit_code == 0
    frame = pd.read_csv(shop.root / "purchases.csv")
    assert len(frame) == 4
