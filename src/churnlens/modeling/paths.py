"""Path attributions (Saabas) for a LightGBM booster: contributions at the cost of a prediction.

Each tree splits a row's margin along the path to its leaf: a split on feature f moves the
expected value from the node's to the child's, and that step is f's contribution (node values
are the data-weighted means of their leaves, LightGBM's `leaf_count`/`internal_count`, as
TreeSHAP weighs them). Because the path to a leaf is fixed, each leaf's contribution vector is
computed once; a row's contributions are the sum of its leaves' vectors (a sparse product of
the `pred_leaf` indicator with the leaf table). The columns add up to the raw margin exactly,
like TreeSHAP's, but they only approximate TreeSHAP's fair split of interactions: a feature split
near the leaves gets more. Scoring uses them to screen who needs exact TreeSHAP reasons
(`scoring.score`); every reason it reports stays TreeSHAP.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import scipy.sparse as sp

# Rows per leaf prediction: LightGBM returns rows x trees leaf indices through a float64
# buffer, and at 200,000 rows x 250 trees (400 MB) filling it costs more than the prediction.
LEAF_ROWS = 50_000


class PathAttributions:
    """The leaf table of `booster`'s first `trees` trees: one row per leaf, one column per
    feature plus the base value (the tree's mean output) as the last column."""

    def __init__(self, booster: lgb.Booster, trees: int | None = None):
        self.booster = booster
        self.trees = trees or booster.num_trees()
        features = booster.num_feature()
        tables = [
            _leaf_table(tree["tree_structure"], features)
            for tree in booster.dump_model(num_iteration=self.trees)["tree_info"]
        ]
        self.offsets = np.cumsum([0] + [len(t) for t in tables[:-1]], dtype=np.int32)
        self.table = sp.csr_array(np.vstack(tables))

    def __call__(self, prepared: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Per row, the contributions to the raw margin (features..., base)."""
        rows = prepared.iloc if isinstance(prepared, pd.DataFrame) else prepared
        parts = range(0, max(len(prepared), 1), LEAF_ROWS)
        return np.vstack([self._leaves(rows[start : start + LEAF_ROWS]) for start in parts])

    def _leaves(self, prepared: pd.DataFrame | np.ndarray) -> np.ndarray:
        # int32 leaf indices as LightGBM returns them: no int64 copy of rows x trees
        leaf = self.booster.predict(prepared, pred_leaf=True, num_iteration=self.trees)
        leaf = leaf.reshape(len(prepared), -1) + self.offsets
        rows, trees = leaf.shape
        indicator = sp.csr_array(
            (np.ones(rows * trees), leaf.ravel(), np.arange(0, rows * trees + 1, trees)),
            shape=(rows, self.table.shape[0]),
        )
        return (indicator @ self.table).toarray()


def is_leaf(node: dict) -> bool:
    """Whether a node of `Booster.dump_model` is a leaf; a tree that never split is one leaf,
    dumped without a `leaf_index` (it is leaf 0)."""
    return "split_feature" not in node


def _leaf_table(root: dict, features: int) -> np.ndarray:
    """One tree's leaves x (features + base): each leaf's steps along its path."""
    leaves: dict[int, np.ndarray] = {}

    def walk(node: dict) -> tuple[float, float, list[int]]:
        """(mean output, row count, leaf indices) under `node`, filling `leaves`' steps."""
        if is_leaf(node):
            index = node.get("leaf_index", 0)
            leaves[index] = np.zeros(features + 1)
            return node["leaf_value"], node.get("leaf_count", 0), [index]
        left, right = walk(node["left_child"]), walk(node["right_child"])
        count = left[1] + right[1]
        mean = node["internal_value"]  # a node no training row reached
        if count:
            mean = (left[0] * left[1] + right[0] * right[1]) / count
        for child_mean, _, under in (left, right):
            for leaf in under:
                leaves[leaf][node["split_feature"]] += child_mean - mean
        return mean, count, left[2] + right[2]

    base = walk(root)[0]
    table = np.array([leaves[i] for i in range(len(leaves))])
    table[:, -1] = base
    return table
