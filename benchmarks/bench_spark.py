"""Benchmark the Spark engine against DuckDB on one machine: features and scoring.

Both engines read the same simulated shop from Parquet and compute the same thing (the
feature SQL, the labels and `risk_rows` are shared code): the training set at monthly cutoffs
(`features`) and the risk list at the as-of date with reasons for every customer
(`score`, explain='all', which is what the Spark engine does). Each step runs in its own
subprocess so its peak memory (ru_maxrss of the process and its children: Spark's JVM
included) is its own; DuckDB is bounded to 6 GB. The model is fitted once, on the DuckDB
training set of the first engine's run, and exported as booster text + JSON.

    python benchmarks/bench_spark.py                      # 100k customers
    python benchmarks/bench_spark.py --customers 20000    # a quick run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data" / "spark"
RESULTS = HERE / "results" / "spark.md"
TABLES = ("customers", "purchases", "tickets", "surveys", "events")
AS_OF = "2025-12-31"


ON_A_CLUSTER = """
## What a cluster changes (on paper)

- **Where the time goes on one machine.** Spark local[2] pays a JVM start, query planning
  of one wide statement (80+ aggregates) and Arrow hops to Python for the BTYD keys and the
  scoring partitions; DuckDB pays none of these, so on one machine DuckDB is the engine to use.
  Spark earns its keep only when the tables no longer fit one machine.
- **Partitions.** The feature statement joins each source to the spine on customer_id and
  groups by (customer_id, cutoff): Spark shuffles each source by customer_id once, so size
  `spark.sql.shuffle.partitions` to about (rows of the largest source x bytes per row) / 128 MB
  (e.g. 1M customers x 40 orders x ~60 B = 2.4 GB: ~20-40 partitions; 100M customers: ~2,000).
- **Shuffle size per cutoff.** The join emits one row per (source row, later cutoff) before the
  aggregation: with C monthly cutoffs a purchase crosses C/2 cutoffs on average, so the shuffle
  after the join is ~C/2 x the source size unless partial aggregation collapses it (Spark
  aggregates map-side per (customer, cutoff), so what crosses the network is one row per
  customer and cutoff: ~85 columns x 8 B = 0.7 kB; 1M customers x 18 cutoffs = 12 GB).
  Scoring has one cutoff, so its shuffle is ~1M x 0.7 kB = 0.7 GB.
- **Where the model goes.** The booster text and JSON (a few MB) are shipped once per executor
  with `addFile` and loaded once per Python worker; TreeSHAP then runs where the rows are, so
  scoring scales with executors. What comes to the driver: the BTYD fits per cutoff, on a fixed
  sample of at most 100,000 customers' summaries (6 numbers each) computed in Spark SQL, the
  features then computed on the executors; the value quantiles (8 B per customer), the
  budgeted ranking (4 columns per customer) and the drift sample.
"""


def _config(shop: Path, engine: str, start: str):
    from churnlens.config import Config, DataConfig, TableConfig

    data = DataConfig(dir=shop, **{n: TableConfig(path=f"{n}.parquet") for n in TABLES})
    spark = {"master": "local[2]", "conf": {"spark.driver.memory": "6g"}}
    return Config(engine=engine, data=data, spark=spark, cutoffs={"start": start, "step_days": 30})


def step(name: str, shop: Path, engine: str, work: Path, start: str) -> dict:
    """One timed step in this process; prints its JSON result."""
    import duckdb

    from churnlens import pipeline

    duckdb.execute("SET memory_limit='6GB'")
    config = _config(shop, engine, start)
    start = time.perf_counter()
    if name == "features":
        written = pipeline.features(config, work / f"features_{engine}", engine)
        rows = written.rows
    elif name == "fit":
        from churnlens.features.engine import training_set
        from churnlens.modeling.train import fit

        tables = pipeline.load_tables(config.data)
        model = fit(training_set(tables, config), config).model
        folder = model.save(work / "model" / "artifacts" / "model")
        lineage = {"name": "bench", "version": "1", "run_id": "bench"}
        (work / "model" / "champion.json").write_text(
            json.dumps(lineage | {"sha256": model.file_hashes(folder)})
        )
        rows = 0
    else:
        result = pipeline.score(
            config, AS_OF, work / f"scores_{engine}", str(work / "model"), 200, None, "all", engine
        )
        rows = result.summary["customers"]
    return {"seconds": time.perf_counter() - start, "rows": rows}


def run(name: str, shop: Path, engine: str, work: Path, start: str) -> dict:
    command = [sys.executable, __file__, "--step", name, "--engine", engine, "--shop", str(shop)]
    command += ["--start", start]
    done = subprocess.run(command + ["--work", str(work)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{name} on {engine} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result | {"load": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument(
        "--start", default="2024-07-01", help="first training cutoff (monthly to 2025-10)"
    )
    parser.add_argument("--step"), parser.add_argument("--engine")
    parser.add_argument("--shop"), parser.add_argument("--work")
    args = parser.parse_args()
    if args.step:
        result = step(args.step, Path(args.shop), args.engine, Path(args.work), args.start)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = max(peak, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        print(json.dumps(result | {"peak_mb": peak / 1024}))
        return
    from churnlens import pipeline

    shop = DATA / f"shop_{args.customers}"
    if not (shop / "customers.parquet").exists():
        pipeline.simulate(shop, customers=args.customers, seed=0)
    work = DATA / f"work_{args.customers}"
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in ("features", "fit", "score"):
        for engine in ("duckdb", "spark") if name != "fit" else ("duckdb",):
            result = run(name, shop, engine, work, args.start)
            rows.append((name, engine, result))
            print(name, engine, result, flush=True)
    lines = [
        "# Spark engine vs DuckDB on one machine",
        "",
        f"{args.customers:,} simulated customers; training set at monthly cutoffs from "
        f"{args.start}, scoring as of {AS_OF}; {platform.machine()}, 2 cores; Spark local[2]; "
        "each step a fresh process (Spark's start-up included); load: the 1-minute load "
        "average when the step ended (above 2, others shared the cores). "
        f"`python benchmarks/bench_spark.py --customers {args.customers} --start {args.start}` "
        "reproduces it.",
        "",
        "| step | engine | rows | seconds | peak MB | load | Spark / DuckDB |",
        "|---|---|---|---|---|---|---|",
    ]
    seconds = {(n, e): r["seconds"] for n, e, r in rows}
    for name, engine, result in rows:
        ratio = seconds[(name, engine)] / seconds.get((name, "duckdb"), float("nan"))
        lines.append(
            f"| {name} | {engine} | {result['rows']:,} | {result['seconds']:.1f} | "
            f"{result['peak_mb']:,.0f} | {result['load']:.1f} | {ratio:.1f}x |"
        )
    RESULTS.write_text("\n".join(lines) + "\n" + ON_A_CLUSTER)


if __name__ == "__main__":
    main()
