"""Compression trade-offs (dataset page and catalog): for every job the user may see on one dataset
and task, the primary test metric against latency and against size on disk, one point per job and
profile, the Pareto front drawn (in the latency graph one per hardware), hover with the job's config,
filtered by preset and hardware.

Where the numbers come from: a job run with an optimization profile stores the compression report
(``Result.compression_report``, ``mlcore.compress.report.CompressionReport.to_dict()``): the baseline
model and the optimized model of the same job measured side by side on the same machine
(``baseline`` / ``optimized``: ``metrics``, ``bytes``, ``latency_ms_b1``, ``latency_ms_b32``, ...).
So each such job gives two points, ``baseline`` and its profile. A job trained on a GPU also
carries the same latency comparison on that GPU (``report["gpu"]``): its two models are drawn a
second time in the latency graph, with the GPU's latencies and the GPU's name as hardware (not in
the size graph, where they would only repeat the CPU points). A job run with the ``baseline``
profile measures no latency or size and is counted, not drawn.

Timings that never became stable (the report's ``timing.stable`` false: the machine was too busy
for the spread of the repeated timings to settle, ``mlcore.compress.report``) are drawn hollow with
their spread in the hover, and kept out of the latency graph's Pareto front unless the
``noisy-toggle`` is ticked: a model that looks fast only because the baseline was timed during a
load spike must not set the front. Size is not a timing: every point counts in the size front.

The store holds ``{"dataset_id": ..., "task": ...}`` (either may be missing: the dashboard then
offers the dataset/task pairs the user has trade-offs for, defaulting to the most common among
``job_ids`` when the catalog passes them).

Ids: ``pair-select`` (dataset and task), ``preset-filter``, ``hardware-filter``, ``batch-select``
(latency at batch 1 or 32), ``noisy-toggle``, ``latency-graph``, ``size-graph``, ``tradeoff-note``,
``<graph>-csv`` / ``<graph>-download``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html
from django.db.models import Count
from mlcore.catalog import PROFILES, TASKS
from portal.dashboards.common import (
    BASE_STYLE,
    COLORWAY,
    CONTROLS_STYLE,
    STORE_ID,
    SYMBOLS,
    User,
    as_id,
    DashboardApp,
    control,
    csv_download,
    dataset_for_user,
    empty_figure,
    graph,
    job_result,
    metric_label,
    store_data,
    style_figure,
)
from portal.jobs.models import Job
from portal.jobs.selectors import job_list_for_user

APP_NAME = "tradeoffs"
MAX_JOBS = 500  # newest first; a dataset with more compressed jobs shows the newest 500

PAIR_SELECT = "pair-select"
PRESET_FILTER = "preset-filter"
HARDWARE_FILTER = "hardware-filter"
BATCH_SELECT = "batch-select"
NOISY_TOGGLE = "noisy-toggle"
NOISY_IN_FRONT = "include"  # the toggle's value when unstable timings may set the latency front
LATENCY_GRAPH = "latency-graph"
SIZE_GRAPH = "size-graph"
NOTE_ID = "tradeoff-note"

PROFILE_ORDER = list(PROFILES)
HYPER_SHOWN = ("lr", "batch_size", "epochs", "dropout", "weight_decay", "max_len")


# --- data ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TradeoffPoint:
    job_id: int
    job_label: str
    profile: str  # "baseline" for the job's reference model, else the profile applied
    preset: str
    hardware: str
    metric: float
    latency_ms_b1: float | None
    latency_ms_b32: float | None
    size_mb: float | None
    config: str  # hover text: the job's configuration in one short block
    stable: bool = True  # its latencies became stable (reports from before stability was checked count as stable)
    spread: float | None = None  # the largest relative spread of its timings, when recorded

    def latency(self, batch: int) -> float | None:
        return self.latency_ms_b1 if batch == 1 else self.latency_ms_b32


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def hardware_label(report: dict, job: Job) -> str:
    """Where the report was measured: device, worker machine and torch threads."""
    device = str(report.get("device") or job.device or "cpu")
    parts = [device]
    if job.worker_hostname:
        parts.append(job.worker_hostname)
    threads = report.get("threads")
    label = " · ".join(parts)
    return f"{label} ({threads} threads)" if isinstance(threads, int) and threads > 0 else label


def config_text(job: Job, profile: str) -> str:
    hyper = job.config.get("hyperparameters") or {}
    shown = ", ".join(f"{k}={hyper[k]}" for k in HYPER_SHOWN if k in hyper)
    return (
        f"job #{job.pk} {job.name or ''}".rstrip()
        + f"<br>model: {profile} (job profile {job.profile_key})"
        + f"<br>preset {job.config.get('preset', '?')}; {shown}"
    )


def points_for_job(job: Job, report: dict) -> tuple[str, bool, list[TradeoffPoint]]:
    """The two points of one job's compression report (baseline and optimized), with the report's
    primary metric and its direction, plus the same two with GPU latencies when the report has a
    `gpu` block (module docstring). Sides whose metric is missing are skipped."""
    metric = str(report.get("primary_metric") or "")
    greater = bool(report.get("greater_is_better", True))
    profile = str(report.get("profile") or job.profile_key)
    gpu = report.get("gpu") if isinstance(report.get("gpu"), dict) else {}
    timings = [(hardware_label(report, job), report)]  # (hardware, block holding `baseline` / `optimized`)
    if gpu:
        timings.append((" · ".join([str(gpu.get("device") or "GPU"), *filter(None, [job.worker_hostname])]), gpu))
    preset = str(job.config.get("preset", ""))
    label = job.name or f"#{job.pk}"
    points = []
    sides = [("baseline", "baseline"), ("optimized", profile)]
    if isinstance(report.get("info"), dict) and report["info"].get("unchanged"):
        sides = sides[:1]  # a baseline job's report: its optimized model is the baseline itself, one point
    for side, side_profile in sides:
        stats = report.get(side)
        if not isinstance(stats, dict):
            continue
        value = _finite((stats.get("metrics") or {}).get(metric))
        if value is None:
            continue
        size = _finite(stats.get("bytes"))
        for hardware, block in timings:
            timing = block.get(side)
            if not isinstance(timing, dict):
                continue
            conditions = block.get("timing") if isinstance(block.get("timing"), dict) else {}
            points.append(
                TradeoffPoint(
                    job_id=job.pk, job_label=label, profile=side_profile, preset=preset, hardware=hardware,
                    metric=value, latency_ms_b1=_finite(timing.get("latency_ms_b1")),
                    latency_ms_b32=_finite(timing.get("latency_ms_b32")),
                    # size does not depend on the hardware: only the CPU point carries it
                    size_mb=None if size is None or block is gpu else size / 1e6,
                    config=config_text(job, side_profile),
                    stable=conditions.get("stable") is not False, spread=_finite(conditions.get("max_spread")),
                )
            )
    return metric, greater, points


@dataclass
class TradeoffData:
    metric: str
    greater_is_better: bool
    points: list[TradeoffPoint]
    unmeasured_jobs: int  # succeeded jobs without a compression report (baseline jobs run before baseline reports)


def tradeoff_data(jobs: list[Job], *, task: str) -> TradeoffData:
    t = TASKS.get(task)
    metric, greater = (t.primary_metric, t.greater_is_better) if t else ("", True)
    points: list[TradeoffPoint] = []
    unmeasured = 0
    metrics_seen: Counter[str] = Counter()
    per_job = []
    for job in jobs:
        result = job_result(job)
        report = result.compression_report if result is not None else None
        if not isinstance(report, dict) or not report.get("baseline"):
            unmeasured += 1
            continue
        job_metric, job_greater, job_points = points_for_job(job, report)
        metrics_seen[job_metric] += 1
        per_job.append((job_metric, job_greater, job_points))
    if metrics_seen:
        # A classification task on a multi-class dataset is judged by another metric than the
        # task's default: use what the reports say, the most common if they differ.
        metric = metrics_seen.most_common(1)[0][0]
    for job_metric, job_greater, job_points in per_job:
        if job_metric == metric:
            greater = job_greater
            points.extend(job_points)
    return TradeoffData(metric=metric, greater_is_better=greater, points=points, unmeasured_jobs=unmeasured)


def pareto_front(points: list[tuple[float, float]], *, maximize_y: bool) -> list[int]:
    """Indices of the points no other point beats on both axes (smaller x, better y), ordered by x.

    A point is dominated when another is at least as good on both axes and strictly better on one;
    of exact duplicates one is kept.
    """
    sign = -1.0 if maximize_y else 1.0  # turn "better y" into "smaller key"
    order = sorted(range(len(points)), key=lambda i: (points[i][0], sign * points[i][1]))
    front: list[int] = []
    best = math.inf
    for i in order:
        key = sign * points[i][1]
        if key < best:
            front.append(i)
            best = key
    return front


def filter_points(points: list[TradeoffPoint], *, presets: Any, hardware: Any) -> list[TradeoffPoint]:
    presets = set(presets) if isinstance(presets, list) and presets else None
    hardware = set(hardware) if isinstance(hardware, list) and hardware else None
    return [
        p for p in points
        if (presets is None or p.preset in presets) and (hardware is None or p.hardware in hardware)
    ]


# --- loading ---------------------------------------------------------------------------------------


def pair_options(user: User, *, job_ids: Any = None) -> tuple[list[dict[str, str]], str | None]:
    """(dataset, task) pairs with at least one compression report among the jobs ``user`` may see,
    most reports first; and the pair most common among ``job_ids`` (the catalog's listing)."""
    if user is None:
        return [], None
    rows = (
        job_list_for_user(user=user)
        .filter(status=Job.Status.SUCCEEDED, result__isnull=False)
        .exclude(result__compression_report={})
        .values("dataset_id", "dataset__name", "dataset__version", "task_key")
        .annotate(n=Count("id"))
        .order_by("-n", "dataset__name", "task_key")[:200]
    )
    options = [
        {
            "label": f"{r['dataset__name']} v{r['dataset__version']} · {r['task_key']} ({r['n']} job(s))",
            "value": f"{r['dataset_id']}:{r['task_key']}",
        }
        for r in rows
    ]
    default = None
    if isinstance(job_ids, list) and job_ids:
        pks = [pk for pk in (as_id(v) for v in job_ids[:1000]) if pk is not None]
        common = (
            job_list_for_user(user=user).filter(pk__in=pks).exclude(result__compression_report={})
            .filter(result__isnull=False).values("dataset_id", "task_key").annotate(n=Count("id")).order_by("-n")[:1]
        )
        for r in common:
            default = f"{r['dataset_id']}:{r['task_key']}"
    if default is None and options:
        default = options[0]["value"]
    return options, default


def parse_pair(value: Any) -> tuple[int | None, str | None]:
    if not isinstance(value, str) or ":" not in value:
        return None, None
    dataset, _, task = value.partition(":")
    return as_id(dataset), (task if task in TASKS else None)


def load(user: User, pair: Any) -> tuple[str, TradeoffData] | None:
    """The dataset's title and the trade-off data for the pair, or None when the dataset is not
    visible to ``user`` (or the pair is malformed)."""
    dataset_id, task = parse_pair(pair)
    dataset = dataset_for_user(user=user, dataset_id=dataset_id)
    if dataset is None or task is None:
        return None
    jobs = list(
        job_list_for_user(user=user)
        .filter(dataset=dataset, task_key=task, status=Job.Status.SUCCEEDED)
        .select_related("result")
        .order_by("-created_at", "-id")[:MAX_JOBS]
    )
    return f"{dataset.name} v{dataset.version} · {task}", tradeoff_data(jobs, task=task)


# --- figures ---------------------------------------------------------------------------------------


NO_DATA = (
    "No compression reports here yet: launch a job with an optimization profile "
    "(int8, slim, pruned, distilled, compact, mixed precision) to measure its trade-offs."
)


def _hover(p: TradeoffPoint) -> str:
    if p.stable:
        return p.config
    spread = f" (spread {p.spread:.0%} of the median)" if p.spread is not None else ""
    return f"{p.config}<br><b>timing not stable{spread}</b>"


def tradeoff_figure(data: TradeoffData, points: list[TradeoffPoint], *, axis: str, batch: int,
                    noisy_in_front: bool = False) -> go.Figure:
    """Metric against latency (``axis="latency"``) or size on disk (``axis="size"``).

    Points whose timing is not stable are drawn hollow; in the latency graph they are left out of the
    Pareto front unless ``noisy_in_front``."""
    def x_of(p: TradeoffPoint) -> float | None:
        return p.latency(batch) if axis == "latency" else p.size_mb

    x_column = f"latency_ms_b{batch}" if axis == "latency" else "size_mb"
    drawn = [p for p in points if x_of(p) is not None]
    if not drawn:
        return empty_figure(NO_DATA if not data.points else "No point matches these filters.")
    fig = go.Figure()
    profiles = [p for p in PROFILE_ORDER if any(q.profile == p for q in drawn)]
    profiles += sorted({q.profile for q in drawn} - set(profiles))
    for i, profile in enumerate(profiles):
        group = [p for p in drawn if p.profile == profile]
        fig.add_trace(
            go.Scatter(
                x=[x_of(p) for p in group],
                y=[p.metric for p in group],
                mode="markers",
                name=profile,
                marker={
                    "symbol": [SYMBOLS[i % len(SYMBOLS)] + ("" if p.stable else "-open") for p in group],
                    "size": 11, "color": COLORWAY[i % len(COLORWAY)], "line": {"width": 1, "color": "#333"},
                },
                customdata=[[p.job_id, p.preset, p.hardware] for p in group],
                meta={"x": x_column, "y": data.metric, "customdata": ["job", "preset", "hardware"]},
                hovertext=[_hover(p) for p in group],
                hovertemplate="%{hovertext}<br>%{customdata[2]}<br>x %{x:.4g}, metric %{y:.4g}<extra>%{fullData.name}</extra>",
            )
        )
    # Size does not depend on the machine: one front. Latency does: one front per hardware, so a
    # GPU's times never hide the models that are best on a CPU (and one CPU's never hide another's).
    hardware = sorted({p.hardware for p in drawn}) if axis == "latency" else [None]
    trusted = [p for p in drawn if p.stable or noisy_in_front or axis != "latency"]
    for k, hw in enumerate(hardware):
        pairs = [(x_of(p), p.metric) for p in trusted if hw is None or p.hardware == hw]
        if not pairs:
            continue  # every point of this hardware was timed unsteadily
        front = pareto_front(pairs, maximize_y=data.greater_is_better)  # type: ignore[arg-type]
        fig.add_trace(
            go.Scatter(
                x=[pairs[i][0] for i in front],
                y=[pairs[i][1] for i in front],
                mode="lines",
                name="Pareto front" if len(hardware) == 1 else f"Pareto front, {hw}",
                meta={"x": x_column, "y": data.metric},
                line={"shape": "hv", "dash": ("dash", "dot", "dashdot", "longdash")[k % 4], "color": "#222",
                      "width": 1.5},
                hoverinfo="skip",
            )
        )
    if axis == "latency":
        x_title = f"Latency (ms per record, batch {batch})"
        title = f"{data.metric} against latency"
    else:
        x_title = "Size on disk (MB, weights file)"
        title = f"{data.metric} against size"
    better = "higher is better" if data.greater_is_better else "lower is better"
    style_figure(fig, x_title=x_title, y_title=f"{metric_label(data.metric)}, {better}", title=title, height=380)
    fig.update_xaxes(rangemode="tozero")
    return fig


def figures(loaded: tuple[str, TradeoffData] | None, *, presets: Any, hardware: Any, batch: Any,
            noisy: Any = None) -> dict[str, go.Figure]:
    if loaded is None:
        nothing = empty_figure(NO_DATA)
        return {LATENCY_GRAPH: nothing, SIZE_GRAPH: nothing}
    _title, data = loaded
    batch = 32 if batch == 32 else 1
    points = filter_points(data.points, presets=presets, hardware=hardware)
    noisy_in_front = isinstance(noisy, list) and NOISY_IN_FRONT in noisy
    return {
        LATENCY_GRAPH: tradeoff_figure(data, points, axis="latency", batch=batch, noisy_in_front=noisy_in_front),
        SIZE_GRAPH: tradeoff_figure(data, points, axis="size", batch=batch),
    }


def note(loaded: tuple[str, TradeoffData] | None) -> str:
    if loaded is None:
        return ""
    title, data = loaded
    jobs = len({p.job_id for p in data.points})
    models = len({(p.job_id, p.profile) for p in data.points})
    text = f"{title}: {models} model(s) from {jobs} job(s), measured on the machine that trained each job."
    if len(data.points) > models:
        text += " Models trained on a GPU are drawn twice in the latency graph: timed on the CPU and on their GPU."
    unstable = len({(p.job_id, p.profile, p.hardware) for p in data.points if not p.stable})
    if unstable:
        text += (
            f" {unstable} model timing(s) never became stable (a busy machine): drawn hollow and left out of the"
            " latency front unless you include them."
        )
    if data.unmeasured_jobs:
        text += (
            f" {data.unmeasured_jobs} job(s) have no compression report (baseline jobs run before baseline jobs"
            " were measured) and measured no latency or size, so they are not drawn."
        )
    return text


# --- app -------------------------------------------------------------------------------------------

app = DashboardApp(APP_NAME, title="Compression trade-offs")
app.layout = html.Div(
    style=BASE_STYLE,
    children=[
        dcc.Store(id=STORE_ID, data={}),
        html.Div(
            style=CONTROLS_STYLE,
            children=[
                control("Dataset and task", dcc.Dropdown(id=PAIR_SELECT, options=[], value=None, clearable=False),
                        width="340px"),
                control("Preset", dcc.Dropdown(id=PRESET_FILTER, options=[], value=[], multi=True,
                                               placeholder="all presets")),
                control("Hardware", dcc.Dropdown(id=HARDWARE_FILTER, options=[], value=[], multi=True,
                                                 placeholder="all machines"), width="260px"),
                control(
                    "Latency at",
                    dcc.RadioItems(id=BATCH_SELECT, options=[{"label": " batch 1", "value": 1},
                                                             {"label": " batch 32", "value": 32}],
                                   value=1, inline=True, inputStyle={"marginLeft": "8px"}),
                    width="180px",
                ),
                control(
                    "Unstable timings",
                    dcc.Checklist(id=NOISY_TOGGLE, value=[], inputStyle={"marginRight": "4px"},
                                  options=[{"label": " in the latency front", "value": NOISY_IN_FRONT}]),
                    width="180px",
                ),
            ],
        ),
        html.Div(id=NOTE_ID, className="lf-status"),
        html.Div(className="lf-grid", children=[
            graph(LATENCY_GRAPH, filename="tradeoff-latency", height=380),
            graph(SIZE_GRAPH, filename="tradeoff-size", height=380),
        ]),
    ],
)


@app.callback(Output(PAIR_SELECT, "options"), Output(PAIR_SELECT, "value"), Input(STORE_ID, "data"))
def choose_pair(store: Any, user: User = None) -> tuple:
    data = store_data(store)
    options, default = pair_options(user, job_ids=data.get("job_ids"))
    dataset = dataset_for_user(user=user, dataset_id=data.get("dataset_id"))
    if dataset is not None:
        # The dataset page (or a catalog filtered on a dataset): only that dataset's tasks.
        options = [o for o in options if parse_pair(o["value"])[0] == dataset.pk]
        task = data.get("task")
        wanted = f"{dataset.pk}:{task}" if task in TASKS else None
        values = [o["value"] for o in options]
        default = wanted if wanted in values else (values[0] if values else None)
    elif data.get("task") in TASKS:
        options = [o for o in options if parse_pair(o["value"])[1] == data["task"]]
        default = default if default in [o["value"] for o in options] else (options[0]["value"] if options else None)
    return options, default


@app.callback(
    Output(PRESET_FILTER, "options"), Output(HARDWARE_FILTER, "options"), Output(NOTE_ID, "children"),
    Input(PAIR_SELECT, "value"),
)
def choose_filters(pair: Any, user: User = None) -> tuple:
    loaded = load(user, pair)
    if loaded is None:
        return [], [], ""
    points = loaded[1].points
    presets = sorted({p.preset for p in points})
    hardware = sorted({p.hardware for p in points})
    return ([{"label": p, "value": p} for p in presets], [{"label": h, "value": h} for h in hardware], note(loaded))


@app.callback(
    Output(LATENCY_GRAPH, "figure"), Output(SIZE_GRAPH, "figure"),
    Input(PAIR_SELECT, "value"), Input(PRESET_FILTER, "value"), Input(HARDWARE_FILTER, "value"),
    Input(BATCH_SELECT, "value"), Input(NOISY_TOGGLE, "value"),
)
def draw(pair: Any, presets: Any, hardware: Any, batch: Any, noisy: Any, user: User = None) -> tuple:
    figs = figures(load(user, pair), presets=presets, hardware=hardware, batch=batch, noisy=noisy)
    return figs[LATENCY_GRAPH], figs[SIZE_GRAPH]


def _download(graph_id: str, filename: str):
    @app.callback(
        Output(f"{graph_id}-download", "data"),
        Input(f"{graph_id}-csv", "n_clicks"),
        State(PAIR_SELECT, "value"), State(PRESET_FILTER, "value"), State(HARDWARE_FILTER, "value"),
        State(BATCH_SELECT, "value"), State(NOISY_TOGGLE, "value"),
        prevent_initial_call=True,
    )
    def download(_clicks: Any, pair: Any, presets: Any, hardware: Any, batch: Any, noisy: Any,
                 user: User = None) -> dict:
        figs = figures(load(user, pair), presets=presets, hardware=hardware, batch=batch, noisy=noisy)
        return csv_download(figs[graph_id], filename=f"{filename}.csv")

    return download


download_latency = _download(LATENCY_GRAPH, "tradeoff-latency")
download_size = _download(SIZE_GRAPH, "tradeoff-size")
