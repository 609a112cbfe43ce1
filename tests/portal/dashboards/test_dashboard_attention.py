"""Attention explorer: the data its views are drawn from (hand-checked), the domain renderings on jobs
whose artifacts the worker's code stored from real tiny models, and access through the real Dash
endpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rdkit import Chem

from portal.accounts.models import Visibility
from portal.dashboards import attention as att
from portal.dashboards._explain_data import attention_samples, explain_artifacts, npz_member
from portal.dashboards.common import figure_rows, is_empty_figure
from portal.jobs.models import Job
from tests.portal.dashboards import dashboard_client as dash
from tests.portal.dashboards.explain_jobs import call_every_callback, explained_job
from tests.portal.factories import JobFactory, MembershipFactory

pytestmark = pytest.mark.django_db

APP = att.APP_NAME
FIGURE_OUTPUTS = [f"{att.HEATMAP}.figure", f"{att.BAR}.figure", f"{att.DOMAIN}.figure", f"{att.MOLECULE_ID}.src",
                  f"{att.MOLECULE_ID}.style", f"{att.MOTIFS_ID}.children", f"{att.STATUS_ID}.children",
                  f"{att.LAYER_ID}.disabled"]


# --- pure data -------------------------------------------------------------------------------------


def test_atom_weights_follow_the_atom_index_and_sum_to_one():
    # "CCO": [CLS] C C O -> atoms 0, 1, 2
    weights = att.atom_weights(np.array([0.1, 0.2, 0.3, 0.4]), [-1, 0, 1, 2], 3)
    assert np.allclose(weights, [2 / 9, 3 / 9, 4 / 9]) and np.isclose(weights.sum(), 1)
    # Phenol written "c1ccccc1O" is drawn as its canonical "Oc1ccccc1": tokens O c 1 c c c c c 1.
    canonical = Chem.MolToSmiles(Chem.MolFromSmiles("c1ccccc1O"))
    assert canonical == "Oc1ccccc1"
    index = [-1, 0, 1, -1, 2, 3, 4, 5, 6, -1]
    token_w = np.array([0.5, 0.3, 0.01, 0.2, 0.02, 0.03, 0.04, 0.05, 0.06, 0.9])
    weights = att.atom_weights(token_w, index, 7)
    atom_tokens = token_w[[1, 2, 4, 5, 6, 7, 8]]
    assert np.allclose(weights, atom_tokens / atom_tokens.sum())
    assert Chem.MolFromSmiles(canonical).GetAtomWithIdx(int(np.argmax(weights))).GetSymbol() == "O"
    with pytest.raises(ValueError, match="exactly one token"):
        att.atom_weights(np.array([0.0, 0.5, 0.5]), [-1, 0, 0], 2)


def test_top_windows_are_the_best_non_overlapping_windows():
    w = np.array([0, 0, 1, 1, 0, 0, 0, 5, 0, 1], dtype=float)
    # Window sums: [0, 1, 2, 1, 0, 0, 5, 5, 1]; 6..7 first (earliest of the tie), then 2..3, then 8..9
    # (1..2 and 3..4 overlap a window already taken).
    assert att.top_windows(w, 2, k=3) == [(6, 8, 5 / 8), (2, 4, 2 / 8), (8, 10, 1 / 8)]
    assert att.top_windows(w, 20, k=2) == [(0, 10, 1.0)]  # a window longer than the sequence: all of it


def test_rollout_and_head_choices_from_a_hand_built_map():
    # One layer, two heads, L = 2.
    attn = np.array([[[[1.0, 0.0], [0.5, 0.5]], [[0.0, 1.0], [0.5, 0.5]]]])
    assert np.allclose(att.attention_matrix(attn, 0, 1), [[0.0, 1.0], [0.5, 0.5]])
    assert np.allclose(att.attention_matrix(attn, 0, att.HEAD_MEAN), [[0.5, 0.5], [0.5, 0.5]])
    # 0.5 * mean + 0.5 * I, rows normalized: [[0.75, 0.25], [0.25, 0.75]]
    assert np.allclose(att.attention_matrix(attn, 0, att.HEAD_ROLLOUT), [[0.75, 0.25], [0.25, 0.75]])
    assert np.allclose(att.pooled_attention(att.attention_matrix(attn, 0, 0)), [0.0])


# --- on real stored artifacts ----------------------------------------------------------------------


def test_rollout_recomputed_here_matches_the_worker_rollout():
    job = explained_job("dna-classification")
    artifact = explain_artifacts(job).attention
    for sample in attention_samples(artifact):
        attn = npz_member(artifact, f"attn_{sample['key']}")
        stored = npz_member(artifact, f"rollout_{sample['key']}")
        row = att.rollout_matrix(attn)[0]
        assert np.allclose(row / row.sum(), stored, atol=2e-3)


def test_molecule_drawing_colours_exactly_the_atoms_of_the_tokens():
    job = explained_job("molecule-classification")
    samples = attention_samples(explain_artifacts(job).attention)
    assert any(s["input_smiles"] != s["smiles"] for s in samples)  # canonical order differs somewhere
    for sample in samples:
        drawn = att.draw(job, sample["key"], 0, att.HEAD_MEAN)
        assert drawn.molecule_src.startswith("data:image/svg+xml;base64,")
        view = att.record_view(job, sample["key"], 0, att.HEAD_MEAN)
        mol = Chem.MolFromSmiles(sample["smiles"], sanitize=False)
        columns, rows = figure_rows(drawn.figures[att.DOMAIN])
        labels = [r[columns.index("x")] for r in rows]
        shares = np.array([float(r[columns.index("y")]) for r in rows])
        assert len(labels) == mol.GetNumAtoms() and np.isclose(shares.sum(), 1, atol=1e-9)
        atom_tokens = [(t, a) for t, a in enumerate(sample["atom_index"]) if a >= 0]
        total = sum(view.pooled[t - 1] for t, _ in atom_tokens)
        for t, a in atom_tokens:
            token = sample["tokens"][t]
            # The bar for atom a is the atom's element, and its share is its own token's attention.
            assert labels[a] == f"{mol.GetAtomWithIdx(a).GetSymbol()}{a}"
            assert mol.GetAtomWithIdx(a).GetSymbol().lower() in token.lower()
            assert np.isclose(shares[a], view.pooled[t - 1] / total, atol=1e-6)


def test_sequence_rendering_lists_motif_windows_and_labels_the_axis_with_the_sequence():
    job = explained_job("dna-classification")
    sample = attention_samples(explain_artifacts(job).attention)[0]
    drawn = att.draw(job, sample["key"], 0, att.HEAD_MEAN)
    fig = drawn.figures[att.DOMAIN]
    assert list(fig.layout.xaxis.ticktext) == sample["tokens"][1:]
    assert fig.layout.width >= 700  # wide: the page scrolls it
    assert 1 <= len(drawn.motifs) <= att.TOP_WINDOWS and "positions" in drawn.motifs[0].children


def test_particles_are_drawn_in_the_eta_phi_plane_sized_by_pt():
    job = explained_job("jet-tagging")
    sample = attention_samples(explain_artifacts(job).attention)[0]
    fig = att.draw(job, sample["key"], 0, att.HEAD_MEAN).figures[att.DOMAIN]
    p4 = np.array(sample["p4"])
    trace = fig.data[0]
    assert np.allclose(trace.x, p4[:, 1]) and np.allclose(trace.y, p4[:, 2])
    assert np.argmax(trace.marker.size) == np.argmax(p4[:, 0])
    assert fig.layout.xaxis.title.text == "Pseudorapidity η"


def test_tabular_features_are_ranked_by_attention():
    job = explained_job("tabular-classification")
    sample = attention_samples(explain_artifacts(job).attention)[0]
    fig = att.draw(job, sample["key"], 0, att.HEAD_MEAN).figures[att.DOMAIN]
    values = list(fig.data[0].x)
    assert values == sorted(values, reverse=True)
    assert set(fig.data[0].y) == set(sample["tokens"][1:])


# --- through the Dash endpoints --------------------------------------------------------------------


def _figures(client, job_id, key, layer, head):
    return dash.response_props(dash.update(
        client, APP, outputs=FIGURE_OUTPUTS,
        inputs={"store.data": {"job_id": job_id}, f"{att.RECORD_ID}.value": key, f"{att.LAYER_ID}.value": layer,
                f"{att.HEAD_ID}.value": head},
    ))


def test_switching_layer_and_head_changes_the_heatmap(client):
    job = explained_job("dna-classification")
    client.force_login(job.owner)
    key = attention_samples(explain_artifacts(job).attention)[0]["key"]
    first_props = _figures(client, job.pk, key, 0, 0)
    first = first_props[att.HEATMAP]["figure"]
    other_head = _figures(client, job.pk, key, 0, 1)[att.HEATMAP]["figure"]
    other_layer = _figures(client, job.pk, key, 1, 0)[att.HEATMAP]["figure"]
    rollout_props = _figures(client, job.pk, key, 0, att.HEAD_ROLLOUT)
    rollout = rollout_props[att.HEATMAP]["figure"]
    # the rollout spans every layer: the layer dropdown is switched off for it, and only for it
    assert rollout_props[att.LAYER_ID]["disabled"] is True and first_props[att.LAYER_ID]["disabled"] is False
    zs = [json.dumps(f["data"][0]["z"]) for f in (first, other_head, other_layer, rollout)]
    assert len(set(zs)) == 4
    assert "layer 1, head 1" in first["layout"]["title"]["text"]


def test_options_list_the_stored_records_layers_and_heads(client):
    job = explained_job("dna-classification")
    client.force_login(job.owner)
    props = dash.response_props(dash.update(
        client, APP, outputs=[f"{att.RECORD_ID}.options", f"{att.RECORD_ID}.value", f"{att.LAYER_ID}.options",
                              f"{att.HEAD_ID}.options"],
        inputs={"store.data": {"job_id": job.pk}}, state={f"{att.RECORD_ID}.value": None},
    ))
    samples = attention_samples(explain_artifacts(job).attention)
    assert [o["value"] for o in props[att.RECORD_ID]["options"]] == [s["key"] for s in samples]
    layers, heads = samples[0]["shape"][:2]
    assert len(props[att.LAYER_ID]["options"]) == layers
    assert [o["value"] for o in props[att.HEAD_ID]["options"]] == [att.HEAD_MEAN, *range(heads), att.HEAD_ROLLOUT]


VALUES = {f"{att.RECORD_ID}.value": 0, f"{att.LAYER_ID}.value": 0, f"{att.HEAD_ID}.value": att.HEAD_MEAN}


@pytest.mark.parametrize("who", ["other_lab", "anonymous"])
def test_private_job_is_unreachable_through_every_attention_endpoint(client, who):
    job = explained_job("molecule-classification", visibility=Visibility.PRIVATE)
    client.force_login(job.owner)
    owner = call_every_callback(client, APP, job.pk, VALUES)
    nobody = call_every_callback(client, APP, 10**9, VALUES)
    assert owner != nobody  # the owner does get the data: this test could fail
    if who == "anonymous":
        client.logout()
        response = dash.update(client, APP, outputs=FIGURE_OUTPUTS, inputs={"store.data": {"job_id": job.pk}})
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
        return
    client.force_login(MembershipFactory().user)
    intruder = call_every_callback(client, APP, job.pk, VALUES)
    assert intruder == nobody  # indistinguishable from a job that does not exist
    props = _figures(client, job.pk, 0, 0, att.HEAD_MEAN)
    assert is_empty_figure(props[att.HEATMAP]["figure"]) and props[att.STATUS_ID]["children"] == att.NOT_FOUND
    assert props[att.MOLECULE_ID]["src"] == ""


def test_a_running_job_says_when_maps_appear(client):
    member = MembershipFactory()
    job = JobFactory(owner=member.user, lab=member.lab, status=Job.Status.RUNNING)
    client.force_login(job.owner)
    props = _figures(client, job.pk, None, 0, att.HEAD_MEAN)
    assert props[att.STATUS_ID]["children"] == "Attention maps appear when the job has finished."
    assert is_empty_figure(props[att.HEATMAP]["figure"])


def test_parsed_artifacts_are_cached_within_a_byte_budget(monkeypatch):
    from portal.dashboards import _explain_data as data

    monkeypatch.setattr(data, "_cache", type(data._cache)())
    monkeypatch.setattr(data, "_cache_bytes", 0)
    monkeypatch.setattr(data, "_CACHE_BYTES", 2500)
    loads = []

    def load(n):
        loads.append(n)
        return np.zeros(n, dtype=np.uint8)

    assert data.cached(("a",), lambda: load(1000)).nbytes == 1000
    data.cached(("a",), lambda: load(1000))
    assert loads == [1000]  # the second call is served from the cache
    data.cached(("b",), lambda: load(1000))
    data.cached(("c",), lambda: load(1000))  # 3000 bytes > 2500: the least recently used ("a") goes
    assert list(data._cache) == [("b",), ("c",)] and data._cache_bytes == 2000


def _ids_in(component) -> set[str]:
    found = {getattr(component, "id", None)}
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list) else [children]:
        if child is not None and hasattr(child, "to_plotly_json"):
            found |= _ids_in(child)
    return found - {None}


def test_heatmap_has_a_full_width_row_and_readable_key_labels():
    """At laptop width the heatmap shared a half row with the bar chart: squeezed, its slanted-less
    key labels on top of each other. Now it has a row of its own, outside the two-column grid."""
    section = att.section()
    grids = [c for c in section.children if getattr(c, "className", None) == "lf-grid"]
    assert grids and all(att.HEATMAP not in _ids_in(g) for g in grids)
    row = next(c for c in section.children if att.HEATMAP in _ids_in(c))
    assert row.style["overflowX"] == "auto"
    job = explained_job("tabular-classification")
    sample = attention_samples(explain_artifacts(job).attention)[0]
    fig = att.draw(job, sample["key"], 0, att.HEAD_MEAN).figures[att.HEATMAP]
    n = len(sample["tokens"])
    assert list(fig.layout.xaxis.ticktext) == sample["tokens"]  # every feature named
    assert fig.layout.xaxis.tickangle == -45  # long feature names slant instead of overlapping
    assert fig.layout.height >= 22 * n + 180  # cells of at least 22 px, room under the plot for labels
    assert fig.layout.width is None  # short records fill the row


def test_a_long_record_gets_a_wide_scrolling_heatmap_with_thinned_upright_labels():
    n = 300
    matrix = np.full((n, n), 1.0 / n)
    tokens = ["[CLS]", *(f"tok{i}" for i in range(1, n))]
    view = att.RecordView(sample={}, modality="dna", shape=(1, 1, n, n), matrix=matrix, pooled=matrix[0, 1:],
                          tokens=tokens, what="layer 1, mean over heads")
    fig = att.heatmap_figure(view)
    assert fig.layout.xaxis.tickangle == -90
    assert len(fig.layout.xaxis.ticktext) <= att.MAX_TICKS
    assert fig.layout.width >= 10 * n  # wider than a laptop screen: the row scrolls sideways


def test_the_bar_names_every_token_slanted_left():
    job = explained_job("tabular-classification")
    sample = attention_samples(explain_artifacts(job).attention)[0]
    fig = att.draw(job, sample["key"], 0, att.HEAD_MEAN).figures[att.BAR]
    assert list(fig.layout.xaxis.ticktext) == [f"{i + 1}:{t}" for i, t in enumerate(sample["tokens"][1:])]
    assert fig.layout.xaxis.tickangle == -45  # towards the left: the last, long labels stay inside the figure
