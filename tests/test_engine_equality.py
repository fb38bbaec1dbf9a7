"""The engine against a straightforward reference on the simulator.

The reference is the definition written out: every purchase and event joined to each later
cutoff (`ts < cutoff`) by its text id, completion decided at that cutoff, and one aggregate
per feature: `count(DISTINCT ...)` for categories and channels, a trend's earlier half as its
own closed range. The engine computes some of these differently (value bits or
first-occurrence markers, 2 x the last w days less the last 2w days, an integer customer
key), so every purchase and event feature must be identical on every row, NaN-aware; only
the gap spread, which the reference takes from `stddev_samp`, is compared within 1e-9.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

import churnlens as cl
from churnlens.config import FeatureConfig
from churnlens.data.tables import result_frame
from churnlens.features import running
from churnlens.features.engine import (
    MAX_BITS,
    active_features,
    apply_dtypes,
    build_features,
    feature_sql,
)
from churnlens.features.registry import column_name

WINDOWS = [30, 90, 180]
CONFIG = FeatureConfig(windows_days=WINDOWS, btyd=False)
DAY, DAY_US = 86400.0, 86_400_000_000
CUTOFFS = pd.date_range("2024-07-01", periods=6, freq="MS")
APPROXIMATE = {"gap_std_days"}


def _reference_purchases(windows: list[int]) -> dict[str, str]:
    done = "FILTER (WHERE completed)"

    def since(expr: str) -> str:
        return f"(epoch(cutoff) - epoch({expr})) / {DAY}"

    def window(w: int) -> str:
        return f"completed AND ts >= cutoff - INTERVAL {w} DAY"

    sql = {
        "recency_days": since(f"max(ts) {done}"),
        "days_since_first_purchase": since(f"min(ts) {done}"),
        "orders_total": f"count(*) {done}",
        "spend_total": f"coalesce(sum(amount) {done}, 0)",
        "gap_mean_days": f"avg(gap_us) {done} / {DAY_US}",
        "gap_std_days": f"stddev_samp(gap_us // 1000000) {done} / {DAY}",  # whole seconds
        "last_gap_days": f"arg_max(gap_us, seq) {done} / {DAY_US}",
        "discount_share": f"avg(discounted::INTEGER) {done}",
        "refund_rate": "avg(refunded::INTEGER)",
        "categories_bought": f"count(DISTINCT category) {done}",
        "channels_used": f"count(DISTINCT channel) {done}",
        "last_channel": f"arg_max(channel, seq) {done}",
    }
    for w in windows:
        sql[f"orders_{w}d"] = f"count(*) FILTER (WHERE {window(w)})"
        sql[f"spend_{w}d"] = f"coalesce(sum(amount) FILTER (WHERE {window(w)}), 0)"
    for w in windows[:-1]:
        before = f"{window(2 * w)} AND ts < cutoff - INTERVAL {w} DAY"
        sql[f"orders_trend_{w}d"] = (
            f"count(*) FILTER (WHERE {window(w)}) - count(*) FILTER (WHERE {before})"
        )
        sql[f"spend_trend_{w}d"] = (
            f"coalesce(sum(amount) FILTER (WHERE {window(w)}), 0) "
            f"- coalesce(sum(amount) FILTER (WHERE {before}), 0)"
        )
    return sql


def _reference_events(windows: list[int], kinds: list[str]) -> dict[str, str]:
    sql = {}
    for kind in kinds:
        col = column_name(kind)
        for w in windows:
            sql[f"{col}_{w}d"] = (
                f"count(*) FILTER (WHERE kind = '{kind}' AND ts >= cutoff - INTERVAL {w} DAY)"
            )
        sql[f"days_since_{col}"] = (
            f"(epoch(cutoff) - epoch(max(ts) FILTER (WHERE kind = '{kind}'))) / {DAY}"
        )
    return sql


def reference(tables: cl.Tables, spine: pd.DataFrame) -> pd.DataFrame:
    """Purchase and event features per spine row, by joining all history to each cutoff."""
    refund_pending = (
        "OR (p.status IN ('refunded', 'returned') AND p.refunded_at >= s.cutoff)"
        if "refunded_at" in tables.purchases.columns
        else ""
    )
    refund_done = "AND NOT coalesce(p.refunded_at >= s.cutoff, FALSE)" if refund_pending else ""
    con = duckdb.connect()
    con.register("purchases_in", tables.purchases)
    con.register("events_in", tables.events)
    con.register("spine_in", spine[["customer_id", "cutoff"]])
    purchases = _reference_purchases(WINDOWS)
    kinds = sorted(tables.events["kind"].unique())
    events = _reference_events(WINDOWS, kinds)
    bought = con.sql(f"""
        WITH joined AS (
            SELECT s.customer_id, s.cutoff, p.ordered_at AS ts, p.order_id,
                   p.status = 'completed' {refund_pending} AS completed,
                   p.status IN ('refunded', 'returned') {refund_done} AS refunded,
                   CAST(p.amount AS DECIMAL(18, 4)) AS amount, p.discount > 0 AS discounted,
                   p.category, p.channel
            FROM spine_in s JOIN purchases_in p
            ON p.customer_id = s.customer_id AND p.ordered_at < s.cutoff),
        x AS (
            SELECT *, CASE WHEN completed THEN epoch_us(ts) - epoch_us(lag(ts) OVER w) END
                      AS gap_us, row_number() OVER w AS seq
            FROM joined
            WINDOW w AS (PARTITION BY customer_id, cutoff, completed ORDER BY ts, order_id))
        SELECT customer_id, cutoff, {", ".join(f"{v} AS {k}" for k, v in purchases.items())}
        FROM x GROUP BY customer_id, cutoff""").df()
    happened = con.sql(f"""
        SELECT s.customer_id, s.cutoff, {", ".join(f"{v} AS {k}" for k, v in events.items())}
        FROM spine_in s JOIN (SELECT customer_id, "at" AS ts, kind FROM events_in) e
        ON e.customer_id = s.customer_id AND e.ts < s.cutoff
        GROUP BY s.customer_id, s.cutoff""").df()
    con.close()
    frame = spine[["customer_id", "cutoff"]].merge(bought, how="left").merge(happened, how="left")
    # counts and sums over no rows are 0
    zero = [k for k, v in (purchases | events).items() if v.startswith(("count(", "coalesce("))]
    frame[zero] = frame[zero].fillna(0)
    return frame


def simulated(refund_times: bool, many_categories: bool = False) -> cl.Tables:
    """A simulated shop with some missing values, some purchases at the same time as another
    (ties in time, other categories and channels), and refund times on most refunds. With
    `many_categories`, more categories than the engine counts by bits (engine.MAX_BITS)."""
    shop = cl.simulate(1200, seed=11)
    shop.pop("ground_truth")
    purchases = shop["purchases"]
    rng = np.random.default_rng(4)
    twins = purchases.sample(300, random_state=1).assign(
        order_id=lambda f: f["order_id"] + "-twin",
        category=lambda f: f["category"].sample(frac=1, random_state=2).to_numpy(),
        channel=lambda f: f["channel"].sample(frac=1, random_state=3).to_numpy(),
    )
    purchases = pd.concat([purchases, twins], ignore_index=True)
    for column in ("channel", "category", "discount"):
        purchases.loc[rng.random(len(purchases)) < 0.05, column] = None
    if refund_times:
        refunds = purchases["status"].isin(["refunded", "returned"])
        later = pd.to_timedelta(rng.integers(0, 120 * 24, len(purchases)), unit="h")
        timed = refunds & (rng.random(len(purchases)) < 0.8)
        purchases["refunded_at"] = (purchases["ordered_at"] + later).where(timed)
    if many_categories:
        purchases["category"] += "-" + (purchases.index % 10).astype(str)
    shop["purchases"] = purchases
    return cl.validate(shop)


def spine(tables: cl.Tables) -> pd.DataFrame:
    customers = tables.customers[["customer_id", "signup_at"]]
    frame = customers.merge(pd.DataFrame({"cutoff": CUTOFFS}), how="cross")
    frame = frame[frame["signup_at"] < frame["cutoff"]]
    frame = frame[["customer_id", "cutoff"]].sample(frac=1, random_state=0)  # order-free
    frame["cutoff"] = frame["cutoff"].astype("datetime64[us]")
    return frame.reset_index(drop=True)


@pytest.mark.parametrize(
    ("refund_times", "many_categories"),
    [(False, False), (True, False), (True, True)],
    ids=["final status", "refund times", "categories past the bits"],
)
def test_every_purchase_and_event_feature_equals_the_reference(refund_times, many_categories):
    tables = simulated(refund_times, many_categories)
    categories = tables.purchases["category"].nunique()
    assert (categories > MAX_BITS) == many_categories  # both ways of counting categories
    assert tables.purchases["channel"].nunique() <= MAX_BITS
    rows = spine(tables)
    engine = build_features(tables, rows, CONFIG)
    expected = reference(tables, rows).sort_values(["cutoff", "customer_id"], ignore_index=True)
    assert len(engine) == len(expected) == len(rows)
    pd.testing.assert_series_equal(engine["customer_id"], expected["customer_id"])
    pending = tables.purchases["refunded_at"].notna().sum() if refund_times else 0
    assert (pending > 100) == refund_times  # the refund path is exercised, not only the status
    assert set(expected.columns) <= set(engine.columns)
    for column in expected.columns.drop(["customer_id", "cutoff"]):
        got, want = engine[column], expected[column]
        if isinstance(got.dtype, pd.CategoricalDtype):
            assert got.astype("object").equals(want.astype("object")), column
            continue
        got, want = got.to_numpy("float64"), want.to_numpy("float64")
        tolerance = 1e-9 if column in APPROXIMATE else 0
        np.testing.assert_allclose(
            got, want, rtol=tolerance, atol=tolerance, equal_nan=True, err_msg=column
        )


def built_and_joined(shop: cl.Tables, rows: pd.DataFrame, features) -> tuple:
    """(`build_features`' frame, the registry's statement run whole as Spark runs it: every
    row joined to the spine at each later cutoff), both with the engine's dtypes."""
    built = build_features(shop, rows, CONFIG, features=features)
    with shop.connect() as con:
        con.register("spine_in", rows)
        joined = result_frame(con.sql(feature_sql(shop, features, [])))
    return built, apply_dtypes(joined, features)


def test_running_totals_give_the_registry_sql_bit_for_bit():
    """DuckDB computes purchase features from running totals (features/running.py); Spark
    runs the registry's SQL, which joins every purchase to every later cutoff. Both must give
    the same bits, or a value on a drift bucket's edge lands in different buckets. Times
    carry microseconds here, which the gap spread drops on both sides."""
    shop = simulated(refund_times=True, many_categories=True)
    jitter = np.random.default_rng(5).integers(0, 1_000_000, len(shop.purchases))
    shop.purchases["ordered_at"] += pd.to_timedelta(jitter, unit="us")
    features = active_features(shop, CONFIG)
    running, joined = built_and_joined(shop, spine(shop), features)
    bought = [f.name for f in features if f.source == "purchases"]
    assert {"gap_std_days", "last_channel", "categories_bought", "refund_rate"} <= set(bought)
    assert running["gap_std_days"].notna().sum() > 1000
    pd.testing.assert_frame_equal(running, joined, check_exact=True)


@pytest.mark.parametrize("stranger", [False, True], ids=["stored keys", "text ids"])
def test_one_cutoff_grouped_first_gives_the_joined_statement_bit_for_bit(stranger):
    """At one cutoff (scoring) each source is grouped per customer before it meets the spine,
    by the key validation stored (tables.KEY), or by the text id when a spine customer has
    none (a `stranger` the customers table does not know); Spark joins first. Every feature of
    every source must be the same bits, with refunds pending at the cutoff and customers
    outside the spine whose rows must not leak in. The tables are read as DataFrames only
    from another copy: a table read as one is no longer keyed."""
    shop = simulated(refund_times=True, many_categories=True)
    purchases = shop.purchases
    for _, at_cutoff in purchases.iloc[len(purchases) // 2 :].iterrows():
        cutoff = at_cutoff["ordered_at"]  # a purchase at the cutoff is not counted ...
        pending = (purchases["ordered_at"] < cutoff) & (purchases["refunded_at"] >= cutoff)
        if at_cutoff["customer_id"] not in set(purchases.loc[pending, "customer_id"]):
            break  # ... even by a customer whose purchases are not a pending refund's copy
    assert pending.sum() > 5
    customers = shop.customers.loc[shop.customers["signup_at"] < cutoff, "customer_id"]
    customers = {*customers.iloc[::2], at_cutoff["customer_id"]}
    rows = pd.DataFrame({"customer_id": sorted(customers | ({"stranger"} if stranger else set()))})
    rows = rows.assign(cutoff=cutoff).sample(frac=1, random_state=0).reset_index(drop=True)
    rows["cutoff"] = rows["cutoff"].astype("datetime64[us]")
    assert set(purchases.loc[pending, "customer_id"]) & set(rows["customer_id"])
    assert at_cutoff["customer_id"] in set(rows["customer_id"])
    fresh = simulated(refund_times=True, many_categories=True)
    features = active_features(fresh, CONFIG)
    grouped, whole = built_and_joined(fresh, rows, features)
    assert fresh.keyed
    assert {f.source for f in features} >= {"purchases", "tickets", "surveys", "events"}
    assert len(grouped) == len(rows) and grouped["orders_total"].gt(0).sum() > 100
    pd.testing.assert_frame_equal(grouped, whole, check_exact=True)


def test_a_cutoff_with_nanoseconds_gives_the_joined_statement_bit_for_bit():
    """A pandas spine may carry nanoseconds, which DuckDB keeps (TIMESTAMP_NS). The grouped
    statement writes its one cutoff as a literal: cut to the microsecond, it lost every
    aggregate (its cutoff no longer joined the spine's) and left out a purchase made in the
    cutoff's microsecond, which the spine's own value counts."""
    shop = simulated(refund_times=True)
    purchase = shop.purchases.iloc[len(shop.purchases) // 2]
    cutoff = purchase["ordered_at"].floor("us") + pd.Timedelta(nanoseconds=999)
    customers = shop.customers.loc[shop.customers["signup_at"] < cutoff, "customer_id"]
    rows = pd.DataFrame({"customer_id": sorted(customers), "cutoff": cutoff})
    assert rows["cutoff"].dt.unit == "ns" and purchase["customer_id"] in set(rows["customer_id"])
    fresh = simulated(refund_times=True)  # never read as DataFrames: keyed
    features = active_features(fresh, CONFIG)
    grouped, whole = built_and_joined(fresh, rows, features)
    assert fresh.keyed
    assert grouped["orders_total"].gt(0).sum() > 100
    pd.testing.assert_frame_equal(grouped, whole, check_exact=True)


@pytest.mark.parametrize("side", ["left", "right"])
def test_the_search_in_parts_finds_numpys_positions(side):
    """running._search narrows each part of sorted needles to its slice of the haystack;
    runs of sorted needles that restart (cutoffs) and needles past either end included."""
    rng = np.random.default_rng(3)
    haystack = np.sort(rng.integers(0, 10**6, 300_000))
    needles = np.concatenate(
        [np.sort(rng.integers(-5, 10**6 + 5, 20_000)), np.sort(rng.integers(0, 10**6, 9_000))]
    )
    assert len(needles) > 5 * running.SEARCH_PART
    got = running._search(haystack, needles, side)
    np.testing.assert_array_equal(got, np.searchsorted(haystack, needles, side))
