"""The data contract: the input tables' schemas, the column mapping, and validation.

Every broken input becomes one `ContractError` that lists each problem with the table, the
column, the rule and up to five offending rows (1-based data rows of the file, with the row's
id where the table has one), so a user can fix the file without reading a traceback. All
rules run before anything is returned, so one run reports every problem at once.

The rules run as SQL, in DuckDB (`load_tables` scans the files itself; `validate` reads
DataFrames) or transpiled on Spark (`churnlens.spark`): a conversion of each column per
table, one aggregate query counting every rule's offending rows (and one more over the id
column for its rules), and one small query for the first rows of the rules that fired. The
checked tables stay in DuckDB (`churnlens.data.tables`), few-valued text as ENUMs
(categoricals in pandas, see MAX_CODE_LEVELS); there the scan that counts a table's rules
also writes it, each row with its customer's number (`tables.KEY`, `DuckDBEngine.keep`).
Dates parse as pandas' ISO 8601 reader does (a few odd texts aside: `-1` and `2024-01-31T14`
are no dates, a year past 2262 is a date after `data.latest`).

Errors are what would silently corrupt labels or features, or crash a later step:
- a date before `data.earliest` (default 1990-01-01) or after `data.latest` (default: the day
  of the run): one date in 2999 moves every cutoff and makes everyone look churned;
- a purchase before its customer's signup day: purchases define the population and tenure,
  so the signup date or the customer id is wrong;
- a number that is not finite, larger than 1e12 in size (beyond any real amount, and beyond
  the exact money type the features use), or a true/false column where a number belongs;
- an id that is blank or a missing-value marker (?, NULL, -, NA, N/A): not a customer;
- an attribute name LightGBM cannot take as a feature name (" , : [ ] { } or control
  characters).
Warnings are plausible in real exports and reported by `validate` (`Tables.warnings`):
- a ticket, survey answer or event before the signup day (contacts before an account exists);
- a ticket that never ends (neither resolved_at nor closed_at): open at every later cutoff;
- a column a non-customer table does not know: it is ignored, not used;
- customer attributes: they are taken as of the data export, so a value changed later reaches
  every past cutoff (a leak the contract cannot see);
- refunded or returned purchases without `refunded_at` (no column, or a blank): they never
  count, not even at cutoffs before the refund, so the status as of the export reaches past
  cutoffs.

A completed purchase at time `t` (`completed_sql`, the one definition for features, labels,
populations, BTYD and KPIs): status `completed` (or no status column), or refunded or
returned with `refunded_at` at or after `t` — a refund counts from its time on, like any row
(a row at `t` is not seen at a cutoff `t`). `refunded_at` must not be before `ordered_at` and
is only allowed on refunded or returned purchases.

Exit surveys: an answer of kind `exit` states why a customer left, as a `reason` code, a
`comment`, or both (no score). It comes at leaving, so it is no survey score: `validate`
moves exit answers out of `surveys` into `Tables.exits`, where the report reads them and no
feature does (a count of answers would otherwise learn from the leaving itself).

A raw transaction log is enough: without a customers table the customers are derived from
the purchases (each one's first purchase is their signup), and without order_id each
purchase is numbered by its data row. Dates are ISO 8601 unless a table declares its
`date_format` (such as day-first `%d/%m/%Y %H:%M`).

Enumerated text (purchase status, survey kind, event kind) is compared lower-case and
stripped, so `LOGIN ` and `login` are one kind. Two ticket times are derived for the
features (`with_ticket_times`): `ended_at`, the first of resolved_at and closed_at, and
`reopened_since`, when a reopened ticket counts as reopened: its last reopening
(`reopened_at`) when given, else its opening (the time is unknown, so every cutoff sees it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

import duckdb
import numpy as np
import pandas as pd

from churnlens.config import DataConfig
from churnlens.data.io import Source, quote, scan_table
from churnlens.data.tables import (
    KEY,
    STORE,
    Tables,
    compress_if_large,
    open_store,
    timestamp_sql,
)
from churnlens.errors import ChurnlensError

Kind = Literal["id", "datetime", "float", "int", "text", "code"]  # code: lower-case, stripped
PURCHASE_STATUSES = ("completed", "cancelled", "refunded", "returned")
REFUND_STATUSES = ("refunded", "returned")
COMPLETION_COLUMNS = ("status", "refunded_at")  # what completed_sql reads
SCORED_SURVEYS = ("nps", "csat", "ces")
EXIT_SURVEY = "exit"
SURVEY_KINDS = (*SCORED_SURVEYS, EXIT_SURVEY)
MAX_EXAMPLES = 5
# a text attribute with a distinct value for at least this share of the customers who have
# one (and this many values) is an identifier, not a trait customers share: warned about
IDENTIFIER_SHARE, IDENTIFIER_LEVELS = 0.9, 50
MAX_NUMBER = 1e12
# text and code columns of the tables other than customers (status, category, channel, kind,
# ...) with at most this many values are held as pandas categoricals, levels sorted (DuckDB
# reads them as ENUM and orders them as text): at 1M customers the purchases' status,
# category and channel take 50 MB instead of 740 MB
MAX_CODE_LEVELS = 10_000
# The smallest unsigned type with a bit for each of a table's rules (DuckDBEngine.keep)
FLAG_TYPES = ((8, "UTINYINT"), (16, "USMALLINT"), (32, "UINTEGER"), (64, "UBIGINT"))
MISSING_MARKERS = ("", "?", "-", "NULL", "NA", "N/A", "NAN", "NONE")
UNSAFE_NAME = re.compile(r'[",:\[\]{}\x00-\x1f\x7f]')
TICKET_ENDS = ("resolved_at", "closed_at")


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    required: bool = False


@dataclass(frozen=True)
class TableSchema:
    name: str
    time_column: str
    columns: tuple[Column, ...]
    key: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)


SCHEMAS: dict[str, TableSchema] = {
    schema.name: schema
    for schema in (
        TableSchema(
            "customers",
            "signup_at",
            (
                Column("customer_id", "id", True),
                Column("signup_at", "datetime", True),
                Column("cancelled_at", "datetime"),
            ),
            key="customer_id",
        ),
        TableSchema(
            "purchases",
            "ordered_at",
            (
                Column("order_id", "id", True),  # numbered by data row when absent
                Column("customer_id", "id", True),
                Column("ordered_at", "datetime", True),
                Column("amount", "float", True),
                Column("status", "code"),
                Column("discount", "float"),
                Column("category", "text"),
                Column("channel", "text"),
                Column("refunded_at", "datetime"),
            ),
            key="order_id",
        ),
        TableSchema(
            "tickets",
            "opened_at",
            (
                Column("ticket_id", "id", True),
                Column("customer_id", "id", True),
                Column("opened_at", "datetime", True),
                Column("first_response_at", "datetime"),
                Column("resolved_at", "datetime"),
                Column("closed_at", "datetime"),
                Column("channel", "text"),
                Column("priority", "text"),
                Column("reopened", "int"),
                Column("reopened_at", "datetime"),
                Column("topic", "text"),
            ),
            key="ticket_id",
        ),
        TableSchema(
            "surveys",
            "answered_at",
            (
                Column("response_id", "id", True),
                Column("customer_id", "id", True),
                Column("answered_at", "datetime", True),
                Column("kind", "code", True),
                Column("score", "float", True),  # blank in exit answers
                Column("reason", "code"),
                Column("comment", "text"),
            ),
            key="response_id",
        ),
        TableSchema(
            "events",
            "at",
            (
                Column("customer_id", "id", True),
                Column("at", "datetime", True),
                Column("kind", "code", True),
            ),
        ),
    )
}


@dataclass(frozen=True)
class Problem:
    table: str
    column: str
    rule: str
    rows: int = 0
    examples: tuple[str, ...] = ()

    def __str__(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        if not self.rows:
            return f"{where}: {self.rule}"
        shown = ", ".join(self.examples)
        more = f" (first {len(self.examples)} shown)" if self.rows > len(self.examples) else ""
        return f"{where}: {self.rule} — {self.rows} row(s) break it: {shown}{more}"


class ContractError(ChurnlensError):
    """The input tables break the data contract; `problems` lists every broken rule."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        lines = [f"invalid input data ({len(problems)} problem(s)):"]
        lines += [f"  - {problem}" for problem in problems]
        super().__init__("\n".join(lines))


# --- the checks, as SQL over each table ---------------------------------------------------
#
# Each input is a view `_src_{table}` (canonical column names and `_row`, its data row). From
# it `_raw_{table}` takes each value as the input has it (a blank text or a NaN is missing),
# and `_chk_{table}` adds, per column i, `_r{i}` (the raw value), `_p{i}` (its parse) and the
# converted value under the column's name. Every rule is a condition over `_chk_{table}`:
# one aggregate query per table counts each rule's rows (joined to `_signups`, each
# customer's signup day, when the customers are known), another the id column's; a small
# query fetches the first offending rows of the rules that fired (on DuckDB, a scan that
# stops at them). The SQL is DuckDB's; `churnlens.spark` runs it transpiled.

# what str.strip() strips, less the rare wide Unicode spaces (each costs DuckDB's trim time)
WHITESPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0"
TEXT_TYPES = ("varchar", "string", "text")
INT_TYPES = ("bigint", "integer", "int", "smallint", "tinyint", "hugeint", "long", "short")
INT_TYPES += ("ubigint", "uinteger", "usmallint", "utinyint", "uhugeint", "byte")
FLOAT_TYPES = ("double", "float", "real")
# forms pandas' ISO 8601 parser takes and a SQL cast does not: 20240131, 2024-01, 2024
ISO_EXTRA = r"^[0-9]{4}([0-9]{4}|-[0-9]{1,2})?$"
ISO_EXTRA_FORMATS = "['%Y%m%d', '%Y-%m', '%Y']"
# what a SQL cast takes and pandas does not: words (infinity, a zone name such as UTC), 24:00
NOT_ISO = "[A-Za-z]{2}|[T ]24:"


class Engine(Protocol):
    """What the checks need of an SQL engine (DuckDB here, Spark in `churnlens.spark`)."""

    # a query without ORDER BY returns a view's rows in their `_row` order, so the first
    # offending rows need no sort of every offending row (and the scan stops at them)
    keeps_order: bool

    def names(self, table: str) -> list: ...  # the input's column names, as it has them

    def register(self, table: str, view: str, names: list[str]) -> None: ...

    def types(self, view: str) -> dict[str, str]: ...  # column -> SQL type name

    def view(self, name: str, sql: str, keep: bool = False) -> None: ...

    def rows(self, sql: str) -> list[tuple]: ...

    def positions(self, view: str, rows: list) -> list[int]: ...  # `_row`s as data rows


class DuckDBEngine:
    """The checks in DuckDB, on files it scans or tables in memory (`data.io.Source`)."""

    keeps_order = True  # preserve_insertion_order: a scan's rows come in file order

    def __init__(self, con: duckdb.DuckDBPyConnection, sources: dict[str, Source]):
        self.con, self.sources = con, sources
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET preserve_insertion_order = true")
        # pandas keeps text as large_string: Arrow's plain string would be cast, row by row
        con.execute("SET arrow_large_buffer_size = true")

    def names(self, table: str) -> list:
        return self.sources[table].names

    def register(self, table: str, view: str, names: list[str]) -> None:
        self.sources[table].register(self.con, view, names)

    def types(self, view: str) -> dict[str, str]:
        relation = self.con.table(view)
        kinds = map(str, relation.types)
        return dict(zip(relation.columns, kinds, strict=True))

    def view(self, name: str, sql: str, keep: bool = False) -> None:
        kind = "TABLE" if keep else "VIEW"
        self.con.execute(f"CREATE OR REPLACE TEMP {kind} {name} AS {sql}")

    def rows(self, sql: str) -> list[tuple]:
        return self.con.execute(sql).fetchall()

    def positions(self, view: str, rows: list) -> list[int]:
        return list(rows)

    def keep(self, source: str, rules: list[_Rule], table: str, select: str, levels) -> tuple:
        """The counts of `rules` over `source` (a table's checked rows joined to its
        customers), from the scan that writes `select` of those rows into the store as
        `table`: the rows are converted and joined to the customers once, and keep their
        customer's key (1M customers: validation 20.4 s instead of 23.9, and the features
        2 s faster; benchmarks/results/growth.md). Each row carries its rules' flags as the
        bits of one small number until they are counted: a dropped column's memory is not
        given back, and a flag column per rule would hold 0.5 GB at 1M."""
        assert len(rules) <= 64 and all(rule.count == f"count_if({rule.when})" for rule in rules)
        kind = next(t for n, t in FLAG_TYPES if len(rules) <= n)
        bits = " + ".join(
            f"CASE WHEN {r.when} THEN {1 << i} ELSE 0 END" for i, r in enumerate(rules)
        )
        stored = f"{STORE}.main.{table}"
        query = _coded(f"{select}, CAST({bits} AS {kind}) AS _flags FROM {source}", levels)
        self.con.execute(f"CREATE TABLE {stored} AS {query}")
        counted = ", ".join(f"count_if((_flags >> {i}) & 1 = 1)" for i in range(len(rules)))
        (row,) = self.rows(f"SELECT {counted} FROM {stored}")
        self.con.execute(f"ALTER TABLE {stored} DROP COLUMN _flags")
        return row


def _type_class(sql_type: str) -> str:
    kind = sql_type.lower()
    if kind in TEXT_TYPES or kind.startswith("varchar"):
        return "text"
    if kind == "boolean":
        return "bool"
    if kind.startswith("timestamp") or kind == "date":
        return "time"
    if kind in FLOAT_TYPES or kind.startswith("decimal"):
        return "float"
    return "int" if kind in INT_TYPES else "other"


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _text(sql: str, source: str) -> str:
    """A value as text, as pandas writes it (True/False for booleans)."""
    if source == "bool":
        return f"CASE WHEN {sql} THEN 'True' WHEN NOT {sql} THEN 'False' END"
    return sql if source == "text" else f"CAST({sql} AS VARCHAR)"


def _padded(sql: str) -> str:
    """Whether a text starts or ends with whitespace (cheaper than trimming every value)."""
    blanks = _lit(WHITESPACE)
    return f"(contains({blanks}, left({sql}, 1)) OR contains({blanks}, right({sql}, 1)))"


def _stripped(sql: str) -> str:
    return f"CASE WHEN {_padded(sql)} THEN trim({sql}, {_lit(WHITESPACE)}) ELSE {sql} END"


def _marker(text: str, kind: Kind) -> str:
    """Whether a text is a missing-value marker: for ids any of MISSING_MARKERS, for codes
    a blank, once stripped and upper-cased. Only a short or padded text can be one, and a
    blank text starts with whitespace, so most texts pass on the cheap tests alone."""
    markers = MISSING_MARKERS if kind == "id" else ("",)
    short = max(map(len, markers))
    blanks = _lit(WHITESPACE)
    edges = _padded(text) if short else f"contains({blanks}, left({text}, 1))"
    marker = f"upper({_stripped(text)}) IN ({', '.join(map(_lit, markers))})"
    return f"CASE WHEN length({text}) <= {short} OR {edges} THEN {marker} ELSE false END"


def _number(sql: str, source: str) -> str:
    """A value as a number, NULL where pandas' to_numeric gives none (NaN text included)."""
    if source in ("float", "int"):
        return f"CAST({sql} AS DOUBLE)"
    if source == "bool":
        return "CAST(NULL AS DOUBLE)"
    text = _text(sql, source)
    parsed = f"TRY_CAST({text} AS DOUBLE)"
    return f"CASE WHEN strpos({text}, '_') = 0 AND NOT isnan({parsed}) THEN {parsed} END"


def _time(sql: str, source: str, declared: str | None) -> str:
    """A value as a timestamp (UTC, no zone), NULL where it is no date."""
    if source == "time":
        return f"CAST({sql} AS TIMESTAMP)"
    text = _text(sql, source)
    if declared:
        return f"CAST(try_strptime({text}, {_lit(declared)}) AS TIMESTAMP)"
    extra = f"CASE WHEN regexp_matches({text}, {_lit(ISO_EXTRA)}) THEN "
    extra += f"try_strptime({text}, {ISO_EXTRA_FORMATS}) END"
    cast = f"CAST(TRY_CAST({text} AS TIMESTAMPTZ) AS TIMESTAMP)"
    iso = f"CASE WHEN NOT regexp_matches({text}, {_lit(NOT_ISO)}) THEN {cast} END"
    return f"coalesce({iso}, {extra})"


@dataclass
class _Rule:
    """One rule of one table: `when` marks offending rows of `source` (None: the rule is
    about a column or the table); `count` the aggregate giving how many (-1: ask `rows_from`)."""

    table: str
    column: str
    rule: str
    when: str | None = None
    warning: bool = False
    label: str | None = None  # SQL of the id shown beside an offending row
    source: str = ""
    count: str = ""
    rows_from: str = ""

    def __post_init__(self):
        self.count = self.count or f"count_if({self.when})"
        self.rows_from = self.rows_from or self.source


class _Table:
    """The SQL of one table's conversion and its rules, in the order they are reported."""

    def __init__(self, schema: TableSchema, engine: Engine, rules: list[_Rule]):
        self.schema, self.engine, self.rules = schema, engine, rules
        self.view = f"_chk_{schema.name}"
        self.raw_label: str | None = None
        self.columns: list[str] = []
        self.customer_missing: tuple[_Rule, str, str] | None = None  # (rule, raw value, text)
        self.keys = ""  # the query of the key's rules
        self.texts: dict[str, tuple[str, str]] = {}  # text/code column -> (raw value, its SQL)

    def levels(self) -> dict[str, list[str]]:
        """The sorted values of each text and code column with few (MAX_CODE_LEVELS), found
        from the raw values (an estimate of how many first, so free text is not collected):
        converting the few distinct raw values is cheaper than converting every row."""
        texts, raw = self.texts, f"_raw_{self.schema.name}"
        if not texts:
            return {}
        estimates = self.engine.rows(
            f"SELECT {', '.join(f'approx_count_distinct({quote(c)})' for c in texts)} FROM {raw}"
        )[0]
        few = [c for c, n in zip(texts, estimates, strict=True) if 0 < n <= MAX_CODE_LEVELS]
        if not few:
            return {}
        values = []
        for column in few:
            r, sql = texts[column]
            values.append(
                f"(SELECT list(DISTINCT {sql}) FILTER (WHERE {sql} IS NOT NULL) "
                f"FROM (SELECT DISTINCT {quote(column)} AS {r} FROM {raw}) AS _v)"
            )
        found = self.engine.rows(f"SELECT {', '.join(values)}")[0]
        return {c: sorted(v) for c, v in zip(few, found, strict=True) if v}

    def add(self, column: str, rule: str, when: str | None = None, **options) -> None:
        options.setdefault("label", self.label)
        options.setdefault("source", self.view)
        self.rules.append(_Rule(self.schema.name, column, rule, when, **options))

    @property
    def label(self) -> str | None:
        key = self.schema.key
        return quote(key) if key and key in self.columns else None

    def build(self, names: list, data: DataConfig, ignored: set) -> list[str] | None:
        """Register the views, leaving out the `ignored` columns; return the converted
        columns, None when a required one is missing (then only that is reported)."""
        schema, name = self.schema, self.schema.name
        self.engine.register(name, f"_src_{name}", [str(n) for n in names])
        names = [n for n in names if str(n) not in ignored]
        text_names = [str(n) for n in names]
        sources = {
            n: _type_class(t)
            for n, t in self.engine.types(f"_src_{name}").items()
            if n not in ignored
        }
        self.sources = sources
        raw = ["_row"]
        if name == "purchases" and "order_id" not in text_names:  # numbered by data row
            raw.append("CAST(_row AS VARCHAR) AS order_id")
            sources["order_id"] = "text"
        missing = [c.name for c in schema.columns if c.required and c.name not in sources]
        for column in missing:
            self.add(column, "required column is missing")
        if missing:
            return None
        for column in text_names:
            kind, value = sources[column], quote(column)
            if kind == "text":
                value = f"NULLIF({value}, '')"
            elif kind == "float":
                value = f"CASE WHEN NOT isnan(CAST({value} AS DOUBLE)) THEN {value} END"
            raw.append(f"{value} AS {quote(column)}")
        self.engine.view(f"_raw_{name}", f"SELECT {', '.join(raw)} FROM _src_{name}")
        present = [n for n in sources if n != "_row"]  # the raw view's columns
        extra = [n for n in names if str(n) not in schema.names]
        index = {column: f"_r{i}" for i, column in enumerate(present)}
        if schema.key in index:
            self.raw_label = f"CAST({index[schema.key]} AS VARCHAR)"
            # the key's rules are counted alone, over the key only: in the table's query its
            # text would ride through the join, and the distinct count would keep every row
            key_columns = f"{quote(schema.key)}, {index[schema.key]}"
            self.keys = f"(SELECT {key_columns} FROM {self.view}) AS _keys"
        decided = self._decide(sources, [str(n) for n in extra])
        parsed, final = {}, {}
        for column in schema.columns:
            if column.name in index:
                r, source = index[column.name], sources[column.name]
                parsed[column.name], final[column.name] = self._convert(
                    column, r, source, data, decided, index
                )
        for original in extra:
            column, r = str(original), index[str(original)]
            kept = self._attribute(original, r, sources[column], decided)
            if kept:
                parsed[column], final[column] = kept
        inner = ", ".join(f"{quote(c)} AS {index[c]}" for c in present)
        middle = ", ".join(f"{sql} AS _p{index[c][2:]}" for c, sql in parsed.items() if sql)
        outer = ", ".join(f"{sql} AS {quote(c)}" for c, sql in final.items())
        sql = f"SELECT _row, {inner} FROM _raw_{name}"
        if middle:
            sql = f"SELECT *, {middle} FROM ({sql}) AS _a"
        self.engine.view(self.view, f"SELECT *, {outer} FROM ({sql}) AS _b")
        self.columns = list(final)
        self.texts = {
            c.name: (index[c.name], final[c.name])
            for c in schema.columns
            if c.kind in ("text", "code") and c.name in final
        }
        if schema.key:
            key = quote(schema.key)
            counted = f"count(DISTINCT {key}) + least(count_if({key} IS NULL), 1) < count(*)"
            self.add(
                schema.key,
                "ids must be unique",
                "_n > 1",
                label=self.raw_label,
                count=f"CASE WHEN {counted} THEN -1 ELSE 0 END",
                source=self.keys,
                rows_from=f"(SELECT *, count(*) OVER (PARTITION BY {key}) AS _n "
                f"FROM {self.view}) AS _d",
            )
        return self.columns

    def _decide(self, sources: dict[str, str], extra: list[str]) -> dict:
        """The facts a conversion needs from the data: whether a float id holds whole numbers
        only, whether a text attribute holds numbers only (key: the column), and whether it
        looks like an identifier (key: ("identifier", column); see IDENTIFIER_SHARE)."""
        asks = {}
        for column in self.schema.columns:
            if column.kind == "id" and sources.get(column.name) == "float":
                asks[column.name] = f"count_if({quote(column.name)} % 1 <> 0) = 0"
        if self.schema.name == "customers":
            for column in extra:
                if sources[column] in ("text", "other"):
                    value = quote(column)
                    asks[column] = f"count({value}) = count({_number(value, sources[column])})"
                    asks["identifier", column] = (
                        f"count(DISTINCT {value}) >= "
                        f"greatest({IDENTIFIER_LEVELS}, {IDENTIFIER_SHARE} * count({value}))"
                    )
        if not asks:
            return {}
        (answers,) = self.engine.rows(
            f"SELECT {', '.join(asks.values())} FROM _raw_{self.schema.name}"
        )
        return dict(zip(asks, answers, strict=True))

    def _convert(self, column: Column, r: str, source: str, data: DataConfig, decided, index):
        """(parse, converted value) of one contract column; its rules are added in order."""
        p = f"_p{r[2:]}"
        raw_label = self.raw_label
        key = column.name == self.schema.key
        if column.required:
            missing = f"{r} IS NULL"
            numeric = source in ("float", "int", "bool")
            if column.kind in ("id", "code") and not numeric:
                missing += f" OR {_marker(_text(r, source), column.kind)}"
            if (self.schema.name, column.name) == ("surveys", "score") and "kind" in index:
                kind = index["kind"]
                kind_text = _text(kind, self.sources["kind"])
                exit_answer = f"lower({_stripped(kind_text)}) = {_lit(EXIT_SURVEY)}"
                missing = f"({missing}) AND NOT coalesce({exit_answer}, false)"
            self.add(
                column.name,
                "required value is missing (blank, or a marker such as NULL, N/A, ?, -)",
                missing,
                label=raw_label,
                **({"source": self.keys, "rows_from": self.view} if key else {}),
            )
            if column.name == "customer_id" and self.schema.name != "customers" and not numeric:
                self.customer_missing = (self.rules[-1], r, _text(r, source))
        if column.kind == "id":
            if source == "float" and decided.get(column.name, True):
                return None, f"CAST(CAST({r} AS BIGINT) AS VARCHAR)"
            return None, _text(r, source)
        if column.kind == "text":
            return None, _text(r, source)
        if column.kind == "code":
            return None, f"lower({_stripped(_text(r, source))})"
        if column.kind == "datetime":
            table = data.table(self.schema.name)
            declared = table.date_format if table else None
            expected = (
                f"{declared!r} (data.{self.schema.name}.date_format)"
                if declared
                else "ISO 8601 such as 2024-01-31 or 2024-01-31 14:05:00, or declare "
                f"data.{self.schema.name}.date_format"
            )
            name = column.name
            self.add(
                name,
                f"not a date (expected {expected})",
                f"{r} IS NOT NULL AND {p} IS NULL",
                label=raw_label,
            )
            earliest, latest = pd.Timestamp(data.earliest), pd.Timestamp(data.latest_day())
            end = latest + pd.Timedelta(days=1)
            self.add(
                name,
                f"before data.earliest ({earliest:%Y-%m-%d})",
                f"{p} < {timestamp_sql(earliest)}",
                label=raw_label,
            )
            self.add(
                name,
                f"after data.latest ({latest:%Y-%m-%d}; default: the day of the run)",
                f"{p} >= {timestamp_sql(end)}",
                label=raw_label,
            )
            return _time(r, source, declared), p
        if source == "bool":
            self.add(
                column.name, "must be a number, not true/false", f"{r} IS NOT NULL", label=raw_label
            )
            kind = "BIGINT" if column.kind == "int" else "DOUBLE"
            return None, f"CAST(NULL AS {kind})"
        name = column.name
        self.add(name, "not a number", f"{r} IS NOT NULL AND {p} IS NULL", label=raw_label)
        self.add(
            name,
            "must be finite (not inf)",
            f"abs({p}) = CAST('Infinity' AS DOUBLE)",
            label=raw_label,
        )
        self.add(
            name,
            f"must be at most {MAX_NUMBER:.0e} in size (implausible)",
            f"abs({p}) > {MAX_NUMBER:.0e}",
            label=raw_label,
        )
        plausible = f"abs({p}) <= {MAX_NUMBER:.0e}"
        if column.kind == "int":
            self.add(name, "not a whole number", f"{plausible} AND {p} % 1 <> 0", label=raw_label)
            return _number(
                r, source
            ), f"CASE WHEN {plausible} AND {p} % 1 = 0 THEN CAST({p} AS BIGINT) END"
        return _number(r, source), f"CASE WHEN {plausible} THEN {p} END"

    def _attribute(self, name, r: str, source: str, decided) -> tuple[str | None, str] | None:
        """A customer attribute is numeric when every present value is a number, else text;
        another table's unknown column is reported and ignored."""
        column = str(name)
        if self.schema.name != "customers":
            self.add(
                column,
                f"not a column of {self.schema.name}, ignored (known: "
                f"{', '.join(self.schema.names)}; map yours in data.{self.schema.name}.columns)",
                warning=True,
            )
            return None
        if not isinstance(name, str) or not name.strip() or UNSAFE_NAME.search(name):
            self.add(
                repr(name),
                'attribute name must not be blank nor hold " , : [ ] { } or control '
                "characters (it becomes a LightGBM feature name); rename the column",
            )
        if source == "bool" or not decided.get(column, source in ("float", "int")):
            if decided.get(("identifier", column)):
                self.add(
                    column,
                    "a different value for nearly every customer, like an e-mail or a name: "
                    "as a feature it cannot carry over to other customers, and scoring stops "
                    "on its drift; leave it out (data.customers.ignore)",
                    warning=True,
                )
            return None, _text(r, source)
        p = f"_p{r[2:]}"
        self.add(
            column,
            "must be finite (not inf)",
            f"abs({p}) = CAST('Infinity' AS DOUBLE)",
            label=self.raw_label,
        )
        return _number(r, source), p

    def table_rules(self, data: DataConfig) -> None:
        """Rules specific to one table, on the converted columns."""
        name, cols = self.schema.name, self.columns
        if name == "customers" and "cancelled_at" in cols:
            self.add("cancelled_at", "must not be before signup_at", "cancelled_at < signup_at")
        if name == "purchases":
            self.add("amount", "must be >= 0", "amount < 0")
            if "discount" in cols:
                self.add("discount", "must be >= 0", "discount < 0")
            if "status" in cols:
                allowed = ", ".join(map(_lit, PURCHASE_STATUSES))
                self.add(
                    "status",
                    f"must be one of {', '.join(PURCHASE_STATUSES)}",
                    f"status IS NULL OR status NOT IN ({allowed})",
                )
            refunds = ", ".join(map(_lit, REFUND_STATUSES))
            refund = f"coalesce(status IN ({refunds}), false)" if "status" in cols else "false"
            refunded_at = "refunded_at" if "refunded_at" in cols else "CAST(NULL AS TIMESTAMP)"
            self.add("refunded_at", "must not be before ordered_at", f"{refunded_at} < ordered_at")
            self.add(
                "refunded_at",
                f"set on a purchase whose status is not {' or '.join(REFUND_STATUSES)}",
                f"{refunded_at} IS NOT NULL AND NOT {refund}",
            )
            self.add(
                "status",
                "refunded or returned with no refunded_at: counted at no cutoff, even before the "
                "refund (the status is as of the data export)",
                f"{refund} AND {refunded_at} IS NULL",
                warning=True,
            )
        if name == "tickets":
            for column in ("first_response_at", *TICKET_ENDS, "reopened_at"):
                if column in cols:
                    self.add(column, "must not be before opened_at", f"{column} < opened_at")
            if "reopened" in cols:
                self.add("reopened", "must be >= 0", "reopened < 0")
            if "reopened" in cols and "reopened_at" in cols:
                self.add(
                    "reopened_at",
                    "set on a ticket whose reopened count is 0",
                    "reopened = 0 AND reopened_at IS NOT NULL",
                )
            ends = [column for column in TICKET_ENDS if column in cols]
            if ends:
                self.add(
                    "/".join(ends),
                    "ticket never ends (no resolved_at or closed_at): open at every later cutoff",
                    " AND ".join(f"{column} IS NULL" for column in ends),
                    warning=True,
                )
            else:
                self.add(
                    "resolved_at",
                    "no resolved_at or closed_at column: open tickets cannot be counted",
                    warning=True,
                )
        if name == "surveys":
            kinds = ", ".join(map(_lit, SURVEY_KINDS))
            self.add("kind", f"must be one of {', '.join(SURVEY_KINDS)}", f"kind NOT IN ({kinds})")
            stated = [c for c in ("reason", "comment") if c in cols]
            silent = " AND ".join(f"{c} IS NULL" for c in stated) or "true"
            self.add(
                "/".join(stated) or "reason",
                "an exit answer needs a reason code or a comment",
                f"kind = {_lit(EXIT_SURVEY)} AND {silent}",
            )
            ranges = {"nps": (0, 10), "csat": (1, data.csat_scale), "ces": (1, data.ces_scale)}
            for survey_kind, (low, high) in ranges.items():
                self.add(
                    "score",
                    f"{survey_kind} scores must be whole numbers in {low}..{high}",
                    f"kind = '{survey_kind}' AND score IS NOT NULL "
                    f"AND (score < {low} OR score > {high} OR score % 1 <> 0)",
                )

    @property
    def joined(self) -> str:
        """The table's checked rows joined to their customers' signups (and key)."""
        return f"{self.view} LEFT JOIN _signups ON {self.view}.customer_id = _signups._cid"

    def customer_rules(self) -> None:
        """Each row's customer must exist, and its date must not be before their signup
        day: an error for purchases, a warning for the other tables."""
        source = self.joined
        for rule in self.rules:  # one scan of the table for all its counts
            if rule.source == self.view:
                rule.source = source
        if self.customer_missing:  # a known customer's id is a marker only if theirs is
            rule, r, text = self.customer_missing
            marker = f"CASE WHEN _cid IS NULL THEN {_marker(text, 'id')} ELSE _cid_marker END"
            rule.when, rule.rows_from = f"{r} IS NULL OR {marker}", source
            rule.count = f"count_if({rule.when})"
        self.add(
            "customer_id",
            "unknown customer (not in customers)",
            "customer_id IS NOT NULL AND _cid IS NULL",
            source=source,
        )
        self.add(
            self.schema.time_column,
            "before the customer's signup day (customers.signup_at)",
            f"{quote(self.schema.time_column)} < _signup_day",
            warning=self.schema.name != "purchases",
            source=source,
        )


def _rename(schema: TableSchema, names: list, mapping: dict[str, str], ignored: set) -> list:
    """The input's column names under the contract's names (`mapping`: ours -> yours);
    `ignored` (the config's `ignore`) must name columns of the input."""
    stray = sorted(ignored - {str(n) for n in names})
    if stray:
        raise ChurnlensError(
            f"config data.{schema.name}.ignore: no column(s) {', '.join(stray)} in {schema.name}"
        )
    unknown = sorted(set(mapping) - set(schema.names))
    if unknown:
        raise ChurnlensError(
            f"config data.{schema.name}.columns: unknown column(s) {', '.join(unknown)}; "
            f"{schema.name} has {', '.join(schema.names)}"
        )
    absent = {ours: yours for ours, yours in mapping.items() if yours not in set(map(str, names))}
    if absent:  # else the file's own column of our name is read in silence, or none at all
        pairs = ", ".join(f"{ours}: {yours}" for ours, yours in sorted(absent.items()))
        raise ChurnlensError(
            f"config data.{schema.name}.columns: {pairs} names no column of the file; its "
            f"columns are {', '.join(map(str, names))}"
        )
    repeated = sorted({n for i, n in enumerate(names) if n in names[:i]}, key=str)
    if repeated:
        raise ChurnlensError(
            f"table {schema.name}: duplicate column header(s) "
            f"{', '.join(map(repr, repeated))}; each column name must appear once"
        )
    ours = {yours: name for name, yours in mapping.items()}
    renamed = [ours.get(n, n) for n in names]
    repeated = sorted({str(n) for i, n in enumerate(renamed) if n in renamed[:i]})
    if repeated:
        raise ChurnlensError(
            f"config data.{schema.name}.columns: column(s) {', '.join(repeated)} would appear "
            "twice (the file already has a column of that name)"
        )
    # the checks' own columns (`_row`; `_r0`, `_p0`, ... beside an attribute's name) would
    # shadow or be shadowed by the input's: an attribute `_r0` read the customer ids
    customers = schema.name == "customers"
    ours_too = sorted(
        {
            text
            for text in map(str, renamed)
            if text == "_row" or customers and text.startswith("_") and text not in ignored
        }
    )
    if ours_too:
        raise ChurnlensError(
            f"table {schema.name}: column(s) {', '.join(map(repr, ours_too))} have names "
            "churnlens keeps for its own columns (_row, and in customers any name starting "
            f"with _); rename them in the file, or leave them out (data.{schema.name}.ignore)"
        )
    return renamed


@dataclass
class Checked:
    """What the checks leave for reading the tables: each present table's converted columns
    (in `_chk_{table}`), the customer attributes and the warnings."""

    columns: dict[str, list[str]]
    attributes: list[str]
    warnings: list[Problem]
    levels: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # see `check`


def check(
    engine: Engine, tables: list[str], data: DataConfig, levels: bool = False, keep: bool = False
) -> Checked:
    """Run every rule of the contract on `tables` (names of `engine`'s inputs); raise one
    `ContractError` listing every problem, else return the `Checked` views and warnings.
    With `levels` (DuckDB), also the values of the text and code columns that have few
    (`_Table.levels`), by table; not the customers' (ids, and attributes the model reads).
    With `keep` (DuckDB), the scan that counts each non-customer table's rules writes its
    checked rows into the store as it goes, with their customer's key (`DuckDBEngine.keep`)."""
    rules: list[_Rule] = []
    columns: dict[str, list[str] | None] = {}
    builders: dict[str, _Table] = {}
    for name, schema in SCHEMAS.items():
        if name not in tables:
            continue
        table = data.table(name)
        mapping, ignored = (table.columns, set(table.ignore)) if table else ({}, set())
        names = _rename(schema, engine.names(name), mapping, ignored)
        builder = builders[name] = _Table(schema, engine, rules)
        columns[name] = builder.build(names, data, ignored)
        if columns[name] is not None:
            builder.table_rules(data)
    purchases = columns.get("purchases") or []
    if "customers" not in columns and {"customer_id", "ordered_at"} <= set(purchases):
        engine.view(
            "_chk_customers",
            "SELECT customer_id, min(ordered_at) AS signup_at, min(_row) AS _row "
            "FROM _chk_purchases WHERE customer_id IS NOT NULL AND ordered_at IS NOT NULL "
            "GROUP BY customer_id",
        )
        columns["customers"] = ["customer_id", "signup_at"]
    complete = "customers" in columns and all(c is not None for c in columns.values())
    if complete:
        key = f", CAST(row_number() OVER (ORDER BY customer_id) AS INTEGER) AS {KEY}" * keep
        engine.view(
            "_signups",
            "SELECT customer_id AS _cid, arg_min(date_trunc('day', signup_at), _row) AS "
            f"_signup_day, {_marker('customer_id', 'id')} AS _cid_marker{key} "
            "FROM _chk_customers GROUP BY customer_id",
            keep=True,
        )
        for name, builder in builders.items():
            if name != "customers":
                builder.customer_rules()
    found = {n: b.levels() for n, b in builders.items() if levels and n != "customers"}
    kept = {}
    if keep and complete:  # each table's scan for its counts, joined to the customers, kept
        kept = {
            b.joined: (
                name,
                f"SELECT {', '.join(_stored_columns(name, columns[name]))}, {KEY}",
                found.get(name, {}),
            )
            for name, b in builders.items()
            if name != "customers"
        }
    problems, warnings = _found(engine, rules, kept)
    if problems:
        raise ContractError(problems)
    customers = columns["customers"]
    attributes = [c for c in customers if c not in SCHEMAS["customers"].names]
    _attribute_warning(attributes, warnings)
    return Checked(columns, attributes, warnings, found)


def _found(
    engine: Engine, rules: list[_Rule], kept: dict | None = None
) -> tuple[list[Problem], list[Problem]]:
    """(problems, warnings): each rule's count from one query per source (or, for a source in
    `kept`, from the flags of the rows it keeps: `DuckDBEngine.keep`), the examples of the
    rules that fired from one more, in the order the rules were made."""
    counts: dict[int, int] = {}
    by_source: dict[str, list[int]] = {}
    for i, rule in enumerate(rules):
        if rule.when is not None:
            by_source.setdefault(rule.source, []).append(i)
    for source, indexes in by_source.items():
        if source in (kept or {}):
            row = engine.keep(source, [rules[i] for i in indexes], *kept[source])
        else:
            counted = ", ".join(rules[i].count for i in indexes)
            (row,) = engine.rows(f"SELECT {counted} FROM {source}")
        counts.update(zip(indexes, row, strict=True))
    for i, count in counts.items():
        if count == -1:  # the count is a second step (rows of repeated ids)
            rule = rules[i]
            ((counts[i],),) = engine.rows(
                f"SELECT count(*) FROM {rule.rows_from} WHERE {rule.when}"
            )
    examples = _examples(engine, {i: rules[i] for i, count in counts.items() if count})
    problems, warnings = [], []
    for i, rule in enumerate(rules):
        found = warnings if rule.warning else problems
        if rule.when is None:
            found.append(Problem(rule.table, rule.column, rule.rule))
        elif counts[i]:
            found.append(Problem(rule.table, rule.column, rule.rule, counts[i], examples[i]))
    return problems, warnings


def _examples(engine: Engine, fired: dict[int, _Rule]) -> dict[int, tuple[str, ...]]:
    """The first offending rows of each fired rule as 'row N (id X)'."""
    if not fired:
        return {}
    parts = []
    for i, rule in fired.items():
        scan = engine.keeps_order and rule.rows_from == f"_chk_{rule.table}"  # no join
        parts.append(
            f"SELECT {i} AS _rule, * FROM (SELECT _row, {rule.label or 'CAST(NULL AS VARCHAR)'} "
            f"AS _label FROM {rule.rows_from} WHERE {rule.when}"
            f"{'' if scan else ' ORDER BY _row'} LIMIT {MAX_EXAMPLES}) AS _e{i}"
        )
    found = sorted(engine.rows(" UNION ALL ".join(parts)))
    positions = {}
    for table in {rule.table for rule in fired.values()}:
        rows = sorted({row for i, row, _ in found if fired[i].table == table})
        positions |= {
            (table, row): n
            for row, n in zip(rows, engine.positions(f"_src_{table}", rows), strict=True)
        }
    examples: dict[int, tuple[str, ...]] = {i: () for i in fired}
    for i, row, label in found:
        table = fired[i].table
        shown = f"row {positions[table, row]}"
        if label is not None:
            shown += f" ({SCHEMAS[table].key} {label})"
        examples[i] += (shown,)
    return examples


def _attribute_warning(attributes: list[str], warnings: list[Problem]) -> None:
    if attributes:
        warnings.append(
            Problem(
                "customers",
                ", ".join(attributes),
                "attributes are taken as of the data export: a value changed later "
                "reaches every past cutoff",
            )
        )


def ticket_times_sql(columns) -> dict[str, str]:
    """`ended_at` and `reopened_since` as SQL expressions over the tickets' `columns` (see the
    module docstring): one definition for the DuckDB and the Spark engine."""
    ends = [column for column in TICKET_ENDS if column in columns]
    derived = {}
    if ends:
        derived["ended_at"] = f"least({', '.join(ends)})" if len(ends) > 1 else ends[0]
    if "reopened" in columns:
        since = "coalesce(reopened_at, opened_at)" if "reopened_at" in columns else "opened_at"
        derived["reopened_since"] = f"CASE WHEN reopened > 0 THEN {since} END"
    return derived


def with_ticket_times(frame: pd.DataFrame) -> pd.DataFrame:
    """Add `ended_at` and `reopened_since` to the tickets (see the module docstring)."""
    derived = ticket_times_sql(frame.columns)
    if derived:
        select = ", ".join(f"{sql} AS {name}" for name, sql in derived.items())
        with duckdb.connect() as con:
            con.register("tickets", frame)
            times = con.sql(f"SELECT {select} FROM tickets").df()
        for name in derived:
            frame[name] = times[name].astype("datetime64[us]").to_numpy()
    return frame


def completed_sql(columns, at: str | None = None) -> str:
    """SQL condition over a purchase row: a completed purchase at time `at` (an SQL expression;
    None: as of the data export), given the purchases' `columns`. The one definition of a
    completed purchase (see the module docstring); never NULL."""
    if "status" not in columns:
        return "TRUE"
    done = "status = 'completed'"
    if at is None or "refunded_at" not in columns:
        return f"({done})"
    refund = "status IN (" + ", ".join(f"'{status}'" for status in REFUND_STATUSES) + ")"
    return f"({done} OR ({refund} AND coalesce(refunded_at >= {at}, FALSE)))"


def completed_at(purchases: pd.DataFrame, *times) -> np.ndarray:
    """Whether each purchase row is completed at each of `times` (a time, or one per row as a
    Series): `completed_sql` evaluated by DuckDB in one pass, a (rows, times) boolean array;
    without times, one column as of the data export."""
    columns = [c for c in COMPLETION_COLUMNS if c in purchases.columns]
    ats = {f"_at{k}": at for k, at in enumerate(times)}
    conditions = [completed_sql(columns, at) for at in (list(ats) or [None])]
    frame = purchases[columns].assign(_row=0, **ats)  # _row: a frame never without columns
    with duckdb.connect() as con:
        con.register("purchases", frame)
        found = con.sql(f"SELECT {', '.join(conditions)} FROM purchases").fetchnumpy()
    return np.column_stack([np.asarray(mask, dtype=bool) for mask in found.values()])


def load_tables(data: DataConfig) -> Tables:
    """Read every configured table from its file and validate it (see `validate`)."""
    data.require_files()
    sources = {
        name: scan_table(data.path_of(name), name, table.sep, tuple(table.missing), table.header)
        for name in SCHEMAS
        if (table := data.table(name))
    }
    return _checked_tables(sources, data)


def validate(frames: Mapping[str, pd.DataFrame], data: DataConfig | None = None) -> Tables:
    """Check DataFrames against the contract: the same rules and messages as for files.

    `frames` maps table names (purchases required; customers, tickets, surveys, events
    optional) to DataFrames with the user's column names, renamed by `data`'s column mappings.
    Without customers, they are derived from the purchases (see the module docstring).
    Returns the converted tables; raises one `ContractError` listing every problem.
    Warnings (see the module docstring) do not stop the run; they come back in
    `Tables.warnings`.
    """
    data = data or DataConfig()
    unknown = sorted(set(frames) - set(SCHEMAS))
    missing = [name for name in ("purchases",) if frames.get(name) is None]
    if unknown or missing:
        raise ChurnlensError(
            "tables: "
            + "; ".join(
                ([f"unknown table(s) {', '.join(unknown)}"] if unknown else [])
                + ([f"required table(s) {', '.join(missing)} missing"] if missing else [])
            )
            + f" (tables are {', '.join(SCHEMAS)})"
        )
    sources = {}
    for name in SCHEMAS:
        frame = frames.get(name)
        if frame is None:
            continue
        if frame.empty:
            raise ChurnlensError(f"table {name}: has no rows")
        sources[name] = Source(list(frame.columns), frame)
    return _checked_tables(sources, data)


# A survey row that is an exit answer, its kind text or (stored) an ENUM
EXITS = f"coalesce(CAST(kind AS VARCHAR) = {_lit(EXIT_SURVEY)}, false)"


def _stored_columns(name: str, columns: list[str]) -> list[str]:
    """The SQL of a table's columns as `Tables` holds them: tickets with their derived times."""
    select = [quote(column) for column in columns]
    if name == "tickets":
        select += [f"{sql} AS {column}" for column, sql in ticket_times_sql(columns).items()]
    return select


def _exit_columns(columns: list[str]) -> list[str]:
    """The survey columns an exit answer keeps: every one but the score."""
    return [column for column in columns if column != "score"]


def table_queries(checked: Checked) -> dict[str, str]:
    """The SQL of each table as `Tables` holds it, over `check`'s `_chk_` views, exit answers
    (`exits`, without a score) apart from scored surveys."""
    queries = {}
    for name, columns in checked.columns.items():
        select = _stored_columns(name, columns)
        query = f"SELECT {', '.join(select)} FROM _chk_{name}"
        if name == "surveys":
            answers = ", ".join(map(quote, _exit_columns(columns)))
            queries["surveys"] = f"{query} WHERE NOT {EXITS}"
            queries["exits"] = f"SELECT {answers} FROM _chk_surveys WHERE {EXITS}"
        else:
            queries[name] = query
    return queries


def _checked_tables(sources: dict[str, Source], data: DataConfig) -> Tables:
    """Check the sources in DuckDB and keep the converted tables there (`Tables`), each row
    with its customer's key (KEY, NULL for an unknown one). The checks' own scans write the
    other tables (`check`'s `keep`); the customers, and the exit answers moved out of the
    surveys, are written after."""
    con = duckdb.connect()
    engine = DuckDBEngine(con, sources)
    open_store(con)
    checked = check(engine, list(sources), data, levels=True, keep=True)
    customers = ", ".join(
        f"c.{c}" for c in _stored_columns("customers", checked.columns["customers"])
    )
    con.execute(
        f"CREATE TABLE {STORE}.main.customers AS SELECT {customers}, k.{KEY} FROM _chk_customers c "
        f"LEFT JOIN _signups k ON k._cid = c.customer_id ORDER BY c._row"
    )
    if "surveys" in checked.columns:
        _move_exits(con, checked)
    _drop_temporary(con)
    compress_if_large(con)
    return Tables(attributes=checked.attributes, warnings=checked.warnings, database=con)


def _move_exits(con: duckdb.DuckDBPyConnection, checked: Checked) -> None:
    """Move the exit answers out of the stored surveys into `exits` (as text, without a
    score); either table is dropped when it has no rows (optional and empty: absent)."""
    surveys, exits = f"{STORE}.main.surveys", f"{STORE}.main.exits"
    coded = checked.levels.get("surveys", {})
    answers = ", ".join(
        f"CAST({quote(c)} AS VARCHAR) AS {quote(c)}" if c in coded else quote(c)
        for c in _exit_columns(checked.columns["surveys"])
    )
    con.execute(f"CREATE TABLE {exits} AS SELECT {answers}, {KEY} FROM {surveys} WHERE {EXITS}")
    con.execute(f"DELETE FROM {surveys} WHERE {EXITS}")
    for stored in (surveys, exits):
        if not con.sql(f"FROM {stored} LIMIT 1").fetchall():
            con.execute(f"DROP TABLE {stored}")


def _drop_temporary(con: duckdb.DuckDBPyConnection) -> None:
    """Drop the checks' views and tables, and the inputs registered in memory with them."""
    for kind, listing in (("VIEW", "duckdb_views()"), ("TABLE", "duckdb_tables()")):
        found = con.execute(
            f"SELECT {kind.lower()}_name FROM {listing} WHERE temporary AND NOT internal"
        )
        for (name,) in found.fetchall():
            con.execute(f"DROP {kind} temp.main.{quote(name)}")


def _coded(query: str, levels: dict[str, list[str]]) -> str:
    """`query` with the columns of `levels` cast to ENUM: they reach pandas as categoricals."""
    if not levels:
        return query
    casts = ", ".join(
        f"CAST({quote(column)} AS ENUM({', '.join(map(_lit, values))})) AS {quote(column)}"
        for column, values in levels.items()
    )
    return f"SELECT * REPLACE ({casts}) FROM ({query})"


def summarize(tables: Tables) -> pd.DataFrame:
    """One row per table of `tables` (`summary`), in DuckDB where they are."""
    shown = [*tables.names, *(["exits"] if tables.columns("exits") else [])]
    with tables.connect() as con:
        relations = {name: (f"{name}_in", list(tables.columns(name))) for name in shown}
        return table_summary(lambda sql: con.execute(sql).fetchall(), relations, tables.warnings)


def table_summary(rows, relations: dict[str, tuple[str, list[str]]], warnings: list[Problem]):
    """One row per table: rows, customers, date range, the span of days holding the central
    95 % of rows (where the data really are: a few stray early or late rows stretch the
    range), share of missing values, warnings. One SQL query per table (`relations`: name ->
    (relation, columns), as `Tables` names them; `rows` runs a query), so that the Spark
    engine summarises the same; scored surveys and exit answers show only when present.

    The warnings' texts ride along in `attrs["warnings"]` for `validate` to print.
    """
    found = []
    for name, (relation, columns) in relations.items():
        time = quote(SCHEMAS.get(name, SCHEMAS["surveys"]).time_column)
        day = f"epoch_us(date_trunc('day', {time})) / 86400000000"
        counts = "".join(f", count({quote(column)})" for column in columns)
        ((count, customers, first, last, low, high, *present),) = rows(
            f"SELECT count(*), count(DISTINCT customer_id), min({time}), max({time}), "
            f"quantile_cont({day}, 0.025), quantile_cont({day}, 0.975){counts} FROM {relation}"
        )
        if not count and name in ("surveys", "exits"):
            continue
        found.append(
            {
                "table": "exit answers" if name == "exits" else name,
                "rows": count,
                "customers": customers,
                "from": pd.Timestamp(first),
                "to": pd.Timestamp(last),
                "95% of rows": f"{_day(low)}..{_day(high)}",
                "missing": ", ".join(
                    f"{column} {1 - kept / count:.0%}"
                    for column, kept in zip(columns, present, strict=True)
                    if kept < count
                ),
                "warnings": sum(warning.table == name for warning in warnings),
            }
        )
    table = pd.DataFrame(found)
    table.attrs["warnings"] = [str(warning) for warning in warnings]
    return table


def _day(days: float | None) -> str:
    """A day number since 1970-01-01 (an interpolated quantile: its day) as YYYY-MM-DD."""
    return "" if days is None else f"{pd.Timestamp(int(np.floor(days + 1e-6)), unit='D'):%Y-%m-%d}"
