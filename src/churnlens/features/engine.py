"""The feature engine: one DuckDB statement computes the features for every (customer, cutoff).

Each source is joined to the spine on the customer (an integer key, `KEYS`) with
`ts < cutoff`, so a row at or after a cutoff can never reach that cutoff's features, and
aggregated per (customer, cutoff) with the registry's SQL; the per-source results are
left-joined back to the spine. What can be decided once per source row is decided before the
join (flags, gaps, a category's bit), so the joined rows stay narrow and no aggregate needs
a DISTINCT. No Python loop runs over customers or cutoffs. A purchase counts as completed
where it is completed at the cutoff (`completed_sql`): with `refunded_at`, the few (customer,
cutoff) pairs with a refund still pending at the cutoff read their own copy of the customer's
purchases as of the cutoff (`_purchase_rows`). Over several cutoffs the purchase features come
from running totals instead (features/running.py, see `_frame`), with the same values; at one
cutoff (scoring) each source is grouped per customer before the join, by the customer number
validation stored with each row (`STORED_KEYS`) or the text id (`TEXT_KEYS`). Spark
runs the statement whole, with its join. The result comes back as a DataFrame with fixed dtypes
(`build_features`), or is written to Parquet (`write_features`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import pandas as pd

from churnlens.config import Config, DataConfig, FeatureConfig
from churnlens.data.contract import REFUND_STATUSES, completed_sql
from churnlens.data.io import atomic_path
from churnlens.data.tables import KEY, Tables, result_frame, timestamp_sql
from churnlens.errors import VALIDATED, ChurnlensError, expect
from churnlens.features.btyd import BTYD_FEATURES, add_btyd_features
from churnlens.features.registry import (
    Feature,
    attribute_feature,
    column_name,
    feature_registry,
)
from churnlens.features.running import purchase_features
from churnlens.labels import NOT_FEATURES, SPINE_COLUMNS, labels, training_cutoffs

SQL_TYPES = {"int64": "BIGINT", "float64": "DOUBLE", "category": "VARCHAR"}
MAX_EVENT_KINDS = 30  # kinds taken from the data without features.event_kinds
log = logging.getLogger(__name__)

# Each source's rows, with `ts` as the row's time and the helper columns the registry uses.
PREPARED = {
    "purchases": """
        SELECT _cid, version, ordered_at AS ts, {columns}, completed,
               CASE WHEN completed THEN epoch_us(ordered_at) - epoch_us(lag(ordered_at) OVER w)
               END AS gap_us,
               row_number() OVER w AS seq
        FROM ({rows}) AS purchase_rows
        WINDOW w AS (PARTITION BY _cid, version, completed ORDER BY ordered_at, order_id)""",
    "tickets": "SELECT _cid, opened_at AS ts, {columns} FROM tickets_k",
    "surveys": """
        SELECT _cid, answered_at AS ts, kind, score,
               row_number() OVER w AS seq, lag(score) OVER w AS prev_score
        FROM surveys_k
        WINDOW w AS (PARTITION BY _cid, kind ORDER BY answered_at, response_id)""",
    "events": 'SELECT _cid, "at" AS ts, kind FROM events_k',
}
# Each spine customer's integer key `_cid` (in id order, so the same in every reading): the
# sources' rows carry it instead of the text id into sorts, joins and groups, and rows of
# customers outside the spine are dropped before any work.
KEYS = """keys AS (
    SELECT customer_id, row_number() OVER (ORDER BY customer_id) AS _cid
    FROM (SELECT DISTINCT customer_id FROM spine_in)),
spine AS (SELECT s.*, k._cid FROM spine_in s JOIN keys k USING (customer_id))"""
# At one cutoff (scoring) each source is aggregated per customer before it meets the spine, by
# the key validation stored with every row (KEY, in id order), else by the text id itself:
# joining every row to the keys costs more than grouping by text (1M customers: the events'
# aggregate 3.1 s instead of 5.8), and grouping by the stored key less (the features 2 s
# faster in `score`; benchmarks/results/growth.md).
TEXT_KEYS = "spine AS (SELECT *, customer_id AS _cid FROM spine_in)"
STORED_KEYS = f"""spine AS (
    SELECT s.*, c.{KEY} AS _cid FROM spine_in s LEFT JOIN customers_in c USING (customer_id))"""
# Distinct categories (channels) bought before a cutoff, without a DISTINCT over the joined
# rows (registry.distinct_completed sums both terms). A column with at most MAX_BITS values
# (a categorical from the contract) gives each row its value's bit, OR-ed per (customer,
# cutoff) and counted: no sort. Otherwise each row says whether it is its customer's first
# completed one with that value, by time (so the first one before any cutoff is the earliest):
# a window sort per column.
DISTINCT_COUNTED = ("category", "channel")
MAX_BITS = 63  # a BIGINT's bits below the sign
_BIT = "CAST(1 AS BIGINT) << _code_{0} AS {0}_bit, FALSE AS first_{0}"
_FIRST = (
    "CAST(NULL AS BIGINT) AS {0}_bit, {0} IS NOT NULL AND row_number() OVER (PARTITION BY "
    "_cid, version, completed, {0} ORDER BY ordered_at, order_id) = 1 AS first_{0}"
)
# Optional input columns -> what crosses the join: flags rather than text, so the joined
# rows (one per purchase and later cutoff) stay narrow.
AMOUNT = "CAST(amount AS DECIMAL(18, 4))"  # exact sums, whatever the order of addition
HELPER_COLUMNS = {
    "purchases": {
        "amount": f"{AMOUNT} AS amount",
        "status": "status IN ({}) AND NOT completed AS refunded".format(
            ", ".join(f"'{status}'" for status in REFUND_STATUSES)
        ),
        "discount": "discount > 0 AS discounted",
        "channel": "channel",
    },
    "tickets": {
        c: c for c in ("first_response_at", "resolved_at", "ended_at", "reopened", "reopened_since")
    },
}


def active_features(
    tables: Tables, config: FeatureConfig, ces_scale: int = 7, csat_scale: int = 5
) -> list[Feature]:
    """The registry's features whose source table and columns exist, plus the attributes.

    Event kinds: the configured ones, each as the data writes it (a configured `page_view`
    counts the data's `page view`: kinds are matched by their column names), else every kind
    in the data, at most MAX_EVENT_KINDS of them (each adds a count per window and the days
    since the last)."""
    in_data = _event_kinds(tables)
    if config.event_kinds is None:
        kinds = in_data
        if len(kinds) > MAX_EVENT_KINDS:
            raise ChurnlensError(
                f"table events: {len(kinds)} kinds (at most {MAX_EVENT_KINDS} are taken "
                f"unasked; each adds {len(config.windows_days) + 1} features); name the ones "
                "that matter in features.event_kinds"
            )
    else:
        written = {column_name(kind): kind for kind in in_data}
        kinds = [written.get(column_name(kind), kind) for kind in config.event_kinds]
    _check_declared(tables, config, in_data)
    columns = {name: tables.columns(name) for name in tables.names}
    chosen: list[Feature] = []
    for feature in feature_registry(config, kinds, ces_scale, csat_scale):
        if feature.source == "derived":
            names = {f.name for f in chosen}
            ok = all(name in names for name in feature.requires)
        else:
            found = columns.get(feature.source, {})
            ok = bool(found) and all(col in found for col in feature.requires)
        if ok:
            chosen.append(feature)
    return chosen + _attribute_features(tables, {f.name for f in chosen}, config)


def _event_kinds(tables: Tables) -> list[str]:
    """The event kinds in the data, sorted."""
    if "events" not in tables.names:
        return []
    with tables.connect() as con:
        found = con.execute("SELECT DISTINCT kind FROM events_in WHERE kind IS NOT NULL")
        return sorted(str(kind) for (kind,) in found.fetchall())


def _check_declared(tables: Tables, config: FeatureConfig, kinds_in_data: list[str]) -> None:
    """A declared attribute must be a column of the customers table: a misspelt one would
    leave the real column context in silence, and reasons would never name its family. A
    named event kind absent from the events table is only warned about: it may just not have
    happened in this data (its features are 0), or be misspelt."""
    declared = {*config.attribute_roles, *config.attribute_families, *config.attribute_sentences}
    stray = sorted(declared - set(tables.attributes))
    if stray:
        raise ChurnlensError(
            f"config features: attribute(s) {', '.join(stray)} are no column of the customers "
            f"table (its attributes: {', '.join(tables.attributes) or 'none'})"
        )
    named = set(config.event_kinds or []) | set(config.event_roles) | set(config.event_families)
    seen = {column_name(kind) for kind in kinds_in_data}
    absent = sorted(kind for kind in named if column_name(kind) not in seen)
    if absent and "events" in tables.names:
        log.warning(
            "features: event kind(s) %s named in the config do not occur in the events table; "
            "their counts are 0 (kinds in the data: %s)",
            ", ".join(absent),
            ", ".join(kinds_in_data) or "none",
        )


def _attribute_features(tables: Tables, taken: set[str], config: FeatureConfig) -> list[Feature]:
    """The customer attributes as features; one named as a built-in feature, a BTYD feature,
    the label or a spine column would overwrite that column, so it is refused."""
    clash = sorted(taken.union(BTYD_FEATURES, NOT_FEATURES).intersection(tables.attributes))
    if clash:
        raise ChurnlensError(
            f"table customers: attribute column(s) {', '.join(clash)} have the name of a "
            f"built-in feature or of a column churnlens adds ({', '.join(NOT_FEATURES)}); "
            "rename them in the file or the column mapping"
        )
    types = tables.columns("customers")
    return [
        attribute_feature(
            name, "float64" if types[name].id in ("double", "float") else "category", config
        )
        for name in tables.attributes
    ]


def _keyed(source: str, bits: list[str] = (), key: str | None = None) -> str:
    """The source's rows with their key `_cid` (and value numbers): over several cutoffs
    the spine customers' rows with their integer key, at one cutoff every row with `key`,
    its stored key or text id (see TEXT_KEYS)."""
    keys = "" if key else " JOIN keys k USING (customer_id)"
    return f"""{source}_k AS (
    SELECT {key or "k._cid"} AS _cid, x.*{"".join(f", _code_{c}" for c in bits)}
    FROM {source}_in x{keys}{"".join(map(_codes_join, bits))})"""


def _source_cte(
    source: str, features: list[Feature], tables: Tables, at: str | None, key: str | None
) -> str:
    """The source's keyed rows, prepared rows and aggregate per (customer, cutoff): over
    several cutoffs each row joins the spine at every later cutoff; at one cutoff (`at`, a
    literal) the rows before it are grouped per customer by `key` (see `_keyed`), with no
    join."""
    types = tables.columns(source)
    helpers = [sql for c, sql in HELPER_COLUMNS.get(source, {}).items() if c in types]
    pending, rows, match, bits = "", "", "", []
    if source == "purchases":
        pending, rows, match = _purchase_rows(types, at)
        counted = [c for c in DISTINCT_COUNTED if c in types]
        bits = [c for c in counted if _few_values(types[c])]
        helpers += [(_BIT if c in bits else _FIRST).format(c) for c in counted]
    prepared = PREPARED[source].format(columns=", ".join(helpers) or "NULL AS _none", rows=rows)
    aggregates = ",\n    ".join(f"{f.sql} AS {_quote(f.name)}" for f in features)
    if at is None:
        spine = _versioned_spine(pending)
        rows_in = f"{spine} JOIN {source}_p x ON x._cid = s._cid AND x.ts < s.cutoff{match}"
        grouped = "s"
    else:
        rows_in = f"(SELECT *, {at} AS cutoff FROM {source}_p) x"
        if pending:
            rows_in += " LEFT JOIN pending v ON v._cid = x._cid"
        rows_in += f"\n    WHERE x.ts < x.cutoff{match}"
        grouped = "x"
    return f"""{_keyed(source, bits, key)},
{pending}{source}_p AS ({prepared}),
agg_{source} AS (
    SELECT {grouped}._cid, {grouped}.cutoff,
    {aggregates}
    FROM {rows_in}
    GROUP BY {grouped}._cid, {grouped}.cutoff)"""


def running_inputs(tables: Tables) -> tuple[str, str]:
    """The statements giving features/running.py its purchase rows, sorted by customer,
    version and time (running.py orders ties by order id), and its probes: the spine rows
    with their version, in the order of `feature_sql`'s result (by cutoff, then customer, so
    that within a cutoff the binary searches move forward). Without refund times no refund
    is pending at a cutoff, and there is no version."""
    types = tables.columns("purchases")
    pending, rows, _ = _purchase_rows(types)
    spine = _versioned_spine(pending)
    helpers = {**HELPER_COLUMNS["purchases"], "category": "category"}
    helpers["amount"] = f"CAST({AMOUNT} * 10000 AS BIGINT) AS amount"  # whole units
    columns = "".join(f", {sql}" for c, sql in helpers.items() if c in types)
    versioned = "refunded_at" in types
    head = "WITH " + ",\n".join([KEYS, _keyed("purchases"), *([pending.rstrip(",\n")] * versioned)])
    return (
        f"""{head}
SELECT _cid{", epoch_us(version) AS version" * versioned}, epoch_us(ordered_at) AS ts,
       order_id, completed{columns}
FROM ({rows}) AS purchase_rows
ORDER BY _cid{", version NULLS FIRST" * versioned}, ordered_at""",
        f"""{head}
SELECT s._cid, epoch_us(s.cutoff) AS cutoff_us{", epoch_us(v.version) AS version" * versioned}
FROM {spine}
ORDER BY s.cutoff, s._cid""",
    )


def _few_values(sql_type: duckdb.DuckDBPyType) -> bool:
    """Whether a column's values fit a BIGINT's bits (see DISTINCT_COUNTED): an ENUM (the
    contract's few-valued text, a categorical in pandas) of at most MAX_BITS values."""
    return sql_type.id == "enum" and len(dict(sql_type.children)["values"]) <= MAX_BITS


def _codes_join(column: str) -> str:
    """The join giving each row its value's number (0 .. values - 1) as `_code_{column}`."""
    return f"""
    LEFT JOIN (SELECT {column} AS _value, CAST(row_number() OVER (ORDER BY {column}) - 1 AS
               INTEGER) AS _code_{column}
               FROM (SELECT DISTINCT {column} FROM purchases_in WHERE {column} IS NOT NULL))
               AS _codes_{column} ON _codes_{column}._value = x.{column}"""


def _purchase_rows(columns, at: str | None = None) -> tuple[str, str, str]:
    """(a `pending` CTE, the purchase rows, the join's version match).

    Each purchase row carries `completed` as of the data export (`version` NULL). A
    (customer, cutoff) with a purchase before the cutoff that is refunded at or after it
    (`pending`: over the spine's cutoffs, or the one cutoff `at`) reads its own copy of the
    customer's purchases, completed as of the cutoff (`version` = the cutoff); such pairs are
    few, so are the copies. The aggregate joins `pending v` and keeps the rows whose version
    matches.
    """
    rows = (
        f"SELECT *, CAST(NULL AS TIMESTAMP) AS version, {completed_sql(columns)} AS completed "
        "FROM purchases_k"
    )
    if "refunded_at" not in columns:
        return "", rows, ""
    cutoffs = f"(SELECT {at} AS cutoff)" if at else "(SELECT _cid, cutoff FROM spine)"
    joined = "" if at else "p._cid = s._cid AND "
    pending = f"""pending AS (
    SELECT DISTINCT p._cid, s.cutoff AS version
    FROM {cutoffs} s JOIN purchases_k p
    ON {joined}p.ordered_at < s.cutoff
    AND {completed_sql(columns, "s.cutoff")} AND NOT {completed_sql(columns)}),
"""
    rows += f"""
            UNION ALL
            SELECT p.*, v.version, {completed_sql(columns, "v.version")}
            FROM pending v JOIN purchases_k p
            ON p._cid = v._cid AND p.ordered_at < v.version"""
    return pending, rows, " AND x.version IS NOT DISTINCT FROM v.version"


def _versioned_spine(pending: str) -> str:
    """The spine `s`, with each row's pending-refund version `v` when there is a `pending`
    CTE (see `_purchase_rows`)."""
    if not pending:
        return "spine s"
    return "spine s LEFT JOIN pending v ON v._cid = s._cid AND v.version = s.cutoff"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _joined_column(feature: Feature) -> str:
    """A feature as read from its source's aggregate (or the customer row), with its fill."""
    expr = feature.sql if feature.source == "customers" else _quote(feature.name)
    value = f"coalesce({expr}, {feature.fill})" if feature.fill else expr
    return f"{value} AS {_quote(feature.name)}"


def _output_column(feature: Feature) -> str:
    expr = feature.sql if feature.source == "derived" else _quote(feature.name)
    return f"CAST({expr} AS {SQL_TYPES[feature.dtype]}) AS {_quote(feature.name)}"


def feature_sql(
    tables: Tables,
    features: list[Feature],
    spine_extra: list[str],
    cutoff=None,
    keyed: bool = False,
) -> str:
    """The one statement: prepared sources, per-source aggregates, joined to the spine.
    With `cutoff`, the spine's only cutoff, each source is aggregated at it before the join,
    by the stored KEY when `keyed` (every spine customer has one), else by the text id (see
    TEXT_KEYS); the result is the same."""
    by_source: dict[str, list[Feature]] = {}
    for feature in features:
        by_source.setdefault(feature.source, []).append(feature)
    aggregated = [s for s in by_source if s not in ("customers", "derived")]
    at = None if cutoff is None else timestamp_sql(cutoff)
    key = (f"x.{KEY}" if keyed else "x.customer_id") if at else None
    ctes = [(STORED_KEYS if keyed else TEXT_KEYS) if at else KEYS]
    ctes += [_source_cte(source, by_source[source], tables, at, key) for source in aggregated]
    joined = [_joined_column(f) for f in features if f.source != "derived"]
    joined += [f"s.{_quote(c)}" for c in spine_extra]
    joins = "\n".join(f"LEFT JOIN agg_{s} USING (_cid, cutoff)" for s in aggregated)
    outputs = [_output_column(f) for f in features] + [_quote(c) for c in spine_extra]
    ctes.append(f"""joined AS (
    SELECT customer_id, cutoff, s._cid, {", ".join(joined)}
    FROM spine s {joins}
    LEFT JOIN customers_in c USING (customer_id))""")
    with_clause = ",\n".join(ctes)
    # _cid is the id or numbers the customers in id order: sorting by it sorts by id
    return f"""WITH {with_clause}
SELECT customer_id, cutoff, {", ".join(outputs)}
FROM joined
ORDER BY cutoff, _cid"""


def _check_spine(spine: pd.DataFrame) -> list[str]:
    """The spine's extra columns; refused without its columns, with cutoffs that are not
    times (text failed deep in DuckDB), or with cutoffs in a time zone, as a dtype or on the
    values of an object column: the tables' times carry none (the contract reads a time with
    an offset as UTC)."""
    missing = [c for c in SPINE_COLUMNS if c not in spine.columns]
    if missing:
        raise ChurnlensError(f"spine: missing column(s) {', '.join(missing)}")
    cutoff = spine["cutoff"]
    zone = getattr(cutoff.dtype, "tz", None)
    if zone is None and not pd.api.types.is_datetime64_dtype(cutoff):
        kind = pd.api.types.infer_dtype(cutoff, skipna=True)
        if kind not in ("date", "datetime", "empty"):
            example = cutoff.dropna().iloc[0] if cutoff.notna().any() else None
            raise ChurnlensError(
                f"spine: cutoff must hold times, not {kind} values (e.g. {example!r}); "
                "pd.to_datetime(spine['cutoff']) converts them"
            )
        zones = {str(v.tzinfo) for v in cutoff.dropna() if getattr(v, "tzinfo", None) is not None}
        zone = ", ".join(sorted(zones)) or None
    if zone is not None:
        raise ChurnlensError(
            f"spine: cutoff is in time zone {zone}; the tables' times carry none (times "
            "given with an offset are read as UTC). Give the cutoffs without one: "
            ".dt.tz_convert('UTC').dt.tz_localize(None) where the tables' times had offsets, "
            ".dt.tz_localize(None) where they were local times"
        )
    return [c for c in spine.columns if c not in SPINE_COLUMNS]


def _active(tables: Tables, config: FeatureConfig, data: DataConfig | None) -> list[Feature]:
    data = data or DataConfig()
    return active_features(tables, config, data.ces_scale, data.csat_scale)


def _frame(
    tables: Tables, spine: pd.DataFrame, features: list[Feature], extra: list[str]
) -> pd.DataFrame:
    """Every feature per spine row, sorted by cutoff and customer; the spine's `extra`
    columns (`_check_spine`) ride along.

    Over several cutoffs the purchase features come from running totals (features/running.py):
    the statement's join would repeat each purchase for every later cutoff. They are computed
    in the statement's row order and join its result as columns; the derived features that
    read them are computed after. Their inputs come from a connection of their own: closing it
    gives back the memory of their sort. At one cutoff (scoring) the statement groups each
    source's rows before the cutoff per customer (`feature_sql`'s `cutoff`): it reads each
    purchase once, and its hash aggregate costs less than the running totals' sort (1M
    customers: 3 s less in `score`). All give the same bits (tests/test_engine_equality.py),
    as Spark's copy of the statement with its join does.
    """
    cutoffs = spine["cutoff"].dropna().unique()
    several = len(cutoffs) > 1
    bought = [f for f in features if f.source == "purchases"] if several else []
    later: list[Feature] = []  # derived features that read a purchase feature
    for feature in features:
        reads = {f.name for f in bought + later}
        if feature.source == "derived" and reads.intersection(feature.requires):
            later.append(feature)
    columns = {}
    if bought:
        with tables.connect() as con:
            con.register("spine_in", spine)
            rows, probes = (con.sql(sql).to_arrow_table() for sql in running_inputs(tables))
        columns = purchase_features(rows, probes, [f.name for f in bought])
        del rows, probes
    rest = [f for f in features if f not in bought and f not in later]
    cutoff = cutoffs[0] if len(cutoffs) == 1 else None
    with tables.connect() as con:
        con.register("spine_in", spine)
        keyed = cutoff is not None and tables.keyed and _all_keyed(con)
        frame = result_frame(con.sql(feature_sql(tables, rest, extra, cutoff, keyed)))
    for name, values in columns.items():
        frame[name] = values
    if later:
        with duckdb.connect() as con:
            con.register("frame_in", frame)
            outputs = ", ".join(map(_output_column, later))
            derived = result_frame(con.sql(f"SELECT {outputs} FROM frame_in"))
        for name in derived.columns:
            frame[name] = derived[name].to_numpy()
    return frame[["customer_id", "cutoff", *(f.name for f in features), *extra]]


def _all_keyed(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether every customer of the spine has a stored KEY: one the customers table does not
    know has none, and is aggregated by the text id instead."""
    ((unknown,),) = con.execute(
        f"SELECT count(*) FROM spine_in s LEFT JOIN customers_in c USING (customer_id) "
        f"WHERE c.{KEY} IS NULL"
    ).fetchall()
    return unknown == 0


def build_features(
    tables: Tables,
    spine: pd.DataFrame,
    config: FeatureConfig,
    data: DataConfig | None = None,
    horizon_days: int | None = None,
    features: list[Feature] | None = None,
) -> pd.DataFrame:
    """Features for each (customer_id, cutoff) row of `spine`; other spine columns ride along.

    With `config.btyd` (the default) the BTYD features of each cutoff are appended
    (features/btyd.py); they need the churn horizon, so `horizon_days` is then required.
    `features`: `active_features`' list when the caller has it already (scoring explains
    with it), so it is not made twice.
    """
    btyd = with_btyd(config, horizon_days)
    features = features or _active(tables, config, data)
    extra = _check_spine(spine)
    frame = apply_dtypes(_frame(tables, spine, features, extra), features)
    if btyd:  # the label stays last, after the BTYD features
        frame = add_btyd_features(tables, frame, horizon_days)
        frame = frame[[c for c in frame.columns if c not in extra] + extra]
    return frame


def with_btyd(config: FeatureConfig, horizon_days: int | None) -> bool:
    """Whether the BTYD features are added; refused without the horizon rather than left
    out, so a model trained with them always finds them when it scores."""
    if config.btyd and horizon_days is None:
        raise ChurnlensError(
            "features.btyd: the BTYD features need the churn horizon; pass horizon_days "
            "(config.churn.horizon_days), or set features.btyd to false"
        )
    return config.btyd


def apply_dtypes(frame: pd.DataFrame, features: list[Feature]) -> pd.DataFrame:
    """Fixed dtypes: ids as str, cutoff as datetime64[us], categoricals with sorted levels."""
    frame["customer_id"] = frame["customer_id"].astype("str")
    frame["cutoff"] = frame["cutoff"].astype("datetime64[us]")
    for feature in features:
        if feature.dtype == "category":
            values = frame[feature.name]
            levels = sorted(values.dropna().unique())
            if isinstance(values.dtype, pd.CategoricalDtype):  # the running totals' last channel
                frame[feature.name] = values.cat.set_categories(levels)
            else:
                frame[feature.name] = pd.Categorical(values, categories=levels)
        else:
            frame[feature.name] = frame[feature.name].astype(feature.dtype)
    return frame


def write_features(
    tables: Tables,
    spine: pd.DataFrame,
    config: FeatureConfig,
    path: Path,
    data: DataConfig | None = None,
    horizon_days: int | None = None,
) -> int:
    """Write the features to a Parquet file atomically; return the number of rows."""
    frame = build_features(tables, spine, config, data, horizon_days)
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return len(frame)


def training_set(tables: Tables, config: Config | None = None) -> pd.DataFrame:
    """Features and the churn label per (customer, cutoff) at the config's training cutoffs."""
    config = config or Config()
    expect(tables, Tables, f"training_set: tables are {VALIDATED}")
    spine = labels(tables, training_cutoffs(tables, config.cutoffs, config.churn), config.churn)
    return build_features(tables, spine, config.features, config.data, config.churn.horizon_days)
