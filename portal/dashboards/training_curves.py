"""Live training curves on the job page: loss and the primary metric, train against validation.

Embedded by ``templates/dashboards/job_live.html`` with ``{"job_id": ...}`` in the store. While the
job is queued or running the curves refresh every ``REFRESH_MS``; once it is finished the interval
is switched off (the last refresh draws the final curves).

Ids (stable, for browser tests): ``status`` (a line saying what the job is doing), ``loss-graph``,
``metric-graph`` (the figures), ``<graph>-csv`` / ``<graph>-download`` (CSV), ``tick`` (the interval).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html

from portal.dashboards.common import (
    BASE_STYLE,
    DASHES,
    STORE_ID,
    SYMBOLS,
    User,
    DashboardApp,
    csv_download,
    empty_figure,
    graph,
    job_for_user,
    metric_label,
    primary_metric_for_job,
    store_data,
    style_figure,
)
from portal.jobs.models import Job
from portal.results.selectors import metric_series_for_job

APP_NAME = "training_curves"
REFRESH_MS = 3000
# Points per curve drawn (each split thinned evenly, first and last kept): a long run stays cheap.
MAX_POINTS = 1500

STATUS_ID = "status"
TICK_ID = "tick"
LOSS_GRAPH = "loss-graph"
METRIC_GRAPH = "metric-graph"

# Which stored series make each figure, and how they are named in the legend.
# (split, metric name) -> legend label. Points come from workers.runner.DatabaseReporter.
LOSS_SERIES = [
    (("train", "loss"), "Train (per step)"),
    (("train", "epoch_loss"), "Train (epoch mean)"),
    (("val", "loss"), "Validation"),
]
SPLIT_LABELS = {"train": "Train", "val": "Validation"}


@dataclass
class Curve:
    label: str
    steps: list[int] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)
    values: list[float | None] = field(default_factory=list)


@dataclass
class CurveData:
    """What the two figures are drawn from."""

    loss: list[Curve]
    metric: str
    metric_curves: list[Curve]


def _curve(label: str, points: list[dict]) -> Curve:
    return Curve(
        label=label,
        steps=[p["step"] for p in points],
        epochs=[p["epoch"] for p in points],
        values=[p["value"] for p in points],
    )


def curve_data(job: Job, *, max_points: int = MAX_POINTS) -> CurveData:
    """The job's loss curves and its primary metric's curves (train and validation where stored)."""
    loss: list[Curve] = []
    loss_series = metric_series_for_job(job=job, name="loss", max_points=max_points)
    epoch_loss = metric_series_for_job(job=job, name="epoch_loss", max_points=max_points)
    by_key = {("train", "loss"): loss_series.get("train"), ("val", "loss"): loss_series.get("val"),
              ("train", "epoch_loss"): epoch_loss.get("train")}
    for key, label in LOSS_SERIES:
        points = by_key.get(key)
        if points:
            loss.append(_curve(label, points))
    metric = primary_metric_for_job(job)
    metric_curves = []
    series = metric_series_for_job(job=job, name=metric, max_points=max_points)
    for split in ("train", "val"):
        if series.get(split):
            metric_curves.append(_curve(SPLIT_LABELS[split], series[split]))
    return CurveData(loss=loss, metric=metric, metric_curves=metric_curves)


def _lines(fig: go.Figure, curves: list[Curve]) -> None:
    for i, curve in enumerate(curves):
        many = len(curve.steps) > 60
        fig.add_trace(
            go.Scatter(
                x=curve.steps,
                y=curve.values,
                customdata=curve.epochs,
                meta={"x": "step", "y": "value", "customdata": ["epoch"]},
                name=curve.label,
                mode="lines" if many else "lines+markers",
                line={"dash": DASHES[i % len(DASHES)], "width": 1.5 if many else 2},
                marker={"symbol": SYMBOLS[i % len(SYMBOLS)], "size": 7},
                hovertemplate="step %{x}<br>epoch %{customdata}<br>%{y:.4g}<extra>%{fullData.name}</extra>",
            )
        )


def waiting_message(job: Job) -> str:
    if job.status == Job.Status.QUEUED:
        return "Queued: the curves appear when a worker starts training."
    if job.status == Job.Status.RUNNING:
        return "Training has started; the first points arrive within a few seconds."
    return "This job recorded no training curves."


def figures(job: Job | None) -> dict[str, go.Figure]:
    """The two figures for ``job`` (None: the not-found state)."""
    if job is None:
        nothing = empty_figure("Job not found, or you may not see it.")
        return {LOSS_GRAPH: nothing, METRIC_GRAPH: nothing}
    data = curve_data(job)
    if data.loss:
        loss = go.Figure()
        _lines(loss, data.loss)
        style_figure(loss, x_title="Training step", y_title="Loss (training objective)", title="Loss", height=320)
    else:
        loss = empty_figure(waiting_message(job))
    if data.metric_curves:
        metric = go.Figure()
        _lines(metric, data.metric_curves)
        style_figure(
            metric, x_title="Training step", y_title=metric_label(data.metric),
            title=f"Primary metric: {data.metric}", height=320,
        )
    else:
        metric = empty_figure(
            waiting_message(job) if not job.is_finished else f"No {data.metric} was recorded for this job."
        )
    return {LOSS_GRAPH: loss, METRIC_GRAPH: metric}


def status_line(job: Job | None) -> str:
    if job is None:
        return "Job not found, or you may not see it."
    text = f"{job.get_status_display()}"
    if job.status == Job.Status.RUNNING:
        text += f": epoch {job.epoch}, step {job.step} ({job.progress:.0%}); refreshing every {REFRESH_MS // 1000} s"
    elif job.is_finished:
        text += f" at epoch {job.epoch}, step {job.step}"
    return text


app = DashboardApp(APP_NAME, title="Training curves")
app.layout = html.Div(
    style=BASE_STYLE,
    children=[
        dcc.Store(id=STORE_ID, data={}),
        dcc.Interval(id=TICK_ID, interval=REFRESH_MS, n_intervals=0, disabled=False),
        html.Div(id=STATUS_ID, className="lf-status", children="Loading…"),
        graph(LOSS_GRAPH, filename="training-loss", height=320),
        graph(METRIC_GRAPH, filename="training-metric", height=320),
    ],
)


@app.callback(
    Output(LOSS_GRAPH, "figure"),
    Output(METRIC_GRAPH, "figure"),
    Output(STATUS_ID, "children"),
    Output(TICK_ID, "disabled"),
    Input(STORE_ID, "data"),
    Input(TICK_ID, "n_intervals"),
)
def refresh(store: Any, _n_intervals: Any, user: User = None) -> tuple:
    job = job_for_user(user=user, job_id=store_data(store).get("job_id"))
    figs = figures(job)
    finished = job is None or job.is_finished
    return figs[LOSS_GRAPH], figs[METRIC_GRAPH], status_line(job), finished


def _download(graph_id: str, filename: str):
    @app.callback(
        Output(f"{graph_id}-download", "data"),
        Input(f"{graph_id}-csv", "n_clicks"),
        State(STORE_ID, "data"),
        prevent_initial_call=True,
    )
    def download(_clicks: Any, store: Any, user: User = None) -> dict:
        job = job_for_user(user=user, job_id=store_data(store).get("job_id"))
        name = f"job-{job.pk}-{filename}.csv" if job else f"{filename}.csv"
        return csv_download(figures(job)[graph_id], filename=name)

    return download


download_loss = _download(LOSS_GRAPH, "training-loss")
download_metric = _download(METRIC_GRAPH, "training-metric")
