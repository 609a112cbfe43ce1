"""Dataset explorer (dataset page): class balance, target distribution, length distribution (per-feature
distributions for tabular data), and for
molecules a grid of example structures drawn by RDKit.

Where the numbers come from: the validation report stored on the dataset
(``Dataset.validation_report["stats"]``, written by ``mlcore.validation`` on a worker):
``length`` (unit, histogram edges/counts over all valid records, default max_len),
``target`` (classification: ``classes`` counts; regression: per column ``histogram``, mean, std,
quantiles, from a uniform sample of at most 100,000 values; token labels: ``label_counts``).
Nothing here rereads the data for these. The molecule grid is the exception: the report keeps no
structures, so the first ``N_MOLECULES`` records are read from the canonical Parquet copy through
the storage API (one row group batch, bounded) and drawn in the web process.

While the dataset is being validated the panels say so and refresh every ``REFRESH_MS``.

Ids: ``dataset-status``, ``dataset-tick``, ``class-balance-graph`` (in ``class-panel``, shown for
categorical targets), ``target-graph`` (in ``target-panel``, shown for numeric targets),
``target-select`` (which target column, for several), ``length-graph``, ``molecule-section``,
``molecule-grid`` (its images carry ``data-line`` = the record's line in the upload),
``molecule-grid-png`` / ``molecule-grid-csv`` (buttons) with ``molecule-grid-png-download`` /
``molecule-grid-download``, ``<graph>-csv`` / ``<graph>-download``.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html

from mlcore.columns import ColumnMapping
from mlcore.csvsafe import csv_writer
from portal.dashboards.common import (
    modality_view,
    BASE_STYLE,
    COLORWAY,
    CONTROLS_STYLE,
    STORE_ID,
    User,
    DashboardApp,
    control,
    csv_download,
    dataset_for_user,
    empty_figure,
    graph,
    store_data,
    style_figure,
)
from portal.datasets.models import Dataset

APP_NAME = "dataset_explorer"
REFRESH_MS = 5000
N_MOLECULES = 12
MAX_CLASSES_DRAWN = 60

STATUS_ID = "dataset-status"
TICK_ID = "dataset-tick"
CLASS_GRAPH = "class-balance-graph"
CLASS_PANEL = "class-panel"  # shown unless the target is numeric
TARGET_PANEL = "target-panel"  # shown when the target is numeric
TARGET_GRAPH = "target-graph"
TARGET_SELECT = "target-select"
LENGTH_GRAPH = "length-graph"
MOLECULE_SECTION = "molecule-section"
MOLECULE_GRID = "molecule-grid"
MOLECULE_PNG = "molecule-grid-png"
MOLECULE_CSV = "molecule-grid-csv"



# --- data ------------------------------------------------------------------------------------------


def stats_of(dataset: Dataset) -> dict:
    report = dataset.validation_report if isinstance(dataset.validation_report, dict) else {}
    stats = report.get("stats")
    return stats if isinstance(stats, dict) else {}


def class_counts(stats: dict) -> list[tuple[str, int]]:
    """(class, records) for classification, (label, tokens) for per-token labels; most first."""
    target = stats.get("target") or {}
    counts = target.get("classes") if isinstance(target.get("classes"), dict) else target.get("label_counts")
    if not isinstance(counts, dict):
        return []
    pairs = [(str(k), int(v)) for k, v in counts.items() if isinstance(v, (int, float))]
    return sorted(pairs, key=lambda kv: (-kv[1], kv[0]))


def per_token_counts(stats: dict) -> bool:
    """The counts are of tokens (per-token labels, ``label_counts``), not of records (``classes``)."""
    target = stats.get("target") or {}
    return not isinstance(target.get("classes"), dict) and isinstance(target.get("label_counts"), dict)


def target_columns(stats: dict) -> list[str]:
    target = stats.get("target") or {}
    columns = target.get("columns")
    return list(columns) if isinstance(columns, dict) else []


@dataclass
class Histogram:
    centers: list[float]
    widths: list[float]
    counts: list[int]
    edges: list[float]


def histogram(spec: Any) -> Histogram | None:
    """Bars from a stored ``{"edges": [...], "counts": [...]}`` (len(edges) == len(counts) + 1)."""
    if not isinstance(spec, dict):
        return None
    edges, counts = spec.get("edges"), spec.get("counts")
    if not isinstance(edges, list) or not isinstance(counts, list) or len(edges) != len(counts) + 1 or not counts:
        return None
    centers = [(edges[i] + edges[i + 1]) / 2 for i in range(len(counts))]
    widths = [edges[i + 1] - edges[i] for i in range(len(counts))]
    return Histogram(centers=centers, widths=widths, counts=[int(c) for c in counts], edges=list(edges))


def target_summary(stats: dict, column: str) -> dict:
    summary = ((stats.get("target") or {}).get("columns") or {}).get(column)
    return summary if isinstance(summary, dict) else {}


@dataclass
class Molecule:
    line: int | None
    smiles: str
    target: str
    svg: str  # RDKit drawing, empty when RDKit cannot parse the SMILES


def molecule_svg(smiles: str, *, size: tuple[int, int] = (220, 170)) -> str:
    from rdkit import Chem
    from rdkit.Chem.Draw import rdMolDraw2D

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return ""
    drawer = rdMolDraw2D.MolDraw2DSVG(*size)
    drawer.drawOptions().clearBackground = False
    drawer.DrawMolecule(mol)
    drawer.FinishDrawing()
    return drawer.GetDrawingText()


def molecule_examples(dataset: Dataset, *, n: int = N_MOLECULES) -> list[Molecule]:
    """The first ``n`` valid molecules of the canonical copy (read through the storage API, one
    bounded batch), with their line in the upload and their first target."""
    shown = modality_view(dataset.modality)
    if shown is None or not shown.example_structures or not dataset.canonical_file:
        return []
    import pyarrow.parquet as pq

    columns_map = (dataset.validation_report or {}).get("columns") or {}
    try:
        mapping = ColumnMapping.from_dict(columns_map)  # as validation resolved it against the file
    except ValueError:
        mapping = ColumnMapping()
    smiles_col = mapping.input_cols[0] if len(mapping.input_cols) == 1 else "smiles"
    line_col = columns_map.get("line") or "source_line"
    target_col = mapping.target_cols[0] if mapping.target_cols else None
    with dataset.canonical_file.open("rb") as fh:
        parquet = pq.ParquetFile(fh)
        names = parquet.schema_arrow.names
        wanted = [c for c in (smiles_col, line_col, target_col) if c and c in names]
        if smiles_col not in names:
            return []
        batch = next(parquet.iter_batches(batch_size=n, columns=wanted), None)
        rows = [] if batch is None else batch.to_pylist()[:n]
    molecules = []
    for row in rows:
        smiles = row.get(smiles_col)
        if not isinstance(smiles, str):
            continue
        target = row.get(target_col) if target_col else None
        molecules.append(
            Molecule(line=row.get(line_col), smiles=smiles, target="" if target is None else str(target),
                     svg=molecule_svg(smiles))
        )
    return molecules


def molecule_grid_png(molecules: list[Molecule]) -> bytes:
    from rdkit import Chem
    from rdkit.Chem import Draw

    mols = [Chem.MolFromSmiles(m.smiles) for m in molecules]
    legends = [f"line {m.line}" + (f" · {m.target}" if m.target else "") for m in molecules]
    keep = [i for i, mol in enumerate(mols) if mol is not None]
    image = Draw.MolsToGridImage([mols[i] for i in keep], molsPerRow=4, subImgSize=(260, 200),
                                 legends=[legends[i] for i in keep])
    if isinstance(image, bytes):
        return image
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def molecules_csv(molecules: list[Molecule]) -> str:
    buffer = io.StringIO()
    writer = csv_writer(buffer, lineterminator="\n")
    writer.writerow(["line", "smiles", "target"])
    for m in molecules:
        writer.writerow(["" if m.line is None else m.line, m.smiles, m.target])
    return buffer.getvalue()


# --- figures ---------------------------------------------------------------------------------------


def waiting(dataset: Dataset) -> str | None:
    """Why there is nothing to draw yet, or None when the report is there."""
    if dataset.status in (Dataset.Status.UPLOADED, Dataset.Status.VALIDATING):
        return "Validating: the statistics appear here when the check finishes."
    if not stats_of(dataset):
        if dataset.status == Dataset.Status.INVALID:
            return "The file could not be read, so there are no statistics: see the validation report."
        return "This dataset has no statistics."
    return None


def class_figure(dataset: Dataset) -> go.Figure:
    stats = stats_of(dataset)
    counts = class_counts(stats)
    if not counts:
        if target_columns(stats):
            return empty_figure("A numeric target has no classes: see its distribution.")
        return empty_figure("No class labels in this dataset's report.")
    shown = counts[:MAX_CLASSES_DRAWN]
    total = sum(c for _, c in counts)
    per_token = per_token_counts(stats)
    fig = go.Figure(
        go.Bar(
            x=[label for label, _ in shown],
            y=[c for _, c in shown],
            name="tokens" if per_token else "records",
            marker={"color": COLORWAY[0]},
            customdata=[c / total for _, c in shown],
            meta={"x": "label" if per_token else "class", "y": "tokens" if per_token else "records",
                  "customdata": ["share"]},
            hovertemplate="%{x}: %{y} (%{customdata:.1%})<extra></extra>",
        )
    )
    title = "Per-token label balance" if per_token else "Class balance"
    if len(counts) > len(shown):
        title += f" (top {len(shown)} of {len(counts)})"
    ratio = max(c for _, c in counts) / max(1, min(c for _, c in counts))
    title += f"; largest / smallest = {ratio:.1f}"
    style_figure(fig, x_title="Label" if per_token else "Class", y_title="Tokens (count)" if per_token else "Records (count)",
                 title=title, height=320, legend=False)
    fig.update_xaxes(type="category")
    return fig


def target_figure(dataset: Dataset, column: Any) -> go.Figure:
    stats = stats_of(dataset)
    columns = target_columns(stats)
    if not columns:
        if class_counts(stats):
            return empty_figure("A categorical target: its distribution is the class balance.")
        return empty_figure("No target distribution in this dataset's report.")
    column = column if column in columns else columns[0]
    summary = target_summary(stats, column)
    hist = histogram(summary.get("histogram"))
    if hist is None:
        return empty_figure(f"No values of {column} to draw.")
    fig = go.Figure(
        go.Bar(x=hist.centers, y=hist.counts, width=hist.widths, name=column, marker={"color": COLORWAY[0]},
               meta={"x": f"{column} (bin centre)", "y": "records"},
               hovertemplate="%{x:.4g}: %{y} records<extra></extra>")
    )
    title = f"Distribution of {column}"
    if isinstance(summary.get("mean"), (int, float)):
        title += f" (mean {summary['mean']:.4g}, sd {summary.get('std', 0):.4g}"
        if summary.get("missing"):
            title += f", {summary['missing']} missing"
        title += ")"
    if summary.get("approximate"):
        title += ", from a 100,000-record sample"
    style_figure(fig, x_title=f"{column} (target units)", y_title="Records (count)", title=title, height=320,
                 legend=False)
    return fig


# --- tabular features --------------------------------------------------------------------------------

FEATURES_DRAWN = 12  # small multiples in the figure; the dataset page's table lists every feature
SPARK_HEIGHT = 20  # px of the dataset page's inline distribution bars (an SVG, no script)


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else "?"


def _spark(counts: list[Any]) -> list[dict[str, float]]:
    """A histogram as bars for a small inline SVG: x (bar index), y (top) and h (height) in pixels; a
    non-empty bin is at least one pixel high so it never reads as empty."""
    values = [c if isinstance(c, (int, float)) else 0 for c in counts]
    top = max(values, default=0)
    if not top:
        return []
    bars = []
    for i, c in enumerate(values):
        h = max(1.0, round(c / top * SPARK_HEIGHT, 1)) if c else 0.0
        bars.append({"x": i, "y": SPARK_HEIGHT - h, "h": h})
    return bars


def feature_rows(stats: Any) -> list[dict[str, Any]]:
    """One row per tabular feature of a validation report's ``stats["features"]``: name, type, missing
    share, range (numeric: min to max, mean) or most frequent values (categorical), and a text sparkline
    of its distribution. Empty for other modalities and reports written before features were summarized."""
    features = stats.get("features") if isinstance(stats, dict) else None
    if not isinstance(features, dict):
        return []
    rows = []
    for name, f in features.items():
        if not isinstance(f, dict):
            continue
        share = f.get("missing_share")
        row = {"name": name, "type": f.get("type", "?"), "count": f.get("count", 0), "missing": f.get("missing", 0),
               "missing_share": f"{share:.1%}" if isinstance(share, (int, float)) else "?"}
        if f.get("type") == "numeric":
            if f.get("count"):
                row["summary"] = f"{_num(f.get('min'))} to {_num(f.get('max'))}, mean {_num(f.get('mean'))}"
            else:
                row["summary"] = "no values"
            row["spark"] = _spark(((f.get("histogram") or {}).get("counts")) or [])
        else:
            top = [t for t in (f.get("top") or []) if isinstance(t, list) and len(t) == 2]
            distinct = f"{f.get('distinct', len(top))}{'+' if f.get('distinct_at_least') else ''} distinct"
            row["summary"] = distinct + (": " + ", ".join(f"{v} ({n})" for v, n in top[:3]) if top else "")
            row["spark"] = _spark([n for _, n in top])
        rows.append(row)
    return rows


def features_figure(stats: dict) -> go.Figure:
    """Tabular data: small multiples, one per feature (a histogram, or the top values of a categorical
    feature), titled with the type and missing share, instead of the one-bar "record length"."""
    from plotly.subplots import make_subplots

    features = [(name, f) for name, f in (stats.get("features") or {}).items() if isinstance(f, dict)]
    shown = features[:FEATURES_DRAWN]
    n_cols = 2  # the panel is half the page wide: three columns crowd the titles
    n_rows = max(1, -(-len(shown) // n_cols))
    titles = [f"{name} · {f.get('type', '?')} · {f.get('missing_share', 0):.0%} missing" for name, f in shown]
    fig = make_subplots(rows=n_rows, cols=n_cols, subplot_titles=titles, vertical_spacing=0.12 if n_rows < 4 else 0.06)
    for k, (name, f) in enumerate(shown):
        row, col = k // n_cols + 1, k % n_cols + 1
        if f.get("type") == "numeric":
            hist = histogram(f.get("histogram"))
            if hist is None:
                continue
            trace = go.Bar(x=hist.centers, y=hist.counts, width=hist.widths, name=name,
                           meta={"x": f"{name} (bin centre)", "y": "records"},
                           hovertemplate="%{x:.4g}: %{y} records<extra>" + name + "</extra>")
        else:
            top = [t for t in (f.get("top") or []) if isinstance(t, list) and len(t) == 2]
            trace = go.Bar(x=[str(v) for v, _ in top], y=[n for _, n in top], name=name,
                           meta={"x": f"{name} (value)", "y": "records"},
                           hovertemplate="%{x}: %{y} records<extra>" + name + "</extra>")
        trace.marker = {"color": COLORWAY[0]}
        fig.add_trace(trace, row=row, col=col)
    title = f"Features ({len(features)})" if len(features) <= FEATURES_DRAWN else \
        f"Features: the first {FEATURES_DRAWN} of {len(features)} (the dataset page lists all)"
    style_figure(fig, y_title="Records (count)", title=title, height=max(320, 200 * n_rows + 80), legend=False)
    fig.update_yaxes(title_text=None)
    fig.update_yaxes(title_text="Records (count)", col=1)  # once per row, not beside every plot
    for annotation in fig.layout.annotations:
        annotation.font = {"size": 11}
    return fig


def length_figure(dataset: Dataset) -> go.Figure:
    stats = stats_of(dataset)
    if stats.get("features"):  # tabular: a record's "length" is its column count, the same for all
        return features_figure(stats)
    length = stats.get("length") or {}
    hist = histogram(length.get("histogram"))
    if hist is None:
        return empty_figure("No record lengths in this dataset's report.")
    shown = modality_view(dataset.modality)
    unit = shown.length_title if shown is not None and shown.length_unit == length.get("unit") else \
        (length.get("unit") or "elements")
    fig = go.Figure(
        go.Bar(x=hist.centers, y=hist.counts, width=hist.widths, name="records", marker={"color": COLORWAY[0]},
               meta={"x": f"length in {unit} (bin centre)", "y": "records"},
               hovertemplate="%{x:.0f} " + unit + ": %{y} records<extra></extra>")
    )
    max_len = length.get("default_max_len")
    title = f"Record length (median {length.get('quantiles', {}).get('p50', '?')} {unit})"
    if isinstance(max_len, int) and hist.edges and hist.edges[-1] >= max_len * 0.8:
        fig.add_vline(x=max_len, line_dash="dash", line_color="#333",
                      annotation_text=f"default max_len {max_len}", annotation_position="top left")
    over = length.get("over_default_max_len")
    if over:
        title += f"; {over} longer than the default max_len" + (" with the [FP] token" if length.get("extra_tokens") else "")
    style_figure(fig, x_title=f"Length ({unit})", y_title="Records (count)", title=title, height=320, legend=False)
    return fig


def figures(dataset: Dataset | None, target_column: Any = None) -> dict[str, go.Figure]:
    if dataset is None:
        nothing = empty_figure("Dataset not found, or you may not see it.")
        return {CLASS_GRAPH: nothing, TARGET_GRAPH: nothing, LENGTH_GRAPH: nothing}
    reason = waiting(dataset)
    if reason:
        nothing = empty_figure(reason)
        return {CLASS_GRAPH: nothing, TARGET_GRAPH: nothing, LENGTH_GRAPH: nothing}
    return {
        CLASS_GRAPH: class_figure(dataset),
        TARGET_GRAPH: target_figure(dataset, target_column),
        LENGTH_GRAPH: length_figure(dataset),
    }


def molecule_cards(molecules: list[Molecule]) -> list[Any]:
    cards = []
    for m in molecules:
        image = (
            html.Img(src="data:image/svg+xml;base64," + base64.b64encode(m.svg.encode()).decode(),
                     alt=m.smiles, title=m.smiles, style={"width": "100%", "height": "auto"})
            if m.svg else html.Div("RDKit could not draw this SMILES", className="lf-status")
        )
        caption = f"line {m.line}" + (f" · target {m.target}" if m.target else "")
        cards.append(
            html.Figure(
                className="lf-molecule", **{"data-line": "" if m.line is None else str(m.line)},
                style={"margin": 0, "border": "1px solid #dee2e6", "borderRadius": "4px", "padding": "4px",
                       "background": "#fff"},
                children=[image, html.Figcaption(caption, style={"fontSize": "12px", "color": "#555",
                                                                   "wordBreak": "break-all"})],
            )
        )
    return cards


# --- app -------------------------------------------------------------------------------------------

HIDDEN = {"display": "none"}
SHOWN = {"display": "block", "marginTop": "8px"}

app = DashboardApp(APP_NAME, title="Dataset explorer")
app.layout = html.Div(
    style=BASE_STYLE,
    children=[
        dcc.Store(id=STORE_ID, data={}),
        dcc.Interval(id=TICK_ID, interval=REFRESH_MS, n_intervals=0, disabled=False),
        html.Div(id=STATUS_ID, className="lf-status", children="Loading…"),
        html.Div(className="lf-grid", children=[
            html.Div(id=CLASS_PANEL, children=graph(CLASS_GRAPH, filename="class-balance", height=320)),
            html.Div(id=TARGET_PANEL, style=HIDDEN, children=[
                html.Div(style=CONTROLS_STYLE, id=f"{TARGET_SELECT}-row", children=[
                    control("Target column", dcc.Dropdown(id=TARGET_SELECT, options=[], value=None, clearable=False)),
                ]),
                graph(TARGET_GRAPH, filename="target-distribution", height=320),
            ]),
            graph(LENGTH_GRAPH, filename="length-distribution", height=320),
        ]),
        html.Section(id=MOLECULE_SECTION, style=HIDDEN, children=[
            html.H3("Example structures", style={"fontSize": "15px", "margin": "4px 0"}),
            html.P(f"The first {N_MOLECULES} valid records, drawn by RDKit from their canonical SMILES.",
                   className="lf-status"),
            dcc.Loading(html.Div(id=MOLECULE_GRID, style={
                "display": "grid", "gridTemplateColumns": "repeat(auto-fill, minmax(170px, 1fr))", "gap": "8px"})),
            html.Div(className="lf-figure-tools", style={"gap": "6px", "marginTop": "6px"}, children=[
                html.Button("Download grid (PNG)", id=MOLECULE_PNG, n_clicks=0, className="lf-button"),
                html.Button("Download data (CSV)", id=MOLECULE_CSV, n_clicks=0, className="lf-button"),
                dcc.Download(id=f"{MOLECULE_PNG}-download"),
                dcc.Download(id=f"{MOLECULE_GRID}-download"),
            ]),
        ]),
    ],
)


def _dataset(store: Any, user: User) -> Dataset | None:
    return dataset_for_user(user=user, dataset_id=store_data(store).get("dataset_id"))


def status_line(dataset: Dataset | None) -> str:
    if dataset is None:
        return "Dataset not found, or you may not see it."
    report = dataset.validation_report or {}
    text = f"{dataset.name} v{dataset.version}: {dataset.get_status_display().lower()}"
    if isinstance(report.get("valid"), int):
        text += f"; {report['valid']} valid record(s)"
        if report.get("invalid"):
            text += f", {report['invalid']} invalid"
    return text


@app.callback(
    Output(CLASS_GRAPH, "figure"), Output(LENGTH_GRAPH, "figure"), Output(STATUS_ID, "children"),
    Output(TICK_ID, "disabled"), Output(TARGET_SELECT, "options"), Output(TARGET_SELECT, "value"),
    Output(f"{TARGET_SELECT}-row", "style"), Output(MOLECULE_SECTION, "style"), Output(MOLECULE_GRID, "children"),
    Output(CLASS_PANEL, "style"), Output(TARGET_PANEL, "style"),
    Input(STORE_ID, "data"), Input(TICK_ID, "n_intervals"),
)
def refresh(store: Any, _tick: Any, user: User = None) -> tuple:
    dataset = _dataset(store, user)
    figs = figures(dataset)
    settled = dataset is None or dataset.status in (Dataset.Status.READY, Dataset.Status.INVALID)
    columns = target_columns(stats_of(dataset)) if dataset is not None else []
    options = [{"label": c, "value": c} for c in columns]
    row_style = CONTROLS_STYLE if len(columns) > 1 else HIDDEN
    molecules = molecule_examples(dataset) if dataset is not None and settled else []
    section = SHOWN if molecules else HIDDEN
    # A numeric target has a distribution and no classes; a categorical one the other way round.
    class_style, target_style = (HIDDEN, {}) if columns else ({}, HIDDEN)
    return (figs[CLASS_GRAPH], figs[LENGTH_GRAPH], status_line(dataset), settled, options,
            columns[0] if columns else None, row_style, section, molecule_cards(molecules), class_style, target_style)


@app.callback(
    Output(TARGET_GRAPH, "figure"),
    Input(STORE_ID, "data"), Input(TARGET_SELECT, "value"), Input(TICK_ID, "disabled"),
)
def draw_target(store: Any, column: Any, _settled: Any, user: User = None) -> go.Figure:
    return figures(_dataset(store, user), column)[TARGET_GRAPH]


def _download(graph_id: str, filename: str):
    @app.callback(
        Output(f"{graph_id}-download", "data"),
        Input(f"{graph_id}-csv", "n_clicks"),
        State(STORE_ID, "data"), State(TARGET_SELECT, "value"),
        prevent_initial_call=True,
    )
    def download(_clicks: Any, store: Any, column: Any, user: User = None) -> dict:
        dataset = _dataset(store, user)
        name = f"dataset-{dataset.pk}-{filename}.csv" if dataset else f"{filename}.csv"
        return csv_download(figures(dataset, column)[graph_id], filename=name)

    return download


download_class = _download(CLASS_GRAPH, "class-balance")
download_target = _download(TARGET_GRAPH, "target-distribution")
download_length = _download(LENGTH_GRAPH, "length-distribution")


@app.callback(
    Output(f"{MOLECULE_GRID}-download", "data"), Input(MOLECULE_CSV, "n_clicks"), State(STORE_ID, "data"),
    prevent_initial_call=True,
)
def download_molecules_csv(_clicks: Any, store: Any, user: User = None) -> dict:
    dataset = _dataset(store, user)
    molecules = molecule_examples(dataset) if dataset is not None else []
    name = f"dataset-{dataset.pk}-example-molecules.csv" if dataset else "example-molecules.csv"
    return {"content": molecules_csv(molecules), "filename": name, "type": "text/csv", "base64": False}


@app.callback(
    Output(f"{MOLECULE_PNG}-download", "data"), Input(MOLECULE_PNG, "n_clicks"), State(STORE_ID, "data"),
    prevent_initial_call=True,
)
def download_molecules_png(_clicks: Any, store: Any, user: User = None) -> Any:
    from dash.exceptions import PreventUpdate

    dataset = _dataset(store, user)
    molecules = molecule_examples(dataset) if dataset is not None else []
    if not molecules:
        raise PreventUpdate
    return {"content": base64.b64encode(molecule_grid_png(molecules)).decode(), "filename":
            f"dataset-{dataset.pk}-example-molecules.png", "type": "image/png", "base64": True}
