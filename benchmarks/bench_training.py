"""Training cost: churnlens's ChurnModel.fit against a raw `lightgbm.train` on the same data.

ChurnModel.fit adds the feature-spec freeze, frozen categorical levels, calibration (with a
5-fold choice between sigmoid and isotonic) and the drift reference on top of LightGBM; this
measures what that costs. Both use the config's parameters and early stopping on the same
validation cutoff. Wall and CPU seconds (this process, every thread) are both reported: on a
shared machine the CPU ratio is the fairer one. Goal (issue 14): at most 1.10x.
Run: .venv/bin/python benchmarks/bench_training.py [--customers N]
"""

from __future__ import annotations

import argparse
import time

import lightgbm as lgb
import pandas as pd

from churnlens import Config, simulate, validate
from churnlens.config import CutoffConfig
from churnlens.features.engine import training_set as build_training_set
from churnlens.modeling.split import time_split
from churnlens.modeling.train import configured_model


def training_set(customers: int) -> pd.DataFrame:
    shop = simulate(customers, seed=0)
    shop.pop("ground_truth")
    config = Config(cutoffs=CutoffConfig(start="2024-07-01", step_days=30))
    return build_training_set(validate(shop), config), config


ROUNDS = 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=50_000)
    args = parser.parse_args()
    frame, config = training_set(args.customers)
    split = time_split(frame["cutoff"], config.churn.horizon_days, frame["churned"])
    train, valid = split.part(frame, "train"), split.part(frame, "valid")
    settings = config.model
    ours, bare = [], []
    for _ in range(ROUNDS):  # alternate, keep the best: the machine is shared
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
                "num_threads": 2,
                **settings.params,
            },
            lgb.Dataset(x_train, train["churned"].astype(int)),
            settings.num_boost_round,
            valid_sets=[lgb.Dataset(x_valid, valid["churned"].astype(int))],
            callbacks=[lgb.early_stopping(settings.early_stopping_rounds, verbose=False)],
        )
        bare.append(elapsed(started))
    ours_wall, ours_cpu = (min(times) for times in zip(*ours, strict=True))
    bare_wall, bare_cpu = (min(times) for times in zip(*bare, strict=True))
    print(
        f"training rows {len(train):,}, validation rows {len(valid):,}, "
        f"{len(model.feature_names_)} features"
    )
    print(
        f"ChurnModel.fit {ours_wall:.2f} s wall, {ours_cpu:.2f} s CPU "
        f"({model.booster_.best_iteration} trees, {model.calibrator_.method_}) | raw "
        f"lightgbm.train {bare_wall:.2f} s wall, {bare_cpu:.2f} s CPU ({raw.best_iteration} "
        f"trees) | ratio {ours_wall / bare_wall:.2f}x wall, {ours_cpu / bare_cpu:.2f}x CPU"
    )


def elapsed(started: tuple[float, float]) -> tuple[float, float]:
    """(wall, CPU) seconds since `started` = (perf_counter(), process_time())."""
    return time.perf_counter() - started[0], time.process_time() - started[1]


if __name__ == "__main__":
    main()
