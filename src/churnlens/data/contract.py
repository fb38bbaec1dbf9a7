"""The data contract: the input tables' schemas, the column mapping, and validation.

Every broken input becomes one `ContractError` that lists each problem with the table, the
column, the rule and up to five offending rows (1-based data rows of the file, with the row's
id where the table has one), so a user can fix the file without reading a traceback. All
rules run before anything is returned, so one run reports every problem at once.

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
from typing import Literal

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from churnlens.config import DataConfig
from churnlens.data.io import read_table
from churnlens.errors import ChurnlensError

Kind = Literal["id", "datetime", "float", "int", "text", "code"]  # code: lower-case, stripped
PURCHASE_STATUSES = ("completed", "cancelled", "refunded", "returned")
REFUND_STATUSES = ("refunded", "returned")
COMPLETION_COLUMNS = ("status", "refunded_at")  # what completed_sql reads
SCORED_SURVEYS = ("nps", "csat", "ces")
EXIT_SURVEY = "exit"
SURVEY_KINDS = (*SCORED_SURVEYS, EXIT_SURVEY)
MAX_EXAMPLES = 5
MAX_NUMBER = 1e12
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


@dataclass
class Tables:
    """The validated input tables with canonical column names and fixed dtypes."""

    customers: pd.DataFrame
    purchases: pd.DataFrame
    tickets: pd.DataFrame | None = None
    surveys: pd.DataFrame | None = None
    events: pd.DataFrame | None = None
    exits: pd.DataFrame | None = None  # exit survey answers: stated leaving reasons
    attributes: list[str] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def present(self) -> dict[str, pd.DataFrame]:
        names = ("customers", "purchases", "tickets", "surveys", "events")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


def _examples(frame: pd.DataFrame, bad: np.ndarray, key: str | None) -> tuple[int, tuple]:
    """Count offending rows and describe the first few as 'row N (id X)'."""
    positions = np.flatnonzero(bad)
    shown = []
    for position in positions[:MAX_EXAMPLES]:
        label = f"row {position + 1}"
        if key and key in frame.columns and pd.notna(frame[key].iat[position]):
            label += f" ({key} {frame[key].iat[position]})"
        shown.append(label)
    return len(positions), tuple(shown)


class _Checker:
    """Collects problems for one table; each check marks offending rows with a boolean mask."""

    def __init__(
        self,
        schema: TableSchema,
        frame: pd.DataFrame,
        problems: list[Problem],
        warnings: list[Problem] | None = None,
    ):
        self.schema, self.frame, self.problems = schema, frame, problems
        self.warnings = problems if warnings is None else warnings

    def add(self, column: str, rule: str, bad, warning: bool = False) -> None:
        bad = np.asarray(bad, dtype=bool)
        if bad.any():
            rows, examples = _examples(self.frame, bad, self.schema.key)
            found = self.warnings if warning else self.problems
            found.append(Problem(self.schema.name, column, rule, rows, examples))

    def whole(self, column: str, rule: str, warning: bool = False) -> None:
        """A problem with a column or the table rather than with rows."""
        (self.warnings if warning else self.problems).append(
            Problem(self.schema.name, column, rule)
        )


def _rename(schema: TableSchema, frame: pd.DataFrame, mapping: dict[str, str]) -> pd.DataFrame:
    unknown = sorted(set(mapping) - set(schema.names))
    if unknown:
        raise ChurnlensError(
            f"config data.{schema.name}.columns: unknown column(s) {', '.join(unknown)}; "
            f"{schema.name} has {', '.join(schema.names)}"
        )
    repeated = sorted(set(frame.columns[frame.columns.duplicated()]), key=str)
    if repeated:
        raise ChurnlensError(
            f"table {schema.name}: duplicate column header(s) "
            f"{', '.join(map(repr, repeated))}; each column name must appear once"
        )
    renamed = frame.rename(columns={source: name for name, source in mapping.items()})
    repeated = sorted(set(renamed.columns[renamed.columns.duplicated()]))
    if repeated:
        raise ChurnlensError(
            f"config data.{schema.name}.columns: column(s) {', '.join(repeated)} would appear "
            "twice (the file already has a column of that name)"
        )
    return renamed


def _coerce(column: Column, values: pd.Series, check: _Checker, data: DataConfig) -> pd.Series:
    """Convert one column to its contract type, reporting values that do not convert."""
    present = values.notna().to_numpy()
    if column.kind == "id":
        if pd.api.types.is_float_dtype(values) and (values.dropna() % 1 == 0).all():
            values = values.astype("Int64")
        return values.astype("str")
    if column.kind == "text":
        return values.astype("str")
    if column.kind == "code":
        return values.astype("str").str.strip().str.lower()
    if column.kind == "datetime":
        table = data.table(check.schema.name)
        declared = table.date_format if table else None
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            converted = values.dt.tz_convert("UTC").dt.tz_localize(None)
        elif pd.api.types.is_datetime64_dtype(values):
            converted = values
        else:
            converted = pd.to_datetime(
                values.astype("str"), format=declared or "ISO8601", errors="coerce", utc=True
            ).dt.tz_localize(None)
        expected = (
            f"{declared!r} (data.{check.schema.name}.date_format)"
            if declared
            else "ISO 8601 such as 2024-01-31 or 2024-01-31 14:05:00, or declare "
            f"data.{check.schema.name}.date_format"
        )
        check.add(
            column.name, f"not a date (expected {expected})", present & converted.isna().to_numpy()
        )
        converted = converted.astype("datetime64[us]")
        earliest = pd.Timestamp(data.earliest)
        latest = pd.Timestamp(data.latest_day())
        check.add(column.name, f"before data.earliest ({earliest:%Y-%m-%d})", converted < earliest)
        check.add(
            column.name,
            f"after data.latest ({latest:%Y-%m-%d}; default: the day of the run)",
            converted >= latest + pd.Timedelta(days=1),
        )
        return converted
    if pd.api.types.is_bool_dtype(values):
        check.add(column.name, "must be a number, not true/false", present)
        return pd.Series(np.nan, index=values.index)
    converted = pd.to_numeric(values, errors="coerce").astype("float64")
    check.add(column.name, "not a number", present & converted.isna().to_numpy())
    check.add(column.name, "must be finite (not inf)", np.isinf(converted))
    absurd = converted.abs() > MAX_NUMBER
    check.add(column.name, f"must be at most {MAX_NUMBER:.0e} in size (implausible)", absurd)
    converted = converted.where(~absurd)  # also removes inf
    if column.kind == "int":
        fractional = converted.notna() & (converted % 1 != 0)
        check.add(column.name, "not a whole number", fractional)
        return converted.where(~fractional).astype("Int64")
    return converted


def _conform(schema: TableSchema, raw: pd.DataFrame, check: _Checker, data: DataConfig):
    """Check columns exist and convert them; extra customer columns become attributes."""
    missing = [c.name for c in schema.columns if c.required and c.name not in raw.columns]
    for name in missing:
        check.whole(name, "required column is missing")
    if missing:
        return raw
    out = {}
    for column in schema.columns:
        if column.name not in raw.columns:
            continue
        values = raw[column.name]
        if column.required:
            missing = _missing(values, column.kind)
            if (schema.name, column.name) == ("surveys", "score") and "kind" in raw.columns:
                missing = missing & ~_is_exit(raw["kind"])  # an exit answer states no score
            check.add(
                column.name,
                "required value is missing (blank, or a marker such as NULL, N/A, ?, -)",
                missing,
            )
        out[column.name] = _coerce(column, values, check, data)
    for name in raw.columns.difference(schema.names, sort=False):
        if schema.name == "customers":
            out[name] = _attribute(name, raw[name], check)
        else:
            check.whole(
                str(name),
                f"not a column of {schema.name}, ignored (known: {', '.join(schema.names)}; "
                f"map yours in data.{schema.name}.columns)",
                warning=True,
            )
    frame = pd.DataFrame(out, index=raw.index)
    if schema.key:
        check.add(schema.key, "ids must be unique", _repeated(frame[schema.key]))
    return frame


def _repeated(values: pd.Series) -> np.ndarray:
    """Rows whose value occurs more than once. Counting distinct values (Arrow's hash) is
    cheaper than marking duplicates, so the marking runs only when there are some."""
    if len(pc.unique(pa.array(values.array))) == len(values):
        return np.zeros(len(values), dtype=bool)
    return values.duplicated(keep=False).to_numpy()


def _is_exit(kind: pd.Series) -> np.ndarray:
    return kind.astype("str").str.strip().str.lower().eq(EXIT_SURVEY).fillna(False).to_numpy()


def _split_exits(surveys: pd.DataFrame) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """(scored answers, exit answers); a part with no rows is None, like an absent table."""
    exit_rows = _is_exit(surveys["kind"])
    scored = surveys[~exit_rows].reset_index(drop=True)
    exits = surveys.loc[exit_rows].drop(columns="score").reset_index(drop=True)
    return (scored if len(scored) else None), (exits if len(exits) else None)


def _missing(values: pd.Series, kind: Kind) -> np.ndarray:
    """Absent values; for ids and codes also blanks and missing-value markers such as NULL."""
    missing = values.isna()
    if kind in ("id", "code") and not pd.api.types.is_numeric_dtype(values):
        text = values.astype("str").str.strip().str.upper()
        missing |= text.isin(MISSING_MARKERS if kind == "id" else ("",))
    return missing.to_numpy()


def _blank_as_missing(frame: pd.DataFrame) -> pd.DataFrame:
    """An empty text cell is a missing value, in a DataFrame as in a CSV file."""
    text = [c for c in frame.columns if frame[c].dtype == object or frame[c].dtype == "str"]
    if not text:
        return frame
    return frame.assign(**{c: frame[c].mask(frame[c].eq("")) for c in text})


def _attribute(name, values: pd.Series, check: _Checker) -> pd.Series:
    """A customer attribute is numeric when every present value is a number, else text."""
    if not isinstance(name, str) or not name.strip() or UNSAFE_NAME.search(name):
        check.whole(
            repr(name),
            'attribute name must not be blank nor hold " , : [ ] { } or control characters '
            "(it becomes a LightGBM feature name); rename the column",
        )
    if pd.api.types.is_bool_dtype(values):
        return values.astype("str")
    head = values.dropna().head(100)  # a text column shows it at once: skip the full parse
    numeric = pd.to_numeric(head, errors="coerce").notna().all()
    numbers = pd.to_numeric(values, errors="coerce") if numeric else None
    if numbers is not None and numbers.notna().sum() == values.notna().sum():
        check.add(str(name), "must be finite (not inf)", np.isinf(numbers.astype("float64")))
        return numbers.astype("float64")
    return values.astype("str")


def _table_rules(name: str, frame: pd.DataFrame, check: _Checker, data: DataConfig) -> None:
    """Rules specific to one table, on already converted columns."""
    cols = frame.columns
    if name == "customers" and "cancelled_at" in cols:
        check.add(
            "cancelled_at",
            "must not be before signup_at",
            frame["cancelled_at"] < frame["signup_at"],
        )
    if name == "purchases":
        check.add("amount", "must be >= 0", frame["amount"] < 0)
        if "discount" in cols:
            check.add("discount", "must be >= 0", frame["discount"] < 0)
        if "status" in cols:
            allowed = frame["status"].isin(PURCHASE_STATUSES)
            check.add("status", f"must be one of {', '.join(PURCHASE_STATUSES)}", ~allowed)
        refund = frame["status"].isin(REFUND_STATUSES) if "status" in cols else False
        refunded_at = frame.get("refunded_at", pd.Series(pd.NaT, index=frame.index))
        check.add("refunded_at", "must not be before ordered_at", refunded_at < frame["ordered_at"])
        check.add(
            "refunded_at",
            f"set on a purchase whose status is not {' or '.join(REFUND_STATUSES)}",
            refunded_at.notna() & ~refund,
        )
        check.add(
            "status",
            "refunded or returned with no refunded_at: counted at no cutoff, even before the "
            "refund (the status is as of the data export)",
            refund & refunded_at.isna(),
            warning=True,
        )
    if name == "tickets":
        for column in ("first_response_at", *TICKET_ENDS, "reopened_at"):
            if column in cols:
                check.add(
                    column, "must not be before opened_at", frame[column] < frame["opened_at"]
                )
        if "reopened" in cols:
            check.add("reopened", "must be >= 0", (frame["reopened"] < 0).fillna(False))
        if "reopened" in cols and "reopened_at" in cols:
            check.add(
                "reopened_at",
                "set on a ticket whose reopened count is 0",
                (frame["reopened"] == 0).fillna(False) & frame["reopened_at"].notna(),
            )
        ends = [column for column in TICKET_ENDS if column in cols]
        if ends:
            check.add(
                "/".join(ends),
                "ticket never ends (no resolved_at or closed_at): open at every later cutoff",
                frame[ends].isna().all(axis=1),
                warning=True,
            )
        else:
            check.whole(
                "resolved_at",
                "no resolved_at or closed_at column: open tickets cannot be counted",
                warning=True,
            )
    if name == "surveys":
        kind = frame["kind"]
        check.add(
            "kind",
            f"must be one of {', '.join(SURVEY_KINDS)}",
            ~kind.isin(SURVEY_KINDS) & frame["kind"].notna(),
        )
        stated = [c for c in ("reason", "comment") if c in cols]
        check.add(
            "/".join(stated) or "reason",
            "an exit answer needs a reason code or a comment",
            (kind == EXIT_SURVEY) & (frame[stated].isna().all(axis=1) if stated else True),
        )
        ranges = {"nps": (0, 10), "csat": (1, data.csat_scale), "ces": (1, data.ces_scale)}
        for survey_kind, (low, high) in ranges.items():
            score = frame["score"].where(kind == survey_kind)
            outside = (score < low) | (score > high) | (score % 1 != 0)
            check.add(
                "score",
                f"{survey_kind} scores must be whole numbers in {low}..{high}",
                outside & score.notna(),
            )


def _check_customers(frames: dict[str, pd.DataFrame], problems, warnings) -> None:
    """Each row's customer must exist, and its date must not be before their signup day:
    an error for purchases, a warning for the other tables."""
    customers = frames["customers"]
    ids = pa.array(customers["customer_id"].array)  # looked up with Arrow's hash: fast on text
    signup_day = customers["signup_at"].dt.normalize().to_numpy()
    for name, frame in frames.items():
        if name == "customers":
            continue
        schema = SCHEMAS[name]
        check = _Checker(schema, frame, problems, warnings)
        # each row's first customer of that id, -1 for none
        found = pc.index_in(pa.array(frame["customer_id"].array), value_set=ids)
        position = found.fill_null(-1).to_numpy()
        known = position >= 0
        check.add(
            "customer_id",
            "unknown customer (not in customers)",
            ~known & frame["customer_id"].notna().to_numpy(),
        )
        day = np.where(known, signup_day[position], np.datetime64("NaT"))
        check.add(
            schema.time_column,
            "before the customer's signup day (customers.signup_at)",
            frame[schema.time_column].to_numpy() < day,
            warning=name != "purchases",
        )


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
    raw = {
        name: read_table(data.path_of(name), name, table.sep, tuple(table.missing), table.header)
        for name in SCHEMAS
        if (table := data.table(name))
    }
    return validate(raw, data)


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
    problems: list[Problem] = []
    warnings: list[Problem] = []
    frames = dict(frames)
    for name, schema in SCHEMAS.items():
        raw = frames.pop(name, None)
        if raw is None:
            continue
        if raw.empty:
            raise ChurnlensError(f"table {name}: has no rows")
        mapping = data.table(name).columns if data.table(name) else {}
        raw = _blank_as_missing(_rename(schema, raw.reset_index(drop=True), mapping))
        if name == "purchases" and "order_id" not in raw.columns:
            raw.insert(0, "order_id", [str(row) for row in range(1, len(raw) + 1)])
        frame = _conform(schema, raw, _Checker(schema, raw, problems, warnings), data)
        if all(c.name in frame.columns for c in schema.columns if c.required):
            _table_rules(name, frame, _Checker(schema, frame, problems, warnings), data)
        frames[name] = frame
    if "customers" not in frames and {"customer_id", "ordered_at"} <= set(frames["purchases"]):
        frames["customers"] = _first_purchases(frames["purchases"])
    complete = "customers" in frames and all(
        c.name in frames[name].columns
        for name in frames
        for c in SCHEMAS[name].columns
        if c.required
    )
    if complete:
        _check_customers(frames, problems, warnings)
    if problems:
        raise ContractError(problems)
    customers = frames["customers"]
    attributes = [c for c in customers.columns if c not in SCHEMAS["customers"].names]
    _attribute_warning(attributes, warnings)
    if "tickets" in frames:
        frames["tickets"] = with_ticket_times(frames["tickets"])
    if "surveys" in frames:
        frames["surveys"], frames["exits"] = _split_exits(frames["surveys"])
    return Tables(**frames, attributes=attributes, warnings=warnings)


def _first_purchases(purchases: pd.DataFrame) -> pd.DataFrame:
    """Customers of a bare transaction log: each id with its first purchase as signup."""
    known = purchases.dropna(subset=["customer_id", "ordered_at"])
    first = known.groupby("customer_id", sort=False)["ordered_at"].min()
    return first.rename("signup_at").rename_axis("customer_id").reset_index()


def summarize(tables: Tables) -> pd.DataFrame:
    """One row per table: rows, customers, date range, the span holding the central 95 % of
    rows (where the data really are: a few stray early or late rows stretch the range),
    share of missing values, warnings.

    The warnings' texts ride along in `attrs["warnings"]` for `validate` to print.
    """
    rows = []
    shown = tables.present() | ({} if tables.exits is None else {"exit answers": tables.exits})
    for name, frame in shown.items():
        time = frame[SCHEMAS.get(name, SCHEMAS["surveys"]).time_column]
        missing = frame.isna().mean()
        rows.append(
            {
                "table": name,
                "rows": len(frame),
                "customers": frame["customer_id"].nunique(),
                "from": time.min(),
                "to": time.max(),
                "95% of rows": f"{time.quantile(0.025):%Y-%m-%d}..{time.quantile(0.975):%Y-%m-%d}",
                "missing": ", ".join(
                    f"{c} {share:.0%}" for c, share in missing.items() if share > 0
                ),
                "warnings": sum(warning.table == name for warning in tables.warnings),
            }
        )
    summary = pd.DataFrame(rows)
    summary.attrs["warnings"] = [str(warning) for warning in tables.warnings]
    return summary
