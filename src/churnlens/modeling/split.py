"""Out-of-time split of a stacked training set (see docs/concepts.md, Labels).

The test cutoff is the latest labelled one. Validation is the latest cutoff whose label window
`[v, v + horizon)` ends at or before the test cutoff, and training uses the cutoffs whose
label windows end at or before the validation cutoff. Taking simply "the cutoff before the
test" would, whenever the cutoff step is shorter than the horizon, pick the model (early
stopping, calibration) on outcomes that happen inside the test period.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from churnlens.errors import ChurnlensError


@dataclass(frozen=True)
class TimeSplit:
    train: tuple[pd.Timestamp, ...]
    valid: pd.Timestamp
    test: pd.Timestamp

    def part(self, frame: pd.DataFrame, name: str) -> pd.DataFrame:
        """The rows of `frame` in one part: 'train', 'valid' or 'test'."""
        cutoffs = {"train": self.train, "valid": (self.valid,), "test": (self.test,)}[name]
        return frame[frame["cutoff"].isin(cutoffs)]


def time_split(
    cutoffs, horizon_days: int, labels: pd.Series | None = None, min_positives: int = 10
) -> TimeSplit:
    """Split the distinct `cutoffs`; with `labels` (aligned to cutoffs) check positives."""
    cutoffs = pd.Series(pd.to_datetime(cutoffs))
    distinct = sorted(cutoffs.unique())
    horizon = pd.Timedelta(days=horizon_days)
    if len(distinct) < 3:
        raise ChurnlensError(
            f"training set: {len(distinct)} cutoff(s); an out-of-time split needs at least 3 "
            "(training, validation, test) — add cutoffs (config cutoffs.start/step_days)"
        )
    test = distinct[-1]
    valid_options = [c for c in distinct if c + horizon <= test]
    valid = valid_options[-1] if valid_options else None
    train = tuple(c for c in distinct if valid is not None and c + horizon <= valid)
    if not train:
        raise ChurnlensError(
            f"training set: cutoffs {distinct[0]:%Y-%m-%d}..{test:%Y-%m-%d} leave no training "
            f"cutoff whose {horizon_days}-day label window ends before the validation cutoff; "
            f"cover at least {2 * horizon_days} days plus a step with cutoffs"
        )
    split = TimeSplit(
        train=tuple(pd.Timestamp(c) for c in train),
        valid=pd.Timestamp(valid),
        test=pd.Timestamp(test),
    )
    if labels is not None:
        frame = pd.DataFrame({"cutoff": cutoffs.to_numpy(), "churned": labels.to_numpy()})
        for name in ("train", "valid", "test"):
            part = split.part(frame, name)["churned"]
            positives, negatives = int(part.sum()), int((~part.astype(bool)).sum())
            if min(positives, negatives) < min_positives:
                raise ChurnlensError(
                    f"training set: the {name} part has {positives} churned and {negatives} "
                    f"retained rows; at least {min_positives} of each are needed"
                )
    return split
