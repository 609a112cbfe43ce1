"""What every dashboard shares: the access pattern, figure defaults, empty states and CSV downloads.

Access. A page hands its dashboard the ids it shows (a job, several jobs, a dataset) through
``{% plotly_app ... initial_arguments=... %}`` into one ``dcc.Store`` (id ``STORE_ID``). The store
lives in the browser, so its content is whatever the caller sends: a crafted POST to
``/django_plotly_dash/app/<name>/_dash-update-component`` can put any id there. Therefore every
callback is an expanded callback that takes ``user`` (django-plotly-dash injects the request's
user) and loads its objects through :func:`job_for_user`, :func:`jobs_for_user` or
:func:`dataset_for_user`, which go through the selectors and answer ``None`` (or drop the id) for
anything the user may not see. The callback then returns its "not found" state: the response
carries nothing of the hidden object.

Figures. :func:`style_figure` gives every figure the same look: axis titles with units, a
palette and line dashes that stay distinct in greyscale, Viridis for continuous scales (its
lightness rises monotonically, so it reads in greyscale). :func:`graph` embeds a figure with
Plotly's own "download as PNG" button and a "CSV" button whose callback rebuilds the figure on the
server (through the same access checks) and sends its data with :func:`figure_to_csv`.
"""

from __future__ import annotations

import base64
import inspect
import io
import json
import textwrap
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go
from dash import dcc, html
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django_plotly_dash import DjangoDash

from mlcore.catalog import METRICS
from mlcore.csvsafe import csv_writer
from mlcore.modalities.views import ModalityView, view_get
from portal.datasets.models import Dataset
from portal.datasets.selectors import dataset_get_for_user
from portal.jobs.models import Job
from portal.jobs.selectors import job_get_for_user, job_list_for_user
from portal.results.selectors import primary_metric

User = AbstractBaseUser | AnonymousUser

# The one store per dashboard that carries the page's ids ({"job_id": 5}, {"job_ids": [..]},
# {"dataset_id": 3, "task": "..."}). Apps live in separate iframes, so the same id is fine in each.
STORE_ID = "store"

# Okabe-Ito, colour-blind safe; paired with distinct dashes and markers so lines stay apart in
# greyscale prints.
COLORWAY = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
DASHES = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"]
SYMBOLS = ["circle", "square", "diamond", "triangle-up", "x", "cross", "star", "hexagon"]
# Perceptually uniform with monotonic lightness: readable in greyscale.
CONTINUOUS_SCALE = "Viridis"
FONT_FAMILY = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif'


# --- access ---------------------------------------------------------------------------------------


def modality_view(modality: str) -> ModalityView | None:
    """How a modality's records are shown (length unit, drawing), from its torch-free view descriptor
    in mlcore; None for a modality the catalog no longer lists. Dashboards ask this, never the key."""
    try:
        return view_get(modality)
    except KeyError:
        return None


def as_id(value: Any) -> int | None:
    """An object id from the (untrusted) store: a positive int, or None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.isdigit():
        return int(value) if int(value) > 0 else None
    return None


def job_for_user(*, user: User, job_id: Any) -> Job | None:
    """The job if ``user`` may see it, else None (unknown, hidden or malformed id alike)."""
    pk = as_id(job_id)
    if pk is None or user is None:
        return None
    try:
        return job_get_for_user(user=user, job_id=pk)
    except Job.DoesNotExist:
        return None


def jobs_for_user(*, user: User, job_ids: Any, limit: int = 20) -> list[Job]:
    """The visible jobs among ``job_ids`` (at most ``limit``), in the given order, each with its
    result loaded; hidden or unknown ids are dropped."""
    if not isinstance(job_ids, (list, tuple)) or user is None:
        return []
    pks: list[int] = []
    for value in job_ids:
        pk = as_id(value)
        if pk is not None and pk not in pks:
            pks.append(pk)
    pks = pks[:limit]
    found = {job.pk: job for job in job_list_for_user(user=user).filter(pk__in=pks).select_related("result")}
    return [found[pk] for pk in pks if pk in found]


def dataset_for_user(*, user: User, dataset_id: Any) -> Dataset | None:
    """The dataset if ``user`` may see it, else None."""
    pk = as_id(dataset_id)
    if pk is None or user is None:
        return None
    try:
        return dataset_get_for_user(user=user, dataset_id=pk)
    except Dataset.DoesNotExist:
        return None


def store_data(value: Any) -> dict:
    """The store's content as a dict whatever the client sent."""
    return value if isinstance(value, dict) else {}


def initial_arguments(**data: Any) -> str:
    """The ``initial_arguments`` JSON that puts ``data`` into the dashboard's store.

    Model instances become their pk, iterables of them lists of pks.
    """

    def plain(value: Any) -> Any:
        if hasattr(value, "_meta") and hasattr(value, "pk"):
            return value.pk
        if isinstance(value, (list, tuple, set)) or (
            isinstance(value, Iterable) and not isinstance(value, (str, bytes, Mapping))
        ):
            return [plain(v) for v in value]
        return value

    return json.dumps({STORE_ID: {"data": {key: plain(value) for key, value in data.items()}}})


# --- metrics -------------------------------------------------------------------------------------

# Axis titles: the metric's name and its unit or range.
METRIC_LABELS = {
    "loss": "Loss",
    "epoch_loss": "Mean training loss per epoch",
    "roc_auc": "ROC AUC (0–1)",
    "pr_auc": "PR AUC (0–1)",
    "accuracy": "Accuracy (0–1)",
    "balanced_accuracy": "Balanced accuracy (0–1)",
    "macro_f1": "Macro F1 (0–1)",
    "mcc": "Matthews correlation (−1–1)",
    "rmse": "RMSE (target units)",
    "mae": "MAE (target units)",
    "r2": "R² (≤ 1)",
    "spearman": "Spearman ρ (−1–1)",
    "pearson": "Pearson r (−1–1)",
    "token_accuracy": "Per-token accuracy (0–1)",
    "token_macro_f1": "Per-token macro F1 (0–1)",
    "lr": "Learning rate",
}


def metric_label(name: str) -> str:
    return METRIC_LABELS.get(name, name.replace("_", " "))


def metric_range(name: str, values: Iterable[float]) -> list[float] | None:
    """An axis or colour range for `values` of metric `name` that stays within the metric's bounds
    (catalog.METRICS): [0, 1] for ROC AUC however close together the values are (Plotly would widen
    equal values to 0.5–1.5); on an unbounded side, the data with a margin. None for an unknown metric."""
    info = METRICS.get(name)
    finite = [float(v) for v in values if v is not None and np.isfinite(v)]
    if info is None or not finite:
        return None
    low, high = min(finite), max(finite)
    margin = (high - low) * 0.05 or abs(high) * 0.05 or 0.05
    return [info.lower if info.lower is not None else low - margin,
            info.upper if info.upper is not None else high + margin]


def greater_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better (catalog.METRICS; errors and losses are smaller-is-better)."""
    info = METRICS.get(metric)
    return info.greater_is_better if info is not None else metric not in ("rmse", "mae", "loss", "epoch_loss")


def job_result(job: Job) -> Any:
    """The job's Result row, or None while it has none."""
    from portal.results.models import Result

    try:
        return job.result
    except Result.DoesNotExist:
        return None


def primary_metric_for_job(job: Job) -> str:
    """The metric the job is judged by (``portal.results.selectors.primary_metric``: what its result
    stored, else the resolved target kind's), "loss" when nothing tells it."""
    return primary_metric(job).key or "loss"


def job_label(job: Job) -> str:
    """How a job is named in legends: its name, or its number, task and profile."""
    return job.name or f"#{job.pk} {job.task_key} · {job.profile_key}"


# --- figures ---------------------------------------------------------------------------------------


def style_figure(
    fig: go.Figure,
    *,
    x_title: str | None = None,
    y_title: str | None = None,
    title: str | None = None,
    height: int = 360,
    legend: bool = True,
) -> go.Figure:
    """The house style: white template, readable font, axis titles (with units), legend on top."""
    fig.update_layout(
        template="plotly_white",
        colorway=COLORWAY,
        font={"family": FONT_FAMILY, "size": 13},
        height=height,
        # The title sits at the top of the figure, the legend in its own row between title and plot.
        margin={"l": 60, "r": 20, "t": (34 if title else 0) + (34 if legend else 16), "b": 55},
        title=(
            {"text": title, "x": 0.01, "xanchor": "left", "xref": "container", "y": 1, "yref": "container",
             "yanchor": "top", "pad": {"t": 8}, "font": {"size": 15}}
            if title
            else None
        ),
        showlegend=legend,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "left", "x": 0},
        hoverlabel={"font": {"family": FONT_FAMILY}},
        coloraxis={"colorscale": CONTINUOUS_SCALE},
    )
    if x_title is not None:
        fig.update_xaxes(title_text=x_title)
    if y_title is not None:
        fig.update_yaxes(title_text=y_title)
    fig.update_xaxes(showline=True, linecolor="#888", zeroline=False, automargin=True)
    fig.update_yaxes(showline=True, linecolor="#888", zeroline=False, automargin=True)
    return fig


# An empty figure's message is wrapped at this many characters: Plotly does not wrap an annotation,
# and a long line in a half-width graph is cut off on both sides.
EMPTY_LINE_CHARS = 48


def empty_figure(message: str, *, height: int = 260) -> go.Figure:
    """A figure with no data that says why (and, where it helps, what to do next)."""
    message = "<br>".join(textwrap.wrap(message, EMPTY_LINE_CHARS, break_long_words=False)) or message
    fig = go.Figure()
    fig.update_layout(
        template="plotly_white",
        font={"family": FONT_FAMILY, "size": 13},
        height=height,
        margin={"l": 20, "r": 20, "t": 20, "b": 20},
        xaxis={"visible": False},
        yaxis={"visible": False},
        annotations=[
            {
                "text": message,
                "xref": "paper",
                "yref": "paper",
                "x": 0.5,
                "y": 0.5,
                "showarrow": False,
                "font": {"size": 14, "color": "#555"},
            }
        ],
        meta={"empty": True},
    )
    return fig


def is_empty_figure(fig: go.Figure | Mapping) -> bool:
    layout = fig.layout.to_plotly_json() if isinstance(fig, go.Figure) else fig.get("layout", {})
    meta = layout.get("meta") or {}
    return isinstance(meta, Mapping) and bool(meta.get("empty"))


def graph_config(filename: str) -> dict:
    """Plotly's modebar with its PNG button (2x scale, named after the view), no logo."""
    return {
        "displaylogo": False,
        "responsive": True,
        "toImageButtonOptions": {"format": "png", "filename": filename, "scale": 2},
        "modeBarButtonsToRemove": ["select2d", "lasso2d"],
    }


def graph(graph_id: str, *, filename: str | None = None, height: int = 360) -> html.Div:
    """A graph with a loading spinner, Plotly's PNG button and a "CSV" download button.

    Ids: the graph is ``graph_id``, the button ``<graph_id>-csv``, the download ``<graph_id>-download``.
    """
    return html.Div(
        className="lf-figure",
        children=[
            dcc.Loading(
                type="default",
                # Only a slow update shows the spinner: a live refresh every few seconds must not flicker.
                delay_show=400,
                overlay_style={"visibility": "visible", "opacity": 0.6},
                children=dcc.Graph(
                    id=graph_id,
                    figure=empty_figure("Loading…", height=height),
                    config=graph_config(filename or graph_id),
                    style={"minHeight": f"{height}px"},
                ),
            ),
            html.Div(
                className="lf-figure-tools",
                children=[
                    html.Button(
                        "Download data (CSV)",
                        id=f"{graph_id}-csv",
                        n_clicks=0,
                        className="lf-button",
                        title="The numbers this figure is drawn from, as CSV",
                    ),
                    dcc.Download(id=f"{graph_id}-download"),
                ],
            ),
        ],
    )


# Inline CSS shared by the dashboards (each runs in its own iframe; no external stylesheet).
BASE_STYLE = {
    "fontFamily": FONT_FAMILY,
    "fontSize": "14px",
    "color": "#212529",
    "padding": "4px",
    "maxWidth": "100%",
}
CONTROLS_STYLE = {"display": "flex", "flexWrap": "wrap", "gap": "12px", "alignItems": "flex-end", "marginBottom": "8px"}


def control(label: str, component: Any, *, width: str = "220px") -> html.Div:
    return html.Div(
        style={"display": "flex", "flexDirection": "column", "minWidth": width, "flex": f"0 1 {width}"},
        children=[html.Label(label, style={"fontSize": "12px", "color": "#555", "marginBottom": "2px"}), component],
    )


def app_index_string(title: str) -> str:
    """Dash's index page with a little CSS for buttons, grids and figure tools (no external assets)."""
    return (
        "<!DOCTYPE html><html><head>{%metas%}<title>" + title + "</title>{%favicon%}{%css%}<style>"
        "body{margin:0;font-family:" + FONT_FAMILY.replace('"', "'") + ";}"
        ".lf-figure{margin-bottom:14px;min-width:0;}"
        ".lf-figure-tools{display:flex;justify-content:flex-end;gap:6px;}"
        ".lf-button{font:inherit;font-size:12px;padding:3px 10px;border:1px solid #adb5bd;border-radius:4px;"
        "background:#f8f9fa;color:#212529;cursor:pointer;}"
        ".lf-button:hover{background:#e9ecef;}"
        ".lf-status{font-size:13px;color:#555;margin:4px 0;}"
        ".lf-grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:12px;}"
        "@media (max-width:480px){.lf-grid{grid-template-columns:1fr;}}"
        "</style></head><body>{%app_entry%}<footer>{%config%}{%scripts%}{%renderer%}</footer></body></html>"
    )


class DashboardApp(DjangoDash):
    """A DjangoDash app served locally whose page carries ``index_string`` (the house CSS).

    DjangoDash builds a fresh Dash instance per request and does not pass its own ``index_string``
    on; this does. ``DashboardApp(APP_NAME, title="Training curves")``.
    """

    def __init__(self, name: str, *, title: str) -> None:
        super().__init__(name, serve_locally=True)
        # DjangoDash remembers its caller's module (for assets); that is the dashboard, not us.
        caller = inspect.stack()[1]
        self.caller_module = inspect.getmodule(caller[0])
        self.caller_module_location = inspect.getfile(self.caller_module) if self.caller_module else None
        self.index_string = app_index_string(title)

    def form_dash_instance(self, replacements: Any = None, ndid: Any = None, base_pathname: Any = None) -> Any:
        dash_app = super().form_dash_instance(replacements, ndid, base_pathname)
        if getattr(self, "index_string", None):
            dash_app.index_string = self.index_string
        return dash_app


# --- CSV -------------------------------------------------------------------------------------------


def _decode(value: Any) -> Any:
    """Plotly's typed-array form ({"dtype", "bdata", "shape"}) back to a list; other values as they are."""
    if isinstance(value, Mapping) and "bdata" in value and "dtype" in value:
        array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        if shape:
            dims = [int(part) for part in str(shape).split(",") if part.strip()]
            array = array.reshape(dims)
        return array.tolist()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    return value


def _cell(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return ""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.replace("<br>", "; ")  # hover text's line breaks
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return value


def figure_rows(figure: go.Figure | Mapping) -> tuple[list[str], list[list[Any]]]:
    """The data of a figure as one table: a row per point (or per record of a parallel-coordinates
    view, or per cell of a heatmap), with the trace's name."""
    data = figure.to_plotly_json()["data"] if isinstance(figure, go.Figure) else figure.get("data", [])
    columns: list[str] = ["trace"]
    rows: list[dict[str, Any]] = []

    def add_column(name: str) -> None:
        if name not in columns:
            columns.append(name)

    for index, trace in enumerate(data):
        trace_type = trace.get("type", "scatter")
        name = trace.get("name") or f"{trace_type} {index + 1}"
        if trace_type == "parcoords":
            dims = trace.get("dimensions") or []
            labels = [dim.get("label") or f"dim{i}" for i, dim in enumerate(dims)]
            values = []
            for dim in dims:
                column = _decode(dim.get("values")) or []
                ticktext = _decode(dim.get("ticktext"))
                tickvals = _decode(dim.get("tickvals"))
                if isinstance(ticktext, list) and isinstance(tickvals, list):
                    # A categorical axis: write the category, not its position.
                    names = dict(zip(tickvals, ticktext))
                    column = [names.get(v, v) for v in column]
                values.append(column)
            for label in labels:
                add_column(label)
            line_color = _decode((trace.get("line") or {}).get("color"))
            for i in range(max((len(v) for v in values), default=0)):
                row = {"trace": name}
                for label, column in zip(labels, values):
                    row[label] = column[i] if i < len(column) else None
                if isinstance(line_color, list) and i < len(line_color):
                    add_column("colour")
                    row["colour"] = line_color[i]
                rows.append(row)
            continue
        z = _decode(trace.get("z"))
        if trace_type in ("heatmap", "contour") and isinstance(z, list) and z and isinstance(z[0], list):
            x = _decode(trace.get("x")) or list(range(len(z[0])))
            y = _decode(trace.get("y")) or list(range(len(z)))
            for name_col in ("x", "y", "z"):
                add_column(name_col)
            for j, z_row in enumerate(z):
                for i, z_value in enumerate(z_row):
                    rows.append({"trace": name, "x": x[i] if i < len(x) else i, "y": y[j] if j < len(y) else j, "z": z_value})
            continue
        per_point = {}
        for key in ("x", "y", "z", "text", "hovertext", "customdata"):
            value = _decode(trace.get(key))
            if isinstance(value, list):
                per_point[key] = value
        # A trace may name its CSV columns through its meta: {"x": "step", "y": "loss"} renames the
        # axes' columns, {"customdata": ["job", ...]} gives each customdata field its own column.
        meta = trace.get("meta") if isinstance(trace.get("meta"), Mapping) else {}
        names = meta.get("customdata")
        named: dict[str, list] = {}
        for key, values in per_point.items():
            if key in ("x", "y", "z") and isinstance(meta.get(key), str):
                named[meta[key]] = values
            elif key == "customdata" and isinstance(names, list):
                for j, field_name in enumerate(names):
                    named[str(field_name)] = [
                        item[j] if isinstance(item, list) and j < len(item) else (item if len(names) == 1 else None)
                        for item in values
                    ]
            else:
                named[key] = values
        per_point = named
        if not per_point:
            continue
        length = max(len(v) for v in per_point.values())
        for key in per_point:
            add_column(key)
        for i in range(length):
            row = {"trace": name}
            for key, values in per_point.items():
                row[key] = values[i] if i < len(values) else None
            rows.append(row)
    return columns, [[_cell(row.get(col)) for col in columns] for row in rows]


def figure_to_csv(figure: go.Figure | Mapping) -> str:
    columns, rows = figure_rows(figure)
    buffer = io.StringIO()
    writer = csv_writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buffer.getvalue()


def csv_download(figure: go.Figure | Mapping, *, filename: str) -> dict:
    """The value for a ``dcc.Download``'s ``data``: the figure's data as a CSV file."""
    return {"content": figure_to_csv(figure), "filename": filename, "type": "text/csv", "base64": False}
