"""BTYD fits on a fixed sample of customers against fits on all of them (`fit_sample`).

BG/NBD and Gamma-Gamma parameters describe the population, so scoring and training fit them on
at most `FIT_CUSTOMERS` customers and apply them to everyone. This measures, on a simulated
shop at the scoring date, what that costs in accuracy and saves in time: both fits (full and
sampled) run in the same process on the same summaries; reported are the parameters, the
largest and mean absolute differences of the per-customer features, and CPU seconds.

    python benchmarks/bench_btyd_fit.py                      # 1M customers
    python benchmarks/bench_btyd_fit.py --customers 300000
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from bench_scoring import AS_OF, ensure_shop, shop_dir
from churnlens.features.btyd import summaries
from churnlens.modeling.bgnbd import BGNBD, FIT_CUSTOMERS, fit_sample
from churnlens.modeling.gammagamma import GammaGamma

RESULTS = Path(__file__).resolve().parent / "results" / "btyd_fit.md"
HORIZON_WEEKS = 90 / 7


def timed(fit, summary):
    start = time.process_time()
    model = fit(summary)
    return model, time.process_time() - start


def _params(model) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in model.params_.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    args = parser.parse_args()
    ensure_shop(args.customers)
    purchases = pd.read_parquet(shop_dir(args.customers) / "purchases.parquet")
    done = purchases[purchases["status"] == "completed"][["customer_id", "ordered_at", "amount"]]
    buyers = pd.DataFrame({"customer_id": done["customer_id"].unique(), "cutoff": AS_OF})
    buyers["cutoff"] = buyers["cutoff"].astype("datetime64[us]")
    with duckdb.connect() as con:
        con.register("purchases_in", done)
        _, summary = summaries(con, buyers)  # features.btyd's SQL summary, every buyer
    summary = summary.set_index(buyers["customer_id"]).dropna(subset=["frequency"])
    rfm = summary[["frequency", "recency", "T"]]
    spend = summary.rename(columns={"frequency": "x", "monetary": "m"})[["x", "m"]]
    rows = []
    for name, summary, fit, features in (
        (
            "BG/NBD",
            rfm,
            lambda s: BGNBD(0.001).fit(s["frequency"], s["recency"], s["T"]),
            lambda m: {
                "p_alive": m.p_alive(rfm["frequency"], rfm["recency"], rfm["T"]),
                "expected purchases": m.expected_purchases(
                    HORIZON_WEEKS, rfm["frequency"], rfm["recency"], rfm["T"]
                ),
            },
        ),
        (
            "Gamma-Gamma",
            spend,
            lambda s: GammaGamma().fit(s["x"], s["m"]),
            lambda m: {"expected spend": m.expected_spend(spend["x"], spend["m"])},
        ),
    ):
        full, full_cpu = timed(fit, summary)
        part, part_cpu = timed(fit, fit_sample(summary))
        ours, theirs = features(full), features(part)
        for feature in ours:
            diff = np.abs(np.asarray(ours[feature]) - np.asarray(theirs[feature]))
            scale = np.nanmean(np.abs(np.asarray(ours[feature])))
            rows.append(
                f"| {name} | {len(summary):,} | {feature} | {np.nanmax(diff):.2g} | "
                f"{np.nanmean(diff) / scale:.2%} | {full_cpu:.1f} | {part_cpu:.1f} | "
                f"{full_cpu / part_cpu:.1f}x |"
            )
        rows.append(f"| {name} | | all: {_params(full)}; sample: {_params(part)} | | | | | |")
    lines = [
        "# BTYD fits on a sample of customers",
        "",
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC with "
        f"`python benchmarks/bench_btyd_fit.py --customers {args.customers}`: `simulate("
        f"{args.customers:,}, seed=0)`, completed purchases before {AS_OF}; sample "
        f"{FIT_CUSTOMERS:,} customers (`modeling.bgnbd.fit_sample`: the first by the md5 of "
        "their id). Summaries by `features.btyd.summaries` (the SQL of the features). Features "
        "of every customer from the fit on all customers against the fit on the sample. CPU "
        "seconds of the fit.",
        "",
        "| model | customers | feature | max abs diff | mean abs diff / mean | CPU s all | "
        "CPU s sample | ratio |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
        *rows,
    ]
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
