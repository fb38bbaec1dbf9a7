"""Purchase features from running totals, read at each cutoff by binary search.

Joining every purchase to every later cutoff multiplies a customer's history by the number
of cutoffs (issue 14: 3.4M purchases became 14M joined rows at 200k customers x 6 cutoffs).
Every purchase feature is a quantity over the purchases before a time: a count, a sum, the
first or last one, a distinct count. So each customer's purchases are sorted once, running
totals are taken along them, and a feature over `[cutoff - w, cutoff)` is the running total
at the cutoff less the one at `cutoff - w`; a spine row finds both positions by binary search.
The cost grows with purchases + spine rows, not with their product.

The definitions stay the registry's SQL (features/registry.py), which Spark runs as written;
this reads the same quantities from running totals and must give the same values on every
row, to the bit (tests/test_engine_equality.py): money is summed as whole 1/10,000 units,
times and gaps as whole microseconds (seconds for the gap spread), and what follows the sums
is the SQL's own double arithmetic.

`rows` are the engine's purchase rows (engine.running_inputs) sorted by customer, version
and time (ties in the order of their order ids, see `_tie_order`): `_cid`, `version` (a
pending refund's copy, see engine._purchase_rows), `ts`, `order_id`, `completed`, and the
optional `amount` (units), `discounted`, `refunded`, `category`, `channel`. `probes` are the
spine rows (`_cid`, `cutoff_us`, `version`), in the order of the feature statement's result.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from churnlens.errors import ChurnlensError
from churnlens.features.registry import DAY, DAY_US

UNITS = 10_000.0  # money as whole 1/10,000 units: DECIMAL(18, 4), as the registry sums it
NO_VERSION = np.iinfo(np.int64).min  # a row of the export, not a pending refund's copy
DISTINCT_COLUMNS = {"categories_bought": "category", "channels_used": "channel"}
SEARCH_PART = 4096  # needles per search (see _search)
FEW_VALUES = 64  # distinct counts pass over the codes once per value up to this many


def _prefix(values: np.ndarray, dtype=np.int64) -> np.ndarray:
    """Running totals with a leading 0: `out[p]` is the sum of `values[:p]`. Sums wrap
    around on overflow, and the difference of two wrapped totals is still exact."""
    out = np.zeros(len(values) + 1, dtype=dtype)
    np.cumsum(values, out=out[1:])
    return out


def _tie_order(group: np.ndarray, ts: np.ndarray, order_id: pa.ChunkedArray):
    """The permutation putting a group's rows at the same time in order_id order, as the
    registry's SQL orders them (the statement sorts by group and time only: a text sort key
    costs it more than the rest of the sort); None without ties. Ties are few, so are the
    ids compared."""
    same = (group[1:] == group[:-1]) & (ts[1:] == ts[:-1])
    if not same.any():
        return None
    tied = np.flatnonzero(np.append(same, False) | np.append(False, same))
    block = np.cumsum(~np.append(False, same))[tied]
    ids = pa.table({"block": block, "id": order_id.take(tied)})
    order = np.arange(len(ts))
    order[tied] = tied[pc.sort_indices(ids, [("block", "ascending"), ("id", "ascending")])]
    return order


def _search(haystack: np.ndarray, needles: np.ndarray, side: str = "left") -> np.ndarray:
    """np.searchsorted, for needles sorted in long runs (probes, within a cutoff). numpy starts
    each needle's search over the whole rest of the haystack, which at scale misses the CPU's
    cache at every step (1M customers x 6 cutoffs: 7 of the running totals' 16 s). Here each
    SEARCH_PART of sorted needles is searched in the slice between its first and last
    needle's positions only; a part that is not sorted is searched whole."""
    out = np.empty(len(needles), dtype=np.int64)
    for low in range(0, len(needles), SEARCH_PART):
        part = needles[low : low + SEARCH_PART]
        if np.all(part[1:] >= part[:-1]):
            first, last = np.searchsorted(haystack, part[[0, -1]], side)
            part = np.searchsorted(haystack[first:last], part, side) + first
        else:
            part = np.searchsorted(haystack, part, side)
        out[low : low + len(part)] = part
    return out


def _counts(n: int):
    """The smallest integer type for counts and indices of `n` rows: every row-sized array
    is faulted into memory afresh, so half the bytes is about half the time."""
    return np.int32 if n < np.iinfo(np.int32).max else np.int64


def _last_at_or_before(mask: np.ndarray) -> np.ndarray:
    """For each row, the index of the last row up to it where `mask` holds, else -1."""
    index = np.arange(len(mask), dtype=_counts(len(mask)))
    return np.maximum.accumulate(np.where(mask, index, -1), out=index)


class Running:
    """Running totals over the sorted purchase rows, read for each probe (spine row).

    Most features read only the completed rows, so those are also numbered on their own:
    a probe's completed rows before its cutoff are `[first, end[0])` of them, and those
    before `cutoff - w` end at `end[w]`. Rows of a group (customer, version) are contiguous
    and in time order, so `first` is the group's first completed row, and the gaps between
    consecutive completed rows inside the range are the group's gaps."""

    def __init__(self, rows: pa.Table, probes: pa.Table, windows: set[int]):
        self.rows, self.cutoff_us = rows, probes["cutoff_us"].to_numpy()
        pending = probes["version"].drop_null() if "version" in probes.column_names else []
        versions = np.unique(np.append(pending, NO_VERSION))
        starts = np.unique(self.cutoff_us)
        boundaries = np.unique(np.concatenate([starts - w * DAY_US for w in {0, *windows}]))
        step = len(boundaries) + 1

        def group_of(table: pa.Table) -> np.ndarray:
            """(customer, version) as one number, in their order; the customer alone where
            no refund is pending at any cutoff (the statements then give no version)."""
            cid = table["_cid"].to_numpy()
            if len(versions) == 1:
                return cid
            version = table["version"].fill_null(NO_VERSION).to_numpy()
            return cid * len(versions) + np.searchsorted(versions, version)

        group = group_of(rows)
        ts = rows["ts"].to_numpy()
        self.order = _tie_order(group, ts, rows["order_id"])
        # a row's key orders it by group, then by the boundaries at or before its time
        key = group * step + np.searchsorted(boundaries, ts, side="right")
        probe_key = group_of(probes) * step
        self.start = _search(key, probe_key)
        stops = {}
        for w in {0, *windows}:
            j = np.searchsorted(boundaries, self.cutoff_us - w * DAY_US)  # its exact index
            # rows before the boundary: those of earlier groups, and this group's with ts < it
            stops[w] = _search(key, probe_key + j, side="right")
        del key, probe_key
        self.stop = stops[0]
        completed = self.column("completed", False)
        self.kept = np.flatnonzero(completed)
        done = _prefix(completed, _counts(len(completed)))
        self.first = done[self.start]
        self.end = {w: done[stop] for w, stop in stops.items()}
        self.group = group[self.kept]
        self.ts = np.zeros(len(self.kept) + 1, dtype=ts.dtype)  # index -1 of a probe
        np.take(ts, self.kept, out=self.ts[:-1])  # without rows: the 0
        self.count_all = self.end[0] - self.first
        self._codes: dict[str, tuple[np.ndarray, pa.Array]] = {}

    def column(self, name: str, fill, completed: bool = False) -> np.ndarray:
        """A column in row order (ties by order id), missing values as `fill`; `completed`:
        of the completed rows only."""
        values = self.rows[name].fill_null(fill).to_numpy(zero_copy_only=False)
        return self._ordered(values, completed)

    def valid(self, name: str, completed: bool = False) -> np.ndarray:
        values = self.rows[name].is_valid().to_numpy(zero_copy_only=False)
        return self._ordered(values, completed)

    def _ordered(self, values: np.ndarray, completed: bool) -> np.ndarray:
        values = values if self.order is None else values[self.order]
        return values[self.kept] if completed else values

    def codes(self, name: str) -> tuple[np.ndarray, pa.Array]:
        """A text or enum column of the completed rows as value numbers (-1 where missing),
        and the values (the last channel and the channels used read the same)."""
        if name in self._codes:
            return self._codes[name]
        array = self.rows[name].combine_chunks()
        if not pa.types.is_dictionary(array.type):
            array = pc.dictionary_encode(array)
        codes = array.indices.cast(pa.int32()).fill_null(-1).to_numpy()
        self._codes[name] = self._ordered(codes, completed=True), array.dictionary
        return self._codes[name]

    def _since(self, w: int | None) -> np.ndarray:
        return self.first if w is None else self.end[w]

    # --- counts and sums over the completed rows, before the cutoff or in a window ---

    def count(self, w: int | None = None) -> np.ndarray:
        return self.end[0] - self._since(w)

    @cached_property
    def _units(self) -> dict[int | None, np.ndarray]:
        """Running spend read at each probe's first completed row (None) and at each end."""
        units = _prefix(self.column("amount", 0, completed=True))
        return {None: units[self.first]} | {w: units[end] for w, end in self.end.items()}

    def spend(self, w: int | None = None) -> np.ndarray:
        """Whole units (divide by UNITS), so that sums and differences are exact."""
        return self._units[0] - self._units[w]

    # --- times: the first and last completed rows, the gaps between them ---

    def days_since(self, ts: np.ndarray) -> np.ndarray:
        """(epoch(cutoff) - epoch(ts)) / 86400, as the registry's SQL computes it."""
        days = (self.cutoff_us / 1e6 - ts / 1e6) / DAY
        return np.where(self.count_all > 0, days, np.nan)

    def recency(self) -> np.ndarray:
        return self.days_since(self.ts[self.end[0] - 1])

    def since_first(self) -> np.ndarray:
        return self.days_since(self.ts[self.first])

    def gap_mean(self) -> np.ndarray:
        """The gaps add up to the last completed time less the first."""
        gaps = self.count_all - 1
        total = (self.ts[self.end[0] - 1] - self.ts[self.first]).astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(gaps > 0, total / gaps, np.nan) / DAY_US

    def last_gap(self) -> np.ndarray:
        last = self.end[0] - 1
        gap = (self.ts[last] - self.ts[np.maximum(last - 1, -1)]) / DAY_US
        return np.where(self.count_all > 1, gap, np.nan)

    def gap_std(self) -> np.ndarray:
        """registry._gap_spread from running sums of the gaps in whole seconds and their
        squares, with the same double arithmetic."""
        # the running sums are built in place (s1[i + 1]: row i's gap), as a new row-sized
        # array costs its memory faults (see _counts)
        n = len(self.group)
        s1, s2 = np.zeros(n + 1, dtype=np.int64), np.zeros(n + 1, dtype=np.int64)
        np.subtract(self.ts[1:n], self.ts[: n - 1], out=s1[2:])
        s1[2:] //= 1_000_000
        s1[2:][self.group[1:] != self.group[:-1]] = 0  # a group's first row: no gap
        np.multiply(s1, s1, out=s2)
        np.cumsum(s1, out=s1)
        np.cumsum(s2, out=s2)
        low, high, count = self.first, self.end[0], (self.count_all - 1).astype(float)
        s1, s2 = (s1[high] - s1[low]).astype(float), (s2[high] - s2[low]).astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            spread = np.maximum(count * s2 - s1 * s1, 0) / (count * (count - 1))
        return np.where(count > 1, np.sqrt(spread), np.nan) / DAY

    # --- shares, distinct values, the last channel ---

    def share(self, column: str, completed: bool) -> np.ndarray:
        """The mean of a 0/1 column that may be missing (the SQL's avg skips NULL), over the
        completed rows or over all rows."""
        count = _counts(self.rows.num_rows)
        known = _prefix(self.valid(column, completed), count)
        yes = _prefix(self.column(column, False, completed), count)
        low, high = (self.first, self.end[0]) if completed else (self.start, self.stop)
        answered = known[high] - known[low]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(answered > 0, (yes[high] - yes[low]) / answered, np.nan)

    def distinct(self, column: str) -> np.ndarray:
        """Distinct values among the completed rows: each row says whether it is its group's
        first completed one with its value, and those are counted. A value's rows, in row
        order, are in group and time order, so its first row in a group starts a run; a
        column of many values takes them all at once, by a stable sort on the value."""
        code, values = self.codes(column)
        first = np.zeros(len(code), dtype=bool)
        for rows in self._rows_by_value(code, len(values)):
            group = self.group[rows]
            starts = np.ones(len(rows), dtype=bool)
            starts[1:] = group[1:] != group[:-1]
            first[rows[starts]] = True
        first = _prefix(first, _counts(len(first)))
        return first[self.end[0]] - first[self.first]

    @staticmethod
    def _rows_by_value(code: np.ndarray, values: int):
        """The rows of each value in row order: value by value where the values are few
        (a pass over the codes each), else as runs of one stable sort."""
        if values <= FEW_VALUES:
            yield from (np.flatnonzero(code == value) for value in range(values))
            return
        order = np.argsort(code, kind="stable")
        order = order[code[order] >= 0]
        bounds = np.flatnonzero(np.diff(code[order])) + 1
        yield from np.split(order, bounds)

    def last_value(self, column: str) -> pd.Categorical:
        """The value of the last completed row before the cutoff that has one."""
        code, values = self.codes(column)
        last = np.append(_last_at_or_before(code >= 0), -1)[self.end[0] - 1]
        found = (self.count_all > 0) & (last >= self.first)
        codes = np.where(found, np.append(code, -1)[last], -1)
        return pd.Categorical.from_codes(codes, values.to_pylist())


def _window(name: str, prefix: str) -> int | None:
    """The window of `orders_30d` (prefix `orders_`), `spend_trend_90d` and the like."""
    days = name.removeprefix(prefix).removesuffix("d")
    return int(days) if name.startswith(prefix) and name.endswith("d") and days.isdigit() else None


WINDOWED = {  # prefix -> the feature from the running totals and its window w
    "orders_trend_": lambda r, w: 2 * r.count(w) - r.count(2 * w),
    "spend_trend_": lambda r, w: (2 * r.spend(w) - r.spend(2 * w)) / UNITS,
    "orders_": lambda r, w: r.count(w),
    "spend_": lambda r, w: r.spend(w) / UNITS,
}


def _windows(names: list[str]) -> set[int]:
    """The window starts the features read: w, and 2w for a trend."""
    days = set()
    for name in names:
        for prefix in WINDOWED:
            w = _window(name, prefix)
            if w is not None:
                days |= {w, 2 * w} if "trend" in prefix else {w}
                break
    return days


def purchase_features(rows: pa.Table, probes: pa.Table, names: list[str]) -> dict:
    """The purchase features `names` per probe, as the registry's SQL defines them: counts
    and sums over no purchase are 0, the rest missing (NaN)."""
    running = Running(rows, probes, _windows(names))
    return {name: _feature(running, name) for name in names}


def _feature(r: Running, name: str):
    fixed = {
        "recency_days": r.recency,
        "days_since_first_purchase": r.since_first,
        "orders_total": r.count,
        "spend_total": lambda: r.spend() / UNITS,
        "gap_mean_days": r.gap_mean,
        "gap_std_days": r.gap_std,
        "last_gap_days": r.last_gap,
        "discount_share": lambda: r.share("discounted", completed=True),
        "refund_rate": lambda: r.share("refunded", completed=False),
        "last_channel": lambda: r.last_value("channel"),
    }
    if name in fixed:
        return fixed[name]()
    if name in DISTINCT_COLUMNS:
        return r.distinct(DISTINCT_COLUMNS[name])
    for prefix, windowed in WINDOWED.items():
        w = _window(name, prefix)
        if w is not None:
            return windowed(r, w)
    raise ChurnlensError(f"feature {name}: no running form (features/running.py)")
