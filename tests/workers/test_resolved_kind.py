"""A job on a "binary" task whose data has 3 classes runs as multiclass, and the worker stores that on
its result: the resolved target kind and its primary metric (macro-F1), which every page, the API and
the dashboards then show. The dataset is uploaded without a task, so its validation report says
nothing about classes: only the run knows the kind."""

from __future__ import annotations

import random

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse

from mlcore import catalog
from portal.dashboards import common
from portal.datasets.models import Dataset
from portal.datasets.services import dataset_create
from portal.jobs import services as job_services
from portal.jobs.models import Job
from portal.results.models import Result
from portal.results.selectors import primary_metric
from tests.portal.api.conftest import token_client
from tests.portal.factories import MembershipFactory
from tests.workers.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _three_classes(n: int = 240) -> bytes:
    rng = random.Random(5)
    rows = ["a,b,y"]
    for _ in range(n):
        a, b = rng.gauss(0, 1), rng.gauss(0, 1)
        rows.append(f"{a:.3f},{b:.3f},{0 if a < -0.4 else 1 if a < 0.4 else 2}")
    return ("\n".join(rows) + "\n").encode()


def test_the_worker_stores_the_resolved_kind_and_its_primary_metric(start_worker) -> None:  # noqa: ANN001
    task = catalog.TASKS["tabular-classification"]
    binary, multiclass = catalog.TARGET_KINDS["binary"], catalog.TARGET_KINDS["multiclass"]
    assert task.target_kind == binary.key  # declared binary: the data decides
    m = MembershipFactory()
    dataset = dataset_create(owner=m.user, lab=m.lab, name="three", modality="tabular",
                             file=ContentFile(_three_classes(), name="three.csv"), filename="three.csv")
    worker = start_worker()
    wait_for(lambda: Dataset.objects.get(pk=dataset.pk).status == Dataset.Status.READY, 180, "validation", worker)
    dataset.refresh_from_db()
    job = job_services.job_submit(user=m.user, dataset=dataset, task_key=task.key, preset="tiny", name="three-run",
                                  hyperparameters={"epochs": 2, "patience": 0}, target_col="y")
    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, 300, "the job to finish", worker)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error_message + job.error_traceback

    result = Result.objects.get(job=job)
    assert (result.target_kind, result.primary_metric, result.greater_is_better) == (
        multiclass.key, multiclass.primary_metric, True)
    assert result.primary_value == result.baseline_metrics["macro_f1"]
    assert "roc_auc" in result.baseline_metrics  # measured too, but not what the job is judged by

    metric = primary_metric(job)
    assert (metric.key, metric.target_kind) == ("macro_f1", multiclass.key)
    assert common.primary_metric_for_job(job) == "macro_f1"
    assert token_client(m.user).get(f"/api/v1/jobs/{job.pk}/metrics/").json()["primary"]["key"] == "macro_f1"
    page = Client()
    page.force_login(m.user)
    home = page.get(reverse("web:home")).content.decode().split('id="recent-results"')[1].split("</section>")[0]
    assert "three-run" in home and "macro_f1" in home and "roc_auc" not in home
    row = page.get(reverse("web:catalog")).content.decode().split('id="catalog-table"')[1]
    assert "macro_f1</span>" in row and "roc_auc" not in row
    assert 'class="table-primary" data-metric="macro_f1"' in page.get(
        reverse("web:job_detail", args=[job.pk])).content.decode()
