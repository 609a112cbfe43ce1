"""Numbers and charts say what they show: a slower model is "slower", values are rounded, the
embedding chart names what it is coloured by, bounded metrics keep bounded axes and colour scales,
an empty chart's message fits its chart."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from django.urls import reverse
from django.utils import timezone

from mlcore.catalog import METRICS, TARGET_KINDS
from portal.common.formatting import times_text, value_text
from portal.dashboards import attention, comparison, embeddings, tradeoffs
from portal.dashboards.common import EMPTY_LINE_CHARS, empty_figure, jobs_for_user, metric_range
from portal.jobs.models import Job
from portal.results.models import Artifact
from portal.results.services import Point, artifact_create, metric_points_record, result_record
from tests.portal.factories import JobFactory, MembershipFactory

pytestmark = pytest.mark.django_db


def test_a_ratio_below_one_is_said_the_other_way_round() -> None:
    assert times_text(1.8) == "1.80× faster"
    assert times_text(0.73) == "1.37× slower"  # never "0.73× faster"
    assert times_text(0.25, more="smaller", less="larger") == "4.00× larger"
    assert times_text(1.01) == "about the same (1.01×)"
    assert times_text(None) == "" and times_text(float("nan")) == ""


def test_the_job_pages_report_says_slower_for_a_slower_model(client) -> None:
    member = MembershipFactory()
    job = JobFactory(owner=member.user, lab=member.lab, profile_key="int8", status=Job.Status.SUCCEEDED,
                     progress=1.0, finished_at=timezone.now())
    report = {"profile": "int8", "size_ratio": 3.2, "speedup_b1": 0.73, "speedup_b32": 1.8, "threads": 1,
              "baseline": {"bytes": 1000, "latency_ms_b1": 1.0, "latency_ms_b32": 9.0},
              "optimized": {"bytes": 312, "latency_ms_b1": 1.37, "latency_ms_b32": 5.0},
              "gpu": {"device": "H100", "speedup_b1": 0.5, "speedup_b32": 2.0,
                      "baseline": {"latency_ms_b1": 0.2, "latency_ms_b32": 1.0},
                      "optimized": {"latency_ms_b1": 0.4, "latency_ms_b32": 0.5}}}
    result_record(job_id=job.pk, baseline_metrics={"roc_auc": 0.9}, optimized_metrics={"roc_auc": 0.89},
                  compression_report=report)
    client.force_login(member.user)
    html = client.get(reverse("web:job_detail", args=[job.pk])).content.decode()
    assert "1.37× slower" in html and "1.80× faster" in html and "3.20× smaller" in html
    assert "2.00× slower" in html and "2.00× faster" in html  # the GPU rows too
    assert "0.73" not in html and "0.50×" not in html


def test_values_are_rounded_in_the_record_picker_and_hover(tmp_path) -> None:
    assert value_text(37.380000086810014) == "37.38" and value_text("37.380000086810014") == "37.38"
    assert value_text([1.23456789, 2.0]) == "[1.235, 2]" and value_text("HHHEEC") == "HHHEEC"
    assert value_text("1") == "1" and value_text(None) == "—"
    member = MembershipFactory()
    job = JobFactory(owner=member.user, lab=member.lab, status=Job.Status.SUCCEEDED)
    path = tmp_path / "attention.npz"
    path.write_bytes(b"not read here")
    sample = {"index": 3, "id": "mol-3", "label": 37.380000086810014, "prediction": 36.912345678901, "key": 0,
              "shape": [2, 4, 9, 9]}
    artifact_create(job_id=job.pk, kind=Artifact.Kind.ATTENTION, path=path, metadata={"samples": [sample]})
    records, layers, heads = attention.choices(job)
    assert records == [{"label": "#3 mol-3: 37.38 → 36.91", "value": 0}]
    assert attention._record_line(sample).endswith("true 37.38, predicted 36.91")


def test_the_embedding_chart_is_titled_by_what_colours_it() -> None:
    data = SimpleNamespace(kind="binary", labels=["0", "1", "1"], predictions=["0", "0", "1"],
                           cluster=np.array([0, 0, 1]), token_error=None, k=2)
    mode, values, title = embeddings.colour_values(data, "error", np.arange(3))
    assert values == ["correct", "wrong", "correct"] and title == "Error (correct or wrong)"
    assert embeddings.colour_values(data, "prediction", np.arange(3))[2] == "Prediction"


def _job_with_auc(member, auc: float, lr: float, curve: list[float]) -> Job:  # noqa: ANN001
    job = JobFactory(owner=member.user, lab=member.lab,
                     config={"preset": "tiny", "hyperparameters": {"lr": lr, "epochs": 3}})
    metric_points_record(job_id=job.pk, points=[Point("val", "roc_auc", e, e, v) for e, v in enumerate(curve, 1)])
    result_record(job_id=job.pk, baseline_metrics={"roc_auc": auc})
    return job


def test_bounded_metrics_get_bounded_axes_and_colour_scales_in_the_comparison() -> None:
    member = MembershipFactory()
    # Both perfect: Plotly would spread the equal values over 0.5–1.5 (axis and colours).
    a = _job_with_auc(member, 1.0, 1e-3, [1.0, 1.0])
    b = _job_with_auc(member, 1.0, 1e-4, [1.0, 1.0])
    jobs = jobs_for_user(user=member.user, job_ids=[a.pk, b.pk])
    parallel = comparison.parallel_figure(comparison.parallel_data(jobs)).to_plotly_json()["data"][0]
    assert parallel["dimensions"][-1]["label"] == "test roc_auc" and parallel["dimensions"][-1]["range"] == [0.0, 1.0]
    assert (parallel["line"]["cmin"], parallel["line"]["cmax"]) == (0.0, 1.0)
    curves = comparison.curves_figure(jobs, "val:roc_auc").to_plotly_json()["layout"]["yaxis"]
    assert curves["autorangeoptions"] == {"minallowed": 0.0, "maxallowed": 1.0}


def test_metric_ranges_come_from_the_catalog() -> None:
    for kind in TARGET_KINDS.values():  # every metric a task reports has its bounds declared
        assert set(kind.metrics) <= set(METRICS), kind.key
    assert metric_range("roc_auc", [0.7, 0.71]) == [0.0, 1.0]
    assert metric_range("mcc", [0.2]) == [-1.0, 1.0]
    low, high = metric_range("rmse", [2.0, 4.0])
    assert low == 0.0 and high == pytest.approx(4.1)
    low, high = metric_range("r2", [0.5, 0.9])
    assert low == pytest.approx(0.48) and high == 1.0
    assert metric_range("no-such-metric", [1.0]) is None


def test_an_empty_charts_message_is_wrapped_to_fit_a_half_width_chart() -> None:
    annotation = empty_figure(tradeoffs.NO_DATA).layout.annotations[0].text
    lines = annotation.split("<br>")
    assert len(lines) > 1 and all(len(line) <= EMPTY_LINE_CHARS for line in lines), lines
    assert " ".join(lines) == tradeoffs.NO_DATA
