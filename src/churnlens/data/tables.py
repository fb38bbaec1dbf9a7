"""The validated input tables, kept where validation left them.

Validation (`churnlens.data.contract`) converts every table inside DuckDB and keeps the
result there, in one in-memory database, so the steps that are SQL (labels, features, BTYD)
read the tables where they are (`Tables.connect`) and nothing is copied to pandas on their
account: at 1M customers `score` peaks 1.2 GB lower for it (benchmarks/results/growth.md).
A table becomes a pandas DataFrame only when it is asked for as an attribute
(`tables.purchases`), once. Tables built from DataFrames (tests, Spark's outline) hold those
frames, and SQL sees the same frames.
"""

from __future__ import annotations

import os

import duckdb
import pandas as pd
import pyarrow as pa

NAMES = ("customers", "purchases", "tickets", "surveys", "events", "exits")
SOURCES = NAMES[:5]  # the tables features read from (exit answers feed only the report)
STORE = "store"  # the attached in-memory database that holds the checked tables
# Beside each stored table's columns: its customer's number in id order (NULL for an id the
# customers do not know), given by validation; the features group and sort by it.
KEY = "_k"
# Stored tables above this share of the machine's memory are compressed (`compress_if_large`).
COMPRESS_SHARE = 0.25
# Where a container's memory limit is read: cgroup v2, then v1 (which says "no limit" with a
# number near 2**63).
MEMORY_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def open_store(con: duckdb.DuckDBPyConnection) -> None:
    """Attach the in-memory database the checked tables are written into (STORE); it can
    compress them (`compress_if_large`)."""
    con.execute(f"ATTACH ':memory:' AS {STORE} (COMPRESS)")


def compress_if_large(con: duckdb.DuckDBPyConnection) -> bool:
    """Compress the stored tables when they take more than COMPRESS_SHARE of the machine's
    memory (`machine_memory`); whether it did. Compressed, they take about a third of the
    memory, and writing them takes about 2.7x as long (benchmarks/results/growth.md): worth
    it where memory runs short (5M customers: 12 GB of tables on a 24 GB machine), not
    below."""
    ((used,),) = con.execute(
        "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory() "
        "WHERE tag = 'IN_MEMORY_TABLE'"
    ).fetchall()
    if used <= COMPRESS_SHARE * machine_memory():
        return False
    con.execute(f"CHECKPOINT {STORE}")
    return True


def machine_memory(limits: tuple[str, ...] = MEMORY_LIMITS) -> int:
    """The bytes this process may use: the physical memory, or a container's smaller limit
    (a scoring job in a container of 8 GB on a 64 GB host has 8)."""
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for path in limits:
        try:
            with open(path) as limit:
                text = limit.read().strip()
        except OSError:
            continue
        if text.isdigit():
            return min(memory, int(text))
        return memory  # "max": no limit
    return memory


def cutoffs_sql(cutoffs) -> str:
    """A relation of the given cutoffs (column `cutoff`; missing ones never match a row, so
    left out) written out as literals: unlike a DISTINCT over the spine, the planner knows how
    few rows it has (1M customers, the BTYD summary at one cutoff: 4.1 s instead of 5.2)."""
    days = sorted({pd.Timestamp(cutoff) for cutoff in cutoffs if pd.notna(cutoff)})
    if not days:
        return "(SELECT CAST(NULL AS TIMESTAMP) AS cutoff WHERE false)"
    values = ", ".join(f"({timestamp_sql(day)})" for day in days)
    return f"(SELECT cutoff FROM (VALUES {values}) AS _cutoffs(cutoff))"


def timestamp_sql(value) -> str:
    """A time as an SQL literal of the type DuckDB reads a pandas column of it as: TIMESTAMP,
    TIMESTAMP_NS when it has nanoseconds, TIMESTAMPTZ when it has a time zone. Otherwise the
    literal (a spine's cutoff) would neither compare with the rows nor join the spine's own
    value as that column does."""
    time = pd.Timestamp(value)
    kind = "TIMESTAMPTZ" if time.tz else "TIMESTAMP_NS" if time.nanosecond else "TIMESTAMP"
    return f"{kind} '{time.isoformat(sep=' ')}'"


def result_frame(relation: duckdb.DuckDBPyRelation, types_mapper=None) -> pd.DataFrame:
    """A query's result as pandas through Arrow, which converts text in bulk where DuckDB's
    `df()` builds it value by value (0.8 s for a million customer ids). For the numbers, text
    and timestamps it is used for, the dtypes are `df()`'s; DECIMAL, DATE and nullable
    BOOLEAN columns would come back as Python objects. `types_mapper`: as Arrow's. Each
    column stays its own block, so each Arrow column is freed as it converts (`self_destruct`)
    rather than the whole table held beside one consolidated copy."""
    table = relation.to_arrow_table()
    return table.to_pandas(types_mapper=types_mapper, self_destruct=True, split_blocks=True)


def read_frame(con: duckdb.DuckDBPyConnection, sql: str) -> pd.DataFrame:
    """A query's result as pandas (`result_frame`): whole numbers as nullable Int64, ENUM
    text as categoricals."""
    return result_frame(con.sql(sql), {pa.int64(): pd.Int64Dtype()}.get)


def _table(name: str) -> property:
    def read(self: Tables) -> pd.DataFrame | None:
        if name not in self._frames and name in self._stored:
            self._frames[name] = read_frame(
                self._database, f"SELECT * EXCLUDE ({KEY}) FROM {STORE}.main.{name}"
            )
        return self._frames.get(name)

    def replace(self: Tables, frame: pd.DataFrame | None) -> None:
        self._frames.pop(name, None)
        self._stored.discard(name)
        if frame is not None:
            self._frames[name] = frame

    return property(read, replace, doc=f"The {name} table as a DataFrame (None: absent).")


class Tables:
    """The validated input tables with canonical column names and fixed dtypes.

    `database`: a DuckDB connection whose attached STORE holds the tables (from
    validation); else the DataFrames given are the tables. `attributes`: the customers'
    extra columns; `warnings`: what validation warned about.
    """

    customers = _table("customers")
    purchases = _table("purchases")
    tickets = _table("tickets")
    surveys = _table("surveys")
    events = _table("events")
    exits = _table("exits")  # exit survey answers: stated leaving reasons

    def __init__(
        self,
        customers: pd.DataFrame | None = None,
        purchases: pd.DataFrame | None = None,
        tickets: pd.DataFrame | None = None,
        surveys: pd.DataFrame | None = None,
        events: pd.DataFrame | None = None,
        exits: pd.DataFrame | None = None,
        attributes: list[str] | None = None,
        warnings: list | None = None,
        *,
        database: duckdb.DuckDBPyConnection | None = None,
    ):
        given = zip(NAMES, (customers, purchases, tickets, surveys, events, exits), strict=True)
        self._frames = {name: frame for name, frame in given if frame is not None}
        self._database = database
        self._stored: set[str] = set()
        if database is not None:
            found = database.execute(
                f"SELECT table_name FROM duckdb_tables() WHERE database_name = '{STORE}'"
            ).fetchall()
            self._stored = {name for (name,) in found if name in NAMES}
        self.attributes = list(attributes or [])
        self.warnings = list(warnings or [])
        if not {"customers", "purchases"} <= self._stored | set(self._frames):
            raise TypeError("Tables: customers and purchases are required")

    @property
    def names(self) -> list[str]:
        """The present tables features can read (customers, purchases and the optional ones
        given), in their canonical order."""
        return [name for name in SOURCES if name in self._stored or name in self._frames]

    @property
    def keyed(self) -> bool:
        """Whether SQL sees every present table with its customer's KEY: stored (validation
        gives it) and never read as a DataFrame (a frame has none, and `connect` shows it)."""
        return all(name in self._stored and name not in self._frames for name in self.names)

    def present(self) -> dict[str, pd.DataFrame]:
        """The present tables (`names`) as DataFrames."""
        return {name: getattr(self, name) for name in self.names}

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A new DuckDB connection that sees each present table as the view `{name}_in`
        (exit answers too, when there are any), a stored one with its KEY; close it after
        use."""
        con = self._database.cursor() if self._database is not None else duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        for name in NAMES:  # a frame once read: what a user changed in it counts
            if name in self._frames:
                con.register(f"{name}_in", self._frames[name])
            elif name in self._stored:
                con.execute(f"CREATE TEMP VIEW {name}_in AS SELECT * FROM {STORE}.main.{name}")
        return con

    def columns(self, name: str) -> dict[str, duckdb.DuckDBPyType]:
        """Table `name`'s columns and their SQL types ({} when absent), without reading it."""
        if name not in self._stored and name not in self._frames:
            return {}
        with self.connect() as con:
            relation = con.table(f"{name}_in")
            found = zip(relation.columns, relation.types, strict=True)
            return {column: kind for column, kind in found if column != KEY}
