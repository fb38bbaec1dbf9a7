"""Writing CSV: a categorical column is written as the text of its values."""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnlens.data.io import write_csv


def test_a_categorical_column_writes_the_bytes_its_text_would(tmp_path):
    """Levels no spreadsheet runs are written by DuckDB as they are (not value by value):
    quoting, missing values and unused levels as for the same column as text."""
    text = ["a,b", 'say "hi"', None, "line\nbreak", "plain", "a,b", "ünïcode", "C001"]
    levels = ["C001", "a,b", "line\nbreak", "plain", 'say "hi"', "unused", "ünïcode"]
    frame = pd.DataFrame({"id": np.arange(len(text)), "tier": pd.Series(text, dtype="object")})
    categorical = frame.assign(tier=pd.Categorical(text, categories=levels))
    risky = frame.assign(tier=pd.Categorical(["-x", *text[1:]]))
    as_text = write_csv(frame, tmp_path / "text.csv").read_bytes()
    assert write_csv(categorical, tmp_path / "cat.csv").read_bytes() == as_text
    assert as_text.count(b"\r\n") == len(text) + 1 and b'3,"line\nbreak"\r\n' in as_text
    assert write_csv(risky, tmp_path / "risky.csv").read_bytes().split(b"\r\n")[1] == b"0,'-x"
