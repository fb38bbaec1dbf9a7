"""The `churnlens` command line: each command parses its options, calls one function of
`churnlens.pipeline` and prints what it returns.

Exit codes: 0 ok; 1 promote refused; 2 bad input or configuration; 3 scoring stopped on drift;
4 internal error (a bug: one line on stderr, the traceback in a file). Heavy libraries are
imported inside the commands so that `churnlens --help` stays fast.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import tempfile
import traceback
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from churnlens import __version__
from churnlens.errors import ChurnlensError

INTERNAL_ERROR = 4

app = typer.Typer(
    help="Predict customer churn, explain it, and turn it into a budgeted retention list.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="YAML run configuration.")]
EngineOption = Annotated[
    str | None, typer.Option(help="duckdb or spark; default: the config's engine (duckdb).")
]


def _version(value: bool) -> None:
    if value:
        console.print(f"churnlens {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Errors only.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Predict customer churn, explain it, and turn it into a budgeted retention list."""
    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING
    logger = logging.getLogger("churnlens")
    logger.handlers[:] = [RichHandler(console=err_console, show_time=False, show_path=False)]
    logger.setLevel(level)
    logger.propagate = False


def _internal_error(error: BaseException) -> None:
    """A bug, not a user error: one line on stderr, the traceback in a file for the report."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    with tempfile.NamedTemporaryFile(
        "w", prefix=f"churnlens-crash-{stamp}-", suffix=".txt", delete=False
    ) as handle:
        handle.write("".join(traceback.format_exception(error)))
    first = (str(error).splitlines() or [""])[0]
    err_console.print(
        f"[bold red]internal error:[/] {type(error).__name__}: {escape(first)} "
        f"(traceback: {handle.name})",
        highlight=False,
        soft_wrap=True,
    )


def command(fn):
    """Register `fn` as a subcommand; errors become a message and their exit code."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ChurnlensError as error:
            err_console.print(
                f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(error.exit_code) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as error:  # noqa: BLE001 - anything else is a bug: exit 4, not 1
            _internal_error(error)
            raise typer.Exit(INTERNAL_ERROR) from None

    return app.command()(run)


@command
def simulate(
    out: Annotated[Path, typer.Option(help="Folder for the five tables and ground_truth.")],
    customers: Annotated[int, typer.Option(min=1, help="Number of customers.")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same shop.")] = 1,
    start: Annotated[str, typer.Option(help="First day of the simulated period.")] = "2024-01-01",
    end: Annotated[str, typer.Option(help="Last day of the simulated period.")] = "2025-12-31",
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
) -> None:
    """Simulate a shop with known churn drivers and write its tables."""
    from churnlens.pipeline import simulate as simulate_shop

    with console.status(f"simulating {customers:,} customers"):
        written = simulate_shop(out, customers, seed, start, end, fmt)
    for name, (rows, path) in written.items():
        console.print(f"{name:>13}: {rows:>11,} rows -> {path}")


@command
def validate(config: ConfigOption, engine: EngineOption = None) -> None:
    """Check the input tables against the data contract and summarise them."""
    from churnlens.pipeline import validate as validate_tables

    summary = validate_tables(config, engine)
    console.print("input tables: valid")
    console.print(_text_table(summary), highlight=False, soft_wrap=True)
    for warning in summary.attrs.get("warnings", []):
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)


@command
def features(
    config: ConfigOption,
    out: Annotated[Path, typer.Option(help="Parquet file (Spark: folder) for the training set.")],
    engine: EngineOption = None,
) -> None:
    """Build the point-in-time training set (features + churn label per customer and cutoff)."""
    from churnlens.pipeline import features as write_training_set

    with console.status("reading, validating, labelling and computing features"):
        written = write_training_set(config, out, engine)
    console.print(
        f"wrote {written.rows:,} rows -> {written.path}; churn rate {written.churn_rate:.1%} "
        f"over {written.cutoffs} cutoffs"
    )


METRIC_LABELS = {
    "roc_auc": "ROC-AUC",
    "pr_auc": "PR-AUC",
    "brier": "Brier",
    "log_loss": "log loss",
    "ece": "ECE",
    "lift_top_decile": "lift@10%",
    "capture_top_decile": "capture@10%",
    "profit_top_k": "profit",
}


@command
def train(config: ConfigOption) -> None:
    """Train the calibrated LightGBM model and baselines, log the run to MLflow, register it."""
    from churnlens.pipeline import train as train_model

    with console.status("building the training set, training and logging to MLflow"):
        result, registered = train_model(config)
    test = result.test_metrics()
    console.print(
        f"out-of-time test cutoff {result.split.test:%Y-%m-%d} "
        f"({int(test['n'].iloc[0]):,} customers, {test['base_rate'].iloc[0]:.1%} churned)"
    )
    shown = test[list(METRIC_LABELS)].rename(columns=METRIC_LABELS)
    shown = shown.apply(
        lambda c: c.map("{:,.0f}".format if c.name == "profit" else "{:.3f}".format)
    )
    console.print(_text_table(shown.reset_index()), highlight=False, soft_wrap=True)
    console.print(f"split: {result.split.reason}", highlight=False)
    linear = result.model.linear_
    if linear is not None:
        console.print(
            f"model (row lightgbm): margin {linear.weight:.1f} x LightGBM + "
            f"{1 - linear.weight:.1f} x logistic regression (chosen on the latest validation "
            "cutoff)",
            highlight=False,
        )
    console.print(_interval_table(result.intervals), highlight=False, soft_wrap=True)
    for name, why in result.failed.items():
        console.print(f"baseline {name} failed, not compared: {escape(why)}", highlight=False)
    if registered.reused:
        console.print(
            f"same data and settings as {registered.name} version {registered.version} "
            f"(run {registered.run_id}): nothing new registered"
        )
    else:
        console.print(f"run {registered.run_id}")
        console.print(f"registered {registered.name} version {registered.version} as challenger")


@command
def promote(
    config: ConfigOption,
    force: Annotated[
        bool, typer.Option(help="Promote even if it does not beat the champion.")
    ] = False,
) -> None:
    """Make the challenger the champion if it beats it on the same test cutoff."""
    from churnlens.pipeline import promote as promote_challenger

    console.print(promote_challenger(config, force=force))


@command
def export(
    config: ConfigOption,
    out: Annotated[Path | None, typer.Option(help="Folder; default models/<name>.")] = None,
) -> None:
    """Copy the champion model to a folder, for scoring without a tracking store."""
    from churnlens.pipeline import export as export_champion

    folder = export_champion(config, out)
    console.print(f"exported the champion to {folder}")


@command
def score(
    config: ConfigOption,
    as_of: Annotated[str, typer.Option("--as-of", help="Score date, YYYY-MM-DD.")],
    out: Annotated[Path, typer.Option(help="Folder for risk_list.parquet/.csv, drift, manifest.")],
    model: Annotated[
        str | None,
        typer.Option(
            help="models:/NAME@ALIAS, models:/NAME/VERSION or an exported folder; "
            "default: the champion."
        ),
    ] = None,
    budget: Annotated[int | None, typer.Option(help="Most customers to contact (> 0).")] = None,
    budget_money: Annotated[
        float | None, typer.Option(help="Most money to spend on contacts (> 0).")
    ] = None,
    explain: Annotated[
        str | None,
        typer.Option(
            help="Who gets reasons: 'targets' (default: possible targets), 'high' (also the "
            "whole high tier) or 'all'."
        ),
    ] = None,
    top: Annotated[int, typer.Option(min=0, help="Rows of the target list to print.")] = 10,
    engine: EngineOption = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Also write the HTML report here.")
    ] = None,
) -> None:
    """Score customers at a date: risk, reasons, actions and a budgeted target list."""
    from churnlens.pipeline import score as score_customers

    with console.status(f"scoring customers at {as_of}"):
        result = score_customers(
            config, as_of, out, model, budget, budget_money, explain, engine, report
        )
    summary = result.summary
    targets = result.risk_list[result.risk_list["target"]].head(top)
    if not summary["targets"]:
        console.print(f"no customer is worth contacting at {summary['as_of']} within the budget")
    elif len(targets):
        console.print(f"top {len(targets)} customers to contact at {summary['as_of']}")
        _print_targets(targets)
    covered = summary["value_at_risk_covered"] / max(summary["value_at_risk_total"], 1e-9)
    console.print(
        f"{summary['targets']:,} of {summary['customers']:,} customers targeted "
        f"(contact cost {summary['contact_cost']:,.0f}, expected net gain "
        f"{summary['expected_net_gain']:,.0f}); they hold {covered:.0%} of the value at risk. "
        f"Model {summary['model_name']} v{summary['model_version']}."
    )
    lapsed = summary["status"]["lapsed"]
    lapsed_targets = int(
        result.risk_list.loc[result.risk_list["target"], "status"].eq("lapsed").sum()
    )
    console.print(
        f"status: {summary['status']['active']:,} active, {summary['status']['at_risk']:,} at "
        f"risk, {lapsed:,} lapsed (win-back action; {lapsed_targets} among the targets)"
    )
    if (out / "risk_list").is_dir():  # the Spark engine's partitioned risk list
        console.print(f"risk list: {out / 'risk_list'} (Parquet, by as_of_date)")
    else:
        console.print(f"risk list: {out / 'risk_list.parquet'} and {out / 'risk_list.csv'}")
    if report is not None:
        console.print(f"report: {report}")


def _print_targets(targets) -> None:
    """The target list's top rows as a plain table: rank, customer, risk, value, reasons."""
    shown = targets.assign(
        why=targets[["reason_1", "reason_2", "reason_3"]].apply(
            lambda row: "; ".join(r for r in row if isinstance(r, str)), axis=1
        ),
        churn=targets["churn_probability"].map("{:.0%}".format),
        value=targets["value"].map("{:,.0f}".format),
        gain=targets["expected_net_gain"].map("{:,.0f}".format),
        action=targets["recommended_action"],
    )[["rank", "customer_id", "status", "churn", "value", "gain", "why", "sign", "action"]]
    console.print(_text_table(shown), highlight=False, soft_wrap=True)


@command
def verify(
    folder: Annotated[Path, typer.Argument(help="A folder written by `churnlens score --out`.")],
) -> None:
    """Check that a scoring run's files are complete and match its manifest's sha256."""
    from churnlens.pipeline import verify as verify_set

    console.print(f"{folder}: {verify_set(folder)} files match manifest.json")


def _interval_table(intervals) -> str:
    """Test metrics with 95 % paired bootstrap intervals and differences to the best baseline."""
    import pandas as pd

    reference = intervals["reference"].iloc[0]

    def span(row, value: str, low: str, high: str, sign: str = "") -> str:
        if pd.isna(row[value]):
            return "-"
        return f"{row[value]:{sign}.4f} [{row[low]:{sign}.4f}, {row[high]:{sign}.4f}]"

    rows = []
    for model, part in intervals.set_index("metric").groupby("model", sort=False):
        row = {"model": model}
        for metric, label in (("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC"), ("brier", "Brier")):
            values = part.loc[metric]
            row[f"{label} [95 %]"] = span(values, "value", "low", "high")
            row[f"{label} vs {reference}"] = span(values, "diff", "diff_low", "diff_high", "+")
        rows.append(row)
    title = "95 % paired bootstrap intervals on the test customers\n"
    return title + _text_table(pd.DataFrame(rows))


def _text_table(frame) -> str:
    """A plain fixed-width table: never cut to the terminal's width, readable in logs."""
    text = frame.astype("object").where(frame.notna(), "-")
    text = text.map(lambda v: v.strftime("%Y-%m-%d") if hasattr(v, "strftime") else str(v))
    return escape(text.to_string(index=False))


@command
def kpis(
    config: ConfigOption,
    period: Annotated[str, typer.Option(help="'month' or 'quarter'.")] = "month",
    out: Annotated[Path | None, typer.Option(help="CSV file for the KPI table.")] = None,
) -> None:
    """Retention KPIs per whole month or quarter: customers, retention, churn, value, service."""
    from churnlens.data.io import write_csv
    from churnlens.pipeline import check_output
    from churnlens.pipeline import kpis as period_kpis

    if out is not None:
        check_output(out, "--out")
    table = period_kpis(config, period)
    if out is not None:
        console.print(f"{len(table)} periods -> {write_csv(table, out)}")
        return
    shown = table[["period", "customers_start", "customers_end", "new", "lost"]].assign(
        **{
            column: table[column].map("{:.1f}".format, na_action="ignore")
            for column in ("retention_rate", "churn_rate", "nps", "csat")
        },
        average_order_value=table["average_order_value"].map("{:,.2f}".format, na_action="ignore"),
    )
    console.print(_text_table(shown), highlight=False, soft_wrap=True)


@command
def report(
    config: ConfigOption,
    scores: Annotated[Path, typer.Option(help="Folder `churnlens score --out` wrote.")],
    out: Annotated[Path, typer.Option(help="HTML file for the report.")],
    period: Annotated[str, typer.Option(help="KPI period: 'month' or 'quarter'.")] = "month",
    readable: Annotated[
        Path | None, typer.Option("--list", help="Also write the team's CSV contact list here.")
    ] = None,
) -> None:
    """Write the self-contained HTML report (and optionally the readable contact list)."""
    from churnlens.pipeline import report as write_report

    with console.status("computing KPIs and writing the report"):
        path = write_report(config, scores, out, period, readable)
    console.print(f"report: {path}" + (f"; contact list: {readable}" if readable else ""))
