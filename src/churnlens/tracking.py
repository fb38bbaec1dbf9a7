"""Everything that talks to MLflow: the store, runs, artifacts, registry and aliases.

The default store is a SQLite database in the working folder (`mlflow.db`, artifacts in
`mlartifacts/`): MLflow 3 keeps the file store in maintenance mode and refuses it by default,
while SQLite gives runs, the registry and aliases with no server. `MLFLOW_TRACKING_URI`, then
the config's `tracking.uri`, override it. This is the only module that imports mlflow.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types.schema import AnyType, ColSpec, Schema
from sqlalchemy.exc import SQLAlchemyError

import churnlens
from churnlens.config import Config
from churnlens.data.io import file_sha256, write_csv
from churnlens.errors import ChurnlensError
from churnlens.modeling.model import ChurnModel
from churnlens.modeling.train import MODEL, TrainingResult
from churnlens.reporting.card import model_card
from churnlens.reporting.report import render_card

CHALLENGER, CHAMPION = "challenger", "champion"
MODEL_ARTIFACT = "model"
TEST_SET = "evaluation/test_set.parquet"
CARD = "model_card.html"  # the report's model-card part, rendered at training
REQUIREMENTS = ("lightgbm", "pandas", "numpy", "scikit-learn", "pyarrow", "pydantic", "pyyaml")
# models-from-code: MLflow runs this file to build the pyfunc, so nothing is pickled
PYFUNC_SCRIPT = (
    "from churnlens.tracking import ChurnPyfunc\nmlflow.models.set_model(ChurnPyfunc())\n"
)
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
log = logging.getLogger(__name__)


class PromotionRefused(ChurnlensError):
    """The challenger is not better than the champion: nothing changed (exit code 1)."""

    exit_code = 1


STORE_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def tracking_uri(config: Config) -> str:
    """MLFLOW_TRACKING_URI, else the config's tracking.uri, else ./mlflow.db (SQLite)."""
    user = os.environ.get("MLFLOW_TRACKING_URI")
    return user or config.tracking.uri or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def _use_store(uri: str) -> None:
    """Point this process's MLflow at `uri`, leaving the environment as the user set it:
    mlflow.set_tracking_uri/set_registry_uri also write MLFLOW_TRACKING_URI/REGISTRY_URI for
    subprocesses, so a churnlens run started from here would take this store for the user's."""
    before = {name: os.environ.get(name) for name in STORE_VARIABLES}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _sqlite_file(config: Config) -> Path | None:
    """The database file of a SQLite store (None for any other store)."""
    uri = tracking_uri(config)
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def check_store(config: Config, write: bool = False) -> None:
    """A SQLite store's folder must exist: a typo in the URI must not create folders. With
    `write` (training, promoting), the store must be writable here, checked before the work."""
    uri, database = tracking_uri(config), _sqlite_file(config)
    if database is not None:
        if not database.parent.is_dir():
            raise ChurnlensError(
                f"tracking store {uri}: folder {database.parent} does not exist; create it or "
                "fix tracking.uri / MLFLOW_TRACKING_URI"
            )
        if write and not all(
            os.access(path, os.W_OK) for path in (database.parent, database) if path.exists()
        ):
            raise ChurnlensError(
                f"tracking store {uri}: read-only here, and this step writes to it; use a "
                "writable store (tracking.uri / MLFLOW_TRACKING_URI)"
            )


def _store_exists(config: Config) -> bool:
    """False only for a SQLite store whose database file is not there: opening it would create
    an empty store, which a step that only reads (scoring, export, the report's model card)
    must not do."""
    database = _sqlite_file(config)
    return database is None or database.is_file()


def _quiet() -> bool:
    """MLflow and alembic log INFO lines on every run: keep them for `--verbose` only.
    True when they are silenced."""
    verbose = logging.getLogger("churnlens").isEnabledFor(logging.DEBUG)
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
    return not verbose


@contextlib.contextmanager
def store_lock(config: Config) -> Iterator[None]:
    """Serialise writers of one SQLite store (a lock file beside it): two processes creating
    the store's tables at once collide ("table tags already exists"), and concurrent writes
    can hit "database is locked". Other stores handle their own concurrency. A store in a
    folder this process cannot write (a read-only mount, another user's) gets no lock: it can
    only be read here, which needs none, and a write fails with the store's own error."""
    database = _sqlite_file(config)
    if database is None or not os.access(database.parent, os.W_OK):
        yield
        return
    with open(f"{database}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _client(config: Config, create: bool = False) -> MlflowClient:
    """The open store; only training (`create`) may create a missing one."""
    check_store(config)
    uri = tracking_uri(config)
    if not create and not _store_exists(config):
        raise ChurnlensError(
            f"no tracking store at {uri}: train a model first (`churnlens train`, then "
            "`churnlens promote`), point tracking.uri or MLFLOW_TRACKING_URI at your store, or "
            "score an exported model with --model FOLDER"
        )
    _quiet()
    _use_store(uri)
    try:
        with store_lock(config):  # open (or create) both stores now, one process at a time
            client = MlflowClient(uri)
            client.search_experiments(max_results=1)
            client.search_registered_models(max_results=1)
    except (MlflowException, SQLAlchemyError) as error:
        raise ChurnlensError(
            f"tracking store {uri}: cannot be opened ({str(error).splitlines()[0]})"
        ) from None
    return client


def _experiment_id(client: MlflowClient, config: Config) -> str:
    experiment = client.get_experiment_by_name(config.tracking.experiment)
    if experiment is not None:
        return experiment.experiment_id
    database, location = _sqlite_file(config), None
    if database is not None:  # keep artifacts beside the database, not in cwd/mlruns
        location = (database.parent / "mlartifacts").as_uri()
    return client.create_experiment(config.tracking.experiment, artifact_location=location)


class ChurnPyfunc(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: loads the pickle-free model folder, returns churn probabilities."""

    def load_context(self, context) -> None:
        self.model = ChurnModel.load(Path(context.artifacts[MODEL_ARTIFACT]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return pd.DataFrame({"churn_probability": self.model.predict_proba(model_input)})


def _signature_frame(model: ChurnModel, frame: pd.DataFrame) -> pd.DataFrame:
    """Features as the package's own frames hold them, categoricals as strings (MLflow has no
    category type) and counts as integers."""
    sample = frame[model.feature_names_].head(5)
    return sample.astype({n: "str" for n, k in model.dtypes_.items() if k == "category"})


def _signature(model: ChurnModel, example: pd.DataFrame) -> ModelSignature:
    """The inferred signature with categorical features as MLflow's `AnyType`: MLflow has no
    category type and refuses a category column where a string is declared, so without this
    the package's own feature frame fails schema enforcement; the model checks their levels."""
    inferred = mlflow.models.infer_signature(
        example, pd.DataFrame({"churn_probability": [0.5] * len(example)})
    )
    columns = [
        ColSpec(AnyType(), spec.name) if model.dtypes_[spec.name] == "category" else spec
        for spec in inferred.inputs.inputs
    ]
    return ModelSignature(Schema(columns), inferred.outputs)


def _digest(frame: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy()).hexdigest()


@dataclass(frozen=True)
class RegisteredRun:
    run_id: str
    name: str
    version: str
    model_uri: str
    reused: bool = False  # an identical model was registered before: nothing new was logged


def fingerprint(digest: str, config: Config) -> str:
    """What makes two trainings the same model: the data (the training set's `_digest`) and
    the settings that shape it."""
    sections = ("churn", "cutoffs", "features", "playbook", "scoring")
    settings = {
        "training_set": digest,
        **{key: getattr(config, key).model_dump(mode="json") for key in sections},
        "model": config.model.model_dump(mode="json", exclude={"threads"}),
        "playbook_file": file_sha256(config.playbook.path),
        "churnlens": churnlens.__version__,
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def _identical(client: MlflowClient, name: str, print_: str) -> RegisteredRun | None:
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    for found in versions:
        if found.tags.get("fingerprint") == print_:
            return RegisteredRun(
                found.run_id, name, str(found.version), f"models:/{name}/{found.version}", True
            )
    return None


def log_training(
    result: TrainingResult,
    training_set: pd.DataFrame,
    config: Config,
    config_path: Path | None,
    figures: dict,
) -> RegisteredRun:
    """Log one training run and register its model as the new challenger.

    If a version trained on the same data with the same settings exists, nothing is logged
    and that version is returned (`reused`), so a rerun does not pile up identical versions.
    """
    client = _client(config, create=True)
    with store_lock(config):
        return _log_training(client, result, training_set, config, config_path, figures)


def _log_training(client, result, training_set, config, config_path, figures) -> RegisteredRun:
    name = config.model.name
    digest = _digest(training_set)  # hashing a large frame is costly: once per training
    print_ = fingerprint(digest, config)
    same = _identical(client, name, print_)
    if same is not None:
        log.info("identical to version %s of %s: nothing registered", same.version, name)
        return same
    with mlflow.start_run(experiment_id=_experiment_id(client, config)) as run:
        run_id = run.info.run_id
        params = {
            **{f"lgbm.{k}": v for k, v in config.model.params.items()},
            "num_boost_round": config.model.num_boost_round,
            "best_iteration": result.model.booster_.best_iteration,
            "lightgbm_weight": result.model.linear_.weight if result.model.linear_ else 1.0,
            "calibration": result.model.calibrator_.method_,
            **{f"contract.{k}": v for k, v in result.model.contract_.items()},
            "train_cutoffs": ",".join(f"{c:%Y-%m-%d}" for c in result.split.train),
            "valid_cutoffs": ",".join(f"{c:%Y-%m-%d}" for c in result.split.valid),
            "validation": result.split.validation,
            "test_cutoff": f"{result.split.test:%Y-%m-%d}",
            "n_features": len(result.model.feature_names_),
            "training_rows": len(training_set),
            "training_set_sha256": digest,
        }
        mlflow.log_params(params)
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
                digest=digest[:16],
            )
            mlflow.log_input(dataset, context="training")
        if config_path is not None:
            mlflow.log_artifact(str(config_path), "config")
        mlflow.log_dict(result.model.spec(), "model_spec.json")
        if result.model.blend_scores_:  # validation ROC-AUC per LightGBM weight (linear.py)
            scores = {f"{w:.1f}": v for w, v in result.model.blend_scores_.items()}
            mlflow.log_dict(scores, "blend_validation_roc_auc.json")
        for figure_name, figure in figures.items():
            mlflow.log_figure(figure, f"plots/{figure_name}.png")
        with tempfile.TemporaryDirectory() as tmp:
            write_csv(result.metrics, Path(tmp) / "metrics_by_cutoff.csv")
            mlflow.log_artifact(str(Path(tmp) / "metrics_by_cutoff.csv"), "evaluation")
            test_rows = result.split.part(training_set, "test")
            test_rows.to_parquet(Path(tmp) / "test_set.parquet", index=False)
            mlflow.log_artifact(str(Path(tmp) / "test_set.parquet"), "evaluation")
            folder = result.model.save(Path(tmp) / "model")
            hashes = result.model.file_hashes(folder)
            example = _signature_frame(result.model, test_rows)
            script = Path(tmp) / "churn_pyfunc.py"
            script.write_text("import mlflow\n" + PYFUNC_SCRIPT)
            with warnings.catch_warnings():  # MLflow's hint on integer columns: they are counts
                warnings.simplefilter("ignore", UserWarning)
                info = mlflow.pyfunc.log_model(
                    name=MODEL_ARTIFACT,
                    python_model=str(script),
                    artifacts={MODEL_ARTIFACT: str(folder)},
                    code_paths=[str(Path(churnlens.__file__).parent)],
                    signature=_signature(result.model, example),
                    input_example=example,
                    pip_requirements=[f"{p}=={version(p)}" for p in REQUIREMENTS],
                )
        with contextlib.redirect_stderr(io.StringIO()) if _quiet() else contextlib.nullcontext():
            registered = mlflow.register_model(info.model_uri, name)  # it prints, not logs
        client.set_registered_model_alias(name, CHALLENGER, registered.version)
        tags = {
            "test_cutoff": f"{result.split.test:%Y-%m-%d}",
            "fingerprint": print_,
            SHA256_TAG: json.dumps(hashes, sort_keys=True),
        }
        for key, value in tags.items():
            client.set_model_version_tag(name, registered.version, key, value)
        lineage = {"model_name": name, "model_version": registered.version, "run_id": run_id}
        card = model_card(lineage, params, result.metrics, test_rows, result.model)
        mlflow.log_text(render_card(*card, config.reporting.currency), CARD)
        return RegisteredRun(run_id, name, str(registered.version), info.model_uri)


def _version(client: MlflowClient, name: str, alias: str):
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def load_registered(config: Config, alias: str = CHAMPION, name: str | None = None, client=None):
    """(ChurnModel, model version) behind `models:/<name>@<alias>`; a clear error if absent.
    Pass the `client` of an open store to avoid opening it again."""
    client = client or _client(config)
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
    return _load_version(found), found


SHA256_TAG = "model_sha256"


def _load_version(found) -> ChurnModel:
    """The model files of a registered version, checked against the hashes recorded at
    training. No stored code runs: MLflow's pyfunc loader would execute the artifact store's
    churn_pyfunc.py, so scoring reads only the booster text and JSON (README, Trust)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = _download_model(found.name, found.version, Path(tmp))
        return ChurnModel.load(folder, sha256=_recorded_hashes(found))


def _recorded_hashes(found) -> dict[str, str]:
    """The model files' sha256 recorded at training; a version without them is refused."""
    try:
        hashes = json.loads(found.tags.get(SHA256_TAG, "{}"))
    except ValueError:
        hashes = None
    if not hashes or not isinstance(hashes, dict):
        raise ChurnlensError(
            f"model registry: version {found.version} of '{found.name}' has no recorded file "
            "hashes (trained before churnlens 0.2); retrain it"
        )
    return hashes


def _download_model(name: str, version, folder: Path) -> Path:
    """Download a registered model's folder; the model files sit in artifacts/model."""
    try:
        root = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{version}", dst_path=str(folder)
        )
    except (MlflowException, OSError) as error:
        raise ChurnlensError(
            f"model registry: cannot read version {version} of '{name}' "
            f"({str(error).splitlines()[0]})"
        ) from None
    return Path(root) / "artifacts" / MODEL_ARTIFACT


def load_model_uri(config: Config, uri: str) -> tuple[ChurnModel, dict]:
    """A model from `models:/<name>@<alias>` or `models:/<name>/<version>`, with its lineage."""
    reference = uri.removeprefix("models:/")
    alias = number = None
    if "@" in reference:
        name, alias = reference.split("@", 1)
    else:
        name, _, number = reference.rpartition("/")
    if not name or not (alias or number):
        raise ChurnlensError(
            f"--model {uri}: write models:/NAME@ALIAS or models:/NAME/VERSION, "
            f"e.g. models:/{name or reference or config.model.name}@champion"
        )
    if alias is None:
        client = _client(config)
        try:
            found = client.get_model_version(name, number)
        except MlflowException:
            raise ChurnlensError(f"model registry: no version {number} of model '{name}'") from None
        model = _load_version(found)
    else:
        model, found = load_registered(config, alias, name)
    return model, {"model_name": name, "model_version": str(found.version), "run_id": found.run_id}


def promote(config: Config, force: bool = False) -> str:
    """Move `champion` to the challenger if it beats the champion on the challenger's test set."""
    from churnlens.modeling.evaluate import evaluate

    check_store(config, write=True)
    client = _client(config)
    name = config.model.name
    challenger, version = load_registered(config, CHALLENGER, client=client)
    current = _version(client, name, CHAMPION)
    if current is not None and current.version == version.version:
        return f"version {version.version} of '{name}' is already the champion"
    if current is None or force:
        client.set_registered_model_alias(name, CHAMPION, version.version)
        why = "forced" if current is not None else "there was no champion yet"
        return f"version {version.version} of '{name}' is now the champion ({why})"
    champion, _ = load_registered(config, CHAMPION, client=client)
    with tempfile.TemporaryDirectory() as tmp:
        test = pd.read_parquet(_run_artifact(version.run_id, TEST_SET, tmp))
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
    """Copy the champion's model folder to `folder` for scoring without a tracking store;
    champion.json records its lineage and the files' sha256 from training. A folder already
    there is replaced only when it is empty or an earlier export: never the user's own files."""
    if folder.is_dir() and any(folder.iterdir()) and not (folder / "champion.json").is_file():
        raise ChurnlensError(
            f"--out {folder} is a folder that holds other files, not an exported model; give a "
            "new or empty folder, or an earlier export to replace"
        )
    name = config.model.name
    found = _version(_client(config), name, CHAMPION)
    if found is None:
        load_registered(config, CHAMPION)  # raises the usual "no champion" message
    hashes = _recorded_hashes(found)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        ChurnModel.load(_download_model(name, found.version, tmp), sha256=hashes)  # check it
        lineage = {
            "name": name,
            "version": found.version,
            "run_id": found.run_id,
            "tracking_uri": tracking_uri(config),
            "sha256": hashes,
        }
        (tmp / "champion.json").write_text(json.dumps(lineage, indent=1, sort_keys=True))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def training_record(config: Config, run_id: str) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """What a training run logged for its model card: (params, metrics by cutoff, test rows)."""
    client = _client(config)
    try:
        params = client.get_run(run_id).data.params
    except MlflowException:
        raise ChurnlensError(f"tracking store {tracking_uri(config)}: no run {run_id}") from None
    with tempfile.TemporaryDirectory() as tmp:
        metrics = _run_artifact(run_id, "evaluation/metrics_by_cutoff.csv", tmp)
        test = _run_artifact(run_id, TEST_SET, tmp)
        return dict(params), pd.read_csv(metrics), pd.read_parquet(test)


def _run_artifact(run_id: str, path: str, folder: str) -> str:
    """Download one artifact of a run; a missing or unreadable one is a clear error."""
    try:
        return mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=path, dst_path=folder
        )
    except (MlflowException, OSError) as error:
        raise ChurnlensError(
            f"run {run_id}: cannot read its artifact {path} ({str(error).splitlines()[0]})"
        ) from None


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
