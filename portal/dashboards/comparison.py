"""Run comparison (catalog → compare): the selected jobs' curves overlaid, and a parallel-coordinates
view of their hyperparameters against the primary test metric.

Embedded by ``templates/dashboards/compare_panels.html`` with ``{"job_ids": [...]}`` in the store
(at most ``MAX_JOBS``; ids the user may not see are dropped by ``jobs_for_user``).

Ids: ``curve-select`` (which curve: split and metric), ``curves-graph`` (overlay),
``parallel-graph`` (parallel coordinates), ``parallel-note`` (which jobs are left out and why),
``<graph>-csv`` / ``<graph>-download``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html

from mlcore.catalog import HYPERPARAMETERS, PRESETS, PROFILES
from portal.dashboards.common import (
    BASE_STYLE,
    CONTINUOUS_SCALE,
    CONTROLS_STYLE,
    DASHES,
    STORE_ID,
    SYMBOLS,
    User,
    DashboardApp,
    control,
    csv_download,
    empty_figure,
    graph,
    job_label,
    job_result,
    jobs_for_user,
    metric_label,
    metric_range,
    primary_metric_for_job,
    store_data,
    style_figure,
)
from portal.jobs.models import Job
from portal.results.selectors import metric_names_for_job, metric_series_for_job

APP_NAME = "comparison"
MAX_JOBS = 20

CURVE_SELECT = "curve-select"
CURVES_GRAPH = "curves-graph"
PARALLEL_GRAPH = "parallel-graph"
PARALLEL_NOTE = "parallel-note"

# Curves recorded once per epoch (comparable across jobs whatever their batch size). The per-step
# training loss and learning rate are left out: their step axes differ from job to job.
PER_STEP = {("train", "loss"), ("train", "lr")}
SPLITS = {"train": "Train", "val": "Validation"}


# --- data ------------------------------------------------------------------------------------------


def curve_key(split: str, name: str) -> str:
    return f"{split}:{name}"


def curve_options(jobs: list[Job]) -> list[dict[str, str]]:
    """Per-epoch curves any of ``jobs`` recorded, validation first."""
    keys: set[tuple[str, str]] = set()
    for job in jobs:
        for row in metric_names_for_job(job=job):
            if row["split"] in SPLITS and (row["split"], row["name"]) not in PER_STEP:
                keys.add((row["split"], row["name"]))
    ordered = sorted(keys, key=lambda k: (k[0] != "val", k[1]))
    return [{"label": f"{SPLITS[s]} · {metric_label(n)}", "value": curve_key(s, n)} for s, n in ordered]


def default_curve(jobs: list[Job], options: list[dict[str, str]]) -> str | None:
    """The first job's primary metric on validation, else the first option."""
    values = [o["value"] for o in options]
    if jobs:
        preferred = curve_key("val", primary_metric_for_job(jobs[0]))
        if preferred in values:
            return preferred
    return values[0] if values else None


@dataclass
class JobCurve:
    job_id: int
    label: str
    epochs: list[int]
    values: list[float | None]


def job_curves(jobs: list[Job], key: str) -> list[JobCurve]:
    split, _, name = key.partition(":")
    curves = []
    for job in jobs:
        points = metric_series_for_job(job=job, name=name, split=split).get(split, [])
        if points:
            curves.append(JobCurve(job.pk, job_label(job), [p["epoch"] for p in points], [p["value"] for p in points]))
    return curves


@dataclass
class Dimension:
    label: str
    values: list[float]
    ticktext: list[str] | None = None  # categorical: values are indices into ticktext


@dataclass
class ParallelData:
    metric: str
    dimensions: list[Dimension]
    job_ids: list[int]
    left_out: list[str]  # why a selected job is not drawn


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def parallel_data(jobs: list[Job]) -> ParallelData:
    """Hyperparameters that differ between ``jobs`` (plus preset and profile when they differ), and
    the primary test metric of each job's trained model, one line per job that has it."""
    metric = primary_metric_for_job(jobs[0]) if jobs else ""
    kept: list[Job] = []
    scores: list[float] = []
    left_out: list[str] = []
    for job in jobs:
        result = job_result(job)
        score = _number((result.baseline_metrics or {}).get(metric)) if result is not None else None
        if score is None:
            why = "no test result yet" if result is None else f"no test {metric}"
            left_out.append(f"{job_label(job)}: {why}")
            continue
        kept.append(job)
        scores.append(score)
    # The first axis names each line's job (and carries it into the CSV).
    dims: list[Dimension] = [Dimension("Job", [float(i) for i in range(len(kept))], [f"#{j.pk}" for j in kept])]
    categorical = [
        ("Preset", lambda j: str(j.config.get("preset", "")), list(PRESETS)),
        ("Profile", lambda j: j.profile_key, list(PROFILES)),
    ]
    for label, get, order in categorical:
        values = [get(j) for j in kept]
        if len(set(values)) > 1:
            ticktext = [v for v in order if v in values] + sorted(set(values) - set(order))
            dims.append(Dimension(label, [float(ticktext.index(v)) for v in values], ticktext))
    for name, hp in HYPERPARAMETERS.items():
        raw = [(j.config.get("hyperparameters") or {}).get(name, hp.default) for j in kept]
        if len({repr(v) for v in raw}) < 2:
            continue
        if hp.type == "str":
            ticktext = sorted({str(v) for v in raw})
            dims.append(Dimension(name, [float(ticktext.index(str(v))) for v in raw], ticktext))
            continue
        numbers = [_number(v) for v in raw]
        if any(v is None for v in numbers):
            continue
        dims.append(Dimension(name, numbers))  # type: ignore[arg-type]
    dims.append(Dimension(f"test {metric}", scores))
    return ParallelData(metric=metric, dimensions=dims, job_ids=[j.pk for j in kept], left_out=left_out)


# --- figures ---------------------------------------------------------------------------------------


def curves_figure(jobs: list[Job], key: str | None) -> go.Figure:
    if not jobs:
        return empty_figure("No jobs to compare: select two or more jobs you can see in the catalog.")
    if not key:
        return empty_figure("These jobs have recorded no per-epoch curves yet.")
    curves = job_curves(jobs, key)
    split, _, name = key.partition(":")
    if not curves:
        return empty_figure(f"None of these jobs recorded {SPLITS.get(split, split).lower()} {name}.")
    fig = go.Figure()
    for i, curve in enumerate(curves):
        fig.add_trace(
            go.Scatter(
                x=curve.epochs,
                y=curve.values,
                name=curve.label,
                customdata=[curve.job_id] * len(curve.epochs),
                meta={"x": "epoch", "y": "value", "customdata": ["job"]},
                mode="lines+markers",
                line={"dash": DASHES[i % len(DASHES)], "width": 2},
                marker={"symbol": SYMBOLS[i % len(SYMBOLS)], "size": 7},
                hovertemplate="job %{customdata}<br>epoch %{x}<br>%{y:.4g}<extra>%{fullData.name}</extra>",
            )
        )
    style_figure(
        fig, x_title="Epoch", y_title=metric_label(name), title=f"{SPLITS.get(split, split)} {name} by epoch", height=380
    )
    bounds = metric_range(name, [v for curve in curves for v in curve.values])
    if bounds is not None:  # zoom to the data, never past what the metric can be
        fig.update_yaxes(autorangeoptions={"minallowed": bounds[0], "maxallowed": bounds[1]})
    return fig


def parallel_figure(data: ParallelData | None) -> go.Figure:
    if data is None:
        return empty_figure("No jobs to compare: select two or more jobs you can see in the catalog.")
    if len(data.job_ids) < 1:
        return empty_figure("None of the selected jobs has a test result yet.")
    dims = []
    for dim in data.dimensions:
        spec: dict[str, Any] = {"label": dim.label, "values": dim.values}
        if dim.ticktext is not None:
            spec["tickvals"] = list(range(len(dim.ticktext)))
            spec["ticktext"] = dim.ticktext
            spec["range"] = [-0.25, max(len(dim.ticktext) - 0.75, 0.25)]
        dims.append(spec)
    scores = data.dimensions[-1].values
    # A bounded metric keeps its bounds on its axis and its colour scale (ROC AUC: 0–1, never 0.5–1.5).
    bounds = metric_range(data.metric, scores)
    colour_range = {}
    if bounds is not None:
        dims[-1]["range"] = bounds
        colour_range = {"cmin": bounds[0], "cmax": bounds[1]}
    fig = go.Figure(
        go.Parcoords(
            name="jobs",
            dimensions=dims,
            line={
                "color": scores,
                **colour_range,
                "colorscale": CONTINUOUS_SCALE,
                "showscale": True,
                "colorbar": {"title": {"text": metric_label(data.metric)}},
            },
            labelangle=0,
            labelside="top",
        )
    )
    style_figure(fig, title=f"Hyperparameters against test {data.metric}", height=400, legend=False)
    fig.update_layout(margin={"l": 60, "r": 60, "t": 90, "b": 30})  # room for the axis labels above
    return fig


def figures(jobs: list[Job], key: str | None) -> dict[str, go.Figure]:
    return {CURVES_GRAPH: curves_figure(jobs, key), PARALLEL_GRAPH: parallel_figure(parallel_data(jobs) if jobs else None)}


def parallel_note(jobs: list[Job]) -> str:
    if not jobs:
        return ""
    data = parallel_data(jobs)
    parts = [f"{len(data.job_ids)} of {len(jobs)} job(s) drawn; colour = test {data.metric}."]
    if len(data.dimensions) == 2:
        parts.append("These jobs share every hyperparameter, so only the metric is shown.")
    if data.left_out:
        parts.append("Left out: " + "; ".join(data.left_out) + ".")
    return " ".join(parts)


# --- app -------------------------------------------------------------------------------------------

app = DashboardApp(APP_NAME, title="Run comparison")
app.layout = html.Div(
    style=BASE_STYLE,
    children=[
        dcc.Store(id=STORE_ID, data={}),
        html.Div(
            style=CONTROLS_STYLE,
            children=[
                control("Curve", dcc.Dropdown(id=CURVE_SELECT, options=[], value=None, clearable=False), width="320px"),
            ],
        ),
        graph(CURVES_GRAPH, filename="comparison-curves", height=380),
        graph(PARALLEL_GRAPH, filename="comparison-hyperparameters", height=400),
        html.Div(id=PARALLEL_NOTE, className="lf-status"),
    ],
)


def _jobs(store: Any, user: User) -> list[Job]:
    return jobs_for_user(user=user, job_ids=store_data(store).get("job_ids"), limit=MAX_JOBS)


@app.callback(Output(CURVE_SELECT, "options"), Output(CURVE_SELECT, "value"), Input(STORE_ID, "data"))
def choose_curves(store: Any, user: User = None) -> tuple:
    jobs = _jobs(store, user)
    options = curve_options(jobs)
    return options, default_curve(jobs, options)


@app.callback(Output(CURVES_GRAPH, "figure"), Input(STORE_ID, "data"), Input(CURVE_SELECT, "value"))
def draw_curves(store: Any, key: Any, user: User = None) -> go.Figure:
    jobs = _jobs(store, user)
    valid = {o["value"] for o in curve_options(jobs)}
    return curves_figure(jobs, key if key in valid else None)


@app.callback(Output(PARALLEL_GRAPH, "figure"), Output(PARALLEL_NOTE, "children"), Input(STORE_ID, "data"))
def draw_parallel(store: Any, user: User = None) -> tuple:
    jobs = _jobs(store, user)
    return parallel_figure(parallel_data(jobs) if jobs else None), parallel_note(jobs)


@app.callback(
    Output(f"{CURVES_GRAPH}-download", "data"),
    Input(f"{CURVES_GRAPH}-csv", "n_clicks"),
    State(STORE_ID, "data"),
    State(CURVE_SELECT, "value"),
    prevent_initial_call=True,
)
def download_curves(_clicks: Any, store: Any, key: Any, user: User = None) -> dict:
    jobs = _jobs(store, user)
    valid = {o["value"] for o in curve_options(jobs)}
    key = key if key in valid else None
    name = (key or "curves").replace(":", "-")
    return csv_download(curves_figure(jobs, key), filename=f"comparison-{name}.csv")


@app.callback(
    Output(f"{PARALLEL_GRAPH}-download", "data"),
    Input(f"{PARALLEL_GRAPH}-csv", "n_clicks"),
    State(STORE_ID, "data"),
    prevent_initial_call=True,
)
def download_parallel(_clicks: Any, store: Any, user: User = None) -> dict:
    jobs = _jobs(store, user)
    figure = parallel_figure(parallel_data(jobs) if jobs else None)
    return csv_download(figure, filename="comparison-hyperparameters.csv")

