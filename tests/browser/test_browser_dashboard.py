"""The dashboards in Chromium on a finished demo job (the wine cultivars set, a tiny model with the int8
profile, trained by a real worker): the dataset page's statistics and compression trade-offs with the
Pareto front; on the job page the training curves, the embedding explorer (coloured by k-means
cluster; clicking a point opens that record's attention), the attention explorer (switching layer and
head redraws the heatmap) and the evaluation
plots with baseline and optimized model overlaid. Screenshots: test-results/dashboard-*.png."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from django.core.files import File
from playwright.sync_api import FrameLocator, Page, expect

from mlcore.demo_data import DEMO_DATASETS, demo_dataset_write
from portal.datasets.models import Dataset
from portal.datasets.services import dataset_create
from portal.jobs.models import Job
from portal.jobs.services import job_submit
from portal.results.models import Result
from tests.browser.conftest import DASH_TIMEOUT_MS, dashboard, figure, wait_for_figure
from tests.workers.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

DEMO = "wine-cultivars"
CLASSES = 3


def _finished_demo_job(member, worker, tmp_path: Path, key: str = DEMO, profile: str = "int8",  # noqa: ANN001
                       epochs: int = 2) -> Job:
    """Demo set `key` uploaded and validated, and a tiny job trained on it, through the services."""
    spec = DEMO_DATASETS[key]
    path = demo_dataset_write(key, tmp_path)
    with open(path, "rb") as fh:
        dataset = dataset_create(
            owner=member.user, lab=member.lab, name=key, modality=spec.modality, file=File(fh), filename=path.name,
            schema={"input_cols": [spec.input_col] if spec.input_col else [], "target_cols": list(spec.target_cols),
                    "task": spec.task_keys[0]},
        )
    wait_for(lambda: Dataset.objects.get(pk=dataset.pk).status == Dataset.Status.READY, 120, "validation", worker)
    dataset.refresh_from_db()
    job = job_submit(user=member.user, dataset=dataset, task_key=spec.task_keys[0], profile_key=profile,
                     preset="tiny", hyperparameters={"epochs": epochs})
    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, 300, "the job", worker)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error_message + worker.output()[-3000:]
    return job


def _open_dropdown(frame: FrameLocator, dropdown_id: str):  # noqa: ANN202
    """Open a Dash dropdown; the options of its popup list."""
    trigger = frame.locator(f"#{dropdown_id}")
    trigger.click()
    expect(trigger).to_have_attribute("aria-expanded", "true")
    return frame.locator(f"[id='{trigger.get_attribute('aria-controls')}'] [role=option]")


def _select(frame: FrameLocator, dropdown_id: str, option: str) -> None:
    """Pick `option` in a Dash dropdown: open it, click the option by its label."""
    _open_dropdown(frame, dropdown_id).filter(has_text=re.compile(rf"^{re.escape(option)}$")).click()
    expect(frame.locator(f"#{dropdown_id}-value")).to_have_text(option)


def _heatmap(frame: FrameLocator) -> list[float]:
    traces = [t for t in figure(frame, "attention-heatmap") if t["type"] == "heatmap"]
    assert len(traces) == 1, traces
    return traces[0]["values"]


def _wait_for_new_heatmap(frame: FrameLocator, before: list[float], what: str) -> list[float]:
    drawn = wait_for_figure(frame, "attention-heatmap",
                            lambda traces: any(t["type"] == "heatmap" and t["values"] != before for t in traces),
                            what=f"did not change after {what}")
    return next(t["values"] for t in drawn if t["type"] == "heatmap")


# Pixel positions (in the iframe's viewport) of the points of the scatter trace `name` and the record
# each stands for (customdata): plotly's own axis conversions (a WebGL trace has no SVG point to click).
_POINTS_JS = """(graph, name) => {
  const plot = graph.querySelector('.js-plotly-plot');
  const trace = plot._fullData.find(t => t.name === name);
  if (!trace) return [];
  const box = plot.getBoundingClientRect(), size = plot._fullLayout._size;
  const xa = plot._fullLayout.xaxis, ya = plot._fullLayout.yaxis;
  return Array.from(trace.x).map((x, i) => ({
    x: box.left + size.l + xa.d2p(x), y: box.top + size.t + ya.d2p(trace.y[i]),
    index: Number(Array.isArray(trace.customdata[i]) ? trace.customdata[i][0] : trace.customdata[i]),
  }));
}"""


def test_browser_dashboard_views_attention_embedding_evaluation_pareto(
    page: Page, member, sign_in, shot, start_worker, tmp_path: Path,  # noqa: ANN001
) -> None:
    worker = start_worker()
    job = _finished_demo_job(member, worker, tmp_path)
    sign_in(page, member.user)

    # The dataset page: class balance and lengths from the validation report; the trade-offs of the
    # job's baseline and int8 model with the Pareto front.
    page.goto(f"/datasets/{job.dataset_id}/")
    stats = dashboard(page, "dataset_explorer")
    balance = wait_for_figure(stats, "class-balance-graph")
    assert sum(sum(t["values"]) for t in balance) == DEMO_DATASETS[DEMO].n_records, balance
    assert sum(t["points"] for t in balance) == CLASSES, balance
    wait_for_figure(stats, "length-graph")
    tradeoffs = dashboard(page, "tradeoffs")
    # On a busy machine the report's latencies may never become stable: such points are left out of the
    # latency front by default (the size front keeps every point).
    steady = (Result.objects.get(job=job).compression_report.get("timing") or {}).get("stable") is not False
    for graph_id in ("latency-graph", "size-graph"):
        drawn = wait_for_figure(tradeoffs, graph_id)
        names = {t["name"] for t in drawn if t["points"]}
        assert {"baseline", "int8"} <= names, drawn
        fronted = any("pareto" in n.lower() for n in names)
        assert fronted if (steady or graph_id == "size-graph") else not fronted, (steady, drawn)
    shot("dashboard-dataset-pareto", page.locator("[data-dashboard='tradeoffs']"))

    # The job page: training curves, then the embedding explorer.
    page.goto(f"/jobs/{job.pk}/")
    wait_for_figure(dashboard(page, "training_curves"), "loss-graph")
    explorer = dashboard(page, "embedding_explorer")
    scatter = wait_for_figure(explorer, "embedding-scatter")
    ringed = next(t for t in scatter if t["name"].startswith("attention map stored"))
    shown = sum(t["points"] for t in scatter) - ringed["points"]  # every test record once, plus the rings
    assert shown >= 10 and ringed["points"] >= 2, scatter
    expect(explorer.locator("#embedding-status")).to_contain_text(re.compile(r"silhouette", re.I))
    explorer.locator("#embedding-colour").get_by_text("k-means cluster").click()
    clusters = wait_for_figure(explorer, "embedding-scatter",
                               lambda traces: any(t["name"].lower().startswith("cluster") for t in traces),
                               what="is not coloured by cluster")
    assert sum(t["points"] for t in clusters) == sum(t["points"] for t in scatter), (clusters, scatter)
    shot("dashboard-embedding", page.locator("[data-dashboard='embedding_explorer'] iframe"))

    # The attention explorer: a heatmap with the record's tokens on both axes, the bar of attention to
    # the pooled token, the per-feature ranking (tabular).
    heat = wait_for_figure(explorer, "attention-heatmap")
    n_tokens = 1 + 13  # the pooled token and one token per wine measurement
    assert [t["points"] for t in heat if t["type"] == "heatmap"] == [n_tokens * n_tokens], heat
    wait_for_figure(explorer, "attention-bar")
    wait_for_figure(explorer, "attention-domain-graph")
    layer1_mean = _heatmap(explorer)
    shot("dashboard-attention-layer1-mean", explorer.locator("#attention-section"))

    _select(explorer, "attention-layer", "Layer 2")
    layer2_mean = _wait_for_new_heatmap(explorer, layer1_mean, "choosing layer 2")
    expect(explorer.locator("#attention-status")).to_contain_text("layer 2")
    _select(explorer, "attention-head", "Head 2")
    layer2_head2 = _wait_for_new_heatmap(explorer, layer2_mean, "choosing head 2")
    # One head's attention rows are distributions; so are the mean's, but they differ.
    assert layer2_head2 != layer2_mean
    shot("dashboard-attention-layer2-head2", explorer.locator("#attention-section"))

    # Clicking a ringed embedding point (another record than the one shown) opens its attention.
    current = explorer.locator("#attention-record-value").inner_text()
    explorer.locator("#embedding-scatter").scroll_into_view_if_needed()
    iframe_box = page.locator("[data-dashboard='embedding_explorer'] iframe").bounding_box()
    points = explorer.locator("#embedding-scatter").evaluate(_POINTS_JS, "attention map stored (click)")
    target = next(p for p in points if not current.startswith(f"#{p['index']} "))
    before = _heatmap(explorer)
    x, y = iframe_box["x"] + target["x"], iframe_box["y"] + target["y"]
    page.mouse.move(x, y)
    # Plotly clicks the point it hovers: wait for the hover label of that record first.
    expect(explorer.locator("#embedding-scatter .hoverlayer .hovertext").first).to_contain_text("click to open")
    page.mouse.click(x, y)
    expect(explorer.locator("#embedding-click")).to_have_text(
        f"Record #{target['index']} opened in the attention explorer below.")
    expect(explorer.locator("#attention-record-value")).to_contain_text(f"#{target['index']} ")
    _wait_for_new_heatmap(explorer, before, "clicking an embedding point")
    shot("dashboard-embedding-click-attention", page.locator("[data-dashboard='embedding_explorer'] iframe"))

    # Evaluation: confusion matrix, ROC, precision-recall and calibration, baseline and int8 overlaid.
    evaluation = dashboard(page, "evaluation")
    confusion = wait_for_figure(evaluation, "evaluation-confusion")
    assert [t["name"] for t in confusion if t["type"] == "heatmap"] == ["Baseline", "Optimized (int8)"], confusion
    # One cell per (true, predicted) class, coloured by the share of the true class.
    assert all(t["points"] == CLASSES * CLASSES and all(0 <= v <= 1 for v in t["values"])
               for t in confusion if t["type"] == "heatmap"), confusion
    for graph_id in ("evaluation-roc", "evaluation-pr", "evaluation-calibration"):
        drawn = wait_for_figure(evaluation, graph_id)
        names = " ".join(t["name"] for t in drawn if t["points"])
        assert "Baseline" in names and "Optimized (int8)" in names, (graph_id, drawn)
    expect(evaluation.locator("#evaluation-summary")).to_contain_text("roc_auc")
    shot("dashboard-evaluation", page.locator("[data-dashboard='evaluation'] iframe"))
    shot("dashboard-job-page")


def _drawn_svg(img) -> str:  # noqa: ANN001
    """The SVG text of an <img> whose src is a base64 data URI, after checking the browser decoded it."""
    expect(img).to_be_visible()
    assert img.evaluate("i => i.complete && i.naturalWidth > 0"), "the image did not decode"
    src = img.get_attribute("src")
    assert src.startswith("data:image/svg+xml;base64,"), src[:60]
    return base64.b64decode(src.split(",", 1)[1]).decode()


def test_browser_dashboard_molecule_attention_drawn_by_rdkit(
    page: Page, member, sign_in, shot, start_worker, tmp_path: Path,  # noqa: ANN001
) -> None:
    """Molecules: the dataset page's grid of example structures, and on the job page the molecule of the
    chosen test record drawn with its atoms coloured by attention, redrawn for another record."""
    worker = start_worker()
    job = _finished_demo_job(member, worker, tmp_path, key="chembl2321810-active", profile="baseline", epochs=1)
    sign_in(page, member.user)

    page.goto(f"/datasets/{job.dataset_id}/")
    grid = dashboard(page, "dataset_explorer").locator("#molecule-grid img")
    expect(grid.first).to_be_visible(timeout=DASH_TIMEOUT_MS)
    assert grid.count() >= 4 and "<svg" in _drawn_svg(grid.first)
    # Each structure says which line of the upload it comes from.
    expect(dashboard(page, "dataset_explorer").locator("#molecule-grid figure").first).to_have_attribute(
        "data-line", re.compile(r"^\d+$"))

    page.goto(f"/jobs/{job.pk}/")
    explorer = dashboard(page, "embedding_explorer")
    molecule = explorer.locator("#attention-molecule")
    expect(molecule).to_be_visible(timeout=DASH_TIMEOUT_MS)
    first = _drawn_svg(molecule)
    # Atoms coloured by their weight: several highlight colours, not one.
    assert len(set(re.findall(r"fill:(#[0-9A-Fa-f]{6})", first))) >= 3, first[:500]
    wait_for_figure(explorer, "attention-heatmap")
    explorer.locator("#attention-section").scroll_into_view_if_needed()
    shot("dashboard-attention-molecule", explorer.locator("#attention-section"))

    first_src = molecule.get_attribute("src")
    options = _open_dropdown(explorer, "attention-record")
    expect(options.nth(1)).to_be_visible()
    other = options.nth(1).inner_text()
    options.nth(1).click()
    expect(explorer.locator("#attention-record-value")).to_have_text(other)
    expect(molecule).not_to_have_attribute("src", first_src)  # another molecule, drawn again
    assert "<svg" in _drawn_svg(molecule)
