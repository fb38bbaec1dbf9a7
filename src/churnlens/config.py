"""The run configuration: pydantic models of the YAML file, with every default in one place.

Unknown keys and bad values are errors that name the key, so a typo never silently falls
back to a default. Relative paths are resolved against the config file's folder, so a run
behaves the same from any working directory.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from churnlens.errors import ChurnlensError

REQUIRED_TABLES = ("purchases",)  # without customers, they are derived from first purchases


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TableConfig(_Strict):
    """Where one input table lives, how its columns are named in the user's data, and how a
    raw text export is written (see data/io.py)."""

    path: Path
    columns: dict[str, str] = Field(
        default_factory=dict, description="canonical column name -> the name in the file"
    )
    sep: str | None = Field(
        None,
        description="text separator, e.g. ';' or 'whitespace' (runs of blanks); default: ',' "
        "for .csv, tab for .tsv, detected for .txt",
    )
    missing: list[str] = Field(
        default_factory=list, description="the file's missing-value markers, e.g. ['?']"
    )
    header: bool = Field(True, description="false: no header row; columns are column0, ...")
    date_format: str | None = Field(
        None, description="strptime format of this table's dates, e.g. '%d/%m/%Y %H:%M'"
    )
    ignore: list[str] = Field(
        default_factory=list,
        description="columns of the file to leave out, e.g. a customer's e-mail or name",
    )


class DataConfig(_Strict):
    """Where the input files are. Only file-reading steps need it: the Python API takes
    DataFrames and uses only the column mappings and survey scales from here."""

    dir: Path = Path(".")
    customers: TableConfig | None = None
    purchases: TableConfig | None = None
    tickets: TableConfig | None = None
    surveys: TableConfig | None = None
    events: TableConfig | None = None
    csat_scale: int = Field(5, ge=2, le=10, description="CSAT answers range from 1 to this")
    ces_scale: int = Field(7, ge=2, le=10, description="CES answers range from 1 to this")
    earliest: dt.date = Field(dt.date(1990, 1, 1), description="dates before this are errors")
    latest: dt.date | None = Field(
        None, description="dates after this day are errors; default: the day of the run (UTC)"
    )

    @model_validator(mode="after")
    def _range(self) -> DataConfig:
        if self.latest is not None and self.latest < self.earliest:
            raise ValueError("'latest' is before 'earliest'")
        return self

    def latest_day(self) -> dt.date:
        """The last plausible day: `latest`, else today in UTC."""
        return self.latest or dt.datetime.now(dt.UTC).date()

    def table(self, name: str) -> TableConfig | None:
        return getattr(self, name)

    def path_of(self, name: str) -> Path:
        table = self.table(name)
        return table.path if table.path.is_absolute() else self.dir / table.path

    def require_files(self) -> None:
        """File-reading steps need at least the purchases file."""
        missing = [f"data.{name}" for name in REQUIRED_TABLES if self.table(name) is None]
        if missing:
            raise ChurnlensError(
                f"config: {' and '.join(missing)} must name a file (path: ...) for this step"
            )


class ChurnConfig(_Strict):
    """What counts as churn (see docs/concepts.md, Labels)."""

    type: Literal["non_contractual", "contractual"] = "non_contractual"
    horizon_days: int = Field(90, gt=0)
    active_window_days: int = Field(365, gt=0)


class CutoffConfig(_Strict):
    """Cutoffs: an explicit list, or a schedule every `step_days` back from the test cutoff.

    The test cutoff is `test` if given (pinned), else the last day whose label window ends by
    the data end (or by `end`). The schedule runs back from it to `start`, by default the data
    start plus `min_history_days`, so every cutoff has that much history behind it.
    `validation` chooses how the model is stopped and calibrated (see modeling/split.py):
    `out_of_time` on a later cutoff, `grouped` on held-out customers of the training cutoffs,
    `auto` the first when it leaves `min_train_cutoffs` training cutoffs, else the second.
    """

    dates: list[dt.date] = Field(default_factory=list)
    start: dt.date | None = None
    end: dt.date | None = None
    test: dt.date | None = Field(None, description="pin the test cutoff to this day")
    step_days: int = Field(30, gt=0)
    min_history_days: int = Field(90, ge=0, description="default start: data start + this")
    validation: Literal["auto", "out_of_time", "grouped"] = "auto"
    min_train_cutoffs: int = Field(3, gt=0, description="auto: fewer out of time -> grouped")
    holdout_share: float = Field(0.2, gt=0, lt=1, description="grouped: customers held out")

    @model_validator(mode="after")
    def _one_way(self) -> CutoffConfig:
        if self.dates and (self.start or self.end or self.test):
            raise ValueError("give either 'dates' or 'start'/'end'/'test', not both")
        if self.test and self.end:
            raise ValueError("give either 'test' (the test cutoff) or 'end', not both")
        last = self.test or self.end
        if self.start and last and last < self.start:
            raise ValueError("'end' or 'test' is before 'start'")
        return self


Role = Literal["driver", "sign", "context"]


class FeatureConfig(_Strict):
    """Windows, event kinds, and what the package cannot know about the user's own columns:
    which event kinds and customer attributes are churn drivers (causes the business can act
    on), signs or neither, and which playbook family each belongs to (default: its own name).
    """

    windows_days: list[int] = Field(default_factory=lambda: [30, 90, 180, 365])
    event_kinds: list[str] | None = Field(
        None, description="event kinds to count; default: every kind in the events table"
    )
    btyd: bool = Field(True, description="add BG/NBD features fitted at each cutoff")
    slow_reply_hours: float = Field(24.0, gt=0, description="a first reply later than this is slow")
    event_roles: dict[str, Role] = Field(
        default_factory=dict, description="e.g. {delivery_late: driver}; login, carts: signs"
    )
    event_families: dict[str, str] = Field(default_factory=dict, description="kind -> family")
    attribute_roles: dict[str, Role] = Field(
        default_factory=dict, description="e.g. {plan: driver}; default: context (neither)"
    )
    attribute_families: dict[str, str] = Field(
        default_factory=dict, description="e.g. {plan: pricing, region: market}"
    )
    attribute_sentences: dict[str, str] = Field(
        default_factory=dict, description="e.g. {plan: 'On the {plan} plan'}"
    )

    @field_validator("event_kinds")
    @classmethod
    def _kinds_as_in_data(cls, v: list[str] | None) -> list[str] | None:
        """Event kinds are compared lower-case and stripped, as the contract reads the data."""
        return None if v is None else list(dict.fromkeys(kind.strip().lower() for kind in v))

    @field_validator("event_roles", "event_families")
    @classmethod
    def _kind_keys_as_in_data(cls, v: dict) -> dict:
        keys = [kind.strip().lower() for kind in v]
        if len(set(keys)) < len(keys):
            raise ValueError("names one event kind twice (kinds are compared lower-case)")
        return dict(zip(keys, v.values(), strict=True))

    @field_validator("windows_days")
    @classmethod
    def _positive_sorted(cls, v: list[int]) -> list[int]:
        if not v or any(w <= 0 for w in v):
            raise ValueError("windows must be a non-empty list of positive day counts")
        return sorted(set(v))


class ModelConfig(_Strict):
    name: str = "churnlens"
    num_boost_round: int = Field(500, gt=0)
    early_stopping_rounds: int = Field(50, gt=0)
    calibration: Literal["auto", "isotonic", "sigmoid"] = "auto"
    seed: int = 0
    threads: int | None = Field(None, gt=0, description="LightGBM threads; default: all cores")
    blend: bool = Field(
        True,
        description="blend a standardised logistic regression into LightGBM's margin at the "
        "weight that ranks best on the latest validation cutoff (modeling/linear.py)",
    )
    params: dict[str, float | int | str | bool] = Field(
        default_factory=lambda: {
            # shallow trees: TreeSHAP cost grows with leaves x depth^2; on 1M simulated
            # customers this shape is 0.0009 AUC below an unconstrained model at a sixth of
            # its explanation cost (benchmarks/results/scoring.md)
            "learning_rate": 0.1,
            "num_leaves": 15,
            "max_depth": 4,
            "min_data_in_leaf": 50,
            "feature_fraction": 0.9,
            "bagging_fraction": 0.9,
            "bagging_freq": 1,
            "lambda_l2": 1.0,
        }
    )


class TrackingConfig(_Strict):
    uri: str | None = Field(None, description="MLflow tracking URI; MLFLOW_TRACKING_URI overrides")
    experiment: str = "churnlens"


class StatusConfig(_Strict):
    """Customer status at the as-of date from the customer's own rhythm of signs of life.

    Signs of life are completed purchases, tickets opened and the event kinds in `life_events`
    (customer behaviour; events the shop sends, such as a late delivery, are not). Their usual
    gap is 1 / (1 / the usual gap between purchases + the other signs per day over the longest
    feature window): see churnlens.scoring.status. lapsed: no sign of life for more than
    `lapsed_gap_multiple` × that gap (and more than `lapsed_floor_days`); at_risk: more than
    `at_risk_gap_multiple` × it; else active. A one-order customer has no purchase gap of their
    own: the population's median is used. Measured on the simulator (10,000 customers, seed 3,
    as of 2025-10-01, truth known; benchmarks/results/reasons.md): with 2 and 30 days, 93.5 %
    of the customers called lapsed had truly left and 91.2 % of those who had left were called
    lapsed (purchases only: 91.6 % and 84.2 %); with 3, 96.9 % and 88.9 %.
    """

    lapsed_gap_multiple: float = Field(2.0, gt=1)
    at_risk_gap_multiple: float = Field(1.5, gt=0)
    lapsed_floor_days: float = Field(30.0, ge=0)
    life_events: list[str] = Field(
        default_factory=lambda: ["login", "cart_abandoned", "newsletter_unsubscribe"],
        description="event kinds that show the customer is still there",
    )
    target_lapsed: bool = Field(
        False, description="let lapsed customers into the retention target list"
    )

    @model_validator(mode="after")
    def _ordered(self) -> StatusConfig:
        if self.at_risk_gap_multiple >= self.lapsed_gap_multiple:
            raise ValueError("at_risk_gap_multiple must be below lapsed_gap_multiple")
        return self


class ScoringConfig(_Strict):
    status: StatusConfig = StatusConfig()
    high_risk_threshold: float = Field(0.5, gt=0, lt=1, description="risk tier 'high' from here")
    medium_risk_threshold: float = Field(0.2, gt=0, lt=1, description="tier 'medium' from here")
    explain: Literal["targets", "high", "all"] = Field(
        "targets",
        description="reasons for the possible targets, also the whole high tier, or for all",
    )
    screen_margin: float = Field(
        0.1,
        ge=0,
        le=1,
        description=(
            "explain a customer exactly when their best action could pay with their estimated "
            "driver share plus this margin; 1: whenever it could pay at all"
        ),
    )
    budget_contacts: int | None = Field(None, gt=0)
    budget_money: float | None = Field(None, gt=0)
    drift_warn_psi: float = Field(0.1, gt=0)
    drift_stop_psi: float = Field(0.25, gt=0)
    # days since a slow reply grows with the age of a past support backlog: the population
    # shifts for weeks after one (PSI 0.35 on the simulator, 3 months after its backlog)
    drift_exempt: list[str] = Field(
        default_factory=lambda: [
            "tenure_days",
            "days_since_first_purchase",
            "days_since_slow_reply",
        ],
        description=(
            "features that grow with the calendar or with the age of a past burst of events: "
            "reported and warned, never a stop"
        ),
    )

    @model_validator(mode="after")
    def _ordered(self) -> ScoringConfig:
        if self.medium_risk_threshold >= self.high_risk_threshold:
            raise ValueError("medium_risk_threshold must be below high_risk_threshold")
        if self.drift_warn_psi >= self.drift_stop_psi:
            raise ValueError("drift_warn_psi must be below drift_stop_psi")
        return self


DEFAULT_PLAYBOOK = Path(__file__).parent / "scoring" / "playbook.yaml"


class PlaybookConfig(_Strict):
    """The retention playbook (actions, their costs and save rates) and customer value.

    Value is `margin_rate` × spend over the feature window closest to `value_window_days`
    (see churnlens.economics); costs and save rates come from the playbook file.
    """

    path: Path = Field(DEFAULT_PLAYBOOK, description="playbook YAML; default: the built-in one")
    value_window_days: int = Field(365, gt=0, description="customer value = margin over this")
    margin_rate: float = Field(0.3, gt=0, le=1)


class ReportingConfig(_Strict):
    """How the report and the readable list present numbers to the retention team."""

    currency: str = Field("EUR", min_length=1, max_length=8, description="shown with money")
    top_targets: int = Field(25, gt=0, description="target-list rows shown in the report")


class SparkConfig(_Strict):
    """Where Spark runs and reads (used with `engine: spark`, see churnlens.spark)."""

    master: str | None = Field(
        None, description="e.g. local[2]; default: spark-submit's or the running session's"
    )
    tables: dict[Literal["customers", "purchases", "tickets", "surveys", "events"], str] = Field(
        default_factory=dict, description="table -> Spark table name, read instead of its path"
    )
    conf: dict[str, str] = Field(default_factory=dict, description="extra Spark settings")
    drift_sample_rows: int = Field(
        200_000, gt=0, description="rows the drift check reads (all rows below this)"
    )


class Config(_Strict):
    engine: Literal["duckdb", "spark"] = Field(
        "duckdb", description="where features, labels and scoring run"
    )
    spark: SparkConfig = SparkConfig()
    data: DataConfig = DataConfig()
    churn: ChurnConfig = ChurnConfig()
    cutoffs: CutoffConfig = CutoffConfig()
    features: FeatureConfig = FeatureConfig()
    model: ModelConfig = ModelConfig()
    tracking: TrackingConfig = TrackingConfig()
    scoring: ScoringConfig = ScoringConfig()
    playbook: PlaybookConfig = PlaybookConfig()
    reporting: ReportingConfig = ReportingConfig()


def _format_validation_error(path: Path, error: ValidationError) -> str:
    lines = [f"config {path}: {error.error_count()} problem(s)"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        lines.append(f"  {key}: {message}")
    return "\n".join(lines)


SQLITE = "sqlite:///"


def _resolve(raw: dict, base: Path) -> dict:
    """Make data.dir, playbook.path and a SQLite tracking store relative to the config's folder."""
    data = raw.get("data")
    if isinstance(data, dict):
        data["dir"] = str(base / data.get("dir", "."))
    playbook = raw.get("playbook")
    if isinstance(playbook, dict) and "path" in playbook:
        playbook["path"] = str(base / playbook["path"])
    tracking = raw.get("tracking")
    uri = tracking.get("uri") if isinstance(tracking, dict) else None
    if isinstance(uri, str) and uri.startswith(SQLITE) and not uri.startswith(SQLITE + "/"):
        tracking["uri"] = SQLITE + str(base / uri.removeprefix(SQLITE))
    return raw


def parse_date(text: str | dt.date, what: str) -> dt.date:
    """A calendar date written as YYYY-MM-DD; anything else (01/02/2025, 'yesterday') is refused
    rather than guessed, since a day-month swap would silently score the wrong date."""
    if isinstance(text, dt.date):
        return text
    try:
        if len(str(text)) == 10:
            return dt.date.fromisoformat(str(text))
    except ValueError:
        pass
    raise ChurnlensError(f"{what} {text!r}: not a date; write it as YYYY-MM-DD, e.g. 2025-12-31")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader without its own dates: a day that does not exist (2025-13-01)
    then reaches the config's validation, which names its key, instead of failing inside the
    parser with a bare ValueError; the config's date fields parse YYYY-MM-DD themselves."""

    yaml_implicit_resolvers = {
        first: [(tag, rule) for tag, rule in rules if tag != "tag:yaml.org,2002:timestamp"]
        for first, rules in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


def read_yaml(path: Path, what: str):
    """A YAML file's content, with dates left as text for the reader's own validation (see
    `_Loader`); the config and the playbook both read this way. A file that is not YAML (or
    not UTF-8) is a ChurnlensError naming `what` and the path."""
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ChurnlensError(f"{what} {path}: not valid YAML ({error})") from None


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML run config; every problem names its key."""
    path = Path(path)
    if not path.is_file():
        raise ChurnlensError(f"config {path}: file not found")
    raw = read_yaml(path, "config")
    if not isinstance(raw, dict):
        raise ChurnlensError(f"config {path}: expected a mapping of sections at the top level")
    try:
        return Config.model_validate(_resolve(raw, path.resolve().parent))
    except ValidationError as exc:
        raise ChurnlensError(_format_validation_error(path, exc)) from None
