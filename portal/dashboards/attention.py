"""Attention explorer (job page): one stored test record's attention, by layer and head.

Pick a record (those the worker stored full maps for), a layer and a head, the mean over heads, or
the attention rollout (Abnar & Zuidema 2020, recomputed here with numpy from the stored maps the
same way ``mlcore.model.attention_rollout`` does); see the L x L heatmap with the record's tokens on
both axes, a bar of the attention the pooled [CLS] token pays to each token, and the same weights
drawn the modality's way:

- molecules: the RDKit drawing with atoms and bonds coloured by attention; token -> atom through the
  worker's exact ``atom_index`` (checked against RDKit's parse of the canonical SMILES drawn here);
- DNA, protein (and light curves): the weight along the sequence, residues as axis labels, scrollable
  for long sequences, and the top-k windows listed as candidate motifs;
- particles: the jet in the eta-phi plane, marker size pT, colour attention;
- tabular: attention per feature, ranked.

No model runs here: everything comes from the job's ATTENTION artifact (``_explain_data``).

Ids (stable, for browser tests): ``attention-record``, ``attention-layer``, ``attention-head``
(dropdowns), ``attention-status`` (the record line), ``attention-heatmap``, ``attention-bar``,
``attention-domain-graph`` (figures, each with ``<id>-csv`` / ``<id>-download``),
``attention-molecule`` (the RDKit drawing, an <img>), ``attention-motifs`` (top windows).

The section is also part of the embedding explorer's app (``portal.dashboards.embeddings``), where
clicking a point selects its record here: ``section()`` builds the layout and ``register(app)``
wires the callbacks onto an app.
"""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html
from django_plotly_dash import DjangoDash
from plotly.colors import sample_colorscale

from portal.common.formatting import value_text
from portal.dashboards._explain_data import attention_samples, explain_artifacts, npz_member
from portal.dashboards.common import (
    modality_view,
    BASE_STYLE,
    CONTINUOUS_SCALE,
    CONTROLS_STYLE,
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

APP_NAME = "attention_explorer"

RECORD_ID = "attention-record"
LAYER_ID = "attention-layer"
HEAD_ID = "attention-head"
STATUS_ID = "attention-status"
HEATMAP = "attention-heatmap"
BAR = "attention-bar"
DOMAIN = "attention-domain-graph"
MOLECULE_ID = "attention-molecule"
MOTIFS_ID = "attention-motifs"
FIGURES = (HEATMAP, BAR, DOMAIN)

HEAD_MEAN = "mean"
HEAD_ROLLOUT = "rollout"
TOP_WINDOWS = 5
MAX_TICKS = 60  # tick labels per axis before thinning
NOT_FOUND = "Job not found, or you may not see it."


# --- the data the figures are drawn from -----------------------------------------------------------


def rollout_matrix(attn: np.ndarray) -> np.ndarray:
    """Attention rollout (L, L) from (layers, heads, L, L): head mean, half identity, rows normalized,
    multiplied from the first layer up (as ``mlcore.model.attention_rollout``, all rows kept)."""
    result = None
    for layer in np.asarray(attn, dtype=np.float64):
        a = layer.mean(axis=0)
        a = 0.5 * a + 0.5 * np.eye(a.shape[-1])
        a = a / a.sum(axis=-1, keepdims=True)
        result = a if result is None else a @ result
    if result is None:
        raise ValueError("no layers")
    return result


def attention_matrix(attn: np.ndarray, layer: int, head: Any) -> np.ndarray:
    """The (L, L) map shown: one head of one layer, the layer's mean over heads, or the rollout."""
    attn = np.asarray(attn, dtype=np.float64)
    if head == HEAD_ROLLOUT:
        return rollout_matrix(attn)
    if not 0 <= layer < attn.shape[0]:
        raise ValueError(f"layer {layer + 1} out of range (the model has {attn.shape[0]})")
    if head == HEAD_MEAN:
        return attn[layer].mean(axis=0)
    h = int(head)
    if not 0 <= h < attn.shape[1]:
        raise ValueError(f"head {h + 1} out of range (the model has {attn.shape[1]})")
    return attn[layer, h]


def pooled_attention(matrix: np.ndarray) -> np.ndarray:
    """Per input token (without [CLS]): the attention the pooled [CLS] query pays to it (row 0)."""
    return np.asarray(matrix)[0, 1:]


def atom_weights(token_weights: np.ndarray, atom_index: list[int], n_atoms: int) -> np.ndarray:
    """Per atom of the drawn molecule: the weight of the token that denotes it, shares summing to 1.

    ``token_weights`` and ``atom_index`` are per token, [CLS] first (atom index -1 for [CLS], bonds,
    branches, ring closures). Each atom has exactly one token; a ValueError otherwise.
    """
    weights = np.zeros(n_atoms)
    seen = np.zeros(n_atoms, dtype=int)
    if len(token_weights) != len(atom_index):
        raise ValueError(f"{len(token_weights)} token weights for {len(atom_index)} tokens")
    for w, atom in zip(token_weights, atom_index):
        if atom is not None and atom >= 0:
            if atom >= n_atoms:
                raise ValueError(f"token maps to atom {atom}, the molecule has {n_atoms}")
            weights[atom] += float(w)
            seen[atom] += 1
    if not np.all(seen == 1):
        raise ValueError("every atom must have exactly one token")
    total = weights.sum()
    return weights / total if total > 0 else np.full(n_atoms, 1.0 / max(1, n_atoms))


def top_windows(weights: np.ndarray, window: int, k: int = TOP_WINDOWS) -> list[tuple[int, int, float]]:
    """The ``k`` highest-attention windows of ``window`` positions, not overlapping, best first:
    (start, end exclusive, share of the sequence's attention)."""
    w = np.asarray(weights, dtype=np.float64)
    n = len(w)
    if n == 0:
        return []
    window = max(1, min(window, n))
    total = w.sum() or 1.0
    sums = np.convolve(w, np.ones(window), mode="valid")  # sums[i] = w[i:i+window].sum()
    taken = np.zeros(n, dtype=bool)
    out: list[tuple[int, int, float]] = []
    for start in np.argsort(-sums, kind="stable"):
        if len(out) >= k:
            break
        if taken[start:start + window].any():
            continue
        taken[start:start + window] = True
        out.append((int(start), int(start + window), float(sums[start] / total)))
    return out


def _mol(smiles: str) -> Any:
    from rdkit import Chem, rdBase

    params = Chem.SmilesParserParams()
    params.removeHs = False  # the atoms as written in the stored canonical SMILES, as mlcore numbered them
    with rdBase.BlockLogs():
        return Chem.MolFromSmiles(smiles, params)


def _rgb(values: np.ndarray, lighten: float = 0.0,
         bounds: tuple[float, float] | None = None) -> list[tuple[float, float, float]]:
    """Viridis colours (0-1 RGB) from the lowest value (dark) to the highest (yellow), as the bar chart
    beside it, mixed with ``lighten`` of white (dark atom labels stay readable on the highlight; the
    lightness still rises with the value)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return []
    low, high = bounds or (float(values.min()), float(values.max()))
    scaled = np.clip((values - low) / (high - low), 0, 1) if high > low else np.full(len(values), 0.5)
    colours = sample_colorscale(CONTINUOUS_SCALE, [float(v) for v in scaled])
    out = []
    for c in colours:
        r, g, b = (float(x) for x in re.findall(r"[\d.]+", c)[:3])
        out.append(tuple(lighten + (1 - lighten) * x / 255 for x in (r, g, b)))
    return out


def molecule_svg(smiles: str, weights: np.ndarray) -> str:
    """The RDKit drawing of ``smiles`` with atom i and each bond coloured by attention (bonds: the
    mean of their two atoms)."""
    from rdkit.Chem.Draw import rdMolDraw2D

    mol = _mol(smiles)
    if mol is None:
        raise ValueError(f"RDKit cannot parse {smiles!r}")
    atom_colours = _rgb(weights, lighten=0.35)
    bond_values = np.array([(weights[b.GetBeginAtomIdx()] + weights[b.GetEndAtomIdx()]) / 2 for b in mol.GetBonds()])
    bounds = (float(weights.min()), float(weights.max()))  # bonds on the atoms' scale
    bond_colours = _rgb(bond_values, lighten=0.35, bounds=bounds) if len(bond_values) else []
    drawer = rdMolDraw2D.MolDraw2DSVG(460, 340)
    drawer.drawOptions().addAtomIndices = True
    rdMolDraw2D.PrepareAndDrawMolecule(
        drawer, mol, legend="colour: share of attention, lowest purple to highest yellow; numbers: atom index",
        highlightAtoms=list(range(mol.GetNumAtoms())),
        highlightAtomColors={i: c for i, c in enumerate(atom_colours)},
        highlightBonds=list(range(mol.GetNumBonds())),
        highlightBondColors={i: c for i, c in enumerate(bond_colours)},
    )
    drawer.FinishDrawing()
    return drawer.GetDrawingText()


@dataclass
class RecordView:
    """Everything drawn for one record and one choice of layer / head."""

    sample: dict[str, Any]
    modality: str
    shape: tuple[int, ...]
    matrix: np.ndarray  # (L, L), [CLS] first
    pooled: np.ndarray  # (L - 1,) attention from [CLS] to each input token
    tokens: list[str]  # L labels, [CLS] first
    what: str  # "layer 2, head 3" / "layer 1, mean over heads" / "rollout"


def sample_by_key(samples: list[dict[str, Any]], key: Any) -> dict[str, Any] | None:
    for sample in samples:
        if str(sample.get("key")) == str(key):
            return sample
    return None


def record_view(job: Job, key: Any, layer: Any, head: Any) -> RecordView | None:
    """The attention of stored sample ``key`` at ``layer`` (0-based) / ``head``; None if not stored."""
    artifact = explain_artifacts(job).attention
    sample = sample_by_key(attention_samples(artifact), key)
    if artifact is None or sample is None:
        return None
    attn = npz_member(artifact, f"attn_{int(sample['key'])}")
    if attn is None:
        return None
    layers, heads = attn.shape[0], attn.shape[1]
    layer_i = int(layer) if isinstance(layer, (int, str)) and str(layer).isdigit() and int(layer) < layers else 0
    head_v: Any = head if head in (HEAD_MEAN, HEAD_ROLLOUT) else (
        int(head) if str(head).isdigit() and int(head) < heads else HEAD_MEAN)
    matrix = attention_matrix(attn, layer_i, head_v)
    if head_v == HEAD_ROLLOUT:
        rollout = npz_member(artifact, f"rollout_{int(sample['key'])}")
        pooled = np.asarray(rollout, dtype=np.float64)[1:] if rollout is not None else pooled_attention(matrix)
        what = "attention rollout (all layers)"
    else:
        pooled = pooled_attention(matrix)
        what = f"layer {layer_i + 1}, " + ("mean over heads" if head_v == HEAD_MEAN else f"head {head_v + 1}")
    tokens = [str(t) for t in sample.get("tokens") or []]
    if len(tokens) != matrix.shape[0]:
        tokens = ["[CLS]", *(str(i) for i in range(1, matrix.shape[0]))]
    return RecordView(sample=sample, modality=job.dataset.modality, shape=tuple(attn.shape), matrix=matrix,
                      pooled=pooled, tokens=tokens, what=what)


# --- figures ---------------------------------------------------------------------------------------


def _ticks(labels: list[str]) -> dict[str, Any]:
    step = max(1, math.ceil(len(labels) / MAX_TICKS))
    idx = list(range(0, len(labels), step))
    return {"tickmode": "array", "tickvals": idx, "ticktext": [labels[i] for i in idx]}


HEATMAP_SCROLL_FROM = 60  # tokens; longer records get a wider heatmap in a scrolling box


def heatmap_figure(view: RecordView) -> go.Figure:
    """The L x L map, drawn in its own full-width row: cells near square, key labels slanted (upright
    beyond 20 tokens), and for long records a fixed width the page scrolls sideways."""
    n = len(view.tokens)
    hover = None
    if n <= 128:
        hover = [[f"query {i} {view.tokens[i]} → key {j} {view.tokens[j]}" for j in range(n)] for i in range(n)]
    fig = go.Figure(go.Heatmap(
        z=view.matrix.astype(np.float32), x=list(range(n)), y=list(range(n)), colorscale=CONTINUOUS_SCALE,
        hovertext=hover, hovertemplate="%{hovertext}<br>weight %{z:.4f}<extra></extra>" if hover else
        "query %{y} → key %{x}<br>weight %{z:.4f}<extra></extra>",
        colorbar={"title": {"text": "Attention weight (0–1)", "side": "right"}}, name="attention",
    ))
    longest = max((len(t) for t in view.tokens), default=1)
    angle = -90 if n > 20 else (-45 if longest > 3 else 0)
    label_room = 0 if angle == 0 else int(7.5 * min(longest, 40) * (1.0 if angle == -90 else 0.75))
    cell = 22 if n <= 30 else (14 if n <= HEATMAP_SCROLL_FROM else 10)
    style_figure(fig, x_title="Key token (attended to)", y_title="Query token (attending)",
                 title=f"Attention map: {view.what}", height=max(460, min(1400, cell * n + 180 + label_room)),
                 legend=False)
    if n > HEATMAP_SCROLL_FROM:
        fig.update_layout(width=cell * n + 8 * min(longest, 40) + 260)
    fig.update_xaxes(**_ticks(view.tokens), tickangle=angle)
    fig.update_yaxes(**_ticks(view.tokens), autorange="reversed")
    return fig


def bar_figure(view: RecordView) -> go.Figure:
    labels = view.tokens[1:]
    fig = go.Figure(go.Bar(
        x=list(range(1, len(labels) + 1)), y=view.pooled, name="attention to [CLS]",
        customdata=labels, hovertemplate="token %{x} %{customdata}<br>%{y:.4f}<extra></extra>",
        marker={"color": "#0072B2"},
    ))
    style_figure(fig, x_title="Token (position: label)", y_title="Attention from [CLS]",
                 title=f"Attention to the pooled token: {view.what}", height=380, legend=False)
    ticks = _ticks([f"{i + 1}:{t}" for i, t in enumerate(labels)])
    # Slanted down-left (plotly's default slants right and drops the last long labels at the edge).
    fig.update_xaxes(tickmode="array", tickvals=[v + 1 for v in ticks["tickvals"]], ticktext=ticks["ticktext"],
                     tickangle=-90 if len(labels) > 20 else -45)
    return fig


def _molecule(view: RecordView) -> tuple[go.Figure, str | None]:
    smiles = view.sample.get("smiles")
    atom_index = view.sample.get("atom_index")
    mol = _mol(smiles) if smiles else None
    if mol is None or not isinstance(atom_index, list):
        return empty_figure("This record carries no atom map."), None
    weights = atom_weights(np.concatenate([[0.0], view.pooled]), atom_index, mol.GetNumAtoms())
    token_of = {a: t for t, a in enumerate(atom_index) if a is not None and a >= 0}
    labels = [f"{mol.GetAtomWithIdx(i).GetSymbol()}{i}" for i in range(mol.GetNumAtoms())]
    fig = go.Figure(go.Bar(
        x=labels, y=weights, name="atom attention share",
        customdata=[token_of[i] for i in range(len(labels))],
        hovertemplate="atom %{x} (token %{customdata})<br>share %{y:.4f}<extra></extra>",
        marker={"color": weights, "colorscale": CONTINUOUS_SCALE, "showscale": False},
    ))
    style_figure(fig, x_title="Atom (element and RDKit index in the drawing)", y_title="Share of atom attention (0–1)",
                 title=f"Attention per atom of {smiles}", height=320, legend=False)
    svg = molecule_svg(smiles, weights)
    return fig, "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def _sequence(view: RecordView) -> tuple[go.Figure, list[tuple[int, int, float]]]:
    labels = view.tokens[1:]
    n = len(labels)
    fig = go.Figure(go.Bar(
        x=list(range(1, n + 1)), y=view.pooled, customdata=labels, name="attention",
        hovertemplate="position %{x} %{customdata}<br>%{y:.4f}<extra></extra>", marker={"color": "#009E73"},
    ))
    style_figure(fig, x_title="Position in the sequence (residue)", y_title="Attention from [CLS]",
                 title="Attention along the sequence", height=320, legend=False)
    fig.update_xaxes(tickmode="array", tickvals=list(range(1, n + 1)), ticktext=labels, tickangle=0,
                     tickfont={"family": "monospace", "size": 11})
    fig.update_layout(width=max(700, 13 * n + 120))
    shown = modality_view(view.modality)
    window = shown.motif_window if shown is not None else None  # candidate-motif window length
    windows = top_windows(view.pooled, window) if window else []
    return fig, windows


def _particles(view: RecordView) -> go.Figure:
    p4 = np.asarray(view.sample.get("p4") or [], dtype=np.float64)
    if p4.ndim != 2 or len(p4) != len(view.pooled):
        return empty_figure("This record carries no particle four-vectors.")
    pt, eta, phi = p4[:, 0], p4[:, 1], p4[:, 2]
    size = 8 + 30 * np.sqrt(pt / pt.max()) if pt.max() > 0 else np.full(len(pt), 10.0)
    fig = go.Figure(go.Scatter(
        x=eta, y=phi, mode="markers", name="particles",
        marker={"size": size, "color": view.pooled, "colorscale": CONTINUOUS_SCALE, "showscale": True,
                "colorbar": {"title": {"text": "Attention (0–1)"}}, "line": {"width": 1, "color": "#333"}},
        customdata=np.stack([pt, view.pooled], axis=1),
        hovertemplate=("η %{x:.3f}, φ %{y:.3f}<br>pT %{customdata[0]:.3g}<br>"
                       "attention %{customdata[1]:.4f}<extra></extra>"),
    ))
    style_figure(fig, x_title="Pseudorapidity η", y_title="Azimuth φ (rad)",
                 title="The jet in the η–φ plane (marker size: pT, colour: attention)", height=420, legend=False)
    return fig


def _tabular(view: RecordView) -> go.Figure:
    labels = view.tokens[1:]
    order = np.argsort(-view.pooled, kind="stable")
    fig = go.Figure(go.Bar(
        x=view.pooled[order], y=[labels[i] for i in order], orientation="h", name="attention",
        hovertemplate="%{y}<br>%{x:.4f}<extra></extra>", marker={"color": "#E69F00"},
    ))
    style_figure(fig, x_title="Attention from [CLS] (0–1)", y_title="Feature (ranked)",
                 title="Attention per feature", height=max(300, 22 * len(labels) + 120), legend=False)
    fig.update_yaxes(autorange="reversed")
    return fig


@dataclass
class Drawn:
    figures: dict[str, go.Figure]
    molecule_src: str | None
    motifs: list[Any]
    status: str


def _record_line(sample: dict[str, Any]) -> str:
    line = f"Test record #{sample.get('index')}"
    if sample.get("id") not in (None, ""):
        line += f", id {sample.get('id')}"
    if sample.get("line"):
        line += f" (line {sample.get('line')})"
    return line + f": true {value_text(sample.get('label'))[:60]}, predicted {value_text(sample.get('prediction'))[:60]}"


def draw(job: Job | None, key: Any, layer: Any, head: Any) -> Drawn:
    """Every output of the explorer for the request's job (None: the not-found state)."""
    if job is None:
        nothing = empty_figure(NOT_FOUND)
        return Drawn({f: nothing for f in FIGURES}, None, [], NOT_FOUND)
    view = record_view(job, key, layer, head) if key is not None else None
    if view is None:
        message = ("No attention maps were stored for this job." if job.is_finished
                   else "Attention maps appear when the job has finished.")
        nothing = empty_figure(message)
        return Drawn({f: nothing for f in FIGURES}, None, [], message)
    molecule_src, motifs = None, []
    drawing = getattr(modality_view(view.modality), "drawing", None)  # how this modality's records are drawn
    if drawing == "molecule":
        domain, molecule_src = _molecule(view)
    elif drawing == "sequence":
        domain, windows = _sequence(view)
        labels = view.tokens[1:]
        motifs = [html.Li(f"positions {a + 1}–{b}: {''.join(labels[a:b])} ({share:.1%} of the attention)")
                  for a, b, share in windows]
    elif drawing == "particles":
        domain = _particles(view)
    elif drawing == "features":
        domain = _tabular(view)
    else:
        domain = empty_figure(f"No domain rendering for {view.modality}.")
    figures = {HEATMAP: heatmap_figure(view), BAR: bar_figure(view), DOMAIN: domain}
    return Drawn(figures, molecule_src, motifs, _record_line(view.sample) + f" · {view.what}")


def choices(job: Job | None) -> tuple[list[dict], list[dict], list[dict]]:
    """Dropdown options: stored records, layers, heads (+ mean, rollout)."""
    if job is None:
        return [], [], []
    samples = attention_samples(explain_artifacts(job).attention)
    records = [{"label": f"#{s.get('index')} {s.get('id', '')}: {value_text(s.get('label'))[:30]} → "
                         f"{value_text(s.get('prediction'))[:30]}",
                "value": int(s["key"])} for s in samples]
    shape = next((s.get("shape") for s in samples if isinstance(s.get("shape"), list) and len(s["shape"]) == 4), None)
    if not shape:
        return records, [], []
    layers = [{"label": f"Layer {i + 1}", "value": i} for i in range(int(shape[0]))]
    heads = ([{"label": "Mean over heads", "value": HEAD_MEAN}]
             + [{"label": f"Head {h + 1}", "value": h} for h in range(int(shape[1]))]
             + [{"label": "Rollout (all layers)", "value": HEAD_ROLLOUT}])
    return records, layers, heads


# --- layout and callbacks --------------------------------------------------------------------------


def section() -> html.Div:
    """The explorer's controls and figures (without the store)."""
    return html.Div(
        id="attention-section",
        children=[
            html.H3("Attention explorer", style={"fontSize": "16px", "margin": "8px 0"}),
            html.Div(style=CONTROLS_STYLE, children=[
                control("Test record (stored maps)", dcc.Dropdown(id=RECORD_ID, options=[], clearable=False),
                        width="360px"),
                control("Layer", dcc.Dropdown(id=LAYER_ID, options=[], value=0, clearable=False), width="140px"),
                control("Head", dcc.Dropdown(id=HEAD_ID, options=[], value=HEAD_MEAN, clearable=False), width="200px"),
            ]),
            html.Div(id=STATUS_ID, className="lf-status", children="Loading…"),
            # The heatmap has a full-width row of its own (a long record scrolls sideways in it).
            html.Div(id=f"{HEATMAP}-row", style={"overflowX": "auto", "maxWidth": "100%"},
                     children=[graph(HEATMAP, filename="attention-map", height=460)]),
            html.Div(className="lf-grid", children=[
                graph(BAR, filename="attention-to-cls", height=320),
                html.Img(id=MOLECULE_ID, alt="Molecule coloured by attention", src="",
                         style={"display": "none", "maxWidth": "100%"}),
            ]),
            html.Div(style={"overflowX": "auto", "maxWidth": "100%"},
                     children=[graph(DOMAIN, filename="attention-domain", height=320)]),
            html.Div(children=[html.Div("Top windows (candidate motifs)", className="lf-status"),
                               html.Div(id=MOTIFS_ID, children=[])]),
        ],
    )


def register(app: DjangoDash, *, click_source: str | None = None) -> None:
    """Wire the explorer's callbacks onto ``app``. With ``click_source`` (a graph id whose points
    carry the test index as customdata), clicking a point selects that record (the graph's figure is
    read too, for click events that come without customdata)."""
    extra_inputs = [Input(click_source, "clickData")] if click_source else []
    extra_states = [State(click_source, "figure")] if click_source else []

    @app.callback(
        Output(RECORD_ID, "options"), Output(RECORD_ID, "value"),
        Output(LAYER_ID, "options"), Output(HEAD_ID, "options"),
        Input(STORE_ID, "data"), *extra_inputs,
        State(RECORD_ID, "value"), *extra_states,
    )
    def options(store: Any, *rest: Any, user: User = None) -> tuple:
        click, current, figure = (rest[0], rest[1], rest[2]) if click_source else (None, rest[0], None)
        job = job_for_user(user=user, job_id=store_data(store).get("job_id"))
        records, layers, heads = choices(job)
        values = [r["value"] for r in records]
        value = current if current in values else (values[0] if values else None)
        clicked = clicked_index(click, figure)
        if clicked is not None and job is not None:
            for sample in attention_samples(explain_artifacts(job).attention):
                if sample.get("index") == clicked:
                    value = int(sample["key"])
        return records, value, layers, heads

    @app.callback(
        Output(HEATMAP, "figure"), Output(BAR, "figure"), Output(DOMAIN, "figure"),
        Output(MOLECULE_ID, "src"), Output(MOLECULE_ID, "style"), Output(MOTIFS_ID, "children"),
        Output(STATUS_ID, "children"), Output(LAYER_ID, "disabled"),
        Input(STORE_ID, "data"), Input(RECORD_ID, "value"), Input(LAYER_ID, "value"), Input(HEAD_ID, "value"),
    )
    def figures(store: Any, key: Any, layer: Any, head: Any, user: User = None) -> tuple:
        job = job_for_user(user=user, job_id=store_data(store).get("job_id"))
        drawn = draw(job, key, layer, head)
        style = {"maxWidth": "100%", "display": "block" if drawn.molecule_src else "none"}
        motifs = (html.Ol(drawn.motifs) if drawn.motifs
                  else html.P("Top windows are found in sequence records; none for this one.", className="text-muted"))
        # The rollout combines every layer: the layer choice does not apply to it.
        return (drawn.figures[HEATMAP], drawn.figures[BAR], drawn.figures[DOMAIN], drawn.molecule_src or "", style,
                motifs, drawn.status, head == HEAD_ROLLOUT)

    for figure_id in FIGURES:
        _register_download(app, figure_id)


def _register_download(app: DjangoDash, figure_id: str) -> None:
    @app.callback(
        Output(f"{figure_id}-download", "data"),
        Input(f"{figure_id}-csv", "n_clicks"),
        State(STORE_ID, "data"), State(RECORD_ID, "value"), State(LAYER_ID, "value"), State(HEAD_ID, "value"),
        prevent_initial_call=True,
    )
    def download(_clicks: Any, store: Any, key: Any, layer: Any, head: Any, user: User = None) -> dict:
        job = job_for_user(user=user, job_id=store_data(store).get("job_id"))
        name = f"job-{job.pk}-{figure_id}.csv" if job else f"{figure_id}.csv"
        return csv_download(draw(job, key, layer, head).figures[figure_id], filename=name)


def _point_custom(figure: Any, curve: Any, point: Any) -> Any:
    """customdata of point ``point`` of trace ``curve`` in a figure as the browser holds it (plain
    lists, or plotly's typed-array form {"dtype", "bdata", "shape"}); None when it has none."""
    try:
        custom = figure["data"][int(curve)].get("customdata")
        if isinstance(custom, dict) and "bdata" in custom:
            flat = np.frombuffer(base64.b64decode(custom["bdata"]), dtype=np.dtype(custom["dtype"]))
            shape = custom.get("shape")
            columns = int(str(shape).split(",")[-1]) if shape and "," in str(shape) else 1
            custom = flat.reshape(-1, columns).tolist() if columns > 1 else flat.tolist()
        return custom[int(point)] if custom is not None else None
    except (TypeError, KeyError, IndexError, ValueError, AttributeError):
        return None


def clicked_index(click: Any, figure: Any = None) -> int | None:
    """The test index carried by a clicked point (its customdata[0]), if any.

    Some plotly traces (WebGL scatter with typed-array data) send click events without customdata;
    then the point is looked up by curveNumber / pointNumber in ``figure`` (the graph's figure)."""
    try:
        point = click["points"][0]
    except (TypeError, KeyError, IndexError):
        return None
    data = point.get("customdata") if isinstance(point, dict) else None
    if data is None and figure is not None and isinstance(point, dict):
        data = _point_custom(figure, point.get("curveNumber"), point.get("pointNumber", point.get("pointIndex")))
    value = data[0] if isinstance(data, list) and data else data
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


app = DashboardApp(APP_NAME, title="Attention explorer")
app.layout = html.Div(style=BASE_STYLE, children=[dcc.Store(id=STORE_ID, data={}), section()])
register(app)
