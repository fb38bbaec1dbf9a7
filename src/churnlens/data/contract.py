"""The data contract: the input tables' schemas, the column mapping, and validation.

Every broken input becomes one `ContractError` that lists each problem with the table, the
column, the rule and up to five offending rows (1-based data rows of the file, with the row's
id where the table has one), so a user can fix the file without reading a traceback. All
rules run before anything is returned, so one run reports every problem at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from churnlens.config import DataConfig
from churnlens.data.io import read_table
from churnlens.errors import ChurnlensError

Kind = Literal["id", "datetime", "float", "int", "text"]
PURCHASE_STATUSES = ("completed", "cancelled", "refunded", "returned")
SURVEY_KINDS = ("nps", "csat", "ces")
MAX_EXAMPLES = 5


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
                Column("order_id", "id", True),
                Column("customer_id", "id", True),
                Column("ordered_at", "datetime", True),
                Column("amount", "float", True),
                Column("status", "text"),
                Column("discount", "float"),
                Column("category", "text"),
                Column("channel", "text"),
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
                Column("channel", "text"),
                Column("priority", "text"),
                Column("reopened", "int"),
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
                Column("kind", "text", True),
                Column("score", "float", True),
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
                Column("kind", "text", True),
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
    attributes: list[str] = field(default_factory=list)

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

    def __init__(self, schema: TableSchema, frame: pd.DataFrame, problems: list[Problem]):
        self.schema, self.frame, self.problems = schema, frame, problems

    def add(self, column: str, rule: str, bad) -> None:
        bad = np.asarray(bad, dtype=bool)
        if bad.any():
            rows, examples = _examples(self.frame, bad, self.schema.key)
            self.problems.append(Problem(self.schema.name, column, rule, rows, examples))


def _rename(schema: TableSchema, frame: pd.DataFrame, mapping: dict[str, str]) -> pd.DataFrame:
    unknown = sorted(set(mapping) - set(schema.names))
    if unknown:
        raise ChurnlensError(
            f"config data.{schema.name}.columns: unknown column(s) {', '.join(unknown)}; "
            f"{schema.name} has {', '.join(schema.names)}"
        )
    return frame.rename(columns={source: name for name, source in mapping.items()})


def _coerce(column: Column, values: pd.Series, check: _Checker) -> pd.Series:
    """Convert one column to its contract type, reporting values that do not convert."""
    present = values.notna().to_numpy()
    if column.kind == "id":
        if pd.api.types.is_float_dtype(values) and (values.dropna() % 1 == 0).all():
            values = values.astype("Int64")
        return values.astype("str")
    if column.kind == "text":
        return values.astype("str")
    if column.kind == "datetime":
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            converted = values.dt.tz_convert("UTC").dt.tz_localize(None)
        elif pd.api.types.is_datetime64_dtype(values):
            converted = values
        else:
            converted = pd.to_datetime(
                values.astype("str"), format="ISO8601", errors="coerce", utc=True
            ).dt.tz_localize(None)
        check.add(
            column.name,
            "not a date (expected ISO 8601 such as 2024-01-31 or 2024-01-31 14:05:00)",
            present & converted.isna().to_numpy(),
        )
        return converted.astype("datetime64[us]")
    converted = pd.to_numeric(values, errors="coerce").astype("float64")
    check.add(column.name, "not a number", present & converted.isna().to_numpy())
    if column.kind == "int":
        fractional = converted.notna() & (converted % 1 != 0)
        check.add(column.name, "not a whole number", fractional)
        return converted.where(~fractional).astype("Int64")
    return converted


def _conform(schema: TableSchema, raw: pd.DataFrame, problems: list[Problem]) -> pd.DataFrame:
    """Check columns exist and convert them; extra customer columns become attributes."""
    check = _Checker(schema, raw, problems)
    missing = [c.name for c in schema.columns if c.required and c.name not in raw.columns]
    for name in missing:
        problems.append(Problem(schema.name, name, "required column is missing"))
    if missing:
        return raw
    out = {}
    for column in schema.columns:
        if column.name not in raw.columns:
            continue
        values = raw[column.name]
        if column.required:
            check.add(column.name, "required value is missing", values.isna())
        out[column.name] = _coerce(column, values, check)
    if schema.name == "customers":
        for name in raw.columns.difference(schema.names, sort=False):
            out[name] = _attribute(raw[name])
    frame = pd.DataFrame(out, index=raw.index)
    if schema.key:
        check.add(schema.key, "ids must be unique", frame[schema.key].duplicated(keep=False))
    return frame


def _blank_as_missing(frame: pd.DataFrame) -> pd.DataFrame:
    """An empty text cell is a missing value, in a DataFrame as in a CSV file."""
    text = [c for c in frame.columns if frame[c].dtype == object or frame[c].dtype == "str"]
    if not text:
        return frame
    return frame.assign(**{c: frame[c].mask(frame[c].eq("")) for c in text})


def _attribute(values: pd.Series) -> pd.Series:
    """A customer attribute is numeric when every present value is a number, else text."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype("str")
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().sum() == values.notna().sum():
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
            allowed = frame["status"].str.lower().isin(PURCHASE_STATUSES)
            check.add("status", f"must be one of {', '.join(PURCHASE_STATUSES)}", ~allowed)
    if name == "tickets":
        for column in ("first_response_at", "resolved_at"):
            if column in cols:
                check.add(
                    column, "must not be before opened_at", frame[column] < frame["opened_at"]
                )
        if "reopened" in cols:
            check.add("reopened", "must be >= 0", (frame["reopened"] < 0).fillna(False))
    if name == "surveys":
        kind = frame["kind"].str.lower()
        check.add(
            "kind",
            f"must be one of {', '.join(SURVEY_KINDS)}",
            ~kind.isin(SURVEY_KINDS) & frame["kind"].notna(),
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


def _normalise(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Lower-case the enumerated text columns once they have passed validation."""
    for column in {"purchases": ("status",), "surveys": ("kind",)}.get(name, ()):
        if column in frame.columns:
            frame[column] = frame[column].str.lower()
    return frame


def load_tables(data: DataConfig) -> Tables:
    """Read every configured table from its file and validate it (see `validate`)."""
    data.require_files()
    raw = {name: read_table(data.path_of(name), name) for name in SCHEMAS if data.table(name)}
    return validate(raw, data)


def validate(frames: Mapping[str, pd.DataFrame], data: DataConfig | None = None) -> Tables:
    """Check DataFrames against the contract: the same rules and messages as for files.

    `frames` maps table names (customers and purchases required; tickets, surveys, events
    optional) to DataFrames with the user's column names, renamed by `data`'s column mappings.
    Returns the converted tables; raises one `ContractError` listing every problem.
    """
    data = data or DataConfig()
    unknown = sorted(set(frames) - set(SCHEMAS))
    missing = [name for name in ("customers", "purchases") if frames.get(name) is None]
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
    frames = dict(frames)
    for name, schema in SCHEMAS.items():
        raw = frames.pop(name, None)
        if raw is None:
            continue
        if raw.empty:
            raise ChurnlensError(f"table {name}: has no rows")
        mapping = data.table(name).columns if data.table(name) else {}
        raw = _blank_as_missing(_rename(schema, raw.reset_index(drop=True), mapping))
        frame = _conform(schema, raw, problems)
        if all(c.name in frame.columns for c in schema.columns if c.required):
            _table_rules(name, frame, _Checker(schema, frame, problems), data)
        frames[name] = frame
    customers = frames["customers"]
    if "customer_id" in customers.columns:
        known = customers["customer_id"]
        for name, frame in frames.items():
            if name != "customers" and "customer_id" in frame.columns:
                _Checker(SCHEMAS[name], frame, problems).add(
                    "customer_id",
                    "unknown customer (not in customers)",
                    ~frame["customer_id"].isin(known) & frame["customer_id"].notna(),
                )
    if problems:
        raise ContractError(problems)
    frames = {name: _normalise(name, frame) for name, frame in frames.items()}
    attributes = [c for c in customers.columns if c not in SCHEMAS["customers"].names]
    return Tables(**frames, attributes=attributes)


def summarize(tables: Tables) -> pd.DataFrame:
    """One row per table: rows, customers, date range and the share of missing values."""
    rows = []
    for name, frame in tables.present().items():
        time = frame[SCHEMAS[name].time_column]
        missing = frame.isna().mean()
        rows.append(
            {
                "table": name,
                "rows": len(frame),
                "customers": frame["customer_id"].nunique(),
                "from": time.min(),
                "to": time.max(),
                "missing": ", ".join(
                    f"{c} {share:.0%}" for c, share in missing.items() if share > 0
                ),
            }
        )
    return pd.DataFrame(rows)
