"""What the BTYD features cost in `build_features`: the same spine with and without them.

The BTYD features (`features.btyd`) summarise every customer's completed purchase days at each
cutoff, fit BG/NBD and Gamma-Gamma per cutoff on a fixed sample and score every spine row.
Their cost is measured against the SQL features in the same run: `build_features` with
`btyd=False` (the peer) and with `btyd=True`, each in its own subprocess so its peak memory is
its own (RSS high-water mark over the inputs, reset after loading). CPU seconds are reported
besides wall time: the box is shared. Data and spine as in bench_features.py (purchases and
customers only; every customer signed up before each of 6 monthly cutoffs).

    python benchmarks/bench_btyd.py                    # 200k customers, 6 cutoffs
    python benchmarks/bench_btyd.py --customers 100000 --cutoffs 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench_features import (
    _cpu_seconds,
    _reset_peak,
    _status_mb,
    generate,
    load,
    make_spine,
    shop_dir,
)

RESULTS = Path(__file__).resolve().parent / "results" / "btyd.md"
WINDOWS = [30, 90, 180, 365]
HORIZON_DAYS = 90


def run_one(btyd: bool, customers: int, n_cutoffs: int) -> dict:
    from churnlens.config import FeatureConfig
    from churnlens.features.engine import build_features

    tables = load(shop_dir(customers))
    spine = make_spine(tables.customers, n_cutoffs)
    rss0 = _reset_peak()
    cpu0, start = _cpu_seconds(), time.perf_counter()
    config = FeatureConfig(windows_days=WINDOWS, btyd=btyd)
    frame = build_features(tables, spine, config, None, HORIZON_DAYS)
    return {
        "btyd": btyd,
        "rows": len(frame),
        "cpu_seconds": _cpu_seconds() - cpu0,
        "seconds": time.perf_counter() - start,
        "over_inputs_mb": _status_mb("VmHWM") - rss0,
        "load": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--cutoffs", type=int, default=6)
    parser.add_argument("--run", choices=["with", "without"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run_one(args.run == "with", args.customers, args.cutoffs)))
        return
    if not (shop_dir(args.customers) / "purchases.parquet").is_file():
        generate(args.customers)
    results = {}
    for run in ("without", "with"):
        command = [sys.executable, __file__, "--run", run, "--customers", str(args.customers)]
        command += ["--cutoffs", str(args.cutoffs)]
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        results[run] = json.loads(done.stdout.splitlines()[-1])
    base, full = results["without"], results["with"]
    lines = [
        "# BTYD features in build_features",
        "",
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC with `python benchmarks/bench_btyd.py "
        f"--customers {args.customers} --cutoffs {args.cutoffs}`: {full['rows']:,} spine rows "
        f"(purchases and customers of `simulate({args.customers:,}, seed=0)`), windows "
        f"{WINDOWS}, horizon {HORIZON_DAYS} days. Load average at the end: "
        f"{base['load']:.1f} / {full['load']:.1f}.",
        "",
        "| build_features | CPU s | wall s | peak MB over inputs |",
        "|---|---:|---:|---:|",
        *(
            f"| {name} | {r['cpu_seconds']:.1f} | {r['seconds']:.1f} | {r['over_inputs_mb']:,.0f} |"
            for name, r in (("without BTYD", base), ("with BTYD", full))
        ),
        f"| BTYD's share | {full['cpu_seconds'] - base['cpu_seconds']:.1f} | "
        f"{full['seconds'] - base['seconds']:.1f} | |",
    ]
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
