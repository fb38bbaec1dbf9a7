"""Does the training table's campaign profit (`profit_top_k`) measure a campaign that pays?

`churnlens train` reports, per model, the realised profit of contacting the customers with a
positive expected gain on the test cutoff (`modeling.evaluate.expected_profit`): each is
ranked by `p * value * save_rate - cost` with the model's own churn probability, and every
contacted churner counts as saved at the save rate. A churner who has already left when the
list is made cannot be saved, and scoring ranks by the saveable probability
(`economics.saveable`, with `scoring.status.gone_probability`) for that reason. The simulator
knows when each customer left (`ground_truth.churned_at`), so on a simulated shop this script
prices three campaigns per model, all on the test cutoff's rows:

- **now**: `profit_top_k` as the training table reports it;
- **truth, same picks**: the same contacts, but only churners who had not left by the cutoff
  can be saved;
- **truth, scoring's picks**: contacts ranked by the saveable probability, as scoring ranks
  them, priced by the same truth.

    python benchmarks/bench_campaign.py                    # 20,000 customers, seeds 3 and 5
    python benchmarks/bench_campaign.py --customers 5000 --seeds 1
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path(__file__).parent / "results" / "campaign.md"
CONFIG = Path(__file__).parents[1] / "configs" / "demo.yaml"  # the demo's model settings


def campaigns(customers: int, seed: int) -> pd.DataFrame:
    """One row per model: the three campaigns' profit and contacts on the test cutoff."""
    import churnlens as cl
    from churnlens.config import load_config
    from churnlens.economics import expected_gain, saveable
    from churnlens.features.engine import training_set
    from churnlens.modeling.evaluate import expected_profit
    from churnlens.modeling.train import fit
    from churnlens.scoring.status import gone_probability

    config = load_config(CONFIG)
    shop = cl.simulate(customers, seed=seed)
    truth = shop.pop("ground_truth")[["customer_id", "churned_at"]]
    result = fit(training_set(cl.validate(shop), config), config)
    test = result.split.part(result.scored, "test").merge(truth, on="customer_id", how="left")
    left = (test["churned_at"] < test["cutoff"]).to_numpy()  # NaT: never left
    y = test["churned"].to_numpy(int)
    saveable_y = y * ~left
    value, rate, cost = (test[c].to_numpy(float) for c in ("value", "save_rate", "contact_cost"))
    eligible = test["eligible"].to_numpy(bool)
    priced = (value, cost, rate, None, eligible)
    rows = []
    for name in result.seconds:  # the model, then each baseline that could be fitted
        p = test[name].to_numpy(float)
        gone = gone_probability(test, p, config.scoring.status, config.churn.horizon_days)
        gain = np.where(eligible, expected_gain(saveable(p, gone), value, rate, cost), -np.inf)
        picks = np.flatnonzero(gain > 0)
        contacted = np.flatnonzero(eligible & (expected_gain(p, value, rate, cost) > 0))
        rows.append(
            {
                "seed": seed,
                "model": name,
                "now": expected_profit(y, p, *priced),
                "truth, same picks": expected_profit(saveable_y, p, *priced),
                "contacts": len(contacted),
                "truth, scoring's picks": float(
                    expected_gain(saveable_y[picks], value[picks], rate[picks], cost[picks]).sum()
                ),
                "scoring's contacts": len(picks),
                "churners": int(y.sum()),
                "already left": int((y * left).sum()),
            }
        )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 5])
    args = parser.parse_args()
    table = pd.concat([campaigns(args.customers, seed) for seed in args.seeds])
    print(table.to_string(index=False))
    money = ["now", "truth, same picks", "truth, scoring's picks"]
    lines = [
        "# Campaign profit on the test cutoff against the simulator's truth",
        "",
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC with `python benchmarks/"
        f"bench_campaign.py --customers {args.customers} --seeds {' '.join(map(str, args.seeds))}`"
        ". Shops: `simulate(N, seed)`, the demo's config; money in the shop's units. Columns: "
        "see the script's docstring.",
        "",
        "| seed | model | " + " | ".join(table.columns[2:]) + " |",
        "|---|---|" + "---:|" * (len(table.columns) - 2),
    ]
    for row in table.itertuples(index=False):
        named = zip(table.columns[2:], row[2:], strict=True)
        cells = [f"{v:,.0f}" if k in money else f"{v:,}" for k, v in named]
        lines.append(f"| {row.seed} | {row.model} | " + " | ".join(cells) + " |")
    RESULTS.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
