"""Split a stacked training set by time, so the test is never seen (docs/concepts.md, Labels).

The test cutoff is the latest labelled one, and every other row used must have its label
window `[c, c + horizon)` end at or before it. Two ways to pick the validation rows (early
stopping, calibration):

- `out_of_time`: the latest cutoff whose window ends by the test cutoff; training then uses
  the cutoffs whose windows end by the validation cutoff. Taking simply "the cutoff before the
  test" would, whenever the step is shorter than the horizon, choose the model on outcomes
  inside the test period.
- `grouped`: a share of customers, chosen by a hash of their id, held out of every training
  cutoff. With a long horizon on a short history, out of time leaves only cutoffs with days of
  history (CDNOW at 180 days: six days); held-out customers keep the months in between usable.

`auto` takes out of time when it leaves enough training cutoffs, else grouped, and says why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from churnlens.errors import ChurnlensError

log = logging.getLogger(__name__)
_BUCKETS = 10_000


@dataclass(frozen=True)
class TimeSplit:
    train: tuple[pd.Timestamp, ...]
    valid: tuple[pd.Timestamp, ...]
    test: pd.Timestamp
    validation: Literal["out_of_time", "grouped"] = "out_of_time"
    holdout_share: float = 0.0  # grouped: share of customers validated on, not trained on
    reason: str = ""

    def part(self, frame: pd.DataFrame, name: str) -> pd.DataFrame:
        """The rows of `frame` in one part: 'train', 'valid' or 'test'."""
        if name == "test":
            return frame[frame["cutoff"] == self.test]
        if self.validation == "out_of_time":
            return frame[frame["cutoff"].isin(self.train if name == "train" else self.valid)]
        held = held_out(frame["customer_id"], self.holdout_share)
        return frame[frame["cutoff"].isin(self.train) & (held if name == "valid" else ~held)]


def held_out(customer_ids: pd.Series, share: float) -> pd.Series:
    """Whether each customer is in the validation group: a stable hash of the id, no seed."""
    bucket = pd.util.hash_pandas_object(customer_ids.astype(str), index=False) % _BUCKETS
    return pd.Series((bucket < share * _BUCKETS).to_numpy(), index=customer_ids.index)


def time_split(
    cutoffs,
    horizon_days: int,
    labels: pd.Series | None = None,
    min_positives: int = 10,
    *,
    customers: pd.Series | None = None,
    validation: Literal["auto", "out_of_time", "grouped"] = "auto",
    min_train_cutoffs: int = 3,
    holdout_share: float = 0.2,
) -> TimeSplit:
    """Split the distinct `cutoffs`; with `labels` and `customers` (aligned) check positives."""
    cutoffs = pd.Series(pd.to_datetime(cutoffs))
    distinct = [pd.Timestamp(c) for c in sorted(cutoffs.unique())]
    horizon = pd.Timedelta(days=horizon_days)
    if len(distinct) < 2:
        raise ChurnlensError(
            f"training set: {len(distinct)} cutoff(s); a split needs at least 2 (training and "
            "test) — add cutoffs (config cutoffs.start/min_history_days/step_days)"
        )
    test = distinct[-1]
    before = [c for c in distinct if c + horizon <= test]
    valid = before[-1:] if before else []
    in_time = tuple(c for c in before if valid and c + horizon <= valid[0])
    if validation == "auto":
        validation = "out_of_time" if len(in_time) >= min_train_cutoffs else "grouped"
        why = (
            f"it leaves {len(in_time)} training cutoff(s) before the validation cutoff"
            if validation == "out_of_time"
            else f"an out-of-time validation cutoff would leave {len(in_time)} training "
            f"cutoff(s) with the {horizon_days}-day horizon (fewer than "
            f"cutoffs.min_train_cutoffs = {min_train_cutoffs})"
        )
    else:
        why = "set by cutoffs.validation"
    if validation == "out_of_time":
        train = in_time
        reason = f"validation out of time on {valid[0]:%Y-%m-%d}: {why}" if valid else ""
    else:
        train, valid = tuple(before), tuple(before)
        reason = (
            f"validation on {holdout_share:.0%} of customers held out of the training cutoffs: "
            f"{why}"
        )
    if not train:
        raise ChurnlensError(
            f"training set: cutoffs {distinct[0]:%Y-%m-%d}..{test:%Y-%m-%d} leave no training "
            f"cutoff whose {horizon_days}-day label window ends before the "
            f"{'validation' if validation == 'out_of_time' else 'test'} cutoff; add cutoffs "
            f"at least {horizon_days} days before the test cutoff (config cutoffs)"
        )
    split = TimeSplit(tuple(train), tuple(valid), test, validation, holdout_share, reason)
    log.info("split: %s", reason)
    if labels is not None:
        frame = pd.DataFrame(
            {
                "cutoff": cutoffs.to_numpy(),
                "churned": labels.to_numpy(),
                "customer_id": (customers if customers is not None else cutoffs.index).to_numpy(),
            }
        )
        for name in ("train", "valid", "test"):
            part = split.part(frame, name)["churned"]
            positives, negatives = int(part.sum()), int((~part.astype(bool)).sum())
            if min(positives, negatives) < min_positives:
                raise ChurnlensError(
                    f"training set: the {name} part has {positives} churned and {negatives} "
                    f"retained rows; at least {min_positives} of each are needed"
                )
    return split
