"""Validation: the contract's checks as DuckDB queries vs the pandas validation they replaced.

Both peers run `load_tables` on the same simulated shop (Parquet, `simulate(N, seed=0)`),
each in its own process, timed from outside: CPU seconds (user + system), wall seconds, the
process's peak RSS and what the returned tables hold (`memory_usage(deep=True)`). The pandas
peer is the package as it was at `--baseline` (a git revision, default the last one with
pandas validation), unpacked from this repository's history into benchmarks/.data; both
return the same rows and values. Each peer runs `--repeat` times, alternating; the table
shows the fastest run of each (the machine may be shared). Another `--baseline` (such as
main before a change) compares this tree with it instead; its table goes to
results/validate_speed.md.

    python benchmarks/bench_validate.py                  # 200k customers
    python benchmarks/bench_validate.py --customers 20000
    python benchmarks/bench_validate.py --customers 1000000 --baseline f1f9230
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from bench_scoring import DATA, ROOT, TABLES, ensure_shop, shop_dir

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "validate.md"
SPEED_RESULTS = HERE / "results" / "validate_speed.md"  # this tree vs an earlier DuckDB one
PANDAS_VALIDATION = "bc17910"  # main before the checks moved into DuckDB
LOAD = (
    "import sys; from churnlens.config import load_config; "
    "from churnlens.data.contract import load_tables; "
    "t = load_tables(load_config(sys.argv[1]).data); "
    "f = [x for x in (*t.present().values(), t.exits) if x is not None]; "
    "print(sum(x.memory_usage(deep=True).sum() for x in f), "
    "sum(len(x) for x in t.present().values()))"
)


def pandas_source(revision: str) -> Path:
    """The package's source at `revision`, unpacked once from git."""
    folder = DATA / f"src_{revision}"
    if not (folder / "src" / "churnlens").is_dir():
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", revision, "src"],
            check=True,
            capture_output=True,
        ).stdout
        with tempfile.TemporaryFile() as handle:
            handle.write(archive)
            handle.seek(0)
            tarfile.open(fileobj=handle).extractall(folder, filter="data")
    return folder / "src"


def run(source: Path, config: Path) -> dict:
    """One `load_tables` process: CPU and wall seconds, peak RSS (wait4), rows loaded."""
    env = os.environ | {"PYTHONPATH": str(source)}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", LOAD, str(config)], stdout=subprocess.PIPE, text=True, env=env
    )
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"load_tables with {source} failed")
    return {
        "wall": time.perf_counter() - started,
        "cpu": usage.ru_utime + usage.ru_stime,
        "peak_mb": usage.ru_maxrss / 1024,
        "rows": int(output.split()[-1]),
        "held_mb": int(output.split()[-2]) / 2**20,  # the returned tables' own memory
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--baseline", default=PANDAS_VALIDATION)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    ensure_shop(args.customers)
    config = DATA / f"validate_{args.customers}.yaml"
    data = {name: {"path": f"{name}.parquet"} for name in TABLES}
    config.write_text(json.dumps({"data": {"dir": str(shop_dir(args.customers)), **data}}))
    pandas = args.baseline == PANDAS_VALIDATION
    before, after = ("pandas", "DuckDB") if pandas else (f"before ({args.baseline})", "after")
    peers = {before: pandas_source(args.baseline), after: ROOT / "src"}
    runs: dict[str, list[dict]] = {name: [] for name in peers}
    load = os.getloadavg()[0]
    for _ in range(args.repeat):
        for name, source in peers.items():
            runs[name].append(run(source, config))
            print(name, runs[name][-1], flush=True)
    load = max(load, os.getloadavg()[0])
    best = {name: min(found, key=lambda r: r["cpu"]) for name, found in runs.items()}
    assert best[before]["rows"] == best[after]["rows"]
    lines = [
        "# Validation: DuckDB queries vs pandas" if pandas else "# Validation speed",
        "",
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC with `python "
        f"benchmarks/bench_validate.py --customers {args.customers}"
        f"{'' if pandas else f' --baseline {args.baseline}'}` ({os.cpu_count()} cores; "
        f"1-minute load up to {load:.1f}). Each peer: one process reading the simulated shop's "
        f"Parquet files and validating them (`load_tables`, {best[after]['rows']:,} rows "
        f"in all), fastest of {args.repeat} by CPU. {before}: the package at {args.baseline}.",
        "",
        "| peer | CPU s | wall s | peak MB | tables MB |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in best.items():
        lines.append(
            f"| {name} | {r['cpu']:.1f} | {r['wall']:.1f} | {r['peak_mb']:,.0f} "
            f"| {r['held_mb']:,.0f} |"
        )
    cpu = best[before]["cpu"] / best[after]["cpu"]
    wall = best[before]["wall"] / best[after]["wall"]
    memory = best[after]["peak_mb"] / best[before]["peak_mb"]
    ratios = (
        f"{before} / {after}: CPU {cpu:.2f}×, wall {wall:.2f}×; "
        f"{after}'s peak memory: {memory:.0%} of {before}'s."
    )
    lines += ["", ratios]
    (RESULTS if pandas else SPEED_RESULTS).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
