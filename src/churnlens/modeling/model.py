"""The churn model: LightGBM on the feature table, calibrated so a score of 0.3 means 30 %.

The fitted model knows its feature list, dtypes and the categorical levels seen in training.
At predict time it checks the columns the way scikit-learn does (missing names are an error,
extra columns such as ids are ignored) and re-applies the frozen levels, so a batch where a
category has fewer levels cannot shift codes; an unseen level is treated as missing.
It keeps a profile of the training features for drift checks (PSI) at scoring time and the
contract it was trained under (what `churn_probability` means: label type, horizon, active
window, feature windows, the end of its labels), and saves as a folder with no pickles: the
booster as text and the rest as JSON.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import ThreadpoolController

from churnlens.data.io import file_sha256
from churnlens.drift import reference_profile
from churnlens.errors import ChurnlensError
from churnlens.labels import NOT_FEATURES
from churnlens.modeling.linear import LinearPart
from churnlens.modeling.paths import PathAttributions
from churnlens.modeling.treeshap import TreeSHAP

BOOSTER_FILE, SPEC_FILE = "booster.txt", "model.json"
BATCH_ROWS = 200_000


class Calibrator:
    """Maps LightGBM's raw margin to a probability: Platt (sigmoid) or isotonic."""

    def __init__(self, method: str = "auto"):
        self.method = method

    def fit(self, margin: np.ndarray, y: np.ndarray) -> Calibrator:
        method = self.method if self.method != "auto" else _pick_method(margin, y)
        self.method_, self.params_ = method, _fit_method(method, margin, y)
        return self

    def predict(self, margin: np.ndarray) -> np.ndarray:
        if self.method_ == "sigmoid":
            return 1.0 / (1.0 + np.exp(-(self.params_["a"] * margin + self.params_["b"])))
        return np.interp(margin, self.params_["x"], self.params_["y"])

    def to_dict(self) -> dict:
        return {"method": self.method_, "params": self.params_}

    @classmethod
    def from_dict(cls, state: dict) -> Calibrator:
        calibrator = cls(state["method"])
        calibrator.method_, calibrator.params_ = state["method"], state["params"]
        return calibrator


def _fit_method(method: str, margin: np.ndarray, y: np.ndarray) -> dict:
    if method == "sigmoid":
        lr = LogisticRegression(C=1e6).fit(margin.reshape(-1, 1), y)
        return {"a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])}
    iso = IsotonicRegression(out_of_bounds="clip", y_min=1e-4, y_max=1 - 1e-4).fit(margin, y)
    return {"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}


def _pick_method(margin: np.ndarray, y: np.ndarray) -> str:
    """Isotonic or sigmoid, whichever has the lower Brier score in 5-fold CV on validation."""
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    scores = {}
    for method in ("sigmoid", "isotonic"):
        losses = []
        for fit_idx, held_idx in folds.split(margin.reshape(-1, 1), y):
            calibrator = Calibrator(method).fit(margin[fit_idx], y[fit_idx])
            held = y[held_idx] - calibrator.predict(margin[held_idx])
            losses.append(np.mean(held**2))  # the Brier score, without its input checks
        scores[method] = float(np.mean(losses))
    return min(scores, key=lambda m: (scores[m], m != "sigmoid"))


class ChurnModel:
    """A calibrated LightGBM binary classifier over a frozen feature spec."""

    def __init__(
        self,
        params: dict | None = None,
        num_boost_round: int = 500,
        early_stopping_rounds: int = 50,
        calibration: str = "auto",
        seed: int = 0,
        threads: int | None = None,
        blend: bool = False,
    ):
        self.params = params or {}
        self.num_boost_round = num_boost_round
        self.early_stopping_rounds = early_stopping_rounds
        self.calibration = calibration
        self.seed = seed
        self.threads = threads
        self.blend = blend

    # --- fitting -------------------------------------------------------------------------
    def fit(
        self,
        train: pd.DataFrame,
        valid: pd.DataFrame,
        label: str = "churned",
        reference: pd.DataFrame | None = None,
    ) -> ChurnModel:
        """Fit on `train`, stop early and calibrate on `valid` (both carry `label`); profile
        `reference` (default: `valid`) for drift, see `set_reference`."""
        self.freeze(train)
        x_train, x_valid = self.prepare(train), self.prepare(valid)
        y_train, y_valid = train[label].to_numpy(int), valid[label].to_numpy(int)
        params = {
            "objective": "binary",
            "metric": "binary_logloss",
            "verbosity": -1,
            "seed": self.seed,
            "deterministic": True,
            "num_threads": self.threads or os.cpu_count() or 1,
            **self.params,
        }
        categorical = [n for n, kind in self.dtypes_.items() if kind == "category"]
        dtrain = lgb.Dataset(x_train, y_train, categorical_feature=categorical or "auto")
        dvalid = lgb.Dataset(x_valid, y_valid, reference=dtrain)
        recorded = _BestValidMargin()
        self.booster_ = lgb.train(
            params,
            dtrain,
            num_boost_round=self.num_boost_round,
            valid_sets=[dvalid],
            feval=recorded.metric,
            callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False), recorded],
        )
        for built in ("_paths", "_treeshap"):  # built for the previous booster
            self.__dict__.pop(built, None)
        self.linear_, self.blend_scores_, self.contract_ = None, {}, {}
        # The small fits after boosting run on one thread: waking BLAS and OpenMP pools for
        # them costs more than it saves (10x the CPU for the calibration on a busy 2-core
        # machine). They run one after the other: on a helper thread, overlapping LightGBM's
        # validation prediction, they took more CPU (the two threads slow each other).
        with _threadpools().limit(limits=1):
            margin = recorded.margin(self.booster_)  # blend weight, calibration
            if margin is None:
                margin = self._tree_margin(x_valid)
            if self.blend:
                numeric = [n for n, kind in self.dtypes_.items() if kind == "float64"]
                self.linear_ = LinearPart().fit(x_train, y_train, numeric, seed=self.seed)
                self._choose_weight(y_valid, valid["cutoff"], x_valid, margin)
                margin = self.linear_.blend(margin, x_valid)
            self.calibrator_ = Calibrator(self.calibration).fit(margin, y_valid)
            profiled = x_valid if reference is None else self.prepare(reference)
            self.reference_ = reference_profile(profiled, self.dtypes_)
        return self

    def freeze(self, train: pd.DataFrame) -> ChurnModel:
        """Freeze the feature spec of `train` (names, dtypes, categorical levels): what
        `prepare` applies to every later frame."""
        names = [c for c in train.columns if c not in NOT_FEATURES]
        self.feature_names_ = names
        self.dtypes_ = {n: "category" if _is_categorical(train[n]) else "float64" for n in names}
        self.categories_ = {
            n: sorted(str(v) for v in train[n].dropna().unique())
            for n, kind in self.dtypes_.items()
            if kind == "category"
        }
        return self

    def _choose_weight(self, y_valid, valid_cutoffs, x_valid, tree) -> None:
        """The logistic part's weight, chosen on the latest validation cutoff (all validation
        rows if that cutoff holds one class only) from LightGBM's margin `tree` there; see
        linear.py."""
        latest = (valid_cutoffs == valid_cutoffs.max()).to_numpy()
        if len(np.unique(y_valid[latest])) < 2:
            latest[:] = True
        self.blend_scores_ = self.linear_.choose_weight(
            tree[latest], self.linear_.margin(x_valid[latest]), y_valid[latest]
        )

    def set_contract(self, contract: dict) -> ChurnModel:
        """Record what the probabilities mean (see `churnlens.modeling.train.model_contract`)."""
        self.contract_ = dict(contract)
        return self

    def set_reference(self, frame: pd.DataFrame) -> ChurnModel:
        """Profile `frame` as the population scoring runs are compared with (drift, PSI).

        fit() uses the validation cutoff; the latest labelled cutoff is a closer match for
        the populations the model will score next.
        """
        self.reference_ = reference_profile(self.prepare(frame), self.dtypes_)
        return self

    # --- predicting ----------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "feature_names_"):
            raise ChurnlensError("this ChurnModel is not fitted yet: call fit() or load()")

    def prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The feature columns in training order and dtypes, with the frozen levels."""
        self._check_fitted()
        missing = [n for n in self.feature_names_ if n not in frame.columns]
        if missing:
            raise ChurnlensError(
                f"features: {len(missing)} column(s) the model was trained on are missing: "
                f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}"
            )
        out = {}
        for name in self.feature_names_:
            values = frame[name]
            if self.dtypes_[name] == "category":
                out[name] = _frozen_levels(values, self.categories_[name])
            else:
                if not (
                    pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)
                ):
                    raise ChurnlensError(
                        f"features: column {name} must be numeric (the model was trained on "
                        f"numbers), got {values.dtype}"
                    )
                out[name] = values.astype("float64")
        # copy=False: no 2-D block is stacked (a copy of every row, 0.4 GB and 2-3 CPU s at
        # 670k training rows); LightGBM and the logistic part make their own arrays anyway.
        return pd.DataFrame(out, index=frame.index, copy=False)

    def _tree_margin(self, prepared: pd.DataFrame) -> np.ndarray:
        return self.booster_.predict(
            prepared, raw_score=True, num_iteration=self.booster_.best_iteration or None
        )

    def _margin(self, prepared: pd.DataFrame) -> np.ndarray:
        """LightGBM's raw margin, blended with the logistic part when there is one."""
        tree = self._tree_margin(prepared)
        return tree if self.linear_ is None else self.linear_.blend(tree, prepared)

    def _contributions(self, prepared: pd.DataFrame) -> np.ndarray:
        """Exact contributions to the raw margin (TreeSHAP, blended with the logistic terms
        when there is a logistic part); the last column is the base value."""
        tree = self._treeshap(prepared)
        if self.linear_ is None:
            return tree
        return self.linear_.blend_contributions(tree, prepared, self.feature_names_)

    @functools.cached_property
    def _treeshap(self) -> TreeSHAP:
        return TreeSHAP(self.booster_, self.booster_.best_iteration or None)

    @functools.cached_property
    def _paths(self) -> PathAttributions:
        return PathAttributions(self.booster_, self.booster_.best_iteration or None)

    def _path_contributions(self, prepared: pd.DataFrame) -> np.ndarray:
        """Path attributions (modeling.paths) in place of TreeSHAP, blended the same way."""
        tree = self._paths(prepared)
        if self.linear_ is None:
            return tree
        return self.linear_.blend_contributions(tree, prepared, self.feature_names_)

    def _batched(self, frame: pd.DataFrame, predict) -> np.ndarray:
        """`predict` over BATCH_ROWS rows at a time: only one batch is ever held as a
        prepared float copy, so a million rows cost a batch's memory, not theirs."""
        self._check_fitted()
        parts = [
            predict(self.prepare(frame.iloc[start : start + BATCH_ROWS]))
            for start in range(0, max(len(frame), 1), BATCH_ROWS)
        ]
        return np.concatenate(parts)

    def predict_margin(self, frame: pd.DataFrame) -> np.ndarray:
        return self._batched(frame, self._margin)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated churn probability per row."""
        margin = self.predict_margin(frame)
        return self.calibrator_.predict(margin)

    def contributions(self, frame: pd.DataFrame) -> np.ndarray:
        """Exact contributions to the raw margin, the last column the base value."""
        return self._batched(frame, self._contributions)

    def path_contributions(self, frame: pd.DataFrame) -> np.ndarray:
        """Approximate contributions to the raw margin (Saabas path attributions, columns as
        `contributions`): the cost of a prediction instead of TreeSHAP's, for screening."""
        return self._batched(frame, self._path_contributions)

    # --- persistence ---------------------------------------------------------------------
    def spec(self) -> dict:
        return {
            "feature_names": self.feature_names_,
            "dtypes": self.dtypes_,
            "categories": self.categories_,
            "calibration": self.calibrator_.to_dict(),
            "reference": self.reference_,
            "contract": self.contract_,
            "best_iteration": self.booster_.best_iteration,
            "linear": self.linear_.state if self.linear_ is not None else None,
            "params": self.params,
            "lightgbm_version": lgb.__version__,
        }

    def save(self, folder: Path) -> Path:
        """Write booster.txt and model.json into `folder` (no pickles)."""
        self._check_fitted()
        folder.mkdir(parents=True, exist_ok=True)
        self.booster_.save_model(str(folder / BOOSTER_FILE))
        (folder / SPEC_FILE).write_text(json.dumps(self.spec(), indent=1, sort_keys=True))
        return folder

    def file_hashes(self, folder: Path) -> dict[str, str]:
        """sha256 of the saved files, recorded at training so loading can check them."""
        return {name: file_sha256(Path(folder) / name) for name in (BOOSTER_FILE, SPEC_FILE)}

    @classmethod
    def load(cls, folder: Path, sha256: dict[str, str] | None = None) -> ChurnModel:
        """Read a saved model: JSON and LightGBM's booster text, never code or pickles.

        With `sha256` (file name -> hash recorded at training), a file that differs is refused.
        """
        folder = Path(folder)
        if not (folder / BOOSTER_FILE).is_file() or not (folder / SPEC_FILE).is_file():
            raise ChurnlensError(f"model folder {folder}: {BOOSTER_FILE} or {SPEC_FILE} missing")
        for name, expected in (sha256 or {}).items():
            if file_sha256(folder / name) != expected:
                raise ChurnlensError(
                    f"model folder {folder}: {name} does not match the sha256 recorded at "
                    "training; the model was changed after training and is not loaded"
                )
        try:
            spec = json.loads((folder / SPEC_FILE).read_text())
            model = cls(params=spec["params"])
            model.booster_ = lgb.Booster(model_file=str(folder / BOOSTER_FILE))
            model.booster_.best_iteration = spec["best_iteration"]
            model.feature_names_, model.dtypes_ = spec["feature_names"], spec["dtypes"]
            model.categories_ = spec["categories"]
            model.calibrator_ = Calibrator.from_dict(spec["calibration"])
            model.reference_ = spec["reference"]
            model.linear_ = LinearPart(spec["linear"]) if spec.get("linear") else None
        except (ValueError, KeyError, TypeError, lgb.basic.LightGBMError) as error:
            raise ChurnlensError(
                f"model folder {folder}: cannot be read ({type(error).__name__}: "
                f"{str(error).splitlines()[0] if str(error) else 'corrupt'})"
            ) from None
        model.contract_ = spec.get("contract", {})
        return model


def _frozen_levels(values: pd.Series, levels: list[str]) -> pd.Categorical:
    """`values` as text on the frozen `levels`; missing and unseen levels are missing.
    Only the distinct values are turned into text (a column has a handful of levels)."""
    codes, uniques = pd.factorize(values)  # missing -> -1
    known = pd.Index(levels).get_indexer(pd.Series(uniques).astype("str"))  # unseen -> -1
    return pd.Categorical.from_codes(np.append(known, -1)[codes], categories=levels)


class _BestValidMargin:
    """LightGBM's raw margin on the validation rows at the best iteration, recorded while it
    trains, so that fit need not predict them again (0.2 CPU s at 134k training rows, 2.2 s
    at 670k). Pass `metric` as lgb.train's `feval` (LightGBM hands it the validation
    probabilities every round; it adds no metric) and the object itself as a callback: it
    runs before early stopping's (order 30), which ends training at the last round, and keeps
    the probabilities of each round where the first metric improves, as early stopping does.
    """

    # Beyond this probability the margin, log(p / (1 - p)), is no longer exact to 1e-7.
    MAX_PROBABILITY = 1 - 1e-9

    def __init__(self):
        self.order = 20  # lgb.train sorts callbacks by it; an instance attribute, it keeps
        self.latest, self.best, self.best_round, self.best_score = None, None, -1, None

    def metric(self, probabilities: np.ndarray, _data) -> list:
        self.latest = probabilities.copy()  # LightGBM reuses its buffer
        return []

    def __call__(self, env) -> None:
        if not env.evaluation_result_list:  # no metric (params metric "None"): nothing to keep
            return
        first = env.evaluation_result_list[0]
        score = first[2] if first[3] else -first[2]  # (data, name, value, higher is better)
        if self.best_score is None or score > self.best_score:
            self.best, self.best_round, self.best_score = self.latest, env.iteration, score

    def margin(self, booster: lgb.Booster) -> np.ndarray | None:
        """The recorded margin, or None if there is none for the booster's best iteration
        (another metric stopped training, or none did) or it is not exact (a probability of 0
        or within 1e-9 of 1)."""
        p = self.best
        if p is None or self.best_round + 1 != booster.best_iteration:
            return None
        if p.min() <= 0 or p.max() > self.MAX_PROBABILITY:
            return None
        return np.log(p) - np.log1p(-p)


@functools.cache
def _threadpools() -> ThreadpoolController:
    """The BLAS and OpenMP pools, found once (a scan of every loaded library, 0.1 s)."""
    return ThreadpoolController()


def _is_categorical(values: pd.Series) -> bool:
    return isinstance(values.dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(values)
