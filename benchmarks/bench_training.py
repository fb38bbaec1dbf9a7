"""Training cost: churnlens's ChurnModel.fit against a raw `lightgbm.train` on the same data.

ChurnModel.fit adds the feature-spec freeze, frozen categorical levels, the logistic part of
the blend and its weight, calibration (a 5-fold choice between sigmoid and isotonic) and the
drift reference on top of LightGBM; this measures what that costs. Both use the config's
parameters and early stopping on the same validation cutoff; raw gets the frames already
prepared. Goal (issue 14): at most 1.10x.

Which side runs first matters on a shared machine (page cache, allocator warm-up, CPU
frequency): the sides alternate in ABBA order over --rounds rounds, and each side's minimum
and median wall and CPU seconds (this process, every thread) are reported, with the ratio of
the medians. LightGBM runs on --threads threads in both (default: the config's, all cores).

Both boost the same trees, and on a shared machine the boosting's own CPU varies between
identical runs by more than the whole overhead. So the run also times the `lightgbm.train`
call inside ChurnModel.fit and reports what fit spends outside it: the overhead with the
boosting's noise left out.

Where the training set is larger than linear.MAX_ROWS, the logistic part is fitted on a sample;
the run also fits it on every row (untimed) and compares the two on the validation rows.
Writes benchmarks/results/training.md, keeping its hand-written "## Reading" section.

To time each side as a whole process with an outside timer: `--save-frame F` writes the
training set once, then `--frame F --side ours` (or `raw`) loads it, runs that side once and
prints its seconds; the two processes differ only in the side.
Run: .venv/bin/python benchmarks/bench_training.py [--customers N ...] [--threads T] [--rounds R]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import sklearn
from sklearn.metrics import roc_auc_score

from churnlens import Config, simulate, validate
from churnlens.config import CutoffConfig
from churnlens.features.engine import training_set as build_training_set
from churnlens.modeling.linear import MAX_ROWS, LinearPart
from churnlens.modeling.split import time_split
from churnlens.modeling.train import configured_model

RESULTS = Path(__file__).resolve().parent / "results" / "training.md"
SIDES = ("ours", "raw")
CONFIG = Config(cutoffs=CutoffConfig(start="2024-07-01", step_days=30))


def training_set(customers: int) -> pd.DataFrame:
    shop = simulate(customers, seed=0)
    shop.pop("ground_truth")
    return build_training_set(validate(shop), CONFIG)


def split_frames(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    split = time_split(frame["cutoff"], CONFIG.churn.horizon_days, frame["churned"])
    return split.part(frame, "train"), split.part(frame, "valid")


def sides(train: pd.DataFrame, valid: pd.DataFrame, threads: int | None, boosting: list) -> dict:
    """The two timed calls by name; `ours` appends its own `lightgbm.train` call's (wall,
    CPU) seconds to `boosting`. Raw gets the prepared frames ready-made (untimed)."""
    settings = CONFIG.model.model_copy(update={"threads": threads})
    spec = configured_model(settings).freeze(train)
    x_train, x_valid = spec.prepare(train), spec.prepare(valid)
    params = {
        "objective": "binary",
        "verbosity": -1,
        "seed": settings.seed,
        "deterministic": True,
        "num_threads": threads or os.cpu_count() or 1,
        **settings.params,
    }

    def ours():
        with timing(lgb, "train", boosting):
            return configured_model(settings).fit(train, valid)

    def raw():
        return lgb.train(
            params,
            lgb.Dataset(x_train, train["churned"].astype(int)),
            settings.num_boost_round,
            valid_sets=[lgb.Dataset(x_valid, valid["churned"].astype(int))],
            callbacks=[lgb.early_stopping(settings.early_stopping_rounds, verbose=False)],
        )

    return {"ours": ours, "raw": raw}


def measure(customers: int, threads: int | None, rounds: int) -> dict:
    train, valid = split_frames(training_set(customers))
    boosting, times = [], {side: [] for side in SIDES}
    calls = sides(train, valid, threads, boosting)
    fitted, loads = {}, [os.getloadavg()[0]]
    for i in range(rounds):  # ABBA: each side runs first in half the rounds
        for side in SIDES if i % 2 == 0 else SIDES[::-1]:
            started = time.perf_counter(), time.process_time()
            fitted[side] = calls[side]()
            times[side].append(elapsed(started))
            loads.append(os.getloadavg()[0])
    model, raw = fitted["ours"], fitted["raw"]
    times["outside"] = [
        (o[0] - b[0], o[1] - b[1]) for o, b in zip(times["ours"], boosting, strict=True)
    ]
    times["boosting"] = boosting
    result = {
        "customers": customers,
        "train_rows": len(train),
        "valid_rows": len(valid),
        "trees": (model.booster_.best_iteration, raw.best_iteration),
        "same_trees": trees(model.booster_) == trees(raw),
        "calibration": model.calibrator_.method_,
        "weight": model.linear_.weight if model.linear_ is not None else None,
        "loads": (min(loads), max(loads)),
        "threads": threads or os.cpu_count(),
        "rounds": rounds,
    }
    for name, runs in times.items():
        for i, what in enumerate(("wall", "cpu")):
            values = [run[i] for run in runs]
            result[f"{name}_{what}"] = statistics.median(values)
            result[f"{name}_{what}_min"] = min(values)
    if model.linear_ is not None and len(train) > MAX_ROWS:
        x_train, x_valid = model.prepare(train), model.prepare(valid)
        result["sample"] = sample_check(model, x_train, train, x_valid, valid)
    return result


def trees(booster: lgb.Booster) -> str:
    """The booster's text up to its trees' end (the parameters after it name the metric,
    which fit sets and raw leaves at the objective's default)."""
    text = booster.model_to_string()
    return text[: text.index("end of trees")]


@contextlib.contextmanager
def timing(owner, name: str, into: list):
    """While active, every call of `owner.name` appends its (wall, CPU) seconds to `into`."""
    real = getattr(owner, name)

    def timed(*args, **kwargs):
        started = time.perf_counter(), time.process_time()
        try:
            return real(*args, **kwargs)
        finally:
            into.append(elapsed(started))

    setattr(owner, name, timed)
    try:
        yield
    finally:
        setattr(owner, name, real)


def sample_check(model, x_train, train, x_valid, valid) -> dict:
    """The logistic part fitted on the sample (the model's) against one fitted on every row:
    validation ROC-AUC of each margin and their correlation."""
    numeric = model.linear_.state["columns"]
    y_train, y_valid = train["churned"].to_numpy(int), valid["churned"].to_numpy(int)
    full = LinearPart().fit(x_train, y_train, numeric, max_rows=len(x_train))
    sampled, every = model.linear_.margin(x_valid), full.margin(x_valid)
    return {
        "auc_sample": roc_auc_score(y_valid, sampled),
        "auc_full": roc_auc_score(y_valid, every),
        "corr": float(np.corrcoef(sampled, every)[0, 1]),
    }


def elapsed(started: tuple[float, float]) -> tuple[float, float]:
    """(wall, CPU) seconds since `started` = (perf_counter(), process_time())."""
    return time.perf_counter() - started[0], time.process_time() - started[1]


def cell(r: dict, name: str) -> str:
    """Median (minimum) seconds."""
    return f"{r[name]:.2f} ({r[name + '_min']:.2f})"


def report(results: list[dict]) -> str:
    wait = os.environ.get("OMP_WAIT_POLICY")
    lines = [
        "# Training overhead: ChurnModel.fit against raw lightgbm.train",
        "",
        f"Generated by `benchmarks/bench_training.py` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} ({os.cpu_count()} cores; "
        f"Python {platform.python_version()}, LightGBM "
        f"{lgb.__version__}, scikit-learn {sklearn.__version__}, pandas {pd.__version__}, numpy "
        f"{np.__version__}{f'; OMP_WAIT_POLICY={wait}' if wait else ''}). Simulated shops, "
        "30-day cutoffs from 2024-07-01, the default config. The sides alternate in ABBA order; "
        "seconds are the median (minimum) over the rounds, ratios are of the medians. Goal "
        "(issue 14): ChurnModel.fit at most 1.10x raw `lightgbm.train` on the same prepared "
        "frames and parameters.",
        "",
        "| customers | training rows | validation rows | rounds | ChurnModel.fit wall s | CPU s "
        "| raw wall s | CPU s | ratio wall | ratio CPU | trees (ours, raw) | same trees "
        "| calibration | blend weight | LightGBM threads | load (1 min, min-max) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['customers']:,} | {r['train_rows']:,} | {r['valid_rows']:,} | {r['rounds']} | "
            f"{cell(r, 'ours_wall')} | {cell(r, 'ours_cpu')} | {cell(r, 'raw_wall')} | "
            f"{cell(r, 'raw_cpu')} | {r['ours_wall'] / r['raw_wall']:.2f}x | "
            f"{r['ours_cpu'] / r['raw_cpu']:.2f}x | {r['trees'][0]}, {r['trees'][1]} | "
            f"{'yes' if r['same_trees'] else 'no'} | {r['calibration']} | {r['weight']} | "
            f"{r['threads']} | {r['loads'][0]:.1f}-{r['loads'][1]:.1f} |"
        )
    lines += [
        "",
        "ChurnModel.fit's own `lightgbm.train` call against raw, and what fit spends outside "
        "it (medians, minimum in brackets), with raw plus that against raw:",
        "",
        "| customers | fit's boosting wall s | CPU s | its ratio to raw wall | CPU "
        "| outside wall s | outside CPU s | (raw + outside) / raw wall | CPU |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['customers']:,} | {cell(r, 'boosting_wall')} | {cell(r, 'boosting_cpu')} | "
            f"{r['boosting_wall'] / r['raw_wall']:.2f}x | "
            f"{r['boosting_cpu'] / r['raw_cpu']:.2f}x | {cell(r, 'outside_wall')} | "
            f"{cell(r, 'outside_cpu')} | {1 + r['outside_wall'] / r['raw_wall']:.2f}x | "
            f"{1 + r['outside_cpu'] / r['raw_cpu']:.2f}x |"
        )
    sampled = [r for r in results if "sample" in r]
    if sampled:
        lines += [
            "",
            f"The logistic part on its sample ({MAX_ROWS:,} rows) against one fitted on every "
            "training row, on the validation rows:",
            "",
            "| customers | training rows | ROC-AUC sample | ROC-AUC every row "
            "| margin correlation |",
            "|---|---|---|---|---|",
        ]
        for r in sampled:
            s = r["sample"]
            lines.append(
                f"| {r['customers']:,} | {r['train_rows']:,} | {s['auc_sample']:.4f} | "
                f"{s['auc_full']:.4f} | {s['corr']:.4f} |"
            )
    return "\n".join(lines) + "\n"


def one_side(frame_file: Path, side: str, threads: int | None) -> None:
    """Load the saved training set, run `side` once and print its seconds."""
    train, valid = split_frames(pd.read_parquet(frame_file))
    call = sides(train, valid, threads, [])[side]
    started = time.perf_counter(), time.process_time()
    call()
    wall, cpu = elapsed(started)
    print(f"{side}: {wall:.2f} wall s, {cpu:.2f} CPU s, load {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--threads", type=int, default=None, help="default: all cores")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--save-frame", type=Path, help="write the training set and stop")
    parser.add_argument("--frame", type=Path, help="a training set from --save-frame")
    parser.add_argument("--side", choices=SIDES, help="with --frame: time this side alone")
    args = parser.parse_args()
    if args.save_frame:
        training_set(args.customers[0]).to_parquet(args.save_frame)
        return
    if args.side:
        if not args.frame:
            parser.error("--side needs --frame (written by --save-frame)")
        one_side(args.frame, args.side, args.threads)
        return
    results = []
    for customers in args.customers:
        results.append(measure(customers, args.threads, args.rounds))
        print(report(results[-1:]), flush=True)
    text = report(results)
    old = RESULTS.read_text() if RESULTS.exists() else ""
    if "## Reading" in old:  # the hand-written part stays
        text += "\n" + old[old.index("## Reading") :]
    RESULTS.write_text(text)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
