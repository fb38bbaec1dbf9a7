"""The HTML report: one self-contained file a retention team opens offline and prints.

Charts are matplotlib SVG inlined in the page, styles are inline, nothing is fetched: the file
opens from disk with no network. Every text is HTML-escaped by the template engine (jinja2
with autoescape); only the SVG charts, which matplotlib writes itself, are inserted as markup.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import jinja2
import pandas as pd
from markupsafe import Markup
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from churnlens.data.io import write_atomic
from churnlens.reporting.readable import check_risk_list, money, percent, sentence

# (column of period_kpis, label, format, is a rise good?)
TILES = (
    ("customers_end", "Customers", "count", True),
    ("new", "New customers", "count", True),
    ("lost", "Lost customers", "count", False),
    ("retention_rate", "Retention rate", "pct", True),
    ("churn_rate", "Churn rate", "pct", False),
    ("repeat_purchase_rate", "Repeat purchase rate", "pct", True),
    ("average_order_value", "Average order value", "money", True),
    ("clv", "Customer lifetime value", "money", True),
    ("nps", "NPS", "number", True),
    ("csat", "CSAT (satisfied)", "pct", True),
    ("ces", "Customer effort (CES)", "number", False),
    ("first_response_hours", "First response", "hours", False),
    ("resolution_hours", "Resolution time", "hours", False),
    ("backlog", "Open tickets (backlog)", "count", False),
    ("tickets_per_1000_orders", "Tickets per 1,000 orders", "number", False),
    ("returns_per_1000_orders", "Returns per 1,000 orders", "number", False),
)
SEGMENT_FORMATS = {"customers": "count", "revenue": "money", "mean_churn_probability": "fraction"}
METRIC_FORMATS = {"n": "count", "profit_top_k": "money"}
COHORTS_SHOWN = 12
FEATURES_SHOWN = 15
DRIFT_SHOWN = 10
EXITS_SHOWN = 25


@dataclass
class ReportInput:
    """Everything the report shows; `pipeline.report` builds it from `score` and `train` outputs.

    risk_list: the machine risk list (`churnlens score`); a `status` and a `sign` column are
    shown when present. kpis: `period_kpis`; cohorts: `cohort_retention`; segments and pareto:
    the summaries of `rfm_segments` and `pareto_view`. model_card: facts shown as text (name,
    version, data window, horizon, ...). metrics: test metrics, one row per model (the model
    and its baselines). calibration: predicted vs observed churn rate per bin. drift: the PSI
    table. importance: mean |SHAP| per feature. exits: exit survey answers (`Tables.exits`).
    """

    risk_list: pd.DataFrame
    kpis: pd.DataFrame
    currency: str = "EUR"
    cohorts: pd.DataFrame | None = None
    segments: pd.DataFrame | None = None
    pareto: pd.DataFrame | None = None
    model_card: dict = field(default_factory=dict)
    metrics: pd.DataFrame | None = None
    calibration: pd.DataFrame | None = None
    drift: pd.DataFrame | None = None
    importance: pd.Series | None = None
    exits: pd.DataFrame | None = None
    top_targets: int = 25
    title: str = "Customer retention report"


# ------------------------------------------------------------------------------------------------
def _format(value, kind: str, currency: str) -> str:
    if value is None or pd.isna(value):
        return "–"
    return {
        "count": lambda v: f"{v:,.0f}",
        "pct": lambda v: f"{v:.1f} %",
        "money": lambda v: money(v, currency),
        "number": lambda v: f"{v:,.1f}",
        "hours": lambda v: f"{v:,.1f} h",
        "fraction": percent,
        "metric": lambda v: f"{v:,.3f}",
    }[kind](value)


def _tiles(kpis: pd.DataFrame, currency: str) -> tuple[str, list[dict]]:
    """The latest whole period's KPIs with the change against the period before."""
    if kpis.empty:
        return "", []
    now = kpis.iloc[-1]
    before = kpis.iloc[-2] if len(kpis) > 1 else None
    tiles = []
    for column, label, kind, rise_is_good in TILES:
        if column not in kpis or pd.isna(now[column]):
            continue
        tile = {"label": label, "value": _format(now[column], kind, currency), "change": ""}
        if before is not None and pd.notna(before[column]):
            delta = float(now[column] - before[column])
            unit = " pp" if kind == "pct" else ""
            shown = _format(abs(delta), "number" if kind == "pct" else kind, currency) + unit
            if not any(digit in shown for digit in "123456789"):
                delta = 0.0  # a change that rounds to nothing is shown as none
            tile["change"] = ("▲ " if delta > 0 else "▼ " if delta < 0 else "= ") + shown
            tile["tone"] = (
                "flat" if delta == 0 else "good" if (delta > 0) == rise_is_good else "bad"
            )
        tiles.append(tile)
    return str(now["period"]), tiles


def _svg(figure: Figure) -> Markup:
    """The figure as inline SVG text (no fonts, images or links fetched)."""
    buffer = io.StringIO()
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "churnlens"}):
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    svg = text[text.index("<svg") :]
    start, end = svg.find("<metadata>"), svg.find("</metadata>")
    if start >= 0:
        svg = svg[:start] + svg[end + len("</metadata>") :]
    return Markup(svg)


def cohort_chart(cohorts: pd.DataFrame) -> Markup:
    """Retention curves of the latest cohorts: % of the cohort buying k months after joining."""
    figure = Figure(figsize=(7.5, 3.6))
    axis = figure.subplots()
    shown = cohorts.tail(COHORTS_SHOWN)
    colours = [(0.1, 0.3 + 0.5 * i / max(len(shown) - 1, 1), 0.6) for i in range(len(shown))]
    for (cohort, row), colour in zip(shown.iterrows(), colours, strict=True):
        row = row.dropna()
        axis.plot(row.index, row.to_numpy(), marker=".", color=colour, label=str(cohort))
    axis.set(xlabel="months since first purchase", ylabel="% of cohort buying", ylim=(0, 105))
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, ncol=2, frameon=False, loc="upper right")
    return _svg(figure)


def importance_chart(importance: pd.Series) -> Markup:
    """Mean |SHAP| per feature, the largest first."""
    top = importance.sort_values(ascending=False).head(FEATURES_SHOWN)[::-1]
    figure = Figure(figsize=(7.5, 0.28 * len(top) + 0.8))
    axis = figure.subplots()
    axis.barh([str(name).replace("_", " ") for name in top.index], top.to_numpy(), color="#3b6ea5")
    axis.set(xlabel="mean |SHAP| (log-odds)")
    axis.grid(axis="x", alpha=0.3)
    return _svg(figure)


def calibration_chart(calibration: pd.DataFrame) -> Markup:
    """Observed churn rate against predicted probability on the test cutoff."""
    figure = Figure(figsize=(3.8, 3.6))
    axis = figure.subplots()
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
    axis.plot(calibration["predicted"], calibration["observed"], marker="o", label="model")
    axis.set(xlabel="predicted churn probability", ylabel="observed churn rate")
    axis.legend(frameon=False)
    return _svg(figure)


# ------------------------------------------------------------------------------------------------
def _breakdown(risk: pd.DataFrame, by: str, currency: str) -> list[dict]:
    grouped = risk.groupby(by, observed=True, sort=True)
    return [
        {
            "group": str(name).replace("_", " "),
            "customers": f"{len(part):,}",
            "share": percent(len(part) / len(risk)),
            "mean_risk": percent(part["churn_probability"].mean()),
            "value_at_risk": money(part["value_at_risk"].sum(), currency),
            "targets": f"{int(part['target'].sum()):,}",
        }
        for name, part in grouped
    ]


def _budget(risk: pd.DataFrame, currency: str) -> list[tuple[str, str]]:
    """Contacts, their cost, the value they are expected to save and the net gain."""
    targets = risk[risk["target"]]
    cost = float(targets["contact_cost"].sum()) if "contact_cost" in targets else math.nan
    gain = float(targets["expected_net_gain"].sum())
    total = float(risk["value_at_risk"].sum())
    return [
        ("Customers to contact", f"{len(targets):,} of {len(risk):,}"),
        ("Cost of the contacts", money(cost, currency)),
        ("Expected saved value", money(gain + cost, currency)),
        ("Expected net gain", money(gain, currency)),
        (
            "Share of the value at risk they hold",
            percent(targets["value_at_risk"].sum() / total) if total else "–",
        ),
    ]


def _targets(risk: pd.DataFrame, top: int, currency: str) -> list[dict]:
    rows = []
    for _, row in risk[risk["target"]].sort_values("rank").head(top).iterrows():
        reasons = [sentence(row.get(f"reason_{i}")) for i in (1, 2, 3)]
        rows.append(
            {
                "rank": int(row["rank"]),
                "customer": str(row["customer_id"]),
                "status": str(row.get("status", "")).replace("_", " "),
                "risk": percent(row["churn_probability"]),
                "value": money(row["value"], currency),
                "reasons": [text for text in reasons if text],
                "sign": sentence(row.get("sign")),
                "action": sentence(row.get("recommended_action")),
                "gain": money(row["expected_net_gain"], currency),
            }
        )
    return rows


def _exits(exits: pd.DataFrame | None, risk: pd.DataFrame) -> dict | None:
    """Customers who said why they left, the stated reason beside the model's drivers for them.

    Each customer's latest exit answer; their reasons come from the risk list (not scored when
    they are not in it). A stated reason code that names a driver family (support, pricing,
    delivery, ...) agrees when one of the model's three reasons has that family.
    """
    if exits is None or exits.empty:
        return None
    latest = exits.sort_values("answered_at").drop_duplicates("customer_id", keep="last")
    latest = latest.iloc[::-1].set_index("customer_id")
    scored = risk.set_index("customer_id").reindex(latest.index)
    on_list = scored["as_of"].notna()
    code = latest["reason"] if "reason" in latest else pd.Series(pd.NA, index=latest.index)
    families = [f"reason_{i}_family" for i in (1, 2, 3) if f"reason_{i}_family" in scored]
    named = scored[families].eq(code, axis=0).any(axis=1)
    agrees = named.where(code.notna() & on_list)
    rows = []
    for customer, answer in latest.head(EXITS_SHOWN).iterrows():
        row = scored.loc[customer]
        said = str(code[customer]).replace("_", " ") if pd.notna(code[customer]) else ""
        reasons = (sentence(row.get(f"reason_{i}")) for i in (1, 2, 3))
        rows.append(
            {
                "customer": str(customer),
                "answered": f"{answer['answered_at']:%Y-%m-%d}",
                "stated": " — ".join(t for t in (said, sentence(answer.get("comment"))) if t),
                "risk": percent(row["churn_probability"]) if on_list[customer] else "",
                "reasons": [text for text in reasons if text],
                "agrees": {True: "yes", False: "no"}.get(agrees[customer], "–"),
            }
        )
    by_code = pd.DataFrame({"code": code.fillna("(comment only)"), "agrees": agrees})
    summary = [
        {
            "stated": str(name).replace("_", " "),
            "customers": f"{len(part):,}",
            "agrees": f"{part['agrees'].eq(True).sum()} of {part['agrees'].notna().sum()}",
        }
        for name, part in by_code.groupby("code", sort=True)
    ]
    return {"rows": rows, "summary": summary, "customers": len(latest)}


def _counts(values: pd.Series) -> list[tuple[str, int]]:
    counts = values.dropna().astype("str").str.replace("_", " ").value_counts()
    return [(name, int(n)) for name, n in counts.items()]


def _table(frame: pd.DataFrame | None, formats: dict[str, str], currency: str) -> dict | None:
    """A frame as header and formatted rows for the template; other floats get 3 decimals."""
    if frame is None or frame.empty:
        return None
    kinds = {
        column: formats.get(column, "metric" if pd.api.types.is_float_dtype(frame[column]) else "")
        for column in frame.columns
    }
    rows = [
        [_format(row[c], kinds[c], currency) if kinds[c] else str(row[c]) for c in frame]
        for _, row in frame.iterrows()
    ]
    return {"header": [str(c).replace("_", " ") for c in frame.columns], "rows": rows}


def _template(name: str) -> jinja2.Template:
    """A template of this package; autoescape makes every inserted text HTML-safe."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(files("churnlens.reporting"))),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return environment.get_template(name)


def render_card(
    card: dict,
    metrics: pd.DataFrame,
    calibration: pd.DataFrame,
    importance: pd.Series,
    currency: str = "EUR",
) -> str:
    """The model card alone as one HTML document: the report's model-card section and the
    global importance, for the training run in MLflow (`reporting.card.model_card` output)."""
    return _template("card.html.j2").render(
        at_scoring=False,
        card=card,
        metrics=_table(metrics.reset_index(), METRIC_FORMATS, currency),
        calibration_chart=calibration_chart(calibration),
        importance_chart=importance_chart(importance) if len(importance) else None,
    )


def render(report: ReportInput) -> str:
    """The report as one HTML document (a string)."""
    risk, currency = report.risk_list, report.currency
    check_risk_list(risk)
    period, tiles = _tiles(report.kpis, currency)
    metrics = report.metrics
    if metrics is not None:
        metrics = metrics.reset_index()
    drift = report.drift
    if drift is not None:
        drift = drift.head(DRIFT_SHOWN)
    targets = risk[risk["target"]]
    return _template("report.html.j2").render(
        at_scoring=True,
        title=report.title,
        as_of=pd.Timestamp(risk["as_of"].iloc[0]).strftime("%Y-%m-%d") if len(risk) else "–",
        card=report.model_card,
        period=period,
        tiles=tiles,
        cohort_chart=cohort_chart(report.cohorts) if report.cohorts is not None else None,
        segments=_table(report.segments, SEGMENT_FORMATS, currency),
        pareto=_table(report.pareto, {"customers": "count", "share": "pct"}, currency),
        by_tier=_breakdown(risk, "risk_tier", currency),
        by_status=_breakdown(risk, "status", currency) if "status" in risk else None,
        budget=_budget(risk, currency),
        targets=_targets(risk, report.top_targets, currency),
        target_count=len(targets),
        exits=_exits(report.exits, risk),
        reason_counts=_counts(targets.get("reason_family", pd.Series(dtype="str"))),
        action_counts=_counts(targets.get("recommended_action", pd.Series(dtype="str"))),
        importance_chart=importance_chart(report.importance)
        if report.importance is not None and len(report.importance)
        else None,
        metrics=_table(metrics, METRIC_FORMATS, currency),
        calibration_chart=calibration_chart(report.calibration)
        if report.calibration is not None
        else None,
        drift=_table(drift, {}, currency),
    )


def write_report(report: ReportInput, path: Path) -> Path:
    """Render and write the report atomically."""
    html = render(report)
    return write_atomic(path, lambda tmp: tmp.write_text(html, encoding="utf-8"))
