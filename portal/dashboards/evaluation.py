"""Evaluation (job page): how the trained model does on the test split, baseline and optimized overlaid.

- classification: confusion matrix (counts, coloured by the row share), ROC and precision-recall
  curves with their AUCs (average precision, as ``mlcore.metrics.pr_auc``), calibration curve;
- regression: parity plot with the identity line, residuals against the target, error histogram
  (one target column at a time for multi-target jobs);
- per-token tasks: accuracy per class;
- several binary labels per record (``y_true`` / ``proba`` of shape (N, K), NaN = missing label): ROC
  and precision-recall curves per label and their mean, calibration over every known label.

Which views a job gets is decided by its target kind's catalog metadata (``TargetKind.evaluation_plots``,
``evaluation_per_target`` for the target column choice), never by the kind's name.

Drawn from the per-record arrays the worker stored (PREDICTIONS ``evaluation.npz`` and, when the
job has an optimization profile, ``evaluation-optimized.npz``; see ``mlcore.explain``): no model
runs here, the numbers are numpy / scikit-learn on those arrays.

Ids (stable, for browser tests): ``evaluation-status``, ``evaluation-summary`` (a table of numbers),
``evaluation-target`` (target column), figures ``evaluation-confusion``, ``evaluation-roc``,
``evaluation-pr``, ``evaluation-calibration``, ``evaluation-parity``, ``evaluation-residuals``,
``evaluation-errors``, ``evaluation-token-accuracy`` (each in a ``<id>-box`` shown only when it
applies, with ``<id>-csv`` / ``<id>-download``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html
from plotly.subplots import make_subplots
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from mlcore.catalog import TARGET_KINDS
from portal.dashboards._explain_data import explain_artifacts, npz_arrays
from portal.dashboards.common import (
    BASE_STYLE,
    COLORWAY,
    CONTINUOUS_SCALE,
    CONTROLS_STYLE,
    DASHES,
    STORE_ID,
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

APP_NAME = "evaluation"

STATUS_ID = "evaluation-status"
SUMMARY_ID = "evaluation-summary"
TARGET_ID = "evaluation-target"
CONFUSION = "evaluation-confusion"
ROC = "evaluation-roc"
PR = "evaluation-pr"
CALIBRATION = "evaluation-calibration"
PARITY = "evaluation-parity"
RESIDUALS = "evaluation-residuals"
ERRORS = "evaluation-errors"
TOKEN_ACCURACY = "evaluation-token-accuracy"
CLASSIFICATION_FIGURES = (CONFUSION, ROC, PR, CALIBRATION)
REGRESSION_FIGURES = (PARITY, RESIDUALS, ERRORS)
TOKEN_FIGURES = (TOKEN_ACCURACY,)
FIGURES = (*CLASSIFICATION_FIGURES, *REGRESSION_FIGURES, *TOKEN_FIGURES)
# The catalog's evaluation plot names (`TargetKind.evaluation_plots`) -> this page's figure ids.
PLOT_FIGURES = {"confusion": CONFUSION, "roc": ROC, "pr": PR, "calibration": CALIBRATION, "parity": PARITY,
                "residuals": RESIDUALS, "errors": ERRORS, "token_accuracy": TOKEN_ACCURACY}

CALIBRATION_BINS = 10
MAX_CURVE_CLASSES = 10
MAX_SCATTER = 5000
NOT_FOUND = "Job not found, or you may not see it."


# --- the numbers -----------------------------------------------------------------------------------


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) counts: row = true class, column = predicted class."""
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return m


@dataclass
class Curve:
    name: str
    x: np.ndarray
    y: np.ndarray
    auc: float


def roc_pr(y: np.ndarray, score: np.ndarray) -> tuple[Curve, Curve] | None:
    """ROC (fpr, tpr, AUC) and precision-recall (recall, precision, average precision) of a binary
    problem; None when only one class is present (both curves undefined)."""
    y = np.asarray(y).astype(bool)
    if y.all() or not y.any():
        return None
    fpr, tpr, _ = roc_curve(y, score)
    precision, recall, _ = precision_recall_curve(y, score)
    return (Curve("roc", fpr, tpr, float(roc_auc_score(y, score))),
            Curve("pr", recall, precision, float(average_precision_score(y, score))))


def calibration(hit: np.ndarray, prob: np.ndarray,
                bins: int = CALIBRATION_BINS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Uniform bins of predicted probability: (mean predicted, observed frequency, count) per
    non-empty bin."""
    prob = np.asarray(prob, dtype=np.float64)
    hit = np.asarray(hit, dtype=np.float64)
    which = np.clip((prob * bins).astype(int), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    mean_p = np.bincount(which, weights=prob, minlength=bins)
    freq = np.bincount(which, weights=hit, minlength=bins)
    keep = counts > 0
    return mean_p[keep] / counts[keep], freq[keep] / counts[keep], counts[keep]


def per_class_accuracy(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Per true class, the share of its tokens predicted right (NaN for a class with no tokens)."""
    m = confusion(y_true, y_pred, n_classes)
    totals = m.sum(axis=1)
    return np.divide(np.diag(m).astype(float), totals, out=np.full(n_classes, np.nan), where=totals > 0)


def regression_numbers(t: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R² over the records whose target is known."""
    keep = np.isfinite(t) & np.isfinite(p)
    t, p = t[keep], p[keep]
    if len(t) == 0:
        return {"n": 0, "rmse": float("nan"), "mae": float("nan"), "r2": float("nan")}
    err = p - t
    ss_tot = float(((t - t.mean()) ** 2).sum())
    return {"n": int(len(t)), "rmse": float(np.sqrt((err ** 2).mean())), "mae": float(np.abs(err).mean()),
            "r2": 1 - float((err ** 2).sum()) / ss_tot if ss_tot > 0 else float("nan")}


@dataclass
class Variant:
    key: str  # baseline | optimized
    label: str  # "Baseline" / "Optimized (int8)"
    kind: str
    classes: list[str]
    target_cols: list[str]
    arrays: dict[str, np.ndarray]


def variants(job: Job) -> list[Variant]:
    """The job's stored evaluation arrays, baseline first."""
    out = []
    stored = explain_artifacts(job).evaluation
    for key in ("baseline", "optimized"):
        artifact = stored.get(key)
        if artifact is None:
            continue
        meta = artifact.metadata or {}
        label = "Baseline" if key == "baseline" else f"Optimized ({meta.get('profile') or job.profile_key})"
        out.append(Variant(key=key, label=label, kind=str(meta.get("kind")),
                           classes=[str(c) for c in meta.get("classes") or []],
                           target_cols=[str(c) for c in meta.get("target_cols") or []], arrays=npz_arrays(artifact)))
    return out


# --- figures ---------------------------------------------------------------------------------------


def _line(i: int) -> dict:
    return {"color": COLORWAY[i % len(COLORWAY)], "dash": DASHES[i % len(DASHES)], "width": 2}


def _confusion_figure(vs: list[Variant]) -> go.Figure:
    """One matrix per variant side by side, sharing the true-class axis (its labels and title once, on
    the left), apart enough that no title or label of one sits over the other; the colour bar (viridis,
    dark to light, readable in greyscale) on the right with its title along it."""
    classes = vs[0].classes
    longest = max((len(str(c)) for c in classes), default=1)
    spacing = 0.06 if len(vs) > 1 else 0.0
    fig = make_subplots(rows=1, cols=len(vs), subplot_titles=[v.label for v in vs], shared_yaxes=True,
                        horizontal_spacing=spacing)
    for col, v in enumerate(vs, start=1):
        m = confusion(v.arrays["y_true"], v.arrays["y_pred"], len(classes))
        share = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
        fig.add_trace(go.Heatmap(
            z=share, x=classes, y=classes, text=m, texttemplate="%{text}", colorscale=CONTINUOUS_SCALE, zmin=0, zmax=1,
            name=v.label, showscale=col == 1,
            colorbar={"title": {"text": "Share of the true class (0–1)", "side": "right"}, "thickness": 14},
            hovertemplate=("true %{y}, predicted %{x}<br>%{text} records (%{z:.1%} of the class)"
                           f"<extra>{v.label}</extra>"),
        ), row=1, col=col)
        fig.update_xaxes(title_text="Predicted class", type="category", tickangle=-45 if longest > 4 else 0,
                         row=1, col=col)
        fig.update_yaxes(type="category", autorange="reversed", row=1, col=col,
                         title_text="True class" if col == 1 else None, showticklabels=col == 1)
    style_figure(fig, title="Confusion matrix (test split)", height=max(380, 40 * len(classes) + 220), legend=False)
    # Subplot titles sit a little above their matrix, clear of the figure title.
    fig.update_annotations(yshift=4, font={"size": 13})
    return fig


def several_labels(v: Variant) -> bool:
    """Several binary labels per record: `y_true` and `proba` are (N, K), NaN marking a missing label."""
    return np.asarray(v.arrays["y_true"]).ndim == 2


def binary_problems(v: Variant) -> list[tuple[str | None, np.ndarray, np.ndarray]]:
    """(class or label, hit, score) per binary problem the curves are drawn for: the positive class of
    two, each class against the rest, or each label over the records where it is known."""
    y, proba = v.arrays["y_true"], v.arrays["proba"]
    if several_labels(v):
        names = v.target_cols or [str(j) for j in range(y.shape[1])]
        out = []
        for j, name in enumerate(names):
            known = np.isfinite(y[:, j])
            out.append((name, y[known, j] == 1, proba[known, j]))
        return out
    if len(v.classes) == 2:
        return [(None, y == 1, proba[:, 1])]
    return [(c, y == j, proba[:, j]) for j, c in enumerate(v.classes)]


def accuracy(v: Variant) -> float:
    """Share of right predictions (of the known labels, when a record has several)."""
    t, p = np.asarray(v.arrays["y_true"], dtype=np.float64), np.asarray(v.arrays["y_pred"], dtype=np.float64)
    known = np.isfinite(t)
    return float((t[known] == p[known]).mean()) if known.any() else float("nan")


def _curves(vs: list[Variant]) -> tuple[go.Figure, go.Figure, list[dict[str, Any]]]:
    roc, pr = go.Figure(), go.Figure()
    rows: list[dict[str, Any]] = []
    i = 0
    for v in vs:
        for n_class, (cls, hit, score) in enumerate(binary_problems(v)):
            result = roc_pr(hit, score)
            if cls is None:
                name = v.label
            else:
                name = f"{v.label}: {cls}" if several_labels(v) else f"{v.label}: class {cls} vs rest"
            if result is None:
                continue
            r, p = result
            rows.append({"variant": v.label, "class": cls, "roc_auc": r.auc, "pr_auc": p.auc})
            if n_class >= MAX_CURVE_CLASSES:  # the AUC counts in the summary; the figure stays readable
                continue
            roc.add_trace(go.Scatter(x=r.x, y=r.y, mode="lines", name=f"{name} (AUC {r.auc:.3f})", line=_line(i)))
            pr.add_trace(go.Scatter(x=p.x, y=p.y, mode="lines", name=f"{name} (AP {p.auc:.3f})", line=_line(i),
                                    line_shape="hv"))
            i += 1
    roc.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"color": "#999", "dash": "dot"}))
    style_figure(roc, x_title="False positive rate (0–1)", y_title="True positive rate (0–1)", title="ROC curve",
                 height=380)
    style_figure(pr, x_title="Recall (0–1)", y_title="Precision (0–1)", title="Precision–recall curve", height=380)
    for fig in (roc, pr):
        fig.update_xaxes(range=[0, 1])
        fig.update_yaxes(range=[0, 1.02])
    return roc, pr, rows


def _calibration_figure(vs: list[Variant]) -> go.Figure:
    fig = go.Figure()
    pooled = several_labels(vs[0])
    binary = len(vs[0].classes) == 2 and not pooled
    for i, v in enumerate(vs):
        y, proba = v.arrays["y_true"], v.arrays["proba"]
        if pooled:  # every known label of every record: predicted probability against the truth
            known = np.isfinite(y)
            mean_p, freq, counts = calibration(y[known] == 1, proba[known])
        elif binary:
            mean_p, freq, counts = calibration(y == 1, proba[:, 1])
        else:
            mean_p, freq, counts = calibration(proba.argmax(axis=1) == y, proba.max(axis=1))
        fig.add_trace(go.Scatter(x=mean_p, y=freq, mode="lines+markers", name=v.label, line=_line(i), customdata=counts,
                                 hovertemplate=("predicted %{x:.3f}<br>observed %{y:.3f}<br>"
                                                "%{customdata} records<extra></extra>")))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                             line={"color": "#999", "dash": "dot"}))
    x_title = (f"Predicted probability of class {vs[0].classes[1]} (0–1)" if binary
               else "Predicted probability of a label, every label (0–1)" if pooled
               else "Confidence: top class probability (0–1)")
    y_title = "Observed frequency (0–1)" if binary or pooled else "Accuracy in the bin (0–1)"
    style_figure(fig, x_title=x_title, y_title=y_title, title=f"Calibration ({CALIBRATION_BINS} equal-width bins)",
                 height=380)
    fig.update_xaxes(range=[0, 1])
    fig.update_yaxes(range=[0, 1.02])
    return fig


def _thin(n: int, limit: int = MAX_SCATTER) -> np.ndarray:
    return np.arange(n) if n <= limit else np.linspace(0, n - 1, limit).round().astype(int)


def _regression_figures(vs: list[Variant], column: int) -> tuple[dict[str, go.Figure], list[dict[str, Any]]]:
    parity, residuals, errors = go.Figure(), go.Figure(), go.Figure()
    rows = []
    name = (vs[0].target_cols or ["target"])[min(column, max(0, len(vs[0].target_cols) - 1))]
    lo, hi = np.inf, -np.inf
    for i, v in enumerate(vs):
        t = np.asarray(v.arrays["y_true"], dtype=np.float64)[:, column]
        p = np.asarray(v.arrays["y_pred"], dtype=np.float64)[:, column]
        keep = np.isfinite(t) & np.isfinite(p)
        t, p = t[keep], p[keep]
        rows.append({"variant": v.label, **regression_numbers(t, p)})
        if len(t):
            lo, hi = min(lo, t.min(), p.min()), max(hi, t.max(), p.max())
        shown = _thin(len(t))
        marker = {"size": 6, "opacity": 0.7, "color": COLORWAY[i % len(COLORWAY)], "symbol": ["circle", "x"][i % 2]}
        parity.add_trace(go.Scattergl(x=t[shown], y=p[shown], mode="markers", name=v.label, marker=marker))
        residuals.add_trace(go.Scattergl(x=t[shown], y=(p - t)[shown], mode="markers", name=v.label, marker=marker))
        errors.add_trace(go.Histogram(x=p - t, name=v.label, opacity=0.6,
                                      marker={"color": COLORWAY[i % len(COLORWAY)]}))
    if np.isfinite(lo):
        parity.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="identity (perfect)",
                                    line={"color": "#555", "dash": "dash"}))
        residuals.add_trace(go.Scatter(x=[lo, hi], y=[0, 0], mode="lines", name="zero residual",
                                       line={"color": "#555", "dash": "dash"}))
    unit = f"{name} (target units)"
    style_figure(parity, x_title=f"True {unit}", y_title=f"Predicted {unit}", title="Parity plot", height=400)
    style_figure(residuals, x_title=f"True {unit}", y_title=f"Residual: predicted − true, {unit}",
                 title="Residuals against the target", height=380)
    style_figure(errors, x_title=f"Error: predicted − true, {unit}", y_title="Records (count)",
                 title="Error histogram", height=340)
    errors.update_layout(barmode="overlay")
    return {PARITY: parity, RESIDUALS: residuals, ERRORS: errors}, rows


def _token_figure(vs: list[Variant]) -> tuple[go.Figure, list[dict[str, Any]]]:
    fig = go.Figure()
    rows = []
    classes = vs[0].classes
    for i, v in enumerate(vs):
        y, p = v.arrays["y_true"], v.arrays["y_pred"]
        acc = per_class_accuracy(y, p, len(classes))
        counts = np.bincount(y, minlength=len(classes)) if len(y) else np.zeros(len(classes), dtype=int)
        rows.append({"variant": v.label, "token_accuracy": float((y == p).mean()) if len(y) else float("nan"),
                     **{f"class {c}": float(a) for c, a in zip(classes, acc)}})
        fig.add_trace(go.Bar(x=classes, y=acc, name=v.label, customdata=counts,
                             marker={"color": COLORWAY[i % len(COLORWAY)]},
                             hovertemplate="class %{x}: %{y:.3f}<br>%{customdata} tokens<extra></extra>"))
    style_figure(fig, x_title="True token class", y_title="Share of the class's tokens predicted right (0–1)",
                 title="Per-class accuracy (per-token task)", height=360)
    fig.update_layout(barmode="group")
    fig.update_yaxes(range=[0, 1.02])
    return fig, rows


@dataclass
class Evaluation:
    figures: dict[str, go.Figure]
    shown: set[str]
    summary: list[dict[str, Any]]
    status: str


def evaluate(job: Job | None, column: Any = 0) -> Evaluation:
    """Every figure (the ones that do not apply are empty and hidden) and the summary rows."""
    if job is None:
        nothing = empty_figure(NOT_FOUND)
        return Evaluation({f: nothing for f in FIGURES}, set(), [], NOT_FOUND)
    vs = variants(job)
    if not vs:
        message = ("No per-record predictions were stored for this job." if job.is_finished
                   else "The evaluation appears when the job has finished.")
        return Evaluation({f: empty_figure(message) for f in FIGURES}, set(), [], message)
    kind = vs[0].kind
    vs = [v for v in vs if v.kind == kind]
    figures: dict[str, go.Figure] = {}
    meta = TARGET_KINDS.get(kind)
    plots = set(meta.evaluation_plots) if meta is not None else set()
    if not plots:
        return Evaluation({f: empty_figure(f"No evaluation views for {kind}.") for f in FIGURES}, set(), [], kind)
    rows: list[dict[str, Any]] = []
    if "confusion" in plots:
        figures[CONFUSION] = _confusion_figure(vs)
    if plots & {"roc", "pr"}:
        roc, pr, curve_rows = _curves(vs)
        for plot, fig in (("roc", roc), ("pr", pr)):
            if plot in plots:
                figures[PLOT_FIGURES[plot]] = fig
        for v in vs:
            mine = [r for r in curve_rows if r["variant"] == v.label]
            rows.append({
                "variant": v.label, "accuracy": accuracy(v),
                # Binary: the positive class's; multiclass: the mean over every class's one-vs-rest
                # curve where defined (as mlcore.metrics does); several labels: the mean over labels.
                "roc_auc": float(np.mean([r["roc_auc"] for r in mine])) if mine else float("nan"),
                "pr_auc": float(np.mean([r["pr_auc"] for r in mine])) if mine else float("nan"),
            })
    if "calibration" in plots:
        figures[CALIBRATION] = _calibration_figure(vs)
    if plots & {"parity", "residuals", "errors"}:
        n_cols = vs[0].arrays["y_true"].shape[1]
        col = int(column) if str(column).isdigit() and int(column) < n_cols else 0
        built, value_rows = _regression_figures(vs, col)
        figures.update({f: fig for f, fig in built.items() if f in {PLOT_FIGURES[p] for p in plots}})
        rows += value_rows
    if "token_accuracy" in plots:
        figures[TOKEN_ACCURACY], token_rows = _token_figure(vs)
        rows += token_rows
    shown = set(figures)
    for f in FIGURES:
        figures.setdefault(f, empty_figure("Not applicable to this task."))
    arrays = vs[0].arrays
    n = len(arrays["offsets"]) - 1 if "offsets" in arrays else len(arrays["y_true"])
    status = f"{n} test records · " + " and ".join(v.label for v in vs)
    return Evaluation(figures, shown, rows, status)


def summary_table(rows: list[dict[str, Any]]) -> Any:
    if not rows:
        return ""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "–" if not np.isfinite(value) else f"{value:.4g}"
        return "" if value is None else str(value)

    return html.Table(
        style={"borderCollapse": "collapse", "fontSize": "13px", "margin": "6px 0"},
        children=[
            html.Thead(html.Tr([html.Th(c, style={"textAlign": "left", "padding": "2px 10px",
                                                  "borderBottom": "1px solid #adb5bd"}) for c in columns])),
            html.Tbody([html.Tr([html.Td(cell(row.get(c)), style={"padding": "2px 10px"}) for c in columns])
                        for row in rows]),
        ],
    )


def target_options(job: Job | None) -> list[dict]:
    if job is None:
        return []
    vs = variants(job)
    meta = TARGET_KINDS.get(vs[0].kind) if vs else None
    if meta is None or not meta.evaluation_per_target:
        return []
    return [{"label": c, "value": i} for i, c in enumerate(vs[0].target_cols or ["target"])]


# --- layout and callbacks --------------------------------------------------------------------------


def _box(figure_id: str, filename: str, height: int) -> html.Div:
    return html.Div(id=f"{figure_id}-box", style=box_style(figure_id, False),
                    children=[graph(figure_id, filename=filename, height=height)])


FULL_WIDTH = (CONFUSION,)  # figures with a grid row of their own (two matrices side by side)


def box_style(figure_id: str, shown: bool) -> dict[str, str]:
    """The style of a figure's box: hidden unless it applies; a full grid row for ``FULL_WIDTH``."""
    style = {"display": "block" if shown else "none"}
    if figure_id in FULL_WIDTH:
        style["gridColumn"] = "1 / -1"
    return style


app = DashboardApp(APP_NAME, title="Evaluation")
app.layout = html.Div(
    style=BASE_STYLE,
    children=[
        dcc.Store(id=STORE_ID, data={}),
        html.Div(id=STATUS_ID, className="lf-status", children="Loading…"),
        html.Div(id=SUMMARY_ID, children=""),
        html.Div(style=CONTROLS_STYLE, children=[
            html.Div(id=f"{TARGET_ID}-box", style={"display": "none"}, children=[
                control("Target column", dcc.Dropdown(id=TARGET_ID, options=[], value=0, clearable=False)),
            ]),
        ]),
        html.Div(className="lf-grid", children=[
            _box(CONFUSION, "confusion-matrix", 380), _box(ROC, "roc-curve", 380), _box(PR, "pr-curve", 380),
            _box(CALIBRATION, "calibration", 380), _box(PARITY, "parity", 400), _box(RESIDUALS, "residuals", 380),
            _box(ERRORS, "error-histogram", 340), _box(TOKEN_ACCURACY, "per-class-accuracy", 360),
        ]),
    ],
)


@app.callback(Output(TARGET_ID, "options"), Output(f"{TARGET_ID}-box", "style"), Input(STORE_ID, "data"))
def targets(store: Any, user: User = None) -> tuple:
    options = target_options(job_for_user(user=user, job_id=store_data(store).get("job_id")))
    return options, {"display": "block" if len(options) > 1 else "none"}


@app.callback(
    *[Output(f, "figure") for f in FIGURES], *[Output(f"{f}-box", "style") for f in FIGURES],
    Output(SUMMARY_ID, "children"), Output(STATUS_ID, "children"),
    Input(STORE_ID, "data"), Input(TARGET_ID, "value"),
)
def refresh(store: Any, column: Any, user: User = None) -> tuple:
    job = job_for_user(user=user, job_id=store_data(store).get("job_id"))
    result = evaluate(job, column)
    styles = [box_style(f, f in result.shown) for f in FIGURES]
    return (*[result.figures[f] for f in FIGURES], *styles, summary_table(result.summary), result.status)


def _register_download(figure_id: str) -> None:
    @app.callback(
        Output(f"{figure_id}-download", "data"), Input(f"{figure_id}-csv", "n_clicks"),
        State(STORE_ID, "data"), State(TARGET_ID, "value"), prevent_initial_call=True,
    )
    def download(_clicks: Any, store: Any, column: Any, user: User = None) -> dict:
        job = job_for_user(user=user, job_id=store_data(store).get("job_id"))
        name = f"job-{job.pk}-{figure_id}.csv" if job else f"{figure_id}.csv"
        return csv_download(evaluate(job, column).figures[figure_id], filename=name)


for _figure in FIGURES:
    _register_download(_figure)
