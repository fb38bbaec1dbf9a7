"""Everything that talks to MLflow: the store, runs, artifacts, registry and aliases.

The default store is a SQLite database in the working folder (`mlflow.db`, artifacts in
`mlartifacts/`): MLflow 3 keeps the file store in maintenance mode and refuses it by default,
while SQLite gives runs, the registry and aliases with no server. `MLFLOW_TRACKING_URI`, then
the config's `tracking.uri`, override it. This is the only module that imports mlflow.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

import churnlens
from churnlens.config import Config
from churnlens.errors import ChurnlensError
from churnlens.modeling.model import ChurnModel
from churnlens.modeling.train import MODEL, TrainingResult

CHALLENGER, CHAMPION = "challenger", "champion"
MODEL_ARTIFACT = "model"
TEST_SET = "evaluation/test_set.parquet"
REQUIREMENTS = ("lightgbm", "pandas", "numpy", "scikit-learn", "pyarrow", "pydantic", "pyyaml")
# models-from-code: MLflow runs this file to build the pyfunc, so nothing is pickled
PYFUNC_SCRIPT = (
    "from churnlens.tracking import ChurnPyfunc\nmlflow.models.set_model(ChurnPyfunc())\n"
)
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


class PromotionRefused(ChurnlensError):
    """The challenger is not better than the champion: nothing changed (exit code 1)."""

    exit_code = 1


# Read once: mlflow.set_tracking_uri() writes this variable for subprocesses, so reading it
# later would return whatever this process last used instead of what the user set.
USER_TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI")


def tracking_uri(config: Config) -> str:
    """MLFLOW_TRACKING_URI, else the config's tracking.uri, else ./mlflow.db (SQLite)."""
    return USER_TRACKING_URI or config.tracking.uri or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def _client(config: Config) -> MlflowClient:
    uri = tracking_uri(config)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(uri)


def _experiment_id(client: MlflowClient, config: Config) -> str:
    experiment = client.get_experiment_by_name(config.tracking.experiment)
    if experiment is not None:
        return experiment.experiment_id
    uri = tracking_uri(config)
    location = None
    if uri.startswith("sqlite:///"):  # keep artifacts beside the database, not in cwd/mlruns
        location = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
    return client.create_experiment(config.tracking.experiment, artifact_location=location)


class ChurnPyfunc(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: loads the pickle-free model folder, returns churn probabilities."""

    def load_context(self, context) -> None:
        self.model = ChurnModel.load(Path(context.artifacts[MODEL_ARTIFACT]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return pd.DataFrame({"churn_probability": self.model.predict_proba(model_input)})


def _signature_frame(model: ChurnModel, frame: pd.DataFrame) -> pd.DataFrame:
    """Features as MLflow sees them: categoricals as strings (it has no category type), numbers
    as doubles (counts may be missing in a scoring batch; the model reads them as floats)."""
    sample = frame[model.feature_names_].head(5)
    return sample.astype(
        {n: "str" if k == "category" else "float64" for n, k in model.dtypes_.items()}
    )


def _digest(frame: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy()).hexdigest()


@dataclass(frozen=True)
class RegisteredRun:
    run_id: str
    name: str
    version: str
    model_uri: str


def log_training(
    result: TrainingResult,
    training_set: pd.DataFrame,
    config: Config,
    config_path: Path | None,
    figures: dict,
) -> RegisteredRun:
    """Log one training run and register its model as the new challenger."""
    client = _client(config)
    name = config.model.name
    with mlflow.start_run(experiment_id=_experiment_id(client, config)) as run:
        mlflow.log_params(
            {
                **{f"lgbm.{k}": v for k, v in config.model.params.items()},
                "num_boost_round": config.model.num_boost_round,
                "best_iteration": result.model.booster_.best_iteration,
                "calibration": result.model.calibrator_.method_,
                "horizon_days": config.churn.horizon_days,
                "churn_type": config.churn.type,
                "train_cutoffs": ",".join(f"{c:%Y-%m-%d}" for c in result.split.train),
                "valid_cutoffs": ",".join(f"{c:%Y-%m-%d}" for c in result.split.valid),
                "validation": result.split.validation,
                "test_cutoff": f"{result.split.test:%Y-%m-%d}",
                "n_features": len(result.model.feature_names_),
                "training_rows": len(training_set),
                "training_set_sha256": _digest(training_set),
            }
        )
        test = result.test_metrics()
        mlflow.log_metrics(
            {
                f"test_{metric}" if model == MODEL else f"test_{model}_{metric}": float(value)
                for model, row in test.iterrows()
                for metric, value in row.items()
                if pd.notna(value)
            }
        )
        mlflow.log_metrics(_interval_metrics(result.intervals))
        _log_metrics_by_cutoff(result, training_set)
        mlflow.log_metrics({f"fit_seconds_{k}": v for k, v in result.seconds.items()})
        mlflow.set_tag("split", result.split.reason)
        mlflow.set_tag("best_baseline", str(result.intervals["reference"].iloc[0]))
        mlflow.set_tags({f"baseline_failed.{name}": why for name, why in result.failed.items()})
        with warnings.catch_warnings():  # its hint about int columns is meant for models
            warnings.simplefilter("ignore", UserWarning)
            dataset = mlflow.data.from_pandas(
                training_set.astype({c: "str" for c in training_set.select_dtypes("category")}),
                name="training_set",
                targets="churned",
                digest=_digest(training_set)[:16],
            )
        mlflow.log_input(dataset, context="training")
        if config_path is not None:
            mlflow.log_artifact(str(config_path), "config")
        mlflow.log_text(result.metrics.to_csv(index=False), "evaluation/metrics_by_cutoff.csv")
        mlflow.log_dict(result.model.spec(), "model_spec.json")
        for figure_name, figure in figures.items():
            mlflow.log_figure(figure, f"plots/{figure_name}.png")
        with tempfile.TemporaryDirectory() as tmp:
            test_rows = result.split.part(training_set, "test")
            test_rows.to_parquet(Path(tmp) / "test_set.parquet", index=False)
            mlflow.log_artifact(str(Path(tmp) / "test_set.parquet"), "evaluation")
            folder = result.model.save(Path(tmp) / "model")
            example = _signature_frame(result.model, test_rows)
            script = Path(tmp) / "churn_pyfunc.py"
            script.write_text("import mlflow\n" + PYFUNC_SCRIPT)
            info = mlflow.pyfunc.log_model(
                name=MODEL_ARTIFACT,
                python_model=str(script),
                artifacts={MODEL_ARTIFACT: str(folder)},
                code_paths=[str(Path(churnlens.__file__).parent)],
                signature=mlflow.models.infer_signature(
                    example, pd.DataFrame({"churn_probability": [0.5] * len(example)})
                ),
                input_example=example,
                pip_requirements=[f"{p}=={version(p)}" for p in REQUIREMENTS],
            )
        registered = mlflow.register_model(info.model_uri, name)
        client.set_registered_model_alias(name, CHALLENGER, registered.version)
        client.set_model_version_tag(
            name, registered.version, "test_cutoff", f"{result.split.test:%Y-%m-%d}"
        )
        return RegisteredRun(run.info.run_id, name, str(registered.version), info.model_uri)


def _version(client: MlflowClient, name: str, alias: str):
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def load_registered(config: Config, alias: str = CHAMPION, name: str | None = None):
    """(ChurnModel, model version) behind `models:/<name>@<alias>`; a clear error if absent."""
    client = _client(config)
    name = name or config.model.name
    found = _version(client, name, alias)
    if found is None:
        raise ChurnlensError(
            f"model registry {tracking_uri(config)}: no '{alias}' version of model '{name}'"
            + (
                "; run `churnlens train` then `churnlens promote`"
                if alias == CHAMPION
                else "; run `churnlens train` first"
            )
        )
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}@{alias}")
    return pyfunc.unwrap_python_model().model, found


def load_model_uri(config: Config, uri: str) -> tuple[ChurnModel, dict]:
    """A model from `models:/<name>@<alias>` or `models:/<name>/<version>`, with its lineage."""
    reference = uri.removeprefix("models:/")
    name, alias = reference.split("@", 1) if "@" in reference else (reference, None)
    if alias is None:
        name, _, number = reference.rpartition("/")
        client = _client(config)
        try:
            found = client.get_model_version(name, number)
        except MlflowException:
            raise ChurnlensError(f"model registry: no version {number} of model '{name}'") from None
        model = mlflow.pyfunc.load_model(uri).unwrap_python_model().model
    else:
        model, found = load_registered(config, alias, name)
    return model, {"model_name": name, "model_version": str(found.version), "run_id": found.run_id}


def promote(config: Config, force: bool = False) -> str:
    """Move `champion` to the challenger if it beats the champion on the challenger's test set."""
    from churnlens.modeling.evaluate import evaluate

    client = _client(config)
    name = config.model.name
    challenger, version = load_registered(config, CHALLENGER)
    current = _version(client, name, CHAMPION)
    if current is not None and current.version == version.version:
        return f"version {version.version} of '{name}' is already the champion"
    if current is None or force:
        client.set_registered_model_alias(name, CHAMPION, version.version)
        why = "forced" if current is not None else "there was no champion yet"
        return f"version {version.version} of '{name}' is now the champion ({why})"
    champion, _ = load_registered(config, CHAMPION)
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(
            run_id=version.run_id, artifact_path=TEST_SET, dst_path=tmp
        )
        test = pd.read_parquet(path)
    cutoff = f"{test['cutoff'].max():%Y-%m-%d}"
    try:
        champion_p = champion.predict_proba(test)
    except ChurnlensError as error:
        raise PromotionRefused(
            f"cannot compare: the champion (version {current.version}) does not fit the "
            f"challenger's test set ({error}); use --force to promote anyway"
        ) from None
    new = evaluate(test["churned"].to_numpy(int), challenger.predict_proba(test))
    old = evaluate(test["churned"].to_numpy(int), champion_p)
    summary = (
        f"on test cutoff {cutoff}: challenger v{version.version} ROC-AUC {new['roc_auc']:.4f}, "
        f"PR-AUC {new['pr_auc']:.4f}; champion v{current.version} ROC-AUC "
        f"{old['roc_auc']:.4f}, PR-AUC {old['pr_auc']:.4f}"
    )
    if (new["roc_auc"], new["pr_auc"]) <= (old["roc_auc"], old["pr_auc"]):
        raise PromotionRefused(f"not promoted: {summary}; use --force to promote anyway")
    client.set_registered_model_alias(name, CHAMPION, version.version)
    return f"promoted version {version.version} to champion: {summary}"


def export(config: Config, folder: Path) -> Path:
    """Copy the champion's pyfunc model to `folder` for scoring without a tracking store."""
    name = config.model.name
    _, found = load_registered(config, CHAMPION)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}@{CHAMPION}", dst_path=str(tmp)
        )
        (tmp / "champion.json").write_text(
            json.dumps(
                {
                    "name": name,
                    "version": found.version,
                    "run_id": found.run_id,
                    "tracking_uri": tracking_uri(config),
                },
                indent=1,
            )
        )
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _metric_prefix(model: str, scope: str) -> str:
    return scope if model == MODEL else f"{scope}_{model}"


def _interval_metrics(intervals: pd.DataFrame) -> dict[str, float]:
    """test_<metric>_low/_high and, against the best baseline, _diff, _diff_low, _diff_high."""
    out = {}
    for row in intervals.itertuples():
        prefix = f"{_metric_prefix(row.model, 'test')}_{row.metric}"
        for part in ("low", "high", "diff", "diff_low", "diff_high"):
            if pd.notna(getattr(row, part)):
                out[f"{prefix}_{part}"] = float(getattr(row, part))
    return out


def _log_metrics_by_cutoff(result: TrainingResult, training_set: pd.DataFrame) -> None:
    """Each scored cutoff's metrics as a series: step = the cutoff's index in the training set."""
    steps = {c: i for i, c in enumerate(sorted(training_set["cutoff"].unique()))}
    by_cutoff = result.metrics[result.metrics["cutoff"] != "overall"]
    for cutoff, rows in by_cutoff.groupby("cutoff"):
        values = {
            f"{_metric_prefix(row['model'], 'cutoff')}_{metric}": float(row[metric])
            for _, row in rows.iterrows()
            for metric in ("roc_auc", "pr_auc", "brier", "ece", "base_rate")
            if pd.notna(row[metric])
        }
        mlflow.log_metrics(values, step=steps[pd.Timestamp(cutoff)])
