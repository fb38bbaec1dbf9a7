"""The repository stands alone: nothing tracked points outside it, shipped data loads."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pandas as pd

from churnlens.datasets import load_cdnow

ROOT = Path(__file__).parents[1]
# The sibling reference folder and machine paths, spelled in parts so this file passes too.
OUTSIDE = re.compile(
    "|".join([re.escape("../" + "shared"), re.escape("/" + "work/"), r"/home/\w+", r"/Users/\w+"])
    + r"|/tmp/\w"
)


def test_no_tracked_file_points_outside_the_repository():
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    offenders = []
    for name in files:
        path = ROOT / name
        if path.suffix in (".gz", ".png", ".parquet") or not path.is_file():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{name}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_cdnow_ships_with_the_package():
    master = load_cdnow()
    assert len(master["purchases"]) == 69_659
    assert master["customers"]["customer_id"].nunique() == 23_570
    assert master["purchases"]["order_id"].is_unique
    first = master["purchases"].groupby("customer_id")["ordered_at"].min()
    signup = master["customers"].set_index("customer_id")["signup_at"]
    pd.testing.assert_series_equal(first.sort_index(), signup.sort_index(), check_names=False)
    span = master["purchases"]["ordered_at"]
    assert span.min() == pd.Timestamp("1997-01-01") and span.max() == pd.Timestamp("1998-06-30")
    sample = load_cdnow("sample")
    assert len(sample["purchases"]) == 6_919
    assert sample["customers"]["customer_id"].nunique() == 2_357


def test_docs_list_the_risk_list_columns_as_defined():
    from churnlens.scoring.columns import markdown

    assert markdown() in (ROOT / "docs" / "concepts.md").read_text(encoding="utf-8")


def test_readme_api_example_runs(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Python API", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    targets = namespace["targets"]
    assert 0 < len(targets) <= 50
    assert targets["recommended_action"].notna().all()
    assert namespace["result"].test_metrics().loc["lightgbm", "roc_auc"] > 0.8
    assert not any(tmp_path.iterdir())  # in memory: nothing written
