"""BTYD features: what a BG/NBD model fitted at each cutoff says about each customer.

The classical "buy till you die" model turns a customer's repeat purchases, recency and age
into P(alive), the expected purchases and P(no purchase) in the churn horizon; Gamma-Gamma
turns the spend of their repeat purchases into an expected spend per purchase, shrunk toward
the population mean the fewer repeats they made. These are
strong, smooth summaries of the purchase rhythm that a tree model would otherwise have to
piece together, and they soften the tenure gap between training and test cutoffs. At each
cutoff the model is fitted on the purchases before it only (every customer who has bought, or
a fixed sample of them), completed as of that cutoff (`completed_sql`: a refund counts from
its time on), so the
features are point-in-time like the SQL ones. A fit that fails at one cutoff leaves
that cutoff's features of that model missing (NaN, which LightGBM handles) with a warning.

Three steps, so that an engine keeps the purchases where they are (`churnlens.spark` runs the
same): `summary_sql`, one SQL statement giving every buyer's summary at every cutoff of the
spine (`modeling.bgnbd.rfm_sql`); `fit_models` on the fixed sample of it that the fits see
(`sample_sql`), the only rows that travel; `values` for the spine's rows, batch by batch.
"""

from __future__ import annotations

import logging

import duckdb
import numpy as np
import pandas as pd

from churnlens.data.contract import COMPLETION_COLUMNS, completed_sql
from churnlens.data.tables import Tables, cutoffs_sql, result_frame
from churnlens.errors import ChurnlensError
from churnlens.modeling.bgnbd import BGNBD, fit_sample_sql, rfm_sql
from churnlens.modeling.gammagamma import GammaGamma

log = logging.getLogger(__name__)

BTYD_FEATURES = (
    "bgnbd_p_alive",
    "bgnbd_expected_purchases",
    "bgnbd_p_no_purchase",
    "gg_expected_spend",
)
PENALIZER = 0.001  # keeps the fit finite when a cutoff shows little sign of dropout
WEEK = 7.0
SUMMARY = ["cutoff", "customer_id", "frequency", "recency", "T", "monetary"]


def summary_sql(columns, cutoffs: str = "(SELECT DISTINCT cutoff FROM spine_in)") -> str:
    """Every buyer's summary (SUMMARY) at each cutoff of `cutoffs` (a relation; by default
    those of `spine_in`), over `purchases_in` (whose `columns` decide completion) completed
    at that cutoff; in weeks."""
    return rfm_sql(WEEK, cutoffs, completed_sql(columns, "c.cutoff"), monetary=True)


def sample_sql(summary: str) -> str:
    """The rows of the view `summary` (from `summary_sql`) the fits see at each cutoff."""
    return fit_sample_sql(summary, SUMMARY, by="cutoff")


def fit_models(sample: pd.DataFrame, bgnbd: bool = True) -> dict:
    """{cutoff: (BG/NBD or None, Gamma-Gamma or None)} fitted on `sample` (`sample_sql`'s
    rows) in customer order; None, with a warning, where a fit fails (or BG/NBD is not
    asked for)."""
    models = {}
    for cutoff, rows in sample.groupby("cutoff", sort=True):
        rows = rows.sort_values("customer_id")
        day = f"{pd.Timestamp(cutoff):%Y-%m-%d}"
        try:
            spend = GammaGamma().fit(rows["frequency"], rows["monetary"])
        except ChurnlensError as error:
            log.warning("Gamma-Gamma spend at cutoff %s is missing: %s", day, error)
            spend = None
        model = None
        if bgnbd:
            try:
                model = BGNBD(PENALIZER).fit(rows["frequency"], rows["recency"], rows["T"])
            except ChurnlensError as error:
                log.warning("BTYD features at cutoff %s are missing: %s", day, error)
        models[pd.Timestamp(cutoff)] = (model, spend)
    return models


def values(rows: pd.DataFrame, models: dict, horizon_days: int) -> pd.DataFrame:
    """The BTYD features of `rows` (SUMMARY's columns; no summary: never bought) from the
    `models` of their cutoff; NaN where the customer never bought or the fit failed."""
    out = pd.DataFrame(np.nan, index=rows.index, columns=list(BTYD_FEATURES))
    t = horizon_days / WEEK
    bought = rows[rows["frequency"].notna()]
    for cutoff, part in bought.groupby("cutoff", sort=False):
        model, spend = models.get(pd.Timestamp(cutoff), (None, None))
        x, tx, T = (part[c].to_numpy(float) for c in ("frequency", "recency", "T"))
        if model is not None:
            out.loc[part.index, "bgnbd_p_alive"] = model.p_alive(x, tx, T)
            out.loc[part.index, "bgnbd_expected_purchases"] = model.expected_purchases(t, x, tx, T)
            out.loc[part.index, "bgnbd_p_no_purchase"] = model.p_no_purchase(t, x, tx, T)
        if spend is not None:
            monetary = part["monetary"].to_numpy(float)
            out.loc[part.index, "gg_expected_spend"] = spend.expected_spend(x, monetary)
    return out


def expected_spend(purchases: pd.DataFrame, cutoff, customers: pd.Series) -> np.ndarray:
    """Gamma-Gamma expected spend per purchase day of `customers` from the completed
    `purchases`' repeat purchase days before the cutoff; NaN for customers who never bought
    or a failed fit."""
    spine = pd.DataFrame({"customer_id": customers.to_numpy(), "cutoff": pd.Timestamp(cutoff)})
    with duckdb.connect() as con:
        con.register("purchases_in", purchases[["customer_id", "ordered_at", "amount"]])
        sample, rows = summaries(con, spine)
    return values(rows, fit_models(sample, bgnbd=False), 0)["gg_expected_spend"].to_numpy()


def summaries(con: duckdb.DuckDBPyConnection, spine: pd.DataFrame):
    """(the fits' sample, the summary of each `spine` row in its order), in DuckDB over the
    view `purchases_in` of `con` (a connection of its own: its temp objects are left)."""
    purchases = con.table("purchases_in").columns
    columns = [c for c in COMPLETION_COLUMNS if c in purchases]
    keys = spine[["customer_id", "cutoff"]].assign(_at=np.arange(len(spine)))
    con.execute("SET TimeZone = 'UTC'")
    con.register("spine_in", keys)
    cutoffs = cutoffs_sql(spine["cutoff"].unique())
    con.execute(f"CREATE TEMP TABLE btyd_summary AS {summary_sql(columns, cutoffs)}")
    sample = result_frame(con.sql(sample_sql("btyd_summary")))
    kept = ", ".join(f"b.{c}" for c in SUMMARY[2:])
    rows = result_frame(
        con.sql(
            f"SELECT s.cutoff, {kept} FROM spine_in s LEFT JOIN btyd_summary b "
            "ON b.customer_id = s.customer_id AND b.cutoff = s.cutoff ORDER BY s._at"
        )
    )
    return sample, rows.set_index(spine.index)


def add_btyd_features(tables: Tables, frame: pd.DataFrame, horizon_days: int) -> pd.DataFrame:
    """`frame` (customer_id, cutoff, ...) with the BTYD features of each row appended."""
    with tables.connect() as con:
        sample, rows = summaries(con, frame)
    features = values(rows, fit_models(sample), horizon_days)
    return pd.concat([frame, features.astype("float64")], axis=1)
