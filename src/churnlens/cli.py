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


@command
def features(
    config: ConfigOption,
    out: Annotated[Path, typer.Option(help="Parquet file for the training set.")],
) -> None:
    """Build the point-in-time training set (features + churn label per customer and cutoff)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from churnlens.config import load_config
    from churnlens.data.contract import load_tables
    from churnlens.features.engine import write_features
    from churnlens.pipeline import training_spine

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        step = progress.add_task("reading and validating input tables", total=None)
        cfg = load_config(config)
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
    metrics = [
        "roc_auc",
        "pr_auc",
        "brier",
        "log_loss",
        "ece",
        "lift_top_decile",
        "capture_top_decile",
        "profit_top_k",
    ]
    table.add_column("model")
    for metric in metrics:
        table.add_column(metric, justify="right")
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


def _load(config: Path):
    from churnlens.config import load_config

    return load_config(config)


def _cell(value) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d")
    return str(value) or "-"
