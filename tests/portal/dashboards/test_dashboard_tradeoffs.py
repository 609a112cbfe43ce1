"""Compression trade-offs: the Pareto front on hand-made points, the points a report gives, the
filters, and access through the real Dash endpoints."""

from __future__ import annotations

import pytest

from portal.accounts.models import Visibility
from portal.dashboards import tradeoffs as tr
from portal.dashboards.common import figure_rows
from portal.jobs.models import Job
from portal.results.services import result_record
from tests.portal.dashboards import dashboard_client as dash
from tests.portal.factories import DatasetFactory, JobFactory, MembershipFactory

APP = tr.APP_NAME


# --- the Pareto front ------------------------------------------------------------------------------


def test_pareto_front_maximizing_the_metric():
    #          0           1           2           3 (dominated by 1)  4 (dominated by 2)  5 (dup of 1)
    points = [(1.0, 0.70), (2.0, 0.80), (4.0, 0.90), (3.0, 0.75), (5.0, 0.85), (2.0, 0.80)]
    assert tr.pareto_front(points, maximize_y=True) == [0, 1, 2]


def test_pareto_front_minimizing_the_error():
    points = [(1.0, 3.0), (2.0, 2.5), (2.5, 2.6), (3.0, 1.0), (0.5, 5.0)]
    assert tr.pareto_front(points, maximize_y=False) == [4, 0, 1, 3]


def test_pareto_front_same_x_keeps_only_the_best():
    assert tr.pareto_front([(1.0, 0.5), (1.0, 0.9), (1.0, 0.7)], maximize_y=True) == [1]
    assert tr.pareto_front([], maximize_y=True) == []


# --- points from reports ---------------------------------------------------------------------------


def _report(*, profile="int8", base=(0.80, 2.0, 1.5, 4_000_000), opt=(0.78, 1.0, 0.5, 1_000_000), metric="roc_auc",
            greater=True, device="cpu", threads=4):
    def side(values):
        value, b1, b32, size = values
        return {"metrics": {metric: value, "accuracy": 0.5}, "bytes": size, "latency_ms_b1": b1, "latency_ms_b32": b32,
                "params": 1000, "encoder_weight_bytes": 10, "throughput_b32": 100.0, "sparsity": 0.0, "dtype": "float32"}

    return {"profile": profile, "primary_metric": metric, "greater_is_better": greater, "baseline": side(base),
            "optimized": side(opt), "device": device, "threads": threads, "speedup_b1": 2.0}


@pytest.mark.django_db
def test_a_report_gives_a_baseline_and_an_optimized_point():
    job = JobFactory(profile_key="int8", worker_hostname="gpu-7", config={"preset": "small", "hyperparameters": {"lr": 0.001}})
    metric, greater, points = tr.points_for_job(job, _report())
    assert (metric, greater) == ("roc_auc", True)
    assert [(p.profile, p.metric, p.latency_ms_b1, p.latency_ms_b32, p.size_mb) for p in points] == [
        ("baseline", 0.80, 2.0, 1.5, 4.0), ("int8", 0.78, 1.0, 0.5, 1.0)]
    assert points[0].hardware == "cpu · gpu-7 (4 threads)" and points[0].preset == "small"
    assert "lr=0.001" in points[1].config and f"job #{job.pk}" in points[1].config


@pytest.mark.django_db
def test_a_gpu_jobs_report_adds_its_gpu_latencies_as_a_second_hardware():
    job = JobFactory(profile_key="slim", worker_hostname="gpu-7", config={"preset": "small"})
    report = {**_report(profile="slim"), "gpu": {
        "device": "NVIDIA H200", "baseline": {"latency_ms_b1": 0.9, "latency_ms_b32": 0.03},
        "optimized": {"latency_ms_b1": 0.8, "latency_ms_b32": 0.02}, "speedup_b1": 1.1, "speedup_b32": 1.5}}
    _, _, points = tr.points_for_job(job, report)
    assert [(p.profile, p.hardware, p.latency_ms_b32, p.size_mb) for p in points] == [
        ("baseline", "cpu · gpu-7 (4 threads)", 1.5, 4.0), ("baseline", "NVIDIA H200 · gpu-7", 0.03, None),
        ("slim", "cpu · gpu-7 (4 threads)", 0.5, 1.0), ("slim", "NVIDIA H200 · gpu-7", 0.02, None)]
    data = tr.TradeoffData(metric="roc_auc", greater_is_better=True, points=points, unmeasured_jobs=0)
    latency = tr.tradeoff_figure(data, points, axis="latency", batch=32)
    models = [t for t in latency.data if not t.name.startswith("Pareto front")]
    assert sorted(x for t in models for x in t.x) == [0.02, 0.03, 0.5, 1.5]
    # one front per hardware in the latency graph: the GPU's times do not hide the CPU's best models
    fronts = {t.name: list(t.x) for t in latency.data if t.name.startswith("Pareto front")}
    assert fronts == {"Pareto front, NVIDIA H200 · gpu-7": [0.02, 0.03],
                      "Pareto front, cpu · gpu-7 (4 threads)": [0.5, 1.5]}
    size = tr.tradeoff_figure(data, points, axis="size", batch=32)  # size does not depend on the hardware
    assert sorted(x for t in size.data if t.name != "Pareto front" for x in t.x) == [1.0, 4.0]
    only_gpu = tr.filter_points(points, presets=[], hardware=["NVIDIA H200 · gpu-7"])
    assert [p.latency_ms_b1 for p in only_gpu] == [0.9, 0.8]
    text = tr.note(("DNA", data))
    assert text.startswith("DNA: 2 model(s) from 1 job(s)") and "drawn twice in the latency graph" in text
    # a report without a GPU block (a CPU job, or int8 on a GPU job: gpu null) gives only the CPU points
    assert len(tr.points_for_job(job, {**report, "gpu": None})[2]) == 2


def _timing(stable, spread):
    return {"stable": stable, "max_spread": spread, "rounds": 100, "threshold": 0.1, "load_before": [5.0, 4.0, 3.0],
            "load_after": [6.0, 4.0, 3.0], "cpus": 2, "cores": 2}


@pytest.mark.django_db
def test_unstable_timings_are_hollow_and_kept_out_of_the_latency_front_unless_asked():
    """Two jobs on the same CPU: job a timed steadily, job b's int8 model timed during a load spike
    looks 10x faster than anything else. By default the latency front ignores b (drawn hollow, hover
    says why); the toggle lets it in; the size front, not a timing, always counts b."""
    a = JobFactory(profile_key="int8", worker_hostname="w", config={"preset": "tiny"})
    b = JobFactory(profile_key="int8", worker_hostname="w", config={"preset": "tiny"})
    _, _, steady = tr.points_for_job(a, {**_report(), "timing": _timing(True, 0.04)})
    _, _, noisy = tr.points_for_job(b, {**_report(base=(0.81, 3.0, 2.5, 4e6), opt=(0.79, 0.1, 0.05, 0.5e6)),
                                        "timing": _timing(False, 0.37)})
    assert [(p.stable, p.spread) for p in steady] == [(True, 0.04)] * 2
    assert [(p.stable, p.spread) for p in noisy] == [(False, 0.37)] * 2
    # a report from before stability was recorded counts as stable
    assert all(p.stable and p.spread is None for p in tr.points_for_job(a, _report())[2])
    points = steady + noisy
    data = tr.TradeoffData(metric="roc_auc", greater_is_better=True, points=points, unmeasured_jobs=0)

    def front(fig):
        return [(x, y) for t in fig.data if t.name.startswith("Pareto front") for x, y in zip(t.x, t.y)]

    default = tr.tradeoff_figure(data, points, axis="latency", batch=32)
    assert front(default) == [(0.5, 0.78), (1.5, 0.80)]
    int8 = next(t for t in default.data if t.name == "int8")
    assert list(int8.marker.symbol) == ["square", "square-open"]
    assert "timing not stable (spread 37% of the median)" in int8.hovertext[1]
    assert "not stable" not in int8.hovertext[0]
    included = tr.tradeoff_figure(data, points, axis="latency", batch=32, noisy_in_front=True)
    assert front(included) == [(0.05, 0.79), (1.5, 0.80), (2.5, 0.81)]
    size = tr.tradeoff_figure(data, points, axis="size", batch=32)
    assert (0.5, 0.79) in front(size)
    assert "2 model timing(s) never became stable" in tr.note(("DNA", data))
    # only unstable points on one hardware: no latency front at all, the points still drawn
    alone = tr.tradeoff_figure(data, noisy, axis="latency", batch=32)
    assert front(alone) == [] and sorted(x for t in alone.data for x in t.x) == [0.05, 2.5]


@pytest.mark.django_db
def test_tradeoff_data_counts_unmeasured_jobs_and_filters():
    dataset = DatasetFactory()
    kw = {"owner": dataset.owner, "lab": dataset.lab, "dataset": dataset, "status": Job.Status.SUCCEEDED}
    a = JobFactory(profile_key="int8", config={"preset": "tiny"}, **kw)
    b = JobFactory(profile_key="slim", config={"preset": "small"}, worker_hostname="other", **kw)
    c = JobFactory(profile_key="baseline", **kw)
    result_record(job_id=a.pk, baseline_metrics={"roc_auc": 0.8}, compression_report=_report())
    result_record(job_id=b.pk, baseline_metrics={"roc_auc": 0.8}, compression_report=_report(profile="slim"))
    result_record(job_id=c.pk, baseline_metrics={"roc_auc": 0.8})
    jobs = list(Job.objects.filter(pk__in=[a.pk, b.pk, c.pk]).select_related("result"))
    data = tr.tradeoff_data(jobs, task="dna-classification")
    assert data.metric == "roc_auc" and data.unmeasured_jobs == 1 and len(data.points) == 4
    assert {p.profile for p in tr.filter_points(data.points, presets=["small"], hardware=[])} == {"baseline", "slim"}
    hw = next(p.hardware for p in data.points if p.job_id == a.pk)
    assert {p.job_id for p in tr.filter_points(data.points, presets=[], hardware=[hw])} == {a.pk}

    fig = tr.tradeoff_figure(data, data.points, axis="size", batch=1)
    front = next(t for t in fig.data if t.name == "Pareto front")
    # Both optimized models are 1 MB at 0.78: one front point there, then the 4 MB baselines at 0.80.
    assert list(front.x) == [1.0, 4.0] and list(front.y) == [0.78, 0.80]
    assert fig.layout.xaxis.title.text == "Size on disk (MB, weights file)"
    latency = tr.tradeoff_figure(data, data.points, axis="latency", batch=32)
    assert latency.layout.xaxis.title.text == "Latency (ms per record, batch 32)"


# --- through the endpoints -------------------------------------------------------------------------


@pytest.fixture
def world(db):
    """A private dataset of lab A with one compressed job, and a member of lab B."""
    owner = MembershipFactory()
    dataset = DatasetFactory(owner=owner.user, lab=owner.lab, visibility=Visibility.PRIVATE)
    job = JobFactory(owner=owner.user, lab=owner.lab, dataset=dataset, status=Job.Status.SUCCEEDED,
                     profile_key="int8", visibility=Visibility.PRIVATE, config={"preset": "tiny"})
    result_record(job_id=job.pk, baseline_metrics={"roc_auc": 0.8},
                  compression_report=_report(base=(0.8123, 2.0, 1.5, 4e6), opt=(0.7987, 1.0, 0.5, 1e6)))
    return {"owner": owner, "dataset": dataset, "job": job, "outsider": MembershipFactory()}


def _calls(client, dataset_id, pair):
    choose = dash.update(client, APP, outputs=[f"{tr.PAIR_SELECT}.options", f"{tr.PAIR_SELECT}.value"],
                         inputs={"store.data": {"dataset_id": dataset_id}})
    filters = dash.update(client, APP, outputs=[f"{tr.PRESET_FILTER}.options", f"{tr.HARDWARE_FILTER}.options",
                                                f"{tr.NOTE_ID}.children"], inputs={f"{tr.PAIR_SELECT}.value": pair})
    draw = _draw(client, pair)
    download = dash.update(client, APP, outputs=[f"{tr.SIZE_GRAPH}-download.data"],
                           inputs={f"{tr.SIZE_GRAPH}-csv.n_clicks": 1},
                           state={f"{tr.PAIR_SELECT}.value": pair, f"{tr.PRESET_FILTER}.value": [],
                                  f"{tr.HARDWARE_FILTER}.value": [], f"{tr.BATCH_SELECT}.value": 1,
                                  f"{tr.NOISY_TOGGLE}.value": []})
    return choose, filters, draw, download


def _draw(client, pair, noisy=()):
    return dash.update(client, APP, outputs=[f"{tr.LATENCY_GRAPH}.figure", f"{tr.SIZE_GRAPH}.figure"],
                       inputs={f"{tr.PAIR_SELECT}.value": pair, f"{tr.PRESET_FILTER}.value": [],
                               f"{tr.HARDWARE_FILTER}.value": [], f"{tr.BATCH_SELECT}.value": 1,
                               f"{tr.NOISY_TOGGLE}.value": list(noisy)})


def test_owner_sees_the_tradeoffs(client, world):
    client.force_login(world["owner"].user)
    pair = f"{world['dataset'].pk}:dna-classification"
    choose, filters, draw, download = _calls(client, world["dataset"].pk, pair)
    assert dash.response_props(choose)[tr.PAIR_SELECT]["value"] == pair
    assert "1 job(s)" in dash.response_props(filters)[tr.NOTE_ID]["children"]
    figure = dash.response_props(draw)[tr.SIZE_GRAPH]["figure"]
    columns, rows = figure_rows(figure)
    ys = {row[columns.index("roc_auc")] for row in rows}
    assert {0.8123, 0.7987} <= ys
    csv_text = dash.response_props(download)[f"{tr.SIZE_GRAPH}-download"]["data"]["content"]
    header = csv_text.splitlines()[0]
    assert header == "trace,size_mb,roc_auc,hovertext,job,preset,hardware"
    assert "0.8123" in csv_text and "Pareto front" in csv_text


def test_the_toggle_lets_unstable_timings_into_the_front_through_the_endpoint(client, world):
    result = world["job"].result
    result.compression_report = {**result.compression_report, "timing": _timing(False, 0.5)}
    result.save(update_fields=["compression_report"])
    client.force_login(world["owner"].user)
    pair = f"{world['dataset'].pk}:dna-classification"

    def latency_front(noisy):
        figure = dash.response_props(_draw(client, pair, noisy))[tr.LATENCY_GRAPH]["figure"]
        return [t for t in figure["data"] if t["name"].startswith("Pareto front")]

    assert latency_front(()) == []
    assert [t["x"] for t in latency_front([tr.NOISY_IN_FRONT])] == [[1.0, 2.0]]


@pytest.mark.parametrize("who", ["outsider", "anonymous"])
def test_private_dataset_and_job_are_unreachable(client, world, who):
    if who == "outsider":
        client.force_login(world["outsider"].user)
    pair = f"{world['dataset'].pk}:dna-classification"
    responses = _calls(client, world["dataset"].pk, pair)
    if who == "anonymous":
        assert {r.status_code for r in responses} == {302}
        return
    for response in responses:
        text = dash.payload_text(response)
        assert "0.8123" not in text and "0.7987" not in text and world["dataset"].name not in text
    assert dash.response_props(responses[0])[tr.PAIR_SELECT]["options"] == []


def test_lab_job_on_a_visible_dataset_but_private_job_is_left_out(client, world):
    """A dataset shared with the lab, with a private job of its owner: a colleague sees the
    dataset's trade-offs without that job."""
    owner = world["owner"]
    dataset = world["dataset"]
    type(dataset).objects.filter(pk=dataset.pk).update(visibility=Visibility.LAB)
    colleague = MembershipFactory(lab=owner.lab).user
    client.force_login(colleague)
    pair = f"{dataset.pk}:dna-classification"
    _choose, filters, draw, _download = _calls(client, dataset.pk, pair)
    assert "0.8123" not in dash.payload_text(draw)
    assert "No compression reports" in dash.payload_text(draw)


def test_catalog_template_passes_filters(client, world):
    owner = world["owner"].user
    client.force_login(owner)
    html, cache_id = dash.render_embedding(client, owner, "dashboards/catalog_panels.html",
                                           {"jobs": [world["job"]], "filters": {"dataset": world["dataset"].pk,
                                                                                "task": "dna-classification"}})
    store = dash.store_of_layout(dash.layout(client, APP, cache_id=cache_id).json())
    assert store == {"dataset_id": world["dataset"].pk, "task": "dna-classification", "job_ids": [world["job"].pk]}


@pytest.mark.django_db
def test_a_baseline_jobs_report_gives_one_point():
    job = JobFactory(profile_key="baseline", config={"preset": "tiny"})
    report = {**_report(profile="baseline", opt=(0.80, 2.0, 1.5, 4_000_000)), "info": {"unchanged": True}}
    _, _, points = tr.points_for_job(job, report)
    assert [(p.profile, p.metric, p.size_mb) for p in points] == [("baseline", 0.80, 4.0)]
