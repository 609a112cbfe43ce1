"""Embedding explorer (job page): the test set's pooled embeddings in 2-D, with the attention explorer.

The worker stored the projections (PCA of every test record; t-SNE of all of them, or of a seeded
subsample when the test set is large) and k-means clusters with k chosen by silhouette
(``mlcore.explain.projection_arrays``). Points are coloured by true label, prediction, error or
cluster; hovering shows the record; clicking a point opens its attention view below (the records
with a stored attention map are ringed). A large test set is thinned for display only (at most
``MAX_DISPLAY`` points, every ringed record kept); the stored data and the CSV keep every point shown.

Ids (stable, for browser tests): ``embedding-method`` (PCA / t-SNE), ``embedding-colour``,
``embedding-status`` (counts, k and silhouette), ``embedding-scatter`` (+ ``-csv`` / ``-download``),
``embedding-click`` (what the click did); then the attention explorer's ids
(``portal.dashboards.attention``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from html import escape as html_escape
from typing import Any

import numpy as np
import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html

from mlcore.catalog import TARGET_KINDS
from portal.common.formatting import value_text
from portal.dashboards import attention
from portal.dashboards._explain_data import attention_samples, explain_artifacts, npz_arrays
from portal.dashboards.common import (
    BASE_STYLE,
    COLORWAY,
    CONTINUOUS_SCALE,
    CONTROLS_STYLE,
    STORE_ID,
    SYMBOLS,
    User,
    DashboardApp,
    control,
    csv_download,
    empty_figure,
    graph,
    job_for_user,
    store_data,
    style_figure,
)
from portal.jobs.models import Job

APP_NAME = "embedding_explorer"

METHOD_ID = "embedding-method"
COLOUR_ID = "embedding-colour"
STATUS_ID = "embedding-status"
SCATTER = "embedding-scatter"
CLICK_ID = "embedding-click"

METHODS = {"pca": "PCA", "tsne": "t-SNE"}
COLOURS = {"label": "True label", "prediction": "Prediction", "error": "Error", "cluster": "k-means cluster"}
MAX_DISPLAY = 5000
MAX_CATEGORIES = 12
NOT_FOUND = "Job not found, or you may not see it."


@dataclass
class EmbeddingData:
    """One projection of the job's test set and what each point can be coloured by."""

    method: str
    index: np.ndarray  # (M,) test index of each projected point
    xy: np.ndarray  # (M, 2)
    ids: list[Any]  # per test record (N)
    previews: list[str]  # per test record: a short text of the record (sequence, SMILES, row)
    labels: list[Any]
    predictions: list[Any]
    cluster: np.ndarray  # (N,)
    k: int
    silhouette: dict[str, float]
    kind: str | None
    token_error: np.ndarray | None  # (N,) per-token tasks: share of wrong tokens per record
    with_maps: set[int]  # test indices with a stored attention map
    n: int
    tsne_subsampled: bool


def _token_error(evaluation: Any) -> np.ndarray | None:
    arrays = npz_arrays(evaluation, ("y_true", "y_pred", "offsets"))
    if "offsets" not in arrays:
        return None
    wrong = (arrays["y_true"] != arrays["y_pred"]).astype(np.float64)
    offsets = arrays["offsets"]
    counts = np.diff(offsets)
    sums = np.add.reduceat(wrong, offsets[:-1]) if len(wrong) else np.zeros(len(counts))
    sums = np.where(counts > 0, sums, 0.0)
    return np.divide(sums, counts, out=np.zeros(len(counts)), where=counts > 0)


def embedding_data(job: Job, method: str) -> EmbeddingData | None:
    """The stored projection ``method`` ("pca" / "tsne") of the job's test embeddings, or None."""
    found = explain_artifacts(job)
    if found.projection is None or found.embeddings is None:
        return None
    arrays = npz_arrays(found.projection)
    meta = found.embeddings.metadata or {}
    n = len(arrays["pca"])
    if method == "tsne":
        index, xy = arrays["tsne_index"], arrays["tsne"]
    else:
        method, index, xy = "pca", np.arange(n), arrays["pca"]
    evaluation = found.evaluation.get("baseline")
    kind = (evaluation.metadata or {}).get("kind") if evaluation is not None else None
    token_error = _token_error(evaluation) if colouring(kind) == "token_class" else None
    summary = (found.projection.metadata or {}).get("projection") or {}
    return EmbeddingData(
        method=method, index=np.asarray(index, dtype=np.int64), xy=np.asarray(xy, dtype=np.float64),
        ids=list(meta.get("ids") or [None] * n), previews=[str(p) for p in meta.get("previews") or [""] * n],
        labels=list(meta.get("labels") or [None] * n),
        predictions=list(meta.get("predictions") or [None] * n),
        cluster=np.asarray(arrays["cluster"]), k=int(arrays["k"]), silhouette=dict(summary.get("silhouette") or {}),
        kind=kind, token_error=token_error,
        with_maps={int(s["index"]) for s in attention_samples(found.attention) if "index" in s},
        n=n, tsne_subsampled=bool(summary.get("tsne_subsampled")),
    )


def display_subset(index: np.ndarray, keep: set[int], max_display: int = MAX_DISPLAY, seed: int = 0) -> np.ndarray:
    """Positions (into ``index``) of the points drawn: all when few, else a seeded random
    ``max_display`` that always includes the records in ``keep``; sorted."""
    m = len(index)
    if m <= max_display:
        return np.arange(m)
    must = np.flatnonzero(np.isin(index, list(keep))) if keep else np.zeros(0, dtype=np.int64)
    rest = np.setdiff1d(np.arange(m), must)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(rest, max(0, max_display - len(must)), replace=False)
    return np.sort(np.concatenate([must, chosen]).astype(np.int64))


def _number(value: Any) -> float:
    if isinstance(value, dict):
        value = next(iter(value.values()), None)
    elif isinstance(value, (list, tuple)):  # several targets: the first one
        value = value[0] if value else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def colouring(kind: str | None) -> str:
    """How records of a target kind are coloured (catalog ``TargetKind.embedding_colour``): "class",
    "value" (continuous, the first target) or "token_class"."""
    meta = TARGET_KINDS.get(kind) if kind else None
    return meta.embedding_colour if meta is not None else "class"


def colour_values(data: EmbeddingData, by: str, points: np.ndarray) -> tuple[str, Any, str]:
    """("categorical", labels per point, title) or ("continuous", values per point, title) for
    the test records ``points``."""
    how = colouring(data.kind)
    regression = how == "value"
    if by == "cluster":
        return "categorical", [f"cluster {int(data.cluster[i]) + 1}" for i in points], f"k-means cluster (k = {data.k})"
    if by == "error":
        if how == "token_class" and data.token_error is not None:
            return "continuous", data.token_error[points], "Share of wrong tokens (0–1)"
        if regression:
            err = np.array([abs(_number(data.predictions[i]) - _number(data.labels[i])) for i in points])
            return "continuous", err, "Absolute error (target units)"
        return ("categorical", ["correct" if str(data.predictions[i]) == str(data.labels[i]) else "wrong"
                                for i in points], "Error (correct or wrong)")
    values = data.labels if by == "label" else data.predictions
    title = COLOURS.get(by, by)
    if regression:
        return "continuous", np.array([_number(values[i]) for i in points]), f"{title} (target units)"
    if how == "token_class":
        return "categorical", [majority_token_class(values[i]) for i in points], f"{title}: most frequent token class"
    return "categorical", [str(values[i]) for i in points], title


def majority_token_class(labels: Any) -> str:
    """The most frequent class among a record's per-token labels ("HHHEEC" or a list), "" when none;
    ties go to the class seen first."""
    tokens = list(labels) if isinstance(labels, (str, list, tuple)) else []
    if not tokens:
        return ""
    counts = Counter(str(t) for t in tokens)
    best = max(counts.values())
    return next(str(t) for t in tokens if counts[str(t)] == best)


def _hover(data: EmbeddingData, i: int) -> str:
    text = f"#{i}"
    if data.ids[i] not in (None, ""):
        text += f" id {html_escape(str(data.ids[i]))}"
    if i < len(data.previews) and data.previews[i]:
        text += f"<br>{html_escape(data.previews[i])}"
    text += (f"<br>true: {html_escape(value_text(data.labels[i])[:60])}"
             f"<br>predicted: {html_escape(value_text(data.predictions[i])[:60])}")
    text += f"<br>cluster {int(data.cluster[i]) + 1}"
    if i in data.with_maps:
        text += "<br>attention map stored: click to open"
    return text


def scatter_figure(data: EmbeddingData, by: str) -> go.Figure:
    shown = display_subset(data.index, data.with_maps)
    points = data.index[shown]
    xy = data.xy[shown]
    hover = [_hover(data, int(i)) for i in points]
    # Plain lists, not numpy arrays: plotly sends arrays to the browser as typed arrays (base64
    # "bdata"), and then a WebGL scatter's click event carries no customdata at all.
    custom = [[int(i)] for i in points]
    mode, values, title = colour_values(data, by, points)
    fig = go.Figure()
    common = {"mode": "markers", "hovertemplate": "%{hovertext}<extra></extra>"}
    if mode == "categorical":
        categories = sorted(set(values), key=lambda v: (-values.count(v), v))
        top = categories[:MAX_CATEGORIES]
        grouped = [v if v in top else "other" for v in values]
        for j, category in enumerate([*top, *(["other"] if len(categories) > MAX_CATEGORIES else [])]):
            mask = np.array([g == category for g in grouped])
            fig.add_trace(go.Scattergl(
                x=xy[mask, 0].tolist(), y=xy[mask, 1].tolist(), name=category,
                customdata=[c for c, m in zip(custom, mask) if m],
                hovertext=[h for h, m in zip(hover, mask) if m],
                marker={"size": 6, "opacity": 0.8, "color": COLORWAY[j % len(COLORWAY)],
                        "symbol": SYMBOLS[j % len(SYMBOLS)]}, **common,
            ))
    else:
        fig.add_trace(go.Scattergl(
            x=xy[:, 0].tolist(), y=xy[:, 1].tolist(), name=title, customdata=custom, hovertext=hover,
            marker={"size": 6, "opacity": 0.85, "color": np.asarray(values, dtype=np.float64).tolist(),
                    "colorscale": CONTINUOUS_SCALE, "showscale": True, "colorbar": {"title": {"text": title}}},
            **common,
        ))
    ringed = np.array([int(i) in data.with_maps for i in points], dtype=bool)
    if ringed.any():
        fig.add_trace(go.Scattergl(
            x=xy[ringed, 0].tolist(), y=xy[ringed, 1].tolist(), name="attention map stored (click)",
            customdata=[c for c, m in zip(custom, ringed) if m],
            hovertext=[h for h, m in zip(hover, ringed) if m],
            marker={"size": 13, "symbol": "circle-open", "color": "#000000", "line": {"width": 2}}, **common,
        ))
    name = METHODS[data.method]
    style_figure(fig, x_title=f"{name} 1 (no unit)", y_title=f"{name} 2 (no unit)",
                 title=f"Test embeddings, {name}, coloured by {title.lower()}", height=520)
    fig.update_layout(clickmode="event", dragmode="zoom", legend={"title": {"text": title}})
    return fig


def status_text(data: EmbeddingData) -> str:
    shown = len(display_subset(data.index, data.with_maps))
    parts = [f"{data.n} test records"]
    if data.method == "tsne" and data.tsne_subsampled:
        parts.append(f"t-SNE computed on a random {len(data.index)} of them (the worker bounds its cost)")
    if shown < len(data.index):
        parts.append(f"{shown} drawn (a random subsample for display; the stored data is complete)")
    if data.k > 1:
        scores = ", ".join(f"k={k}: {float(v):.3f}" for k, v in data.silhouette.items())
        best = data.silhouette.get(str(data.k))
        parts.append(f"k-means k = {data.k} chosen by silhouette"
                     + (f" ({float(best):.3f})" if best is not None else "") + (f"; tried {scores}" if scores else ""))
    else:
        parts.append("k-means: too few distinct records to cluster (k = 1)")
    return " · ".join(parts)


def view(job: Job | None, method: Any, by: Any) -> tuple[go.Figure, str]:
    if job is None:
        return empty_figure(NOT_FOUND), NOT_FOUND
    method = method if method in METHODS else "pca"
    by = by if by in COLOURS else "label"
    data = embedding_data(job, method)
    if data is None:
        message = ("No embeddings were stored for this job." if job.is_finished
                   else "Embeddings appear when the job has finished.")
        return empty_figure(message), message
    if len(data.index) == 0:
        return empty_figure(f"Too few test records for {METHODS[method]}."), status_text(data)
    return scatter_figure(data, by), status_text(data)


def click_text(job: Job | None, click: Any, figure: Any = None) -> str:
    index = attention.clicked_index(click, figure)
    if job is not None and index is None and isinstance(click, dict) and click.get("points"):
        return "The clicked point carries no record index; pick the record in the attention explorer below."
    if job is None or index is None:
        return "Click a point to open its attention map (ringed points have one)."
    samples = attention_samples(explain_artifacts(job).attention)
    if any(s.get("index") == index for s in samples):
        return f"Record #{index} opened in the attention explorer below."
    return (f"Record #{index} has no stored attention map (the worker keeps full maps for {len(samples)} "
            "records, ringed); pick one of those.")


app = DashboardApp(APP_NAME, title="Embedding explorer")
app.layout = html.Div(
    style=BASE_STYLE,
    children=[
        dcc.Store(id=STORE_ID, data={}),
        html.Div(style=CONTROLS_STYLE, children=[
            control("Projection", dcc.RadioItems(
                id=METHOD_ID, options=[{"label": v, "value": k} for k, v in METHODS.items()], value="pca",
                inline=True, inputStyle={"marginRight": "4px"}, labelStyle={"marginRight": "12px"})),
            control("Colour by", dcc.RadioItems(
                id=COLOUR_ID, options=[{"label": v, "value": k} for k, v in COLOURS.items()], value="label",
                inline=True, inputStyle={"marginRight": "4px"}, labelStyle={"marginRight": "12px"}), width="420px"),
        ]),
        html.Div(id=STATUS_ID, className="lf-status", children="Loading…"),
        graph(SCATTER, filename="embeddings", height=520),
        html.Div(id=CLICK_ID, className="lf-status", children=""),
        attention.section(),
    ],
)


@app.callback(
    Output(SCATTER, "figure"), Output(STATUS_ID, "children"),
    Input(STORE_ID, "data"), Input(METHOD_ID, "value"), Input(COLOUR_ID, "value"),
)
def scatter(store: Any, method: Any, by: Any, user: User = None) -> tuple:
    job = job_for_user(user=user, job_id=store_data(store).get("job_id"))
    return view(job, method, by)


@app.callback(
    Output(CLICK_ID, "children"), Input(SCATTER, "clickData"), State(STORE_ID, "data"), State(SCATTER, "figure"),
)
def clicked(click: Any, store: Any, figure: Any, user: User = None) -> str:
    return click_text(job_for_user(user=user, job_id=store_data(store).get("job_id")), click, figure)


@app.callback(
    Output(f"{SCATTER}-download", "data"), Input(f"{SCATTER}-csv", "n_clicks"),
    State(STORE_ID, "data"), State(METHOD_ID, "value"), State(COLOUR_ID, "value"),
    prevent_initial_call=True,
)
def download(_clicks: Any, store: Any, method: Any, by: Any, user: User = None) -> dict:
    job = job_for_user(user=user, job_id=store_data(store).get("job_id"))
    name = f"job-{job.pk}-embeddings.csv" if job else "embeddings.csv"
    return csv_download(view(job, method, by)[0], filename=name)


attention.register(app, click_source=SCATTER)
