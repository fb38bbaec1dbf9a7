"""Data shipped with churnlens: the CDNOW transaction log, a real non-contractual shop.

CDNOW holds every purchase of the 23,570 customers who first bought from the online music
retailer CDNOW in the first quarter of 1997, followed to the end of June 1998 (69,659
purchases); the sample is its 1/10th systematic sample (2,357 customers, 6,919 purchases).
It is the data set of Fader, Hardie & Lee (2005), "Counting your customers the easy way: an
alternative to the Pareto/NBD model", Marketing Science 24(2); the files are those shipped in
the `datasets/` folder of the MIT-licensed `lifetimes` 0.11.3 package, gzip-compressed here.
It has no tickets, surveys or churn labels: it exercises the purchase features, the
non-contractual churn label and the BG/NBD baseline on real behaviour.
"""

from __future__ import annotations

from importlib import resources
from typing import Literal

import pandas as pd

__all__ = ["load_cdnow", "load_cdnow_summary"]

_FILES = {"master": "CDNOW_master.txt.gz", "sample": "CDNOW_sample.txt.gz"}


def _open(name: str):
    return resources.files(__package__).joinpath("data", name).open("rb")


def load_cdnow(kind: Literal["master", "sample"] = "master") -> dict[str, pd.DataFrame]:
    """CDNOW as churnlens input tables: {"customers": ..., "purchases": ...}.

    customers: customer_id, signup_at (the day of the first purchase: CDNOW records no
    sign-up). purchases: order_id ("<customer>-<n>", in file order), customer_id, ordered_at
    (the purchase day), amount (USD), quantity (CDs; an extra column the contract ignores).
    Pass them to `churnlens.validate` or write them to files for a config.
    """
    if kind not in _FILES:
        raise ValueError(f"kind must be one of {', '.join(_FILES)}, not {kind!r}")
    names = ["customer_id", "date", "quantity", "amount"]
    if kind == "sample":
        names = ["full_customer_id", "customer_id", "date", "quantity", "amount"]
    with _open(_FILES[kind]) as handle:
        raw = pd.read_csv(
            handle,
            compression="gzip",
            sep=r"\s+",
            header=0 if kind == "master" else None,
            names=names,
            dtype={"customer_id": str, "full_customer_id": str, "date": str},
        )
    raw["customer_id"] = raw["customer_id"].str.lstrip("0")
    ordered_at = pd.to_datetime(raw["date"], format="%Y%m%d").astype("datetime64[us]")
    number = raw.groupby("customer_id", sort=False).cumcount() + 1
    purchases = pd.DataFrame(
        {
            "order_id": raw["customer_id"] + "-" + number.astype(str),
            "customer_id": raw["customer_id"],
            "ordered_at": ordered_at,
            "amount": raw["amount"].astype("float64"),
            "quantity": raw["quantity"].astype("int64"),
        }
    )
    customers = (
        purchases.groupby("customer_id", sort=False)["ordered_at"]
        .min()
        .rename("signup_at")
        .reset_index()
    )
    return {"customers": customers, "purchases": purchases}


def load_cdnow_summary() -> pd.DataFrame:
    """The sample summarised over the 39-week calibration period (1997-01-01..1997-09-30), in
    weeks, indexed by the sample's customer number: frequency (repeat purchases), recency (week
    of the last purchase after the first), T (weeks from the first purchase to the period end).
    Fitted with BG/NBD it gives the published r=0.243, alpha=4.414, a=0.793, b=2.426."""
    with _open("cdnow_customers_summary.csv.gz") as handle:
        return pd.read_csv(handle, compression="gzip", index_col="ID")
