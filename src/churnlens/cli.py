"""The `churnlens` command line: thin wrappers that parse options and call the package.

Heavy libraries are imported inside the commands so that `churnlens --help` stays fast.
A `ChurnlensError` becomes a short message on stderr and its exit code, never a traceback.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from churnlens.errors import ChurnlensError

app = typer.Typer(
    help="Predict customer churn, explain it, and turn it into a budgeted retention list.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="YAML run configuration.")]


def command(fn):
    """Register `fn` as a subcommand that reports user errors as a message and exit code."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ChurnlensError as error:
            err_console.print(
                f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(error.exit_code) from None

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
    from churnlens.data.io import write_csv, write_parquet
    from churnlens.data.simulate import simulate as simulate_shop

    if fmt not in ("parquet", "csv"):
        raise ChurnlensError(f"--format must be parquet or csv, not {fmt!r}")
    write = write_parquet if fmt == "parquet" else write_csv
    with console.status(f"simulating {customers:,} customers"):
        tables = simulate_shop(customers, seed=seed, start=start, end=end)
    for name, frame in tables.items():
        path = write(frame, out / f"{name}.{fmt}")
        console.print(f"{name:>13}: {len(frame):>11,} rows -> {path}")


@command
def validate(config: ConfigOption) -> None:
    """Check the input tables against the data contract and summarise them."""
    from rich.table import Table

    from churnlens.pipeline import validate as validate_tables

    summary = validate_tables(config)
    table = Table(title="input tables: valid")
    for column in summary.columns:
        table.add_column(column, justify="right" if column in ("rows", "customers") else "left")
    for row in summary.itertuples(index=False):
        table.add_row(*(_cell(value) for value in row))
    console.print(table)
    for warning in summary.attrs.get("warnings", []):
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)


@command
def features(
    config: ConfigOption,
    out: Annotated[Path, typer.Option(help="Parquet file for the training set.")],
) -> None:
    """Build the point-in-time training set (features + churn label per customer and cutoff)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from churnlens.data.contract import load_tables
    from churnlens.features.engine import write_features
    from churnlens.pipeline import training_spine

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        step = progress.add_task("reading and validating input tables", total=None)
        cfg = _load(config)
        tables = load_tables(cfg.data)
        progress.update(step, total=1, completed=1)
        step = progress.add_task("labelling cutoffs", total=None)
        spine = training_spine(cfg, tables)
        cutoffs = spine["cutoff"].nunique()
        progress.update(
            step,
            total=1,
            completed=1,
            description=f"labelled {len(spine):,} rows at {cutoffs} cutoffs",
        )
        step = progress.add_task("computing features in DuckDB", total=None)
        rows = write_features(tables, spine, cfg.features, out, cfg.data)
        progress.update(step, total=1, completed=1, description=f"wrote {rows:,} rows -> {out}")
    console.print(f"churn rate {spine['churned'].mean():.1%} over {cutoffs} cutoffs")


@command
def train(config: ConfigOption) -> None:
    """Train the calibrated LightGBM model and baselines, log the run to MLflow, register it."""
    from rich.table import Table

    from churnlens.pipeline import train as train_model
    from churnlens.tracking import tracking_uri

    with console.status("building the training set, training and logging to MLflow"):
        result, registered = train_model(config)
    test = result.test_metrics()
    table = Table(
        title=f"out-of-time test cutoff {result.split.test:%Y-%m-%d} "
        f"({int(test['n'].iloc[0]):,} customers, "
        f"{test['base_rate'].iloc[0]:.1%} churned)"
    )
    labels = {
        "roc_auc": "ROC-AUC",
        "pr_auc": "PR-AUC",
        "brier": "Brier",
        "log_loss": "log loss",
        "ece": "ECE",
        "lift_top_decile": "lift@10%",
        "capture_top_decile": "capture@10%",
        "profit_top_k": "profit",
    }
    metrics = list(labels)
    table.add_column("model")
    for metric in metrics:
        table.add_column(labels[metric], justify="right")
    for model, row in test.iterrows():
        table.add_row(
            model, *(f"{row[m]:,.0f}" if m == "profit_top_k" else f"{row[m]:.3f}" for m in metrics)
        )
    console.print(table)
    console.print(f"run {registered.run_id} in {tracking_uri(_load(config))}")
    console.print(f"registered {registered.name} version {registered.version} as challenger")


@command
def promote(
    config: ConfigOption,
    force: Annotated[
        bool, typer.Option(help="Promote even if it does not beat the champion.")
    ] = False,
) -> None:
    """Make the challenger the champion if it beats it on the same test cutoff."""
    from churnlens.tracking import promote as promote_challenger

    console.print(promote_challenger(_load(config), force=force))


@command
def export(
    config: ConfigOption,
    out: Annotated[Path | None, typer.Option(help="Folder; default models/<name>.")] = None,
) -> None:
    """Copy the champion model to a folder, for scoring without a tracking store."""
    from churnlens.tracking import export as export_champion

    cfg = _load(config)
    folder = export_champion(cfg, out or Path("models") / cfg.model.name)
    console.print(f"exported the champion of {cfg.model.name} to {folder}")


@command
def score(
    config: ConfigOption,
    as_of: Annotated[str, typer.Option("--as-of", help="Score date (YYYY-MM-DD).")],
    out: Annotated[Path, typer.Option(help="Folder for risk_list.parquet/.csv, drift, manifest.")],
    model: Annotated[
        str | None,
        typer.Option(
            help="models:/NAME@ALIAS, models:/NAME/VERSION or an exported folder; "
            "default: the champion."
        ),
    ] = None,
    budget: Annotated[int | None, typer.Option(min=1, help="Most customers to contact.")] = None,
    budget_money: Annotated[
        float | None, typer.Option(min=0, help="Most money to spend on contacts.")
    ] = None,
    explain: Annotated[
        str | None, typer.Option(help="'targets' (default: targets and high tier) or 'all'.")
    ] = None,
    top: Annotated[int, typer.Option(help="Rows of the target list to print.")] = 10,
) -> None:
    """Score customers at a date: risk, reasons, actions and a budgeted target list."""
    from rich.table import Table

    from churnlens.scoring.score import score as score_customers
    from churnlens.scoring.score import write_outputs

    if explain not in (None, "targets", "all"):
        raise ChurnlensError(f"--explain must be 'targets' or 'all', not {explain!r}")
    cfg = _load(config)
    with console.status(f"scoring customers at {as_of}"):
        result = score_customers(cfg, as_of, model, budget, budget_money, explain)
        write_outputs(result, out)
    summary = result.summary
    for feature in summary["drift_warnings"]:
        err_console.print(
            f"[yellow]warning:[/] feature {feature} drifted (PSI above "
            f"{cfg.scoring.drift_warn_psi}); see {out / 'drift.csv'}"
        )
    table = Table(title=f"top {top} customers to contact at {summary['as_of']}")
    for column in ("rank", "customer", "churn p", "value", "net gain", "why", "action"):
        table.add_column(
            column,
            justify="right" if column in ("rank", "churn p", "value", "net gain") else "left",
        )
    for row in result.risk_list[result.risk_list["target"]].head(top).itertuples():
        why = "; ".join(r for r in (row.reason_1, row.reason_2, row.reason_3) if isinstance(r, str))
        table.add_row(
            str(row.rank),
            row.customer_id,
            f"{row.churn_probability:.0%}",
            f"{row.value:,.0f}",
            f"{row.expected_net_gain:,.0f}",
            why,
            str(row.recommended_action),
        )
    console.print(table)
    console.print(
        f"{summary['targets']:,} of {summary['customers']:,} customers targeted "
        f"(contact cost {summary['contact_cost']:,.0f}, expected net gain "
        f"{summary['expected_net_gain']:,.0f}); they hold "
        f"{summary['value_at_risk_covered'] / max(summary['value_at_risk_total'], 1e-9):.0%} of "
        f"the value at risk. Model {summary['model_name']} v{summary['model_version']}."
    )
    console.print(f"risk list: {out / 'risk_list.parquet'} and {out / 'risk_list.csv'}")


def _load(config: Path):
    from churnlens.config import load_config

    return load_config(config)


def _cell(value) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d")
    return str(value) or "-"
