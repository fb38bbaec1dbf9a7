"""Training cost: churnlens's ChurnModel.fit against a raw `lightgbm.train` on the same data.

ChurnModel.fit adds the feature-spec freeze, frozen categorical levels, the logistic part of
the blend and its weight, calibration (a 5-fold choice between sigmoid and isotonic) and the
drift reference on top of LightGBM; this measures what that costs. Both use the config's
parameters and early stopping on the same validation cutoff; raw gets the frames already
prepared. Rounds alternate and the best of each is kept (the machine is shared); wall and CPU
seconds (this process, every thread) are both reported, the CPU ratio being the fairer one on
a shared machine. LightGBM runs on --threads threads in both (default 1: on a busy machine
OpenMP threads waiting at barriers burn CPU at random, which swamped the ratio at 2 threads).
Goal (issue 14): at most 1.10x.

Both boost the same trees, and on a shared machine the boosting's own CPU varies between
identical runs by more than the whole overhead (10 % at load 6-8). So the run also times the
`lightgbm.train` call inside ChurnModel.fit and reports what fit spends outside it, and the
ratio of raw plus that to raw: the overhead with the boosting's noise left out.

Where the training set is larger than linear.MAX_ROWS, the logistic part is fitted on a sample;
the run also fits it on every row (untimed) and compares the two on the validation rows.
Writes benchmarks/results/training.md, keeping its hand-written "## Reading" section.
Run: .venv/bin/python benchmarks/bench_training.py [--customers N ...] [--threads T]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
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
ROUNDS = 2


def training_set(customers: int) -> tuple[pd.DataFrame, Config]:
    shop = simulate(customers, seed=0)
    shop.pop("ground_truth")
    config = Config(cutoffs=CutoffConfig(start="2024-07-01", step_days=30))
    return build_training_set(validate(shop), config), config


def measure(customers: int, threads: int) -> dict:
    frame, config = training_set(customers)
    split = time_split(frame["cutoff"], config.churn.horizon_days, frame["churned"])
    train, valid = split.part(frame, "train"), split.part(frame, "valid")
    del frame
    settings = config.model.model_copy(update={"threads": threads})
    ours, bare, boosting, loads = [], [], [], [os.getloadavg()[0]]
    for _ in range(ROUNDS):
        with timing(lgb, "train", boosting):
            started = time.perf_counter(), time.process_time()
            model = configured_model(settings).fit(train, valid)
            ours.append(elapsed(started))
        x_train, x_valid = model.prepare(train), model.prepare(valid)
        started = time.perf_counter(), time.process_time()
        raw = lgb.train(
            {
                "objective": "binary",
                "verbosity": -1,
                "seed": 0,
                "deterministic": True,
                "num_threads": threads,
                **settings.params,
            },
            lgb.Dataset(x_train, train["churned"].astype(int)),
            settings.num_boost_round,
            valid_sets=[lgb.Dataset(x_valid, valid["churned"].astype(int))],
            callbacks=[lgb.early_stopping(settings.early_stopping_rounds, verbose=False)],
        )
        bare.append(elapsed(started))
        loads.append(os.getloadavg()[0])
    result = {
        "customers": customers,
        "train_rows": len(train),
        "valid_rows": len(valid),
        "features": len(model.feature_names_),
        "trees": (model.booster_.best_iteration, raw.best_iteration),
        "calibration": model.calibrator_.method_,
        "weight": model.linear_.weight if model.linear_ is not None else None,
        "load": max(loads),
        "threads": threads,
    }
    outside = [(o[0] - b[0], o[1] - b[1]) for o, b in zip(ours, boosting, strict=True)]
    for name, times in (("ours", ours), ("raw", bare), ("outside", outside)):
        result[f"{name}_wall"], result[f"{name}_cpu"] = (min(t) for t in zip(*times, strict=True))
    if model.linear_ is not None and len(train) > MAX_ROWS:
        result["sample"] = sample_check(model, x_train, train, x_valid, valid)
    return result


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


def report(results: list[dict]) -> str:
    lines = [
        "# Training overhead: ChurnModel.fit against raw lightgbm.train",
        "",
        f"Generated by `benchmarks/bench_training.py` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} ({os.cpu_count()} cores; "
        f"Python {platform.python_version()}, LightGBM "
        f"{lgb.__version__}, scikit-learn {sklearn.__version__}, pandas {pd.__version__}, numpy "
        f"{np.__version__}). Simulated shops, 30-day cutoffs from 2024-07-01, the default config; "
        f"best of {ROUNDS} alternating rounds each. Goal (issue 14): ChurnModel.fit at most 1.10x "
        "the CPU of raw `lightgbm.train` on the same prepared frames and parameters.",
        "",
        "| customers | training rows | validation rows | ChurnModel.fit wall s | CPU s "
        "| raw wall s | CPU s | ratio wall | ratio CPU | trees (ours, raw) | calibration "
        "| blend weight | LightGBM threads | load (max 1 min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['customers']:,} | {r['train_rows']:,} | {r['valid_rows']:,} | "
            f"{r['ours_wall']:.2f} | {r['ours_cpu']:.2f} | {r['raw_wall']:.2f} | "
            f"{r['raw_cpu']:.2f} | {r['ours_wall'] / r['raw_wall']:.2f}x | "
            f"{r['ours_cpu'] / r['raw_cpu']:.2f}x | {r['trees'][0]}, {r['trees'][1]} | "
            f"{r['calibration']} | {r['weight']} | {r['threads']} | {r['load']:.1f} |"
        )
    lines += [
        "",
        "ChurnModel.fit outside its own `lightgbm.train` call (best round), and raw plus that "
        "against raw:",
        "",
        "| customers | outside wall s | outside CPU s | (raw + outside) / raw wall | CPU |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['customers']:,} | {r['outside_wall']:.2f} | {r['outside_cpu']:.2f} | "
            f"{1 + r['outside_wall'] / r['raw_wall']:.2f}x | "
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    results = []
    for customers in args.customers:
        results.append(measure(customers, args.threads))
        print(report(results[-1:]), flush=True)
    text = report(results)
    old = RESULTS.read_text() if RESULTS.exists() else ""
    if "## Reading" in old:  # the hand-written part stays
        text += "\n" + old[old.index("## Reading") :]
    RESULTS.write_text(text)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
