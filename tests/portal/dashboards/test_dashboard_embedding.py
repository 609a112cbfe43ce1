"""Embedding explorer: projections, clusters and colours from artifacts the worker's code stored,
clicking a point opens its attention view, a 10,000-record job opens in under 2 s, and access
through the real Dash endpoints."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import numpy as np
import pytest
from plotly.utils import PlotlyJSONEncoder

from mlcore.data import TargetEncoder
from mlcore.explain import evaluation_arrays, projection_write
from portal.accounts.models import Visibility
from portal.dashboards import attention as att
from portal.dashboards import embeddings as emb
from portal.dashboards._explain_data import attention_samples, explain_artifacts, npz_arrays
from portal.dashboards.common import figure_rows, is_empty_figure
from portal.jobs.models import Job
from portal.results.models import Artifact
from portal.results.services import artifact_create
from tests.portal.dashboards import dashboard_client as dash
from tests.portal.dashboards.explain_jobs import call_every_callback, explained_job
from tests.portal.factories import JobFactory, MembershipFactory

pytestmark = pytest.mark.django_db

APP = emb.APP_NAME
SCATTER_OUTPUTS = [f"{emb.SCATTER}.figure", f"{emb.STATUS_ID}.children"]
OPTION_OUTPUTS = [f"{att.RECORD_ID}.options", f"{att.RECORD_ID}.value", f"{att.LAYER_ID}.options",
                  f"{att.HEAD_ID}.options"]


def test_display_subset_keeps_marked_records_and_is_bounded():
    index = np.arange(20_000)
    keep = {5, 19_999, 12_345}
    shown = emb.display_subset(index, keep, max_display=1000, seed=0)
    assert len(shown) == 1000 and keep <= set(index[shown].tolist())
    assert np.array_equal(shown, emb.display_subset(index, keep, max_display=1000, seed=0))
    assert np.array_equal(emb.display_subset(np.arange(50), keep, max_display=1000), np.arange(50))


def test_projection_clusters_and_colours_come_from_the_stored_data():
    job = explained_job("dna-classification")
    found = explain_artifacts(job)
    arrays = npz_arrays(found.projection)
    meta = found.embeddings.metadata
    data = emb.embedding_data(job, "pca")
    n = len(meta["ids"])
    assert data.n == n and data.xy.shape == (n, 2) and np.allclose(data.xy, arrays["pca"])
    assert data.k == int(arrays["k"]) and data.with_maps == {s["index"] for s in attention_samples(found.attention)}
    points = np.arange(n)
    mode, values, _ = emb.colour_values(data, "error", points)
    assert mode == "categorical"
    assert values == ["correct" if str(p) == str(y) else "wrong" for p, y in zip(meta["predictions"], meta["labels"])]
    assert emb.colour_values(data, "label", points)[1] == [str(y) for y in meta["labels"]]
    assert emb.colour_values(data, "cluster", points)[1] == [f"cluster {c + 1}" for c in arrays["cluster"]]
    # Hover shows the record itself (its sequence, as the worker previewed it) with its labels.
    assert len(meta["previews"]) == n and all(len(p) == 40 and set(p) <= set("ACGT") for p in meta["previews"])
    assert meta["previews"][0] in emb._hover(data, 0) and f"true: {meta['labels'][0]}" in emb._hover(data, 0)
    tsne = emb.embedding_data(job, "tsne")
    assert np.array_equal(tsne.index, arrays["tsne_index"]) and tsne.xy.shape == (len(arrays["tsne_index"]), 2)
    status = emb.status_text(data)
    assert f"{n} test records" in status
    assert (f"k-means k = {data.k}" in status) if data.k > 1 else ("k = 1" in status)


def test_per_token_labels_colour_by_each_record_s_most_frequent_class():
    assert emb.majority_token_class("HHEEEC") == "E"
    assert emb.majority_token_class(["C", "H", "H", "C"]) == "C"  # a tie goes to the class seen first
    assert emb.majority_token_class("") == "" and emb.majority_token_class(None) == ""
    job = explained_job("residue-labeling")
    data = emb.embedding_data(job, "pca")
    points = np.arange(data.n)
    mode, values, title = emb.colour_values(data, "label", points)
    assert mode == "categorical" and "most frequent token class" in title
    assert values == [emb.majority_token_class(data.labels[i]) for i in points]
    assert set(values) <= {str(c) for y in data.labels for c in y}  # classes, not sequence lengths


def test_regression_errors_are_absolute_differences():
    job = explained_job("dna-regression")
    data = emb.embedding_data(job, "pca")
    mode, values, title = emb.colour_values(data, "error", np.arange(data.n))
    expected = [abs(float(p) - float(y)) for p, y in zip(data.predictions, data.labels)]
    assert mode == "continuous" and np.allclose(values, expected) and "target units" in title


def _options(client, job_id, click, current=None, figure=None):
    return dash.response_props(dash.update(
        client, APP, outputs=OPTION_OUTPUTS,
        inputs={"store.data": {"job_id": job_id}, f"{emb.SCATTER}.clickData": click},
        state={f"{att.RECORD_ID}.value": current, f"{emb.SCATTER}.figure": figure},
        changed=[f"{emb.SCATTER}.clickData"],
    ))


def _click(index):
    return {"points": [{"curveNumber": 0, "pointNumber": 0, "x": 0.0, "y": 0.0, "customdata": [index]}]}


def test_clicking_a_point_opens_its_attention_view(client):
    job = explained_job("dna-classification")
    client.force_login(job.owner)
    samples = attention_samples(explain_artifacts(job).attention)
    target = samples[-1]
    props = _options(client, job.pk, _click(target["index"]), current=samples[0]["key"])
    assert props[att.RECORD_ID]["value"] == target["key"]
    # The scatter's points carry their test index, so a real click sends exactly that.
    figure = dash.response_props(dash.update(
        client, APP, outputs=SCATTER_OUTPUTS,
        inputs={"store.data": {"job_id": job.pk}, f"{emb.METHOD_ID}.value": "pca", f"{emb.COLOUR_ID}.value": "label"},
    ))[emb.SCATTER]["figure"]
    ringed = [t for t in figure["data"] if t["name"].startswith("attention map stored")][0]
    columns, rows = figure_rows({"data": [ringed]})
    assert sorted(json.loads(r[columns.index("customdata")])[0] for r in rows) == sorted(s["index"] for s in samples)
    text = dash.response_props(dash.update(
        client, APP, outputs=[f"{emb.CLICK_ID}.children"], inputs={f"{emb.SCATTER}.clickData": _click(target["index"])},
        state={"store.data": {"job_id": job.pk}, f"{emb.SCATTER}.figure": None},
    ))[emb.CLICK_ID]["children"]
    assert f"Record #{target['index']} opened" in text


def test_clicking_a_record_without_a_map_keeps_the_view_and_says_so(client):
    job = explained_job("dna-classification")
    client.force_login(job.owner)
    samples = attention_samples(explain_artifacts(job).attention)
    without = next(i for i in range(len(explain_artifacts(job).embeddings.metadata["ids"]))
                   if i not in {s["index"] for s in samples})
    props = _options(client, job.pk, _click(without), current=samples[1]["key"])
    assert props[att.RECORD_ID]["value"] == samples[1]["key"]
    text = dash.response_props(dash.update(
        client, APP, outputs=[f"{emb.CLICK_ID}.children"], inputs={f"{emb.SCATTER}.clickData": _click(without)},
        state={"store.data": {"job_id": job.pk}, f"{emb.SCATTER}.figure": None},
    ))[emb.CLICK_ID]["children"]
    assert "no stored attention map" in text


def _scatter(client, job_id, by="label"):
    return dash.response_props(dash.update(
        client, APP, outputs=SCATTER_OUTPUTS,
        inputs={"store.data": {"job_id": job_id}, f"{emb.METHOD_ID}.value": "pca", f"{emb.COLOUR_ID}.value": by},
    ))[emb.SCATTER]["figure"]


@pytest.mark.parametrize(("task", "by"), [("dna-classification", "label"), ("dna-classification", "error"),
                                          ("dna-classification", "cluster"), ("dna-regression", "error")])
def test_scatter_data_reaches_the_browser_as_plain_lists_not_typed_arrays(client, task, by):
    """Plotly sends numpy arrays as base64 typed arrays ("bdata"); a WebGL scatter's click event then
    carries no customdata and clicking a point did nothing in a real browser."""
    job = explained_job(task)
    client.force_login(job.owner)
    figure = _scatter(client, job.pk, by)
    assert figure["data"]
    for trace in figure["data"]:
        for field in ("x", "y", "customdata", "hovertext"):
            assert isinstance(trace[field], list), (trace["name"], field, type(trace[field]))
        assert all(isinstance(c, list) and len(c) == 1 and isinstance(c[0], int) for c in trace["customdata"])
        assert isinstance(trace["marker"].get("color"), (str, list)), trace["name"]
    text = json.dumps(emb.scatter_figure(emb.embedding_data(job, "pca"), by).to_plotly_json(),
                      cls=PlotlyJSONEncoder)
    assert "bdata" not in text and '"dtype"' not in text


def test_a_click_without_customdata_is_mapped_through_the_figure(client):
    """A click event as a real browser sent it (curveNumber / pointNumber, no customdata) opens the
    record the figure holds at that point; without the figure it says it cannot tell."""
    job = explained_job("dna-classification")
    client.force_login(job.owner)
    samples = attention_samples(explain_artifacts(job).attention)
    figure = _scatter(client, job.pk)
    curve = next(i for i, t in enumerate(figure["data"]) if t["name"].startswith("attention map stored"))
    custom = figure["data"][curve]["customdata"]
    point = next(j for j, c in enumerate(custom) if c[0] != samples[0]["index"])
    target = custom[point][0]
    click = {"points": [{"curveNumber": curve, "pointNumber": point, "x": 0.1, "y": 0.2}]}
    props = _options(client, job.pk, click, current=samples[0]["key"], figure=figure)
    assert props[att.RECORD_ID]["value"] == next(s["key"] for s in samples if s["index"] == target)
    assert emb.click_text(job, click, figure) == f"Record #{target} opened in the attention explorer below."
    assert "carries no record index" in emb.click_text(job, click, None)
    assert _options(client, job.pk, click, current=samples[0]["key"])[att.RECORD_ID]["value"] == samples[0]["key"]
    # The typed-array form a numpy figure would have had maps back to the same record.
    typed = {"data": [{}] * curve + [{"customdata": {
        "dtype": "i8", "shape": f"{len(custom)}, 1",
        "bdata": base64.b64encode(np.array(custom, dtype=np.int64).tobytes()).decode()}}]}
    assert att.clicked_index(click, typed) == target


def _big_job(tmp_path: Path, n: int) -> Job:
    """A job with n test records: embeddings, projection and evaluation written by mlcore.explain."""
    member = MembershipFactory()
    job = JobFactory(owner=member.user, lab=member.lab, status=Job.Status.SUCCEEDED)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 32)).astype(np.float32) + labels[:, None] * 2.0
    np.save(tmp_path / "embeddings.npy", x)
    logits = [np.array([0.0, 3.0 * (y - 0.5) + rng.normal()]) for y in labels]
    predictions = [str(int(lo[1] > 0)) for lo in logits]
    artifact_create(job_id=job.pk, kind=Artifact.Kind.EMBEDDINGS, path=tmp_path / "embeddings.npy", metadata={
        "ids": [f"rec{i}" for i in range(n)], "lines": list(range(2, n + 2)),
        "labels": [str(y) for y in labels], "predictions": predictions})
    meta = projection_write(tmp_path / "projection.npz", x, seed=0, tsne_max=300, k_max=3, silhouette_max=1000)
    artifact_create(job_id=job.pk, kind=Artifact.Kind.EMBEDDINGS, path=tmp_path / "projection.npz",
                    metadata={"projection": meta})
    targets = TargetEncoder(kind="binary", target_cols=["label"], classes=["0", "1"])
    np.savez_compressed(tmp_path / "evaluation.npz", **evaluation_arrays(targets, logits, list(labels)))
    artifact_create(job_id=job.pk, kind=Artifact.Kind.PREDICTIONS, path=tmp_path / "evaluation.npz",
                    metadata={"kind": "binary", "variant": "baseline", "classes": ["0", "1"], "n": n})
    return job


def test_a_job_with_10000_test_records_opens_in_under_2_seconds(client, tmp_path):
    job = _big_job(tmp_path, 10_000)
    client.force_login(job.owner)
    started = time.perf_counter()
    layout = dash.layout(client, APP)
    props = dash.response_props(dash.update(
        client, APP, outputs=SCATTER_OUTPUTS,
        inputs={"store.data": {"job_id": job.pk}, f"{emb.METHOD_ID}.value": "pca", f"{emb.COLOUR_ID}.value": "label"},
    ))
    options = _options(client, job.pk, None)
    elapsed = time.perf_counter() - started
    assert layout.status_code == 200 and options[att.RECORD_ID]["options"] == []
    assert elapsed < 2.0, f"opening took {elapsed:.2f} s"
    figure = props[emb.SCATTER]["figure"]
    drawn = sum(len(figure_rows({"data": [t]})[1]) for t in figure["data"])
    assert drawn == emb.MAX_DISPLAY  # thinned for display
    status = props[emb.STATUS_ID]["children"]
    assert "10000 test records" in status and "subsample for display" in status
    # t-SNE was bounded by the worker and says so.
    tsne = dash.response_props(dash.update(
        client, APP, outputs=SCATTER_OUTPUTS,
        inputs={"store.data": {"job_id": job.pk}, f"{emb.METHOD_ID}.value": "tsne",
                f"{emb.COLOUR_ID}.value": "cluster"},
    ))
    assert "t-SNE computed on a random 300" in tsne[emb.STATUS_ID]["children"]


VALUES = {f"{emb.METHOD_ID}.value": "pca", f"{emb.COLOUR_ID}.value": "error", f"{att.RECORD_ID}.value": 0,
          f"{att.LAYER_ID}.value": 0, f"{att.HEAD_ID}.value": att.HEAD_MEAN, f"{emb.SCATTER}.clickData": _click(0),
          f"{emb.SCATTER}.figure": None}


@pytest.mark.parametrize("who", ["other_lab", "anonymous"])
def test_private_job_is_unreachable_through_every_embedding_endpoint(client, who):
    job = explained_job("dna-classification", visibility=Visibility.PRIVATE)
    client.force_login(job.owner)
    owner = call_every_callback(client, APP, job.pk, VALUES)
    nobody = call_every_callback(client, APP, 10**9, VALUES)
    assert owner != nobody
    if who == "anonymous":
        client.logout()
        response = dash.update(client, APP, outputs=SCATTER_OUTPUTS, inputs={"store.data": {"job_id": job.pk}})
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
        return
    client.force_login(MembershipFactory().user)
    assert call_every_callback(client, APP, job.pk, VALUES) == nobody
    props = dash.response_props(dash.update(
        client, APP, outputs=SCATTER_OUTPUTS,
        inputs={"store.data": {"job_id": job.pk}, f"{emb.METHOD_ID}.value": "pca", f"{emb.COLOUR_ID}.value": "label"},
    ))
    assert is_empty_figure(props[emb.SCATTER]["figure"]) and props[emb.STATUS_ID]["children"] == emb.NOT_FOUND


def test_job_page_embedding_hands_the_job_to_both_explain_apps(client):
    job = explained_job("dna-classification", visibility=Visibility.PRIVATE)
    client.force_login(job.owner)
    html, cache_id = dash.render_embedding(client, job.owner, "dashboards/job_explain.html", {"job": job})
    assert f"/django_plotly_dash/app/{APP}/initial/" in html and "/django_plotly_dash/app/evaluation/initial/" in html
    layout = dash.layout(client, APP, cache_id=cache_id)
    assert layout.status_code == 200 and dash.store_of_layout(layout.json()) == {"job_id": job.pk}


def test_a_queued_job_says_when_embeddings_appear():
    member = MembershipFactory()
    job = JobFactory(owner=member.user, lab=member.lab, status=Job.Status.QUEUED)
    figure, status = emb.view(job, "tsne", "cluster")
    assert status == "Embeddings appear when the job has finished." and is_empty_figure(figure)
